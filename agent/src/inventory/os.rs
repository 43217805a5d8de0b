//! Operating system: os-release, kernel, and the dpkg status database
//! (streamed once for the package count, the profiles' packages and the
//! full package list).

use std::collections::BTreeMap;

use nird_proto::inventory::{Firewall, Os, Package, Packages, Reading};

use super::source::Source;

/// Reads the OS section and the installed package list; `of_interest` names
/// the packages whose versions the applied profiles care about.
pub fn collect(source: &Source, of_interest: &[String]) -> (Os, Reading<Vec<Package>>) {
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
    // Streamed: the status file of a desktop with 2,500 packages is
    // several MB, more than the agent's whole memory budget.
    let dpkg: Result<(Packages, Vec<Package>), String> =
        source.open("/var/lib/dpkg/status").and_then(|f| {
            dpkg_status(std::io::BufReader::new(f), of_interest)
                .map_err(|e| format!("read error: {e}"))
        });
    let (packages, list) = match dpkg {
        Ok((p, l)) => (Reading::Value(p), Reading::Value(l)),
        Err(e) => (Reading::unavailable(e.clone()), Reading::unavailable(e)),
    };
    let os = Os {
        pretty_name: key("PRETTY_NAME"),
        id: key("ID"),
        version_id: key("VERSION_ID"),
        kernel: source.read_attr("/proc/sys/kernel/osrelease").into(),
        architecture: source.read_attr("/proc/sys/kernel/arch").into(),
        packages,
        firewall: Reading::Value(firewall(source)),
    };
    (os, list)
}

/// ufw (`ENABLED=yes` in its configuration) or firewalld (its unit enabled
/// for boot); neither installed: no tool, off.
fn firewall(source: &Source) -> Firewall {
    if let Ok(conf) = source.read_text("/etc/ufw/ufw.conf") {
        let enabled = conf.lines().any(|l| {
            l.trim()
                .replace('"', "")
                .eq_ignore_ascii_case("ENABLED=yes")
        });
        return Firewall {
            tool: Some("ufw".into()),
            enabled,
        };
    }
    if source.exists("/usr/lib/systemd/system/firewalld.service")
        || source.exists("/lib/systemd/system/firewalld.service")
    {
        let enabled =
            source.exists("/etc/systemd/system/multi-user.target.wants/firewalld.service");
        return Firewall {
            tool: Some("firewalld".into()),
            enabled,
        };
    }
    Firewall {
        tool: None,
        enabled: false,
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

/// Reads a dpkg `status` file line by line: the installed packages (status
/// `installed`, selection `install` or `hold`), sorted by name and
/// architecture, their count and the versions of `of_interest`.
pub fn dpkg_status(
    mut status: impl std::io::BufRead,
    of_interest: &[String],
) -> std::io::Result<(Packages, Vec<Package>)> {
    let mut versions: BTreeMap<String, Option<String>> =
        of_interest.iter().map(|p| (p.clone(), None)).collect();
    let mut list: Vec<Package> = Vec::new();
    // Fields of the current stanza.
    let mut stanza = Stanza::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = status.read_until(b'\n', &mut line)?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if n == 0 || text.is_empty() {
            // End of a stanza.
            let done = std::mem::take(&mut stanza);
            if done.installed && !done.name.is_empty() && !done.version.is_empty() {
                if let Some(slot) = versions.get_mut(&done.name)
                    && slot.is_none()
                {
                    *slot = Some(done.version.clone());
                }
                list.push(Package {
                    name: done.name,
                    version: done.version,
                    arch: done.arch.unwrap_or_else(|| "all".into()),
                    section: done.section,
                    size_kib: done.size_kib,
                });
            }
            if n == 0 {
                break;
            }
        } else if text.starts_with([' ', '\t']) {
            // Continuation of a multi-line field (Description, Conffiles).
        } else if let Some((field, value)) = text.split_once(':') {
            let value = value.trim();
            match field {
                "Package" => stanza.name = value.to_owned(),
                // "want flag status": installed is the third word.
                "Status" => stanza.installed = value.split(' ').nth(2) == Some("installed"),
                "Version" => stanza.version = value.to_owned(),
                "Architecture" => stanza.arch = Some(value.to_owned()),
                "Section" => stanza.section = Some(value.to_owned()),
                "Installed-Size" => stanza.size_kib = value.parse().ok(),
                _ => {}
            }
        }
    }
    list.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
    list.dedup_by(|a, b| a.key() == b.key());
    let packages = Packages {
        installed_count: u32::try_from(list.len()).unwrap_or(u32::MAX),
        of_interest: versions,
    };
    Ok((packages, list))
}

/// The fields of one dpkg stanza the inventory keeps.
#[derive(Default)]
struct Stanza {
    name: String,
    installed: bool,
    version: String,
    arch: Option<String>,
    section: Option<String>,
    size_kib: Option<u64>,
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
        let (p, list) =
            dpkg_status(status.as_bytes(), &["c".into(), "b".into(), "zz".into()]).unwrap();
        assert_eq!(p.installed_count, 2);
        assert_eq!(list.len(), 2);
        assert_eq!(p.of_interest["c"].as_deref(), Some("3:4.5-1"));
        assert_eq!(p.of_interest["b"], None);
        assert_eq!(p.of_interest["zz"], None);
    }

    #[test]
    fn dpkg_list_keeps_fields_and_sorts_by_name_and_arch() {
        let status = "Package: zlib1g\nStatus: install ok installed\nPriority: required\n\
                      Section: libs\nInstalled-Size: 168\nArchitecture: i386\n\
                      Multi-Arch: same\nVersion: 1:1.2.13.dfsg-1\nDescription: compression\n \
                      Package: fake continuation line\n\n\
                      Package: zlib1g\nStatus: hold ok installed\nArchitecture: amd64\n\
                      Version: 1:1.2.13.dfsg-1\n\n\
                      Package: apt\nStatus: install ok half-configured\nVersion: 2.6.1\n";
        let (p, list) = dpkg_status(status.as_bytes(), &[]).unwrap();
        assert_eq!(p.installed_count, 2);
        assert_eq!(
            list,
            vec![
                Package {
                    name: "zlib1g".into(),
                    version: "1:1.2.13.dfsg-1".into(),
                    arch: "amd64".into(),
                    section: None,
                    size_kib: None,
                },
                Package {
                    name: "zlib1g".into(),
                    version: "1:1.2.13.dfsg-1".into(),
                    arch: "i386".into(),
                    section: Some("libs".into()),
                    size_kib: Some(168),
                },
            ]
        );
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
