//! The agent survives upgrading itself.
//!
//! A new `nird-agent` is rolled out like any other software: a signed
//! profile pins the project's APT repository and `nird-agent=VERSION`, and
//! the agent's own apply runs apt. Two things keep that safe:
//!
//! - every command the agent runs in the managed system carries
//!   [`crate::apply::apt::APPLYING_ENV`]; the package's postinst then does
//!   not restart the service (which would wait for the agent, which waits
//!   for apt: a deadlock ended by a kill, dpkg left half-done);
//! - after a cycle — so after the apply's report went to the server — the
//!   daemon looks whether its own executable was replaced on disk
//!   ([`replaced_binary`]: Linux shows `/proc/self/exe` as "(deleted)").
//!   If the new binary answers `--version` ([`answers`]), the daemon says
//!   RELOADING=1 to systemd and re-executes it in place (same PID, same
//!   arguments; it says READY=1 again). If it does not answer, the old
//!   agent keeps running and reporting, and says so in its log.
//!
//! A failed upgrade (apt or the package's scripts fail) leaves the old
//! binary in place: the apply is reported as failed, nothing is
//! re-executed.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The name the daemon's executable must have to be re-executed (never a
/// test binary).
const BINARY_NAME: &str = "nird-agent";

/// The path of this process's executable when it was replaced on disk
/// since the process started (and a file is there now).
pub fn replaced_binary() -> Option<PathBuf> {
    let link = std::fs::read_link("/proc/self/exe").ok()?;
    let text = link.to_str()?;
    let path = PathBuf::from(text.strip_suffix(" (deleted)")?);
    (path.file_name()? == BINARY_NAME && path.is_file()).then_some(path)
}

/// True when `binary --version` answers as a nird-agent within 30 s.
pub fn answers(binary: &Path) -> bool {
    let mut child = match std::process::Command::new(binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(binary = %binary.display(), "new agent binary cannot start: {e}");
            return false;
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                if let Some(mut stdout) = child.stdout.take() {
                    use std::io::Read as _;
                    let _ = stdout.read_to_string(&mut out);
                }
                return status.success() && out.starts_with("nird-agent ");
            }
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// Replaces this process with `binary`, same arguments and environment.
/// Returns only on failure.
pub fn reexec(binary: &Path) -> std::io::Error {
    use std::os::unix::process::CommandExt as _;
    tracing::info!(binary = %binary.display(), "re-executing the upgraded agent");
    std::process::Command::new(binary)
        .args(std::env::args_os().skip(1))
        .exec()
}
