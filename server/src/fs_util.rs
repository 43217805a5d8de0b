//! Small file helpers: atomic writes with explicit permissions.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename) with
/// the given Unix mode, so a crash leaves either the old file or the new.
/// The temporary file is `path` plus `.tmp`, so files that differ only by
/// their extension (`ca.key`, `ca.crt`) never share one.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Creates a directory (and parents) readable only by its owner. An
/// existing directory keeps its permissions (it may be the operator's own).
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_keep_modes_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ca.key");
        let crt = dir.path().join("ca.crt");
        write_atomic(&key, b"old", 0o600).unwrap();
        write_atomic(&key, b"key", 0o600).unwrap();
        write_atomic(&crt, b"crt", 0o644).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"key");
        assert_eq!(std::fs::read(&crt).unwrap(), b"crt");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&crt), 0o644);
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["ca.crt", "ca.key"]);
    }
}
