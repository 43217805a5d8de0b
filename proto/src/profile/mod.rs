//! The profile language: one TOML file describing the software state of a
//! NIRD machine (packages, APT repositories, files, directories, systemd
//! units, local users and groups).
//!
//! [`parse`] is strict: unknown keys, duplicate resources, relative or `..`
//! paths, bad modes, bad names and empty package names are all errors that
//! name the file, the line and the column. A [`Profile`] that exists is valid.
//! [`resolve`] flattens a profile and its `includes` into one
//! [`DesiredState`].
//!
//! Besides its shape, a profile obeys a policy ([`policy`]): it never
//! manages the agent's own files, unit, package or the root account, and
//! it uses setuid modes, an empty password for an administrator or paths
//! under `/run` only if it says so in its signed `allow` list (which
//! `nird-server profile lint` reports). Its signed targeting says which
//! machines it is for ([`Profile::admits`]): the kinds of school in
//! `audience` and, optionally, only some académies, départements or
//! schools (a machine matching any listed one). Its `expires` may be at
//! most [`MAX_EXPIRY_HORIZON_DAYS`] ahead when it is signed
//! ([`check_expiry_horizon`]).
//!
//! ```toml
//! [profile]
//! name = "primtux"
//! version = 3
//! expires = 2027-08-31
//! description = "Poste élève d'école primaire"
//! audience = "école"
//! includes = ["nird-base"]
//! # Optional scope: only these machines (any match admits).
//! academies = ["Lille", "Aix-Marseille"]
//! departements = ["62", "059"]
//! uais = ["0620056Z"]
//! # Optional, signed and reported by lint: lift a policy rule.
//! allow = ["setuid"]
//!
//! [packages]
//! install = ["gcompris-qt", "tuxpaint"]
//! remove = ["thunderbird"]
//!
//! [[file]]
//! path = "/etc/ecole/motd"
//! content = "Bienvenue\n"
//! mode = "0644"
//! ```

mod error;
pub mod policy;
mod raw;
mod resolve;
mod targeting;
mod validate;

pub use error::{Location, Problem, ProfileError};
pub use policy::{PRIVILEGED_GROUPS, PolicyOptIn};
pub use resolve::{DesiredState, Layer, ResolveError, resolve};
pub use targeting::{Scope, TargetingError};

use serde::Serialize;

/// Largest profile file accepted, in bytes. Real profiles are a few KiB; the
/// limit keeps a hostile file from costing memory before its signature is
/// checked.
pub const MAX_PROFILE_BYTES: usize = 1024 * 1024;
/// Largest inline `content` of a `[[file]]`, in bytes. Bigger files are blobs.
pub const MAX_INLINE_CONTENT_BYTES: usize = 64 * 1024;
/// Largest blob a profile may pin (wallpapers, documents, keys), in bytes.
pub const MAX_BLOB_BYTES: u64 = 64 * 1024 * 1024;
/// Furthest a profile's `expires` may be from the day it is linted, signed
/// or applied, in days: a stolen or leaked release stops working within
/// about a school year, and a frozen server is noticed.
pub const MAX_EXPIRY_HORIZON_DAYS: i64 = 400;

/// Which schools a profile is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    /// Primary schools (PrimTux).
    Ecole,
    /// Collèges (Linux NIRD).
    College,
    /// Lycées (Linux NIRD).
    Lycee,
    /// Every NIRD machine.
    All,
}

impl Audience {
    /// Accepts the French words with or without accents, and `all`/`tous`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "école" | "ecole" => Some(Audience::Ecole),
            "collège" | "college" => Some(Audience::College),
            "lycée" | "lycee" => Some(Audience::Lycee),
            "all" | "tous" => Some(Audience::All),
            _ => None,
        }
    }
}

/// A validated profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Slug naming the profile; the server and agents address it by this.
    pub name: String,
    /// Monotonic release number (≥ 1); agents refuse a lower one.
    pub version: u64,
    /// Last day (UTC) the profile may be applied: past it, agents refuse it
    /// so a frozen server cannot keep machines on stale software forever.
    pub expires: time::Date,
    /// What the profile is for, in French.
    pub description: String,
    /// Which schools it targets (at least one, no repeats).
    pub audience: Vec<Audience>,
    /// Optional académies / départements / UAIs it is limited to (signed);
    /// see [`Profile::admits`].
    pub scope: Scope,
    /// Policy rules this profile lifts explicitly (signed `allow`), sorted,
    /// no repeats.
    pub allow: Vec<PolicyOptIn>,
    /// Profiles composed before this one, in order.
    pub includes: Vec<String>,
    /// Debian packages that must be installed.
    pub packages_install: Vec<String>,
    /// Debian packages that must not be installed.
    pub packages_remove: Vec<String>,
    /// APT repositories, each with its signing key pinned by sha256.
    pub repositories: Vec<AptRepository>,
    /// Regular files.
    pub files: Vec<FileResource>,
    /// Directories.
    pub directories: Vec<DirectoryResource>,
    /// systemd units.
    pub units: Vec<UnitResource>,
    /// Local groups.
    pub groups: Vec<GroupResource>,
    /// Local user accounts.
    pub users: Vec<UserResource>,
}

impl Profile {
    /// Every blob this profile pins (file contents and repository keys), in
    /// file order. The server stores them at publication; agents fetch them
    /// by sha256 and check size and digest before use.
    pub fn blobs(&self) -> Vec<&BlobRef> {
        let files = self.files.iter().filter_map(|f| match &f.content {
            FileContent::Blob(b) => Some(b),
            FileContent::Inline(_) => None,
        });
        let keys = self.repositories.iter().map(|r| &r.key);
        files.chain(keys).collect()
    }

    /// Whether the profile may still be applied on `today` (UTC date).
    pub fn is_expired_on(&self, today: time::Date) -> bool {
        today > self.expires
    }

    /// One French line per policy rule this profile lifts (`allow`), naming
    /// the resources that use it, for `profile lint` to print as warnings.
    pub fn policy_warnings(&self) -> Vec<String> {
        self.allow
            .iter()
            .map(|opt| {
                let users = policy_uses(self, *opt);
                let used = if users.is_empty() {
                    "inutilisé : retirez-le".to_owned()
                } else {
                    format!("utilisé par {}", users.join(", "))
                };
                format!(
                    "avertissement : le profil « {} » autorise {} (allow = \"{}\") ; {used}",
                    self.name,
                    opt.description(),
                    opt.as_str()
                )
            })
            .collect()
    }
}

/// The resources of `profile` that need `opt`.
fn policy_uses(profile: &Profile, opt: PolicyOptIn) -> Vec<String> {
    match opt {
        PolicyOptIn::Setuid => profile
            .files
            .iter()
            .filter(|f| f.ownership.mode & 0o6000 != 0)
            .map(ResourceId::resource_id)
            .chain(
                profile
                    .directories
                    .iter()
                    .filter(|d| d.ownership.mode & 0o4000 != 0)
                    .map(ResourceId::resource_id),
            )
            .collect(),
        PolicyOptIn::EmptyAdminPassword => profile
            .users
            .iter()
            .filter(|u| u.password == PasswordPolicy::Empty && privileged_group(u).is_some())
            .map(ResourceId::resource_id)
            .collect(),
        PolicyOptIn::RuntimePaths => profile
            .files
            .iter()
            .filter(|f| policy::is_runtime_path(&policy::canonical_path(&f.path)))
            .map(ResourceId::resource_id)
            .chain(
                profile
                    .directories
                    .iter()
                    .filter(|d| policy::is_runtime_path(&policy::canonical_path(&d.path)))
                    .map(ResourceId::resource_id),
            )
            .collect(),
    }
}

/// The first privileged group (see [`PRIVILEGED_GROUPS`]) `user` is in.
pub(crate) fn privileged_group(user: &UserResource) -> Option<&str> {
    user.groups
        .iter()
        .map(String::as_str)
        .find(|g| PRIVILEGED_GROUPS.contains(g))
}

/// A profile whose `expires` is too far ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "le profil « {profile} » expire le {expires}, plus de {MAX_EXPIRY_HORIZON_DAYS} jours après le {today} : choisissez une date au plus tard le {latest} (et republiez-le chaque année scolaire)"
)]
pub struct HorizonError {
    /// The profile's name.
    pub profile: String,
    /// Its `expires`.
    pub expires: time::Date,
    /// The day of the check.
    pub today: time::Date,
    /// The latest `expires` accepted that day.
    pub latest: time::Date,
}

/// Refuses a profile whose `expires` is more than
/// [`MAX_EXPIRY_HORIZON_DAYS`] after `today` (UTC): `9999-12-31` would make
/// a signed release valid forever. Lint and sign check it against the
/// maintainer's clock; agents against theirs.
pub fn check_expiry_horizon(profile: &Profile, today: time::Date) -> Result<(), HorizonError> {
    let latest = today
        .checked_add(time::Duration::days(MAX_EXPIRY_HORIZON_DAYS))
        .unwrap_or(time::Date::MAX);
    if profile.expires > latest {
        return Err(HorizonError {
            profile: profile.name.clone(),
            expires: profile.expires,
            today,
            latest,
        });
    }
    Ok(())
}

/// Bytes stored outside the profile, pinned by digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobRef {
    /// Lowercase hex sha256 of the bytes.
    pub sha256: String,
    /// Exact size in bytes (≤ [`MAX_BLOB_BYTES`]).
    pub size: u64,
    /// Where the maintainer keeps the bytes, relative to the profile file;
    /// used only by `profile publish` to upload them. Not trusted for
    /// anything: the digest is what counts.
    pub source: Option<String>,
}

/// Owner, group and permission bits of a file or directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ownership {
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Owning user name.
    pub owner: String,
    /// Owning group name.
    pub group: String,
}

/// An APT repository in deb822 form, written to
/// `/etc/apt/sources.list.d/<name>.sources` with its key in
/// `/etc/apt/keyrings/<name>.asc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AptRepository {
    /// Slug, also the file names on disk.
    pub name: String,
    /// `http://` or `https://` base URIs.
    pub uris: Vec<String>,
    /// Suites, e.g. `bookworm`.
    pub suites: Vec<String>,
    /// Components, e.g. `main`.
    pub components: Vec<String>,
    /// The repository signing key, pinned.
    pub key: BlobRef,
}

/// What a managed file contains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileContent {
    /// Text written in the profile itself.
    Inline(String),
    /// Bytes fetched separately, pinned by digest.
    Blob(BlobRef),
}

/// A regular file the profile manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileResource {
    /// Absolute, normalised path.
    pub path: String,
    /// Its content.
    pub content: FileContent,
    /// Mode and ownership (default `0644 root:root`).
    pub ownership: Ownership,
}

/// A directory the profile manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectoryResource {
    /// Absolute, normalised path.
    pub path: String,
    /// Mode and ownership (default `0755 root:root`).
    pub ownership: Ownership,
}

/// Whether a unit starts at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Enablement {
    Enabled,
    Disabled,
    /// Cannot be started at all, even by hand.
    Masked,
}

/// Whether a unit should be running now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Stopped,
}

/// A systemd unit the profile manages. At least one of the two is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitResource {
    /// Full unit name, e.g. `ssh.service`.
    pub name: String,
    /// Desired enablement, if managed.
    pub enablement: Option<Enablement>,
    /// Desired run state, if managed.
    pub state: Option<RunState>,
}

/// A local group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupResource {
    /// Group name.
    pub name: String,
    /// Fixed gid, if the profile needs one.
    pub gid: Option<u32>,
    /// A system group (gid below 1000).
    pub system: bool,
}

/// How a managed account logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordPolicy {
    /// No password login (the default): IT staff set one locally if needed.
    Locked,
    /// Empty password: young pupils' accounts in PrimTux log in by a click.
    Empty,
    /// Left as it is on the machine: the profile creates the account but
    /// never touches its password.
    Unmanaged,
}

/// A local user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserResource {
    /// Login name.
    pub name: String,
    /// GECOS full name.
    pub full_name: Option<String>,
    /// Fixed uid, if the profile needs one.
    pub uid: Option<u32>,
    /// Supplementary groups.
    pub groups: Vec<String>,
    /// Login shell (absolute path), default `/bin/bash`.
    pub shell: String,
    /// Home directory (absolute path), default `/home/<name>`.
    pub home: String,
    /// Password handling.
    pub password: PasswordPolicy,
    /// A system account (uid below 1000, no aging).
    pub system: bool,
}

/// Stable identifier of a resource in plans and reports, e.g.
/// `file:/etc/ecole/motd` or `package:gcompris-qt`.
pub trait ResourceId {
    fn resource_id(&self) -> String;
}

impl ResourceId for AptRepository {
    fn resource_id(&self) -> String {
        format!("repository:{}", self.name)
    }
}
impl ResourceId for FileResource {
    fn resource_id(&self) -> String {
        format!("file:{}", self.path)
    }
}
impl ResourceId for DirectoryResource {
    fn resource_id(&self) -> String {
        format!("directory:{}", self.path)
    }
}
impl ResourceId for UnitResource {
    fn resource_id(&self) -> String {
        format!("unit:{}", self.name)
    }
}
impl ResourceId for GroupResource {
    fn resource_id(&self) -> String {
        format!("group:{}", self.name)
    }
}
impl ResourceId for UserResource {
    fn resource_id(&self) -> String {
        format!("user:{}", self.name)
    }
}

/// Parses and validates a profile file. `file_name` is used in messages only.
pub fn parse(file_name: &str, bytes: &[u8]) -> Result<Profile, ProfileError> {
    validate::parse(file_name, bytes)
}

/// Whether `s` is a valid profile or repository name: lowercase ASCII
/// letters, digits and single inner dashes, 1 to 64 characters.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}
