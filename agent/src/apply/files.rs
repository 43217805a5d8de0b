//! Files and directories: atomic writes, mode, owner and group.
//!
//! A managed file is replaced whole: its bytes go to a temporary file in the
//! same directory, which gets its owner and mode, is fsynced, then renamed
//! over the target, and the directory is fsynced. A reader (or a power cut)
//! sees the old file or the new one, never a mix. Metadata alone is fixed in
//! place. Paths are confined to the root: a symlink in a parent directory
//! that leads outside `--root` makes the resource fail rather than write
//! through it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nird_proto::profile::{DirectoryResource, FileResource, Ownership};

use super::accounts::Accounts;
use super::plan::Check;
use crate::paths::AgentPaths;
use crate::spool::sync_dir;

/// Writes `bytes` to `path` atomically: temporary file, owner (when given),
/// mode, fsync, rename, fsync of the directory.
///
/// Not [`crate::spool::write_atomic`], on purpose: this one writes into the
/// managed root, so it sets an owner and refuses to follow a planted
/// symlink, and its temporary name is fixed (no process id) so that the
/// next apply after a power cut finds and removes it
/// ([`remove_temporary`]). A fixed name assumes one writer per file at a
/// time (the apply and accounts locks); the spool's writers are not
/// serialized that way, hence its per-process temporary names.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    // A fixed temporary name: a leftover from a crash is replaced, never
    // accumulated. Removing it first means O_EXCL below cannot follow a
    // planted symlink.
    let tmp =
        temporary_for(path).ok_or_else(|| std::io::Error::other("chemin sans nom de fichier"))?;
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)?;
        file.write_all(bytes)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        // After chown: chown clears set-id bits.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The temporary file [`write_atomic`] uses for `path`.
fn temporary_for(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    Some(path.with_file_name(format!(".{}.nird-tmp", name.to_string_lossy())))
}

/// Removes the temporary file an interrupted [`write_atomic`] of `path` may
/// have left.
pub fn remove_temporary(path: &Path) {
    if let Some(tmp) = temporary_for(path)
        && fs::remove_file(&tmp).is_ok()
    {
        tracing::info!(path = %tmp.display(), "removed a leftover temporary file");
    }
}

/// [`remove_temporary`] for a path of the managed system.
pub fn remove_leftover(paths: &AgentPaths, absolute: &str) {
    if let Ok(target) = confined(paths, absolute) {
        remove_temporary(&target);
    }
}

/// Maps a profile path under the root, refusing one whose existing parent
/// directories lead outside the root through a symlink.
pub fn confined(paths: &AgentPaths, absolute: &str) -> Result<PathBuf, String> {
    let target = paths.system(absolute);
    let root = fs::canonicalize(&paths.root)
        .map_err(|e| format!("racine {} illisible : {e}", paths.root.display()))?;
    if root == Path::new("/") {
        return Ok(target);
    }
    let mut existing = target.parent();
    while let Some(dir) = existing {
        match fs::canonicalize(dir) {
            Ok(real) if real.starts_with(&root) => return Ok(target),
            Ok(real) => {
                return Err(format!(
                    "{absolute} mène hors de la racine (par {})",
                    real.display()
                ));
            }
            Err(_) => existing = dir.parent(),
        }
    }
    Ok(target)
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
    meta: &fs::Metadata,
    ownership: &Ownership,
    ids: Option<(u32, u32)>,
    out: &mut Vec<String>,
) {
    let mode = meta.mode() & 0o7777;
    if mode != ownership.mode {
        out.push(format!("mode {mode:04o} → {:04o}", ownership.mode));
    }
    match ids {
        Some((uid, gid)) => {
            if meta.uid() != uid {
                out.push(format!("propriétaire {} → {}", meta.uid(), ownership.owner));
            }
            if meta.gid() != gid {
                out.push(format!("groupe {} → {}", meta.gid(), ownership.group));
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

/// True when `target` (whose `lstat` is `meta`) is a regular file holding
/// exactly `content`. Anything else (a FIFO, a device, a socket) is not
/// read: reading a FIFO would block the plan forever.
fn holds(target: &Path, meta: &fs::Metadata, content: &[u8]) -> bool {
    meta.is_file()
        && meta.len() == content.len() as u64
        && fs::read(target).is_ok_and(|b| b == content)
}

/// Compares a managed file with the machine.
pub fn check_file(
    paths: &AgentPaths,
    file: &FileResource,
    content: &[u8],
    accounts: &Accounts,
    created_by_profile: &dyn Fn(&Ownership) -> bool,
) -> Check {
    let target = match confined(paths, &file.path) {
        Ok(t) => t,
        Err(e) => return Check::Blocked(e),
    };
    let ids = match owner_ids(&file.ownership, accounts, created_by_profile) {
        Ok(ids) => ids,
        Err(e) => return Check::Blocked(e),
    };
    let meta = match fs::symlink_metadata(&target) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::Change("à créer".to_owned());
        }
        Err(e) => return Check::Blocked(format!("{} illisible : {e}", file.path)),
    };
    if meta.is_dir() {
        return Check::Blocked(format!("un dossier occupe {}", file.path));
    }
    if meta.file_type().is_symlink() {
        return Check::Change("lien symbolique remplacé par le fichier".to_owned());
    }
    let mut differences = Vec::new();
    if !holds(&target, &meta, content) {
        differences.push("contenu".to_owned());
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
    let target = confined(paths, &file.path)?;
    let (uid, gid) = resolve_owner(&file.ownership, accounts)?;
    let same_content = fs::symlink_metadata(&target).is_ok_and(|m| holds(&target, &m, content));
    let fail = |e: std::io::Error| format!("écriture de {} impossible : {e}", file.path);
    if same_content {
        std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).map_err(fail)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(file.ownership.mode))
            .map_err(fail)?;
        return Ok(());
    }
    if let Some(parent) = target.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(fail)?;
    }
    write_atomic(&target, content, file.ownership.mode, Some((uid, gid))).map_err(fail)
}

/// Compares a managed directory with the machine.
pub fn check_directory(
    paths: &AgentPaths,
    dir: &DirectoryResource,
    accounts: &Accounts,
    created_by_profile: &dyn Fn(&Ownership) -> bool,
) -> Check {
    let target = match confined(paths, &dir.path) {
        Ok(t) => t,
        Err(e) => return Check::Blocked(e),
    };
    let ids = match owner_ids(&dir.ownership, accounts, created_by_profile) {
        Ok(ids) => ids,
        Err(e) => return Check::Blocked(e),
    };
    match fs::symlink_metadata(&target) {
        Ok(m) if m.is_dir() => {
            let mut differences = Vec::new();
            metadata_differences(&m, &dir.ownership, ids, &mut differences);
            Check::from_differences(differences)
        }
        Ok(_) => Check::Blocked(format!("{} existe et n'est pas un dossier", dir.path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::Change("à créer".to_owned()),
        Err(e) => Check::Blocked(format!("{} illisible : {e}", dir.path)),
    }
}

/// Brings a managed directory to its desired state.
pub fn apply_directory(
    paths: &AgentPaths,
    dir: &DirectoryResource,
    accounts: &Accounts,
) -> Result<(), String> {
    let target = confined(paths, &dir.path)?;
    let (uid, gid) = resolve_owner(&dir.ownership, accounts)?;
    let fail = |e: std::io::Error| format!("création de {} impossible : {e}", dir.path);
    match fs::symlink_metadata(&target) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{} existe et n'est pas un dossier", dir.path)),
        Err(_) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&target)
            .map_err(fail)?,
    }
    std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).map_err(fail)?;
    fs::set_permissions(&target, fs::Permissions::from_mode(dir.ownership.mode)).map_err(fail)?;
    if let Some(parent) = target.parent() {
        sync_dir(parent).map_err(fail)?;
    }
    Ok(())
}
