//! The profile file exactly as TOML describes it, with the byte span of every
//! value the validator may have to point at. `deny_unknown_fields`
//! everywhere: a misspelt key is an error, never silently ignored.

use serde::Deserialize;
use serde_spanned::Spanned;
use toml::value::Datetime;

pub type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub profile: S<Header>,
    #[serde(default)]
    pub packages: Option<S<Packages>>,
    #[serde(default)]
    pub repository: Vec<S<Repository>>,
    #[serde(default)]
    pub file: Vec<S<FileEntry>>,
    #[serde(default)]
    pub directory: Vec<S<Directory>>,
    #[serde(default)]
    pub unit: Vec<S<Unit>>,
    #[serde(default)]
    pub group: Vec<S<Group>>,
    #[serde(default)]
    pub user: Vec<S<User>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub name: S<String>,
    pub version: S<i64>,
    pub expires: S<Datetime>,
    pub description: S<String>,
    pub audience: S<OneOrMany>,
    #[serde(default)]
    pub includes: Vec<S<String>>,
    /// Signed scope: académie names.
    #[serde(default)]
    pub academies: Vec<S<String>>,
    /// Signed scope: département codes (`62`, `062`, `2A`).
    #[serde(default)]
    pub departements: Vec<S<String>>,
    /// Signed scope: UAI codes.
    #[serde(default)]
    pub uais: Vec<S<String>>,
    /// Policy rules lifted explicitly (`setuid`, `empty-admin-password`,
    /// `runtime-paths`).
    #[serde(default)]
    pub allow: Vec<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Packages {
    #[serde(default)]
    pub install: Vec<S<String>>,
    #[serde(default)]
    pub remove: Vec<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    pub name: S<String>,
    pub uris: Vec<S<String>>,
    pub suites: Vec<S<String>>,
    #[serde(default)]
    pub components: Vec<S<String>>,
    pub key: S<Blob>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blob {
    pub sha256: S<String>,
    pub size: S<i64>,
    #[serde(default)]
    pub source: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: S<String>,
    #[serde(default)]
    pub content: Option<S<String>>,
    #[serde(default)]
    pub blob: Option<S<Blob>>,
    #[serde(default)]
    pub mode: Option<S<String>>,
    #[serde(default)]
    pub owner: Option<S<String>>,
    #[serde(default)]
    pub group: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    pub path: S<String>,
    #[serde(default)]
    pub mode: Option<S<String>>,
    #[serde(default)]
    pub owner: Option<S<String>>,
    #[serde(default)]
    pub group: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    pub name: S<String>,
    #[serde(default)]
    pub enablement: Option<S<String>>,
    #[serde(default)]
    pub state: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: S<String>,
    #[serde(default)]
    pub gid: Option<S<i64>>,
    #[serde(default)]
    pub system: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: S<String>,
    #[serde(default)]
    pub full_name: Option<S<String>>,
    #[serde(default)]
    pub uid: Option<S<i64>>,
    #[serde(default)]
    pub groups: Vec<S<String>>,
    #[serde(default)]
    pub shell: Option<S<String>>,
    #[serde(default)]
    pub home: Option<S<String>>,
    #[serde(default)]
    pub password: Option<S<String>>,
    #[serde(default)]
    pub system: bool,
}

/// `audience = "école"` or `audience = ["collège", "lycée"]`.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}
