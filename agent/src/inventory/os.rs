//! Operating system: os-release, kernel, and the dpkg status database.

use std::collections::BTreeMap;

use nird_proto::inventory::{Os, Packages, Reading};

use super::source::Source;

/// Reads the OS section; `of_interest` names the packages whose versions
/// the applied profiles care about.
pub fn collect(source: &Source, of_interest: &[String]) -> Os {
    let release = source
        .read_text("/etc/os-release")
        .or_else(|_| source.read_text("/usr/lib/os-release"))
        .map(|t| parse_os_release(&t));
    let key = |k: &str| -> Reading<String> {
        match &release {
            Ok(map) => map
                .get(k)
                .cloned()
                .map(Reading::Value)
                .unwrap_or_else(|| Reading::unavailable(format!("no {k} in os-release"))),
            Err(e) => Reading::unavailable(e.clone()),
        }
    };
    Os {
        pretty_name: key("PRETTY_NAME"),
        id: key("ID"),
        version_id: key("VERSION_ID"),
        kernel: source.read_attr("/proc/sys/kernel/osrelease").into(),
        architecture: source.read_attr("/proc/sys/kernel/arch").into(),
        // Streamed: the status file of a desktop with 2,500 packages is
        // several MB, more than the agent's whole memory budget.
        packages: source
            .open("/var/lib/dpkg/status")
            .and_then(|f| {
                dpkg_packages(std::io::BufReader::new(f), of_interest)
                    .map_err(|e| format!("read error: {e}"))
            })
            .into(),
    }
}

/// `KEY=value` lines, values unquoted (os-release(5)).
fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.replace("\\\"", "\""))
        })
        .collect()
}

/// Counts installed packages and finds the versions of `of_interest` in a
/// dpkg `status` file, read line by line.
pub fn dpkg_packages(
    mut status: impl std::io::BufRead,
    of_interest: &[String],
) -> std::io::Result<Packages> {
    let mut installed_count = 0u32;
    let mut versions: BTreeMap<String, Option<String>> =
        of_interest.iter().map(|p| (p.clone(), None)).collect();
    // Fields of the current stanza.
    let (mut name, mut installed, mut version) = (String::new(), false, String::new());
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = status.read_until(b'\n', &mut line)?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if n == 0 || text.is_empty() {
            // End of a stanza.
            if installed {
                installed_count += 1;
                if let Some(slot) = versions.get_mut(&name)
                    && slot.is_none()
                    && !version.is_empty()
                {
                    *slot = Some(version.clone());
                }
            }
            (installed, version) = (false, String::new());
            name.clear();
            if n == 0 {
                break;
            }
        } else if let Some(v) = text.strip_prefix("Package:") {
            name = v.trim().to_string();
        } else if let Some(v) = text.strip_prefix("Status:") {
            installed = v.trim() == "install ok installed";
        } else if let Some(v) = text.strip_prefix("Version:") {
            version = v.trim().to_string();
        }
    }
    Ok(Packages {
        installed_count,
        of_interest: versions,
    })
}

/// Used by the CLI to validate `--package` arguments: Debian package names
/// are lowercase letters, digits and `+-.`, at least two characters,
/// starting with an alphanumeric.
pub fn is_valid_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_quotes() {
        let m = parse_os_release("NAME=\"Linux Mint\"\nID=linuxmint\n# c\nVERSION_ID='22'\n");
        assert_eq!(m["NAME"], "Linux Mint");
        assert_eq!(m["ID"], "linuxmint");
        assert_eq!(m["VERSION_ID"], "22");
    }

    #[test]
    fn dpkg_counts_installed_only() {
        let status = "Package: a\nStatus: install ok installed\nVersion: 1.0\n\n\
                      Package: b\nStatus: deinstall ok config-files\nVersion: 2\n\n\
                      Package: c\nStatus: install ok installed\nVersion: 3:4.5-1\n";
        let p = dpkg_packages(status.as_bytes(), &["c".into(), "b".into(), "zz".into()]).unwrap();
        assert_eq!(p.installed_count, 2);
        assert_eq!(p.of_interest["c"].as_deref(), Some("3:4.5-1"));
        assert_eq!(p.of_interest["b"], None);
        assert_eq!(p.of_interest["zz"], None);
    }

    #[test]
    fn package_names() {
        assert!(is_valid_package_name("libreoffice-writer"));
        assert!(is_valid_package_name("g++"));
        assert!(!is_valid_package_name("Bad"));
        assert!(!is_valid_package_name("a"));
        assert!(!is_valid_package_name("x;rm"));
    }
}
