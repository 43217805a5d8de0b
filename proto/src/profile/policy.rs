//! What a signed profile may do to a machine, beyond being well formed.
//!
//! Three kinds of rule, all checked by [`super::parse`], so `nird-server
//! profile lint`, `profile sign`, `profile publish` and every agent enforce
//! the same policy:
//!
//! - **Never** (no flag can lift them): the agent's own files — its
//!   configuration and first keys (`/etc/nird`), state, spool, keyring and
//!   cache (`/var/lib/nird-agent`), binary, unit files and drop-ins — the
//!   `nird-agent` unit, removing the `nird-agent` package (installing it is
//!   how the agent updates itself), the `root` account or group and uid /
//!   gid 0, and the kernel's virtual filesystems (`/proc`, `/sys`, `/dev`,
//!   where the apply engine's temp-file-and-rename cannot work and nothing
//!   is persistent). A directory that is an ancestor of one of the agent's
//!   paths may only be managed as `root:root` without group / other write
//!   permission: otherwise whoever owns it could swap the agent's files.
//! - **Unless opted in** with a signed, visible `allow = [...]` flag in
//!   `[profile]` (reported by `profile lint`): setuid / setgid file modes
//!   and setuid on directories (`"setuid"`), an empty password for a member
//!   of a privileged group (`"empty-admin-password"`), and paths under
//!   `/run` (`"runtime-paths"`: a tmpfs rebuilt at each boot).
//! - Paths are compared in their **canonical** form on Debian 12: `/var/run`
//!   is `/run`, `/var/lock` is `/run/lock`, `/bin`, `/sbin`, `/lib*` are
//!   under `/usr` (merged /usr). A path must already be normalised (no `.`,
//!   `..`, `//`), so `/etc/./nird` is refused before it is canonicalised.

use serde::Serialize;

/// A policy rule a profile lifts explicitly, in its signed `[profile]`
/// section: `allow = ["setuid", "empty-admin-password", "runtime-paths"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyOptIn {
    /// Setuid / setgid bits on files, setuid on directories.
    Setuid,
    /// `password = "empty"` for a member of a [`PRIVILEGED_GROUPS`] group.
    EmptyAdminPassword,
    /// Files and directories under `/run` (also written `/var/run`,
    /// `/var/lock`).
    RuntimePaths,
}

impl PolicyOptIn {
    /// Every opt-in, in the order lint lists them.
    pub const ALL: [PolicyOptIn; 3] = [
        PolicyOptIn::Setuid,
        PolicyOptIn::EmptyAdminPassword,
        PolicyOptIn::RuntimePaths,
    ];

    /// The TOML word.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyOptIn::Setuid => "setuid",
            PolicyOptIn::EmptyAdminPassword => "empty-admin-password",
            PolicyOptIn::RuntimePaths => "runtime-paths",
        }
    }

    /// From the TOML word.
    pub fn parse(s: &str) -> Option<Self> {
        PolicyOptIn::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// What it lets the profile do, in French (for lint's warnings).
    pub fn description(self) -> &'static str {
        match self {
            PolicyOptIn::Setuid => {
                "des modes setuid/setgid (un programme exécuté avec les droits de son propriétaire)"
            }
            PolicyOptIn::EmptyAdminPassword => {
                "un mot de passe vide pour un compte d'un groupe privilégié (administration sans mot de passe)"
            }
            PolicyOptIn::RuntimePaths => "des chemins sous /run (effacés à chaque démarrage)",
        }
    }
}

/// Groups whose members can become root or read what only root should:
/// `sudo`, `wheel` (sudo elsewhere), `root`, `adm` (every log),
/// `shadow` (password hashes), `disk` (raw disks), `lpadmin` (CUPS
/// administration, printer drivers run as root), `docker`, `lxd`, `libvirt`
/// (start a privileged container or VM mounting `/`), `systemd-journal`
/// (every log). A member with an empty password is an administrator anyone
/// at the keyboard can become.
pub const PRIVILEGED_GROUPS: [&str; 11] = [
    "sudo",
    "adm",
    "root",
    "wheel",
    "shadow",
    "disk",
    "lpadmin",
    "docker",
    "lxd",
    "libvirt",
    "systemd-journal",
];

/// Files and directories that belong to the agent (canonical forms): at or
/// under any of them is never managed by a profile.
pub const AGENT_PATHS: [&str; 7] = [
    "/etc/nird",
    "/var/lib/nird-agent",
    "/usr/bin/nird-agent",
    "/usr/sbin/nird-agent",
    "/usr/lib/nird-agent",
    "/usr/local/bin/nird-agent",
    "/usr/local/sbin/nird-agent",
];

/// Where systemd reads unit files and drop-ins (canonical forms): anything
/// named `nird-agent.*` / `nird-agent@*` (or a `nird-agent.service.d`
/// drop-in directory) under them is the agent's unit.
pub const SYSTEMD_DIRS: [&str; 4] = [
    "/etc/systemd",
    "/run/systemd",
    "/usr/lib/systemd",
    "/usr/local/lib/systemd",
];

/// Units that change the state of the whole machine: started, they stop,
/// reboot or isolate it; stopped, they take the system (and the agent)
/// down. No profile manages them.
pub const SYSTEM_STATE_UNITS: [&str; 17] = [
    "reboot.target",
    "poweroff.target",
    "halt.target",
    "kexec.target",
    "shutdown.target",
    "soft-reboot.target",
    "rescue.target",
    "emergency.target",
    "sysinit.target",
    "basic.target",
    "default.target",
    "multi-user.target",
    "graphical.target",
    "ctrl-alt-del.target",
    "systemd-reboot.service",
    "systemd-poweroff.service",
    "systemd-halt.service",
];

/// The agent's package and unit name.
pub const AGENT_NAME: &str = "nird-agent";

/// Symbolic links every Debian 12 system has, as (link, target): a path
/// through a link is the same file as the path through its target.
const CANONICAL_LINKS: [(&str, &str); 8] = [
    ("/var/run", "/run"),
    ("/var/lock", "/run/lock"),
    ("/bin", "/usr/bin"),
    ("/sbin", "/usr/sbin"),
    ("/lib", "/usr/lib"),
    ("/lib32", "/usr/lib32"),
    ("/lib64", "/usr/lib64"),
    ("/libx32", "/usr/libx32"),
];

/// Kernel virtual filesystems: never managed.
const VIRTUAL_DIRS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// The runtime tmpfs: managed only with [`PolicyOptIn::RuntimePaths`].
const RUNTIME_DIR: &str = "/run";

/// True if `path` is `dir` or below it (component-wise: `/etc/nird-x` is
/// not under `/etc/nird`).
pub fn is_at_or_under(path: &str, dir: &str) -> bool {
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The canonical form of an absolute, normalised path on Debian 12: the
/// standard symbolic links ([`CANONICAL_LINKS`]) resolved. `/var/run/x` is
/// `/run/x`, `/lib/systemd/system/a.service` is
/// `/usr/lib/systemd/system/a.service`.
pub fn canonical_path(path: &str) -> String {
    for (link, target) in CANONICAL_LINKS {
        if let Some(rest) = path.strip_prefix(link)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return format!("{target}{rest}");
        }
    }
    path.to_owned()
}

/// Why a path is never manageable (the agent's own files, a kernel
/// filesystem), in French; `canonical` is [`canonical_path`]'s output.
pub fn forbidden_path(canonical: &str) -> Option<String> {
    for dir in VIRTUAL_DIRS {
        if is_at_or_under(canonical, dir) {
            return Some(format!(
                "{dir} est un système de fichiers virtuel du noyau : il n'est jamais géré"
            ));
        }
    }
    for dir in AGENT_PATHS {
        if is_at_or_under(canonical, dir) {
            return Some(format!(
                "{dir} appartient à nird-agent (configuration, clés, état ou programme) : un profil ne peut jamais le gérer"
            ));
        }
    }
    for dir in SYSTEMD_DIRS {
        if let Some(rest) = canonical.strip_prefix(dir)
            && rest.starts_with('/')
            && rest[1..].split('/').any(configures_agent_unit)
        {
            return Some(
                "les fichiers de l'unité systemd nird-agent appartiennent à nird-agent : un profil ne peut jamais les gérer"
                    .to_owned(),
            );
        }
    }
    None
}

/// True for a path component under a systemd directory that configures
/// the agent's unit: its own files and drop-ins ([`is_agent_unit_name`]),
/// and the drop-in directories systemd also applies to it (systemd ≥ 246):
/// the prefix ones, `nird-.service.d/` (every unit whose name starts with
/// `nird-`), and the top-level ones, `service.d/` (every service). A file
/// there could replace the agent's `ExecStart=` (found by review).
pub fn configures_agent_unit(component: &str) -> bool {
    if is_agent_unit_name(component) || component == "service.d" {
        return true;
    }
    component.strip_suffix(".service.d").is_some_and(|prefix| {
        prefix.ends_with('-') && AGENT_NAME.starts_with(prefix) && prefix.len() < AGENT_NAME.len()
    })
}

/// True for `nird-agent.service`, `nird-agent.service.d`, `nird-agent@x`,
/// `nird-agent` itself.
pub fn is_agent_unit_name(name: &str) -> bool {
    name == AGENT_NAME
        || name
            .strip_prefix(AGENT_NAME)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('@'))
}

/// True if `canonical` is a directory that holds the agent's paths: a
/// strict ancestor of one of them or of a systemd unit directory, or a
/// systemd directory itself. A file there would replace that directory.
pub fn is_ancestor_of_agent_paths(canonical: &str) -> bool {
    let strict_ancestor_of = |dir: &str| {
        canonical == "/"
            || dir
                .strip_prefix(canonical)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    AGENT_PATHS.iter().any(|d| strict_ancestor_of(d))
        || SYSTEMD_DIRS
            .iter()
            .any(|d| strict_ancestor_of(d) || canonical == *d)
}

/// True if whoever owns or may write the directory `canonical` could
/// replace the agent's files: an ancestor of them
/// ([`is_ancestor_of_agent_paths`]) or any directory under a systemd unit
/// directory (where a `nird-agent.service.d` drop-in could be created).
pub fn guards_agent_paths(canonical: &str) -> bool {
    is_ancestor_of_agent_paths(canonical)
        || SYSTEMD_DIRS.iter().any(|d| is_at_or_under(canonical, d))
}

/// True if `canonical` is under the runtime tmpfs.
pub fn is_runtime_path(canonical: &str) -> bool {
    is_at_or_under(canonical, RUNTIME_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_follow_debian_links() {
        assert_eq!(canonical_path("/var/run/x"), "/run/x");
        assert_eq!(canonical_path("/var/run"), "/run");
        assert_eq!(canonical_path("/var/lock/a"), "/run/lock/a");
        assert_eq!(canonical_path("/var/running"), "/var/running");
        assert_eq!(canonical_path("/bin/nird-agent"), "/usr/bin/nird-agent");
        assert_eq!(
            canonical_path("/lib/systemd/system/nird-agent.service"),
            "/usr/lib/systemd/system/nird-agent.service"
        );
        assert_eq!(canonical_path("/library"), "/library");
        assert_eq!(canonical_path("/etc/nird"), "/etc/nird");
    }

    #[test]
    fn agent_paths_are_forbidden_component_wise() {
        for p in [
            "/etc/nird",
            "/etc/nird/trusted-keys/evil.pub",
            "/var/lib/nird-agent/keyring.json",
            "/usr/bin/nird-agent",
            "/usr/lib/nird-agent/x",
            "/etc/systemd/system/nird-agent.service",
            "/etc/systemd/system/nird-agent.service.d/override.conf",
            "/etc/systemd/system/multi-user.target.wants/nird-agent.service",
            "/usr/lib/systemd/system/nird-agent.service",
            "/run/systemd/system/nird-agent.service.d",
            "/proc/sys/kernel/x",
            "/sys",
            "/dev/sda",
        ] {
            assert!(forbidden_path(p).is_some(), "{p}");
        }
        for p in [
            "/etc/nird-ecole/charte.txt",
            "/etc/nirdx",
            "/var/lib/nird-agentx",
            "/usr/bin/nird-agent-helper",
            "/etc/systemd/system/ssh.service.d/x.conf",
            "/etc/systemd/timesyncd.conf",
            "/etc/nird-agent.service",
            "/devices",
            "/run/x",
        ] {
            assert!(forbidden_path(p).is_none(), "{p}");
        }
    }

    #[test]
    fn ancestors_of_agent_paths_are_guarded() {
        for p in [
            "/",
            "/etc",
            "/var",
            "/var/lib",
            "/usr",
            "/usr/bin",
            "/usr/local/bin",
            "/etc/systemd",
            "/etc/systemd/system",
            "/etc/systemd/system/multi-user.target.wants",
            "/usr/lib/systemd/system",
        ] {
            assert!(guards_agent_paths(p), "{p}");
        }
        for p in ["/srv/classe", "/etc/firefox", "/var/lib/x", "/usr/share/x"] {
            assert!(!guards_agent_paths(p), "{p}");
        }
        // A file may live in a unit directory, not replace one.
        assert!(is_ancestor_of_agent_paths("/etc/systemd"));
        assert!(is_ancestor_of_agent_paths("/usr/lib"));
        assert!(!is_ancestor_of_agent_paths("/etc/systemd/system/x.service"));
        assert!(!is_ancestor_of_agent_paths("/etc/nird/x"));
    }

    #[test]
    fn opt_ins_round_trip() {
        for o in PolicyOptIn::ALL {
            assert_eq!(PolicyOptIn::parse(o.as_str()), Some(o));
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
        assert_eq!(PolicyOptIn::parse("everything"), None);
    }
}
