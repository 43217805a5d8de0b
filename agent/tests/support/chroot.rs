//! A throwaway Debian chroot for tests that need a real system as root (apt,
//! the agent on `/`), shared by every test that uses it.
//!
//! Built once with `debootstrap --variant=minbase` from the mirror this
//! machine's apt already uses, under the target directory
//! (`CARGO_TARGET_TMPDIR/nird-apply-chroot/SUITE`), and reused by later runs
//! and by the other tests: [`debian_chroot`] holds an exclusive lock on it
//! for as long as the caller keeps the returned file. Without root,
//! `debootstrap` or the mirror it says why, and the caller skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The mirror and suite of this machine's own apt sources, e.g.
/// (`http://deb.debian.org/debian`, `bookworm`).
pub fn host_mirror() -> Option<(String, String)> {
    let suite = std::fs::read_to_string("/etc/os-release")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME=").map(str::to_owned))?;
    let mut texts = vec![std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in dir.flatten() {
            texts.push(std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    for text in texts {
        for line in text.lines() {
            let line = line.trim();
            let uri = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| w.starts_with("http"))
            } else {
                None
            };
            if let Some(uri) = uri
                && uri.starts_with("http")
                && uri.trim_end_matches('/').ends_with("/debian")
            {
                return Some((uri.trim_end_matches('/').to_owned(), suite));
            }
        }
    }
    None
}

/// The reusable chroot (built on first use) and the lock that keeps it to
/// the caller, or why it cannot exist here.
pub fn debian_chroot() -> Result<(PathBuf, std::fs::File), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (chroot, dpkg)".into());
    }
    if Command::new("debootstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("debootstrap is not installed (scripts/install-deps.sh)".into());
    }
    let (mirror, suite) = host_mirror().ok_or("no Debian mirror in /etc/apt/sources.list*")?;
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nird-apply-chroot");
    std::fs::create_dir_all(&base).unwrap();
    let lock = std::fs::File::create(base.join("lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let root = base.join(&suite);
    if !root.join(".nird-complete").exists() {
        eprintln!("building a {suite} chroot from {mirror} (minutes, once)");
        let partial = base.join(format!("{suite}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        let out = Command::new("debootstrap")
            .args(["--variant=minbase", &suite])
            .arg(&partial)
            .arg(&mirror)
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(format!(
                "debootstrap failed (mirror {mirror} unreachable?): {}",
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .last()
                    .unwrap_or("")
            ));
        }
        std::fs::write(partial.join(".nird-complete"), "").unwrap();
        std::fs::rename(&partial, &root).unwrap();
    }
    // Name resolution for apt inside the chroot.
    let _ = std::fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf"));
    Ok((root, lock))
}
