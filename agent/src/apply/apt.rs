//! Debian packages through apt, and APT repositories with pinned keys.
//!
//! Reading is done on dpkg's own database (`/var/lib/dpkg/status` under the
//! root), which is fast and needs no process. Changing runs `apt-get` and
//! `dpkg` inside the root: directly when the root is `/`, through
//! `chroot ROOT` otherwise. apt runs non-interactively, keeps existing
//! configuration files, and waits for the dpkg lock (another apt run, the
//! desktop's updater) instead of failing. When dpkg was interrupted (power
//! cut, journal says so, or its database holds half-installed packages),
//! `dpkg --configure -a` runs first. Held packages are never changed: they
//! are reported.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nird_proto::profile::{AptRepository, FileContent, FileResource, Ownership};

use super::accounts::Accounts;
use super::files;
use super::plan::Check;
use super::safe_fs;
use crate::paths::AgentPaths;

/// How long apt waits for the dpkg lock held by someone else.
const LOCK_TIMEOUT_SECS: u64 = 900;

/// A package's state in dpkg's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageState {
    /// Installed and configured.
    Installed { held: bool },
    /// Not installed (or only its configuration files remain).
    NotInstalled { held: bool },
    /// Half-installed, unpacked, half-configured...: dpkg was interrupted.
    Broken { status: String },
}

/// dpkg's database of the managed system.
#[derive(Debug, Clone, Default)]
pub struct DpkgStatus {
    /// Package name (any architecture) → state.
    pub packages: HashMap<String, PackageState>,
    /// Package name → installed version (of the installed architecture).
    pub versions: HashMap<String, String>,
    /// True when dpkg has pending journal updates (`/var/lib/dpkg/updates`).
    pub pending_updates: bool,
}

impl DpkgStatus {
    /// Reads `/var/lib/dpkg/status`; a root without dpkg has no packages.
    pub fn read(paths: &AgentPaths) -> Result<Self, String> {
        let path = paths.system("/var/lib/dpkg/status");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("{} illisible : {e}", path.display())),
        };
        let mut status = DpkgStatus::parse(&text);
        status.pending_updates = std::fs::read_dir(paths.system("/var/lib/dpkg/updates"))
            .is_ok_and(|mut d| d.next().is_some());
        Ok(status)
    }

    /// Parses the status file's stanzas (only `Package` and `Status`).
    pub fn parse(text: &str) -> Self {
        let mut packages = HashMap::new();
        let mut versions = HashMap::new();
        for stanza in text.split("\n\n") {
            let mut name = None;
            let mut state = None;
            let mut version = None;
            for line in stanza.lines() {
                if let Some(v) = line.strip_prefix("Package: ") {
                    name = Some(v.trim());
                } else if let Some(v) = line.strip_prefix("Status: ") {
                    state = Some(v.trim());
                } else if let Some(v) = line.strip_prefix("Version: ") {
                    version = Some(v.trim());
                }
            }
            let (Some(name), Some(state)) = (name, state) else {
                continue;
            };
            let mut words = state.split_whitespace();
            let want = words.next().unwrap_or("");
            let _flag = words.next();
            let current = words.next().unwrap_or("");
            let held = want == "hold";
            let parsed = match current {
                "installed" => PackageState::Installed { held },
                "not-installed" | "config-files" => PackageState::NotInstalled { held },
                other => PackageState::Broken {
                    status: other.to_owned(),
                },
            };
            // Multi-arch: one installed architecture is enough.
            let keep = match packages.get(name) {
                Some(PackageState::Installed { .. }) => false,
                Some(PackageState::Broken { .. }) => {
                    matches!(parsed, PackageState::Installed { .. })
                }
                _ => true,
            };
            if keep {
                if let (PackageState::Installed { .. }, Some(v)) = (&parsed, version) {
                    versions.insert(name.to_owned(), v.to_owned());
                }
                packages.insert(name.to_owned(), parsed);
            }
        }
        DpkgStatus {
            packages,
            versions,
            pending_updates: false,
        }
    }

    fn state(&self, name: &str) -> PackageState {
        self.packages
            .get(name)
            .cloned()
            .unwrap_or(PackageState::NotInstalled { held: false })
    }

    /// True when dpkg was interrupted and must be finished first.
    pub fn needs_configure(&self) -> bool {
        self.pending_updates
            || self
                .packages
                .values()
                .any(|s| matches!(s, PackageState::Broken { .. }))
    }

    /// Compares a package that must be installed: `name`, or
    /// `name=version` when the profile pins the version.
    pub fn check_install(&self, spec: &str) -> Check {
        let (name, pinned) = split_spec(spec);
        match self.state(name) {
            PackageState::Installed { held } => match (pinned, self.versions.get(name)) {
                (Some(want), Some(have)) if want != have => {
                    if held {
                        Check::Blocked(format!(
                            "paquet retenu (apt-mark hold) en version {have} : passage à {want} refusé"
                        ))
                    } else {
                        Check::Change(format!("passer de la version {have} à {want}"))
                    }
                }
                _ if held => Check::Unchanged(Some("paquet retenu (apt-mark hold)".to_owned())),
                _ => Check::Unchanged(None),
            },
            PackageState::NotInstalled { held: true } => {
                Check::Blocked("paquet retenu (apt-mark hold) : installation refusée".to_owned())
            }
            PackageState::NotInstalled { held: false } => Check::Change("installer".to_owned()),
            PackageState::Broken { status } => {
                Check::Change(format!("réparer (état dpkg : {status})"))
            }
        }
    }

    /// True when the package is installed as `spec` asks (the pinned
    /// version, if any).
    pub fn satisfies(&self, spec: &str) -> bool {
        let (name, pinned) = split_spec(spec);
        matches!(self.state(name), PackageState::Installed { .. })
            && pinned.is_none_or(|v| self.versions.get(name).map(String::as_str) == Some(v))
    }

    /// Compares a package that must not be installed.
    pub fn check_remove(&self, name: &str) -> Check {
        match self.state(name) {
            PackageState::NotInstalled { .. } => Check::Unchanged(None),
            PackageState::Installed { held: true } => {
                Check::Blocked("paquet retenu (apt-mark hold) : désinstallation refusée".to_owned())
            }
            PackageState::Installed { held: false } | PackageState::Broken { .. } => {
                Check::Change("désinstaller".to_owned())
            }
        }
    }
}

/// `name=version` → (`name`, `Some(version)`); `name` → (`name`, `None`).
pub fn split_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    }
}

/// Set for every command the agent runs in the managed system (apt-get,
/// dpkg and, through them, maintainer scripts): `nird-agent`'s own postinst
/// then leaves the service alone while the agent itself upgrades it — a
/// restart would wait for the agent, which waits for apt: a deadlock cut
/// by a kill, leaving dpkg half-done. The agent re-executes its new binary
/// itself once the apply is reported.
pub const APPLYING_ENV: &str = "NIRD_AGENT_APPLYING";

/// The two files of a repository, key first: its key (the pinned blob's
/// bytes, armored or binary) and its deb822 source.
fn repository_files(repo: &AptRepository, key: &[u8]) -> [(FileResource, Vec<u8>); 2] {
    let root_0644 = Ownership {
        mode: 0o644,
        owner: "root".to_owned(),
        group: "root".to_owned(),
    };
    // apt reads armored keys only from `.asc` files, binary ones from `.gpg`.
    let extension = if key.starts_with(b"-----BEGIN PGP") {
        "asc"
    } else {
        "gpg"
    };
    let key_path = format!("/etc/apt/keyrings/{}.{extension}", repo.name);
    let sources = format!(
        "# Géré par nird-agent : toute modification locale sera remplacée.\n\
         Types: deb\nURIs: {}\nSuites: {}\nComponents: {}\nSigned-By: {key_path}\n",
        repo.uris.join(" "),
        repo.suites.join(" "),
        repo.components.join(" "),
    );
    // The content is passed separately to the file functions.
    let file = |path: String| FileResource {
        path,
        content: FileContent::Inline(String::new()),
        ownership: root_0644.clone(),
    };
    [
        (file(key_path), key.to_vec()),
        (
            file(format!("/etc/apt/sources.list.d/{}.sources", repo.name)),
            sources.into_bytes(),
        ),
    ]
}

/// Every path a repository may be written to (key in either format).
pub fn repository_paths(repo: &AptRepository) -> [String; 3] {
    [
        format!("/etc/apt/keyrings/{}.asc", repo.name),
        format!("/etc/apt/keyrings/{}.gpg", repo.name),
        format!("/etc/apt/sources.list.d/{}.sources", repo.name),
    ]
}

/// Compares a repository's source and key files with the machine.
pub fn check_repository(
    paths: &AgentPaths,
    repo: &AptRepository,
    key: &[u8],
    accounts: &Accounts,
) -> Check {
    let never = |_: &Ownership| false;
    let mut differences = Vec::new();
    for (f, bytes) in repository_files(repo, key) {
        match files::check_file(paths, &f, &bytes, accounts, &never) {
            Check::Unchanged(_) => {}
            Check::Change(what) => differences.push(format!("{} : {what}", f.path)),
            blocked @ Check::Blocked(_) => return blocked,
        }
    }
    Check::from_differences(differences)
}

/// Writes a repository's key and source (key first, so apt never sees a
/// source without its key).
pub fn apply_repository(
    paths: &AgentPaths,
    repo: &AptRepository,
    key: &[u8],
    accounts: &Accounts,
) -> Result<(), String> {
    for (f, bytes) in repository_files(repo, key) {
        files::apply_file(paths, &f, &bytes, accounts)?;
    }
    Ok(())
}

/// Runs a command inside the root (through `chroot` unless it is `/`).
fn run_in_root(paths: &AgentPaths, argv: &[&str]) -> Result<Output, String> {
    let in_root = paths.root.as_os_str() != "/";
    let mut cmd = if in_root {
        let mut c = Command::new("chroot");
        c.arg(&paths.root).args(argv);
        c
    } else {
        let mut c = Command::new(argv[0]);
        c.args(&argv[1..]);
        c
    };
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .env(APPLYING_ENV, "1")
        .env("APT_LISTCHANGES_FRONTEND", "none")
        // needrestart (Ubuntu-based images) would restart services whose
        // libraries apt just replaced — the agent's own among them, while
        // it waits for apt. Suspended: the agent re-executes itself.
        .env("NEEDRESTART_SUSPEND", "1")
        .env("NEEDRESTART_MODE", "l")
        .env("LC_ALL", "C.UTF-8")
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    tracing::debug!(?argv, root = %paths.root.display(), "running");
    output_within(cmd, COMMAND_DEADLINE, argv[0])
}

/// The longest one apt-get, apt-cache or dpkg run may take. A hung
/// maintainer script or a stalled download blocked the cycle for ever
/// (the watchdog is pinged during applies, so systemd never noticed; the
/// machine just went quiet on the dashboard). An hour covers the largest
/// installation on a slow disk.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(3600);

/// Runs `cmd` (stdin closed, outputs captured) in its own process group,
/// and kills the whole group (apt, dpkg, maintainer scripts) if it has not
/// finished within `deadline`: an error then, and the journal has dpkg
/// finish the interrupted run at the next apply.
pub fn output_within(mut cmd: Command, deadline: Duration, what: &str) -> Result<Output, String> {
    use std::io::Read as _;
    use std::os::unix::process::CommandExt as _;
    use std::process::Stdio;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("lancement de {what} impossible : {e}"))?;
    // Each pipe is read on its own thread and handed over a channel, so
    // that waiting for it is bounded too: a daemon a maintainer script
    // started may keep the pipe open long after apt has exited.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            let _ = tx.send(bytes);
        });
        rx
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<_>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<_>));
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= deadline => {
                if let Some(pid) = i32::try_from(child.id())
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.wait();
                tracing::error!(
                    command = what,
                    secs = deadline.as_secs(),
                    "command over its deadline: killed"
                );
                return Err(format!(
                    "{what} n'a pas fini en {} min : arrêté avec ses processus ; l'installation \
                     interrompue sera reprise au prochain passage",
                    deadline.as_secs().div_ceil(60).max(1)
                ));
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(e) => return Err(format!("attente de {what} impossible : {e}")),
        }
    };
    // What is left of the deadline, and at least a second, for the
    // outputs; past it they are given up (the reader thread ends when the
    // last holder of the pipe closes it).
    let grace = deadline
        .saturating_sub(started.elapsed())
        .max(Duration::from_secs(1));
    let collect = |rx: std::sync::mpsc::Receiver<Vec<u8>>, which: &str| {
        rx.recv_timeout(grace).unwrap_or_else(|_| {
            tracing::warn!(
                command = what,
                which,
                "output still held open after exit: given up"
            );
            Vec::new()
        })
    };
    Ok(Output {
        status,
        stdout: collect(stdout, "stdout"),
        stderr: collect(stderr, "stderr"),
    })
}

/// The last lines of a failed command's output, for reports.
fn tail(output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(4)..].join(" | ")
}

fn apt_get(paths: &AgentPaths, args: &[&str]) -> Result<Output, String> {
    let timeout = format!("DPkg::Lock::Timeout={LOCK_TIMEOUT_SECS}");
    let mut argv = vec![
        "apt-get",
        "-y",
        "-q",
        "-o",
        &timeout,
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
    ];
    argv.extend_from_slice(args);
    run_in_root(paths, &argv)
}

/// Finishes an interrupted dpkg run, retrying while another process holds
/// the dpkg lock (dpkg itself does not wait).
pub fn configure_pending(paths: &AgentPaths) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(LOCK_TIMEOUT_SECS);
    loop {
        let out = run_in_root(
            paths,
            &[
                "dpkg",
                "--force-confdef",
                "--force-confold",
                "--configure",
                "-a",
            ],
        )?;
        if out.status.success() {
            return Ok(());
        }
        let message = tail(&out);
        if !message.contains("lock") || Instant::now() >= deadline {
            return Err(format!("dpkg --configure -a a échoué : {message}"));
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// True when the root has no downloaded package lists yet.
fn lists_missing(paths: &AgentPaths) -> bool {
    let dir: PathBuf = paths.system("/var/lib/apt/lists");
    !std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
    })
}

/// While it lives, packages installed into a root that is not `/` may not
/// start services (Debian's `policy-rc.d` convention, exit status 101): a
/// daemon from a mounted disk or a chroot must not start on the host. The
/// file is only created when absent (never through a link), and removed on
/// drop through the same directory descriptor.
struct NoServiceStarts {
    /// The file we created, if any.
    created: Option<safe_fs::Location>,
}

impl NoServiceStarts {
    const PATH: &str = "/usr/sbin/policy-rc.d";

    fn install(paths: &AgentPaths) -> Self {
        if paths.root.as_os_str() == "/" {
            return NoServiceStarts { created: None };
        }
        // Only in an existing /usr/sbin, where nothing is yet.
        let place = match files::locate(paths, Self::PATH) {
            Ok(Some(p)) if matches!(p.entry(), Ok(safe_fs::Entry::Missing)) => p,
            _ => return NoServiceStarts { created: None },
        };
        let script = b"#!/bin/sh\n# nird-agent: no service starts while installing into this root.\nexit 101\n";
        match place.write(script, 0o755, Some((0, 0))) {
            Ok(()) => NoServiceStarts {
                created: Some(place),
            },
            Err(e) => {
                tracing::warn!(path = Self::PATH, "cannot write policy-rc.d: {e}");
                NoServiceStarts { created: None }
            }
        }
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if let Some(place) = &self.created
            && let Err(e) = place.remove()
        {
            tracing::warn!(path = Self::PATH, "cannot remove policy-rc.d: {e}");
        }
    }
}

/// The package names among `specs` (`name` or `name=version`) that apt
/// knows by exactly that name. apt-get reads a name it does not know
/// literally as a regular expression (`.` and `+` are both in Debian names:
/// `install nird.agent` means every package matching it) or, ending in `-`
/// or `+`, as an action (`install nird-agent-` *removes* nird-agent). So
/// only names `apt-cache policy` answers for under the same name go to
/// apt-get (it prints each package it found as a `name:` heading, the real
/// name even when it read a pattern).
fn known_exactly(paths: &AgentPaths, specs: &[String]) -> Result<HashSet<String>, String> {
    let mut argv = vec!["apt-cache", "policy"];
    argv.extend(specs.iter().map(|s| split_spec(s).0));
    let out = run_in_root(paths, &argv)?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .filter_map(|l| l.strip_suffix(':'))
        .map(str::to_owned)
        .collect())
}

/// Installs and removes packages; returns, per package, `Ok(())` when it
/// reached its desired state or the reason it did not. Removals only ever
/// name packages dpkg has installed under that name (the plan checks), so
/// apt reads them literally; installations go through [`known_exactly`].
pub fn apply_packages(
    paths: &AgentPaths,
    install: &[String],
    remove: &[String],
    refresh_lists: bool,
    interrupted: bool,
) -> HashMap<String, Result<(), String>> {
    let mut failure: Option<String> = None;
    if !paths.system("/usr/bin/apt-get").exists() {
        failure = Some("apt-get absent du système géré : paquets impossibles à gérer".to_owned());
    }
    let _no_services = NoServiceStarts::install(paths);
    let before = DpkgStatus::read(paths);
    if failure.is_none()
        && (interrupted || before.as_ref().is_ok_and(|s| s.needs_configure()))
        && let Err(e) = configure_pending(paths)
    {
        failure = Some(e);
    }
    let mut apt_errors = Vec::new();
    if failure.is_none() && !install.is_empty() && (refresh_lists || lists_missing(paths)) {
        match apt_get(paths, &["update"]) {
            Ok(out) if out.status.success() => {}
            Ok(out) => apt_errors.push(format!("apt-get update : {}", tail(&out))),
            Err(e) => apt_errors.push(e),
        }
    }
    // Names apt does not know exactly never reach apt-get.
    let mut unknown = HashSet::new();
    if failure.is_none() && !install.is_empty() {
        match known_exactly(paths, install) {
            Ok(known) => {
                unknown = install
                    .iter()
                    .filter(|s| !known.contains(split_spec(s).0))
                    .cloned()
                    .collect();
            }
            Err(e) => failure = Some(e),
        }
    }
    let literal: Vec<String> = install
        .iter()
        .filter(|s| !unknown.contains(*s))
        .cloned()
        .collect();
    let mut run = |verb: &str, names: &[String]| {
        if names.is_empty() || failure.is_some() {
            return;
        }
        let mut args = vec![verb];
        args.extend(names.iter().map(String::as_str));
        match apt_get(paths, &args) {
            Ok(out) if out.status.success() => {}
            Ok(out) => apt_errors.push(format!("apt-get {verb} : {}", tail(&out))),
            Err(e) => apt_errors.push(e),
        }
    };
    run("remove", remove);
    run("install", &literal);
    let after = DpkgStatus::read(paths);
    let why = |default: &str| {
        failure
            .clone()
            .or_else(|| (!apt_errors.is_empty()).then(|| apt_errors.join(" ; ")))
            .unwrap_or_else(|| default.to_owned())
    };
    let mut results = HashMap::new();
    for name in install {
        let ok = after.as_ref().is_ok_and(|s| s.satisfies(name));
        results.insert(
            name.clone(),
            if ok {
                Ok(())
            } else if unknown.contains(name) {
                Err(format!(
                    "aucun paquet nommé exactement « {} » dans les dépôts de la machine \
                     (apt-cache policy) : rien n'a été demandé à apt-get",
                    split_spec(name).0
                ))
            } else {
                Err(why("paquet non installé"))
            },
        );
    }
    for name in remove {
        let ok = after
            .as_ref()
            .is_ok_and(|s| matches!(s.state(name), PackageState::NotInstalled { .. }));
        results.insert(
            name.clone(),
            if ok {
                Ok(())
            } else {
                Err(why("paquet toujours installé"))
            },
        );
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_past_its_deadline_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut sh = Command::new("/bin/sh");
        sh.args([
            "-c",
            &format!("sleep 30 & echo $! > {}; sleep 30", pid_file.display()),
        ]);
        let started = Instant::now();
        let err = output_within(sh, Duration::from_millis(300), "sh").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
        assert!(err.contains("n'a pas fini en 1 min"), "{err}");
        // The child in the background went with it (dead or a zombie).
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        let deadline = Instant::now() + Duration::from_secs(5);
        let alive = || {
            std::fs::read_to_string(&stat).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| !r.trim_start().starts_with('Z'))
            })
        };
        while alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(), "the background sleep survived");
        // A child left holding the pipe after the command exits (a daemon
        // a maintainer script started) does not hold the caller past the
        // grace period.
        let mut daemon = Command::new("/bin/sh");
        daemon.args(["-c", "sleep 30 & echo parti"]);
        let started = Instant::now();
        let out = output_within(daemon, Duration::from_millis(200), "sh").unwrap();
        assert!(out.status.success());
        assert!(started.elapsed() < Duration::from_secs(15));
        let mut echo = Command::new("/bin/sh");
        echo.args(["-c", "echo bonjour; echo erreur >&2; exit 3"]);
        let out = output_within(echo, Duration::from_secs(30), "sh").unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"bonjour\n");
        assert_eq!(out.stderr, b"erreur\n");
    }

    #[test]
    fn status_file_states() {
        let text = "Package: hello\nStatus: install ok installed\nVersion: 1\n\n\
                    Package: vim\nStatus: hold ok installed\n\n\
                    Package: old\nStatus: deinstall ok config-files\n\n\
                    Package: half\nStatus: install reinstreq half-configured\n\n\
                    Package: libc6\nStatus: install ok half-configured\nArchitecture: i386\n\n\
                    Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n";
        let s = DpkgStatus::parse(text);
        assert_eq!(s.check_install("hello"), Check::Unchanged(None));
        assert!(matches!(s.check_install("vim"), Check::Unchanged(Some(_))));
        assert!(matches!(s.check_remove("vim"), Check::Blocked(_)));
        assert_eq!(s.check_remove("old"), Check::Unchanged(None));
        assert!(matches!(s.check_install("old"), Check::Change(_)));
        assert!(matches!(s.check_install("half"), Check::Change(_)));
        assert_eq!(s.check_install("libc6"), Check::Unchanged(None));
        assert!(s.needs_configure());
        assert!(!DpkgStatus::parse("Package: a\nStatus: install ok installed\n").needs_configure());
        // Pinned versions.
        assert_eq!(s.check_install("hello=1"), Check::Unchanged(None));
        assert!(s.satisfies("hello=1") && !s.satisfies("hello=2"));
        assert!(
            matches!(s.check_install("hello=2"), Check::Change(m) if m.contains("de la version 1 à 2"))
        );
        assert!(matches!(
            s.check_install("vim=9"),
            Check::Unchanged(Some(_)) | Check::Blocked(_)
        ));
    }
}
