//! Files and directories: atomic writes, mode, owner and group.
//!
//! A managed file is replaced whole: its bytes go to a temporary file in the
//! same directory, which gets its owner and mode, is fsynced, then renamed
//! over the target, and the directory is fsynced. A reader (or a power cut)
//! sees the old file or the new one, never a mix. Metadata alone is fixed in
//! place, on the file's descriptor.
//!
//! Invariant: every managed path is reached through [`super::safe_fs`] —
//! resolved beneath the root's descriptor without following any symbolic
//! link, changed only through descriptors. A link anywhere on the way (a
//! place directory or the file itself, into the root or out of it,
//! dangling or not) makes the resource fail with « lien symbolique refusé :
//! CHEMIN est un lien », at plan time already, and a link planted after the
//! plan is refused (or replaced by the rename) at apply time, never written
//! through. The same code runs on `/` and on a test root.

use std::io::Read;
use std::path::Path;

use nird_proto::profile::{DirectoryResource, FileResource, Ownership};

use super::accounts::Accounts;
use super::plan::Check;
use super::safe_fs::{self, Entry, FsError, Kind, Location, Meta, Root};
use crate::paths::AgentPaths;

/// Writes `bytes` to `path` atomically: temporary file, owner (when given),
/// mode, fsync, rename, fsync of the directory.
///
/// For the agent's own files (its state directory), whose directory is
/// given by its host path; managed paths use [`Location::write`] after a safe
/// walk. Not [`crate::spool::write_atomic`], on purpose: its temporary name
/// is fixed (no process id) so that the next apply after a power cut finds
/// and removes it ([`remove_temporary`]). A fixed name assumes one writer
/// per file at a time (the apply and accounts locks); the spool's writers
/// are not serialized that way, hence its per-process temporary names.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    Location::at_host_path(path)?
        .write(bytes, mode, owner)
        .map_err(|e| match e {
            FsError::Io { source, .. } => source,
            other => std::io::Error::other(other.to_string()),
        })
}

/// Removes the temporary file an interrupted [`write_atomic`] of `path` may
/// have left.
pub fn remove_temporary(path: &Path) {
    if Location::at_host_path(path).is_ok_and(|p| p.remove_temporary()) {
        tracing::info!(path = %path.display(), "removed a leftover temporary file");
    }
}

/// [`remove_temporary`] for a path of the managed system (found by a safe
/// walk: a leftover behind a link is left alone).
pub fn remove_leftover(paths: &AgentPaths, absolute: &str) {
    if let Ok(Some(place)) = Root::open(&paths.root).and_then(|r| r.locate(absolute))
        && place.remove_temporary()
    {
        tracing::info!(path = %absolute, "removed a leftover temporary file");
    }
}

/// The directory holding a managed path, found without following links;
/// `None` when a place directory is missing.
pub fn locate(paths: &AgentPaths, absolute: &str) -> Result<Option<Location>, FsError> {
    Root::open(&paths.root)?.locate(absolute)
}

/// [`locate`], creating missing place directories (0755).
pub fn locate_creating(paths: &AgentPaths, absolute: &str) -> Result<Location, FsError> {
    Root::open(&paths.root)?.locate_creating(absolute)
}

/// A French sentence for a failure on `path`: a refusal says itself, a
/// system error gets what was being done.
pub fn describe(e: FsError, doing: &str, path: &str) -> String {
    match e {
        FsError::Io { source, .. } => format!("{doing} {path} impossible : {source}"),
        other => other.to_string(),
    }
}

/// Owner ids for `ownership`, or what is missing.
fn resolve_owner(ownership: &Ownership, accounts: &Accounts) -> Result<(u32, u32), String> {
    let uid = accounts
        .uid(&ownership.owner)
        .ok_or_else(|| format!("utilisateur « {} » inconnu", ownership.owner))?;
    let gid = accounts
        .gid(&ownership.group)
        .ok_or_else(|| format!("groupe « {} » inconnu", ownership.group))?;
    Ok((uid, gid))
}

/// Differences of mode and owner between `meta` and the desired ones.
fn metadata_differences(
    meta: &Meta,
    ownership: &Ownership,
    ids: Option<(u32, u32)>,
    out: &mut Vec<String>,
) {
    if meta.mode != ownership.mode {
        out.push(format!("mode {:04o} → {:04o}", meta.mode, ownership.mode));
    }
    match ids {
        Some((uid, gid)) => {
            if meta.uid != uid {
                out.push(format!("propriétaire {} → {}", meta.uid, ownership.owner));
            }
            if meta.gid != gid {
                out.push(format!("groupe {} → {}", meta.gid, ownership.group));
            }
        }
        None => out.push(format!(
            "propriétaire {}:{} (à créer)",
            ownership.owner, ownership.group
        )),
    }
}

/// What `pending_accounts` says about an owner that does not exist yet: the
/// profile creates it (a change) or nobody does (the resource will fail).
fn owner_ids(
    ownership: &Ownership,
    accounts: &Accounts,
    created_by_profile: &dyn Fn(&Ownership) -> bool,
) -> Result<Option<(u32, u32)>, String> {
    match resolve_owner(ownership, accounts) {
        Ok(ids) => Ok(Some(ids)),
        Err(_) if created_by_profile(ownership) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The open file at `place` when it is a regular file with a single link
/// holding exactly `content`. Anything else (a FIFO, a device, a socket) is
/// not opened, and a FIFO swapped in meanwhile is not read (`O_NONBLOCK`,
/// `fstat`). A file with other hard links is not "held": its metadata must
/// not be changed in place (the other name may be anyone's file), it is
/// replaced by the rename instead.
fn holding(
    place: &Location,
    meta: &Meta,
    content: &[u8],
) -> Result<Option<std::fs::File>, FsError> {
    if meta.kind != Kind::File || meta.len != content.len() as u64 || meta.links != 1 {
        return Ok(None);
    }
    let Some((mut file, opened)) = place.open_regular()? else {
        return Ok(None);
    };
    if opened.links != 1 || opened.len != content.len() as u64 {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(content.len());
    (&mut file)
        .take(content.len() as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FsError::Io {
            path: place.path(),
            source: e,
        })?;
    Ok((bytes == content).then_some(file))
}

/// Compares a managed file with the machine.
pub fn check_file(
    paths: &AgentPaths,
    file: &FileResource,
    content: &[u8],
    accounts: &Accounts,
    created_by_profile: &dyn Fn(&Ownership) -> bool,
) -> Check {
    let unreadable = |e| Check::Blocked(describe(e, "lecture de", &file.path));
    let place = match locate(paths, &file.path) {
        Ok(p) => p,
        Err(e) => return unreadable(e),
    };
    let ids = match owner_ids(&file.ownership, accounts, created_by_profile) {
        Ok(ids) => ids,
        Err(e) => return Check::Blocked(e),
    };
    let Some(place) = place else {
        return Check::Change("à créer".to_owned());
    };
    let meta = match place.entry() {
        Ok(Entry::Missing) => return Check::Change("à créer".to_owned()),
        Ok(Entry::Present(m)) => m,
        Err(e) => return unreadable(e),
    };
    if meta.kind == Kind::Directory {
        return Check::Blocked(format!("un dossier occupe {}", file.path));
    }
    let mut differences = Vec::new();
    match holding(&place, &meta, content) {
        Ok(Some(_)) => {}
        Ok(None) => differences.push("contenu".to_owned()),
        Err(e) => return unreadable(e),
    }
    metadata_differences(&meta, &file.ownership, ids, &mut differences);
    Check::from_differences(differences)
}

/// Brings a managed file to its desired state.
pub fn apply_file(
    paths: &AgentPaths,
    file: &FileResource,
    content: &[u8],
    accounts: &Accounts,
) -> Result<(), String> {
    let fail = |e| describe(e, "écriture de", &file.path);
    let (uid, gid) = resolve_owner(&file.ownership, accounts)?;
    let place = locate_creating(paths, &file.path).map_err(fail)?;
    if let Entry::Present(meta) = place.entry().map_err(fail)? {
        if meta.kind == Kind::Directory {
            return Err(format!("un dossier occupe {}", file.path));
        }
        if let Some(open) = holding(&place, &meta, content).map_err(fail)? {
            // Same bytes: owner and mode on the very file that was read.
            return safe_fs::set_owner_and_mode(&open, Some((uid, gid)), file.ownership.mode)
                .map_err(|e| {
                    fail(FsError::Io {
                        path: file.path.clone(),
                        source: e,
                    })
                });
        }
    }
    place
        .write(content, file.ownership.mode, Some((uid, gid)))
        .map_err(fail)
}

/// Compares a managed directory with the machine.
pub fn check_directory(
    paths: &AgentPaths,
    dir: &DirectoryResource,
    accounts: &Accounts,
    created_by_profile: &dyn Fn(&Ownership) -> bool,
) -> Check {
    let unreadable = |e| Check::Blocked(describe(e, "lecture de", &dir.path));
    let place = match locate(paths, &dir.path) {
        Ok(p) => p,
        Err(e) => return unreadable(e),
    };
    let ids = match owner_ids(&dir.ownership, accounts, created_by_profile) {
        Ok(ids) => ids,
        Err(e) => return Check::Blocked(e),
    };
    let Some(place) = place else {
        return Check::Change("à créer".to_owned());
    };
    match place.entry() {
        Ok(Entry::Present(m)) if m.kind == Kind::Directory => {
            let mut differences = Vec::new();
            metadata_differences(&m, &dir.ownership, ids, &mut differences);
            Check::from_differences(differences)
        }
        Ok(Entry::Present(_)) => {
            Check::Blocked(format!("{} existe et n'est pas un dossier", dir.path))
        }
        Ok(Entry::Missing) => Check::Change("à créer".to_owned()),
        Err(e) => unreadable(e),
    }
}

/// Brings a managed directory to its desired state.
pub fn apply_directory(
    paths: &AgentPaths,
    dir: &DirectoryResource,
    accounts: &Accounts,
) -> Result<(), String> {
    let fail = |e| describe(e, "création de", &dir.path);
    let (uid, gid) = resolve_owner(&dir.ownership, accounts)?;
    let place = locate_creating(paths, &dir.path).map_err(fail)?;
    let opened = place.open_or_create_directory().map_err(fail)?;
    opened
        .set_owner_and_mode(Some((uid, gid)), dir.ownership.mode)
        .map_err(fail)?;
    place.sync().map_err(fail)
}
