//! Reading files under the inventory root, with failures turned into the
//! English reasons the document carries.

use std::io;
use std::path::{Path, PathBuf};

use nird_proto::inventory::reason;

/// The system being inventoried: a root directory (`/` for the live system,
/// a fixture tree in tests) under which `/sys`, `/proc`, `/etc` and `/var`
/// are read.
#[derive(Debug, Clone)]
pub struct Source {
    /// Root of the inventoried system.
    root: PathBuf,
    /// True when `root` is `/`: values that only exist on the live system
    /// (statvfs, IP addresses, D-Bus) are read only then.
    live: bool,
}

/// Reason for a failed read.
pub type Reason = String;

impl Source {
    /// A source rooted at `root`.
    pub fn new(root: &Path) -> Source {
        let live = root == Path::new("/");
        Source {
            root: root.to_path_buf(),
            live,
        }
    }

    /// True when this is the running system (root `/`).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The place of the absolute system path `path` under the root.
    pub fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// Whole file as bytes.
    pub fn read_bytes(&self, path: &str) -> Result<Vec<u8>, Reason> {
        std::fs::read(self.path(path)).map_err(|e| io_reason(&e))
    }

    /// Whole file as text (lossy UTF-8, copied only when not valid UTF-8).
    pub fn read_text(&self, path: &str) -> Result<String, Reason> {
        self.read_bytes(path).map(|b| {
            String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        })
    }

    /// The file opened for streaming (large files such as dpkg's status).
    pub fn open(&self, path: &str) -> Result<std::fs::File, Reason> {
        std::fs::File::open(self.path(path)).map_err(|e| io_reason(&e))
    }

    /// First line of a sysfs-style attribute, trimmed; an empty value is
    /// unavailable.
    pub fn read_attr(&self, path: &str) -> Result<String, Reason> {
        let text = self.read_text(path)?;
        let value = text.lines().next().unwrap_or("").trim();
        if value.is_empty() {
            Err("empty value".to_string())
        } else {
            Ok(value.to_string())
        }
    }

    /// Attribute parsed as an unsigned integer (decimal, or hex with `0x`).
    pub fn read_u64(&self, path: &str) -> Result<u64, Reason> {
        let value = self.read_attr(path)?;
        parse_u64(&value).ok_or_else(|| format!("not a number: {value:?}"))
    }

    /// Names of the entries of a directory, sorted (an absent directory is
    /// an empty list: "no such hardware").
    pub fn list_dir(&self, path: &str) -> Result<Vec<String>, Reason> {
        let dir = self.path(path);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_reason(&e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// True if the path exists under the root.
    pub fn exists(&self, path: &str) -> bool {
        self.path(path).exists()
    }

    /// Last component of a symlink's target (`device/driver` → "e1000e").
    pub fn link_name(&self, path: &str) -> Option<String> {
        let target = std::fs::read_link(self.path(path)).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// The resolved directory a sysfs symlink points to, as a path under the
    /// root; `None` if it does not resolve inside the root.
    pub fn resolve(&self, path: &str) -> Option<String> {
        let real = std::fs::canonicalize(self.path(path)).ok()?;
        let root = std::fs::canonicalize(&self.root).ok()?;
        let inner = real.strip_prefix(&root).ok()?;
        Some(format!("/{}", inner.to_string_lossy()))
    }
}

/// The reason for an I/O error, using the shared constants where they fit.
pub fn io_reason(e: &io::Error) -> Reason {
    match e.kind() {
        io::ErrorKind::NotFound => reason::NOT_EXPOSED.to_string(),
        io::ErrorKind::PermissionDenied => reason::NEEDS_ROOT.to_string(),
        _ => format!("read error: {e}"),
    }
}

/// Decimal, or hexadecimal with a `0x` prefix.
pub fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Values manufacturers leave in DMI fields instead of real data.
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    const PLACEHOLDERS: &[&str] = &[
        "",
        "to be filled by o.e.m.",
        "to be filled by oem",
        "default string",
        "system serial number",
        "system product name",
        "system manufacturer",
        "system version",
        "chassis serial number",
        "base board serial number",
        "not specified",
        "not applicable",
        "not available",
        "n/a",
        "none",
        "null",
        "oem",
        "o.e.m.",
        "invalid",
        "unknown",
        "0123456789",
        "123456789",
        "1234567890",
        "type1productconfigid",
        "03000200-0400-0500-0006-000700080009",
    ];
    if PLACEHOLDERS.contains(&v.as_str()) {
        return true;
    }
    // All zeros, all F, dots or spaces ("00000000-0000-...", "FFFFFFFF").
    v.chars().all(|c| matches!(c, '0' | '-' | ' ' | '.'))
        || v.chars().all(|c| matches!(c, 'f' | '-'))
}

/// A DMI string attribute: unavailable when unreadable or a placeholder.
pub fn dmi_string(source: &Source, attr: &str) -> Result<String, Reason> {
    let value = source.read_attr(&format!("/sys/class/dmi/id/{attr}"))?;
    if is_placeholder(&value) {
        Err(reason::PLACEHOLDER.to_string())
    } else {
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert!(is_placeholder("To Be Filled By O.E.M."));
        assert!(is_placeholder("Default string"));
        assert!(is_placeholder("00000000-0000-0000-0000-000000000000"));
        assert!(is_placeholder("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"));
        assert!(!is_placeholder("PB0ABCD1"));
        assert!(!is_placeholder("LENOVO"));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0x8086"), Some(0x8086));
        assert_eq!(parse_u64("42\n"), Some(42));
        assert_eq!(parse_u64("x"), None);
    }
}
