//! File system operations on the managed root that never follow a symbolic
//! link.
//!
//! On a school PC the agent runs as root while pupils can write some
//! directories (`/srv/classe`, `/home/…`, `/tmp`). If a managed path were
//! resolved by the kernel from its text, a pupil owning a directory above it
//! could replace a component by a link (`/srv/classe/notes → /etc`) and turn
//! the profile's write, `chown` or `chmod` into one anywhere: root for the
//! pupil. So every managed path goes through this module:
//!
//! - The root (`--root`, `/` in production) is opened once as a descriptor;
//!   the path is resolved *beneath* it, component by component, with
//!   `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)` where the kernel has
//!   it (Linux ≥ 5.6), else with one `openat(O_PATH | O_DIRECTORY |
//!   O_NOFOLLOW)` per component (kernels without `openat2`, or a seccomp
//!   filter refusing it). Same code for `/` and for a test root.
//! - The last component is examined with `fstatat(AT_SYMLINK_NOFOLLOW)` and
//!   opened with `O_NOFOLLOW` (plus `O_NONBLOCK` to read, so that a FIFO can
//!   never block the agent; only regular files are read).
//! - Every change is made through a descriptor: missing directories with
//!   `mkdirat` in their parent's descriptor, files through a temporary file
//!   created `O_CREAT | O_EXCL | O_NOFOLLOW` in the parent's descriptor,
//!   `fchown`/`fchmod` on the open file, then `renameat` in the same
//!   descriptor; directories `fchown`/`fchmod` on their `O_NOFOLLOW`
//!   descriptor. Never `chown`, `chmod` or `open` on a path.
//!
//! **Invariant:** a symbolic link anywhere on a managed path — a parent
//! directory or the last component, pointing inside or outside the root,
//! dangling or not — is a refusal ([`FsError::Symlink`], « lien symbolique
//! refusé : /srv/classe/notes est un lien »), never followed. Because every
//! step works on descriptors, a link planted after the plan looked (or
//! between two steps of the apply) is refused too, or at worst replaced by
//! the rename: it is never written through.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Why a managed path could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// A symbolic link on the way (parent directory or last component).
    #[error("lien symbolique refusé : {path} est un lien")]
    Symlink {
        /// The managed path of the link itself.
        path: String,
    },
    /// A component that must be a directory is something else.
    #[error("{path} existe et n'est pas un dossier")]
    NotADirectory { path: String },
    /// Not an absolute, normalised path (proto refuses those already).
    #[error("chemin refusé : « {path} » ({why})")]
    InvalidPath { path: String, why: &'static str },
    /// The system call failed.
    #[error("{path} : {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl FsError {
    fn io(path: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        FsError::Io {
            path: path.into(),
            source: source.into(),
        }
    }
}

/// What an entry is, as `lstat` says (links never get this far).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    /// A FIFO, socket or device: never opened.
    Other,
}

/// The metadata of an entry that matter to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits, set-id and sticky included (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub len: u64,
    /// Hard links to the inode.
    pub links: u64,
}

impl Meta {
    fn of(st: &rustix::fs::Stat) -> Self {
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Directory,
            _ => Kind::Other,
        };
        Meta {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            len: u64::try_from(st.st_size).unwrap_or(0),
            #[allow(clippy::useless_conversion)] // u32 on some architectures
            links: u64::from(st.st_nlink),
        }
    }
}

/// What is at a managed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Missing,
    Present(Meta),
}

/// Set once `openat2` turned out to be unavailable (kernel older than 5.6,
/// or a seccomp filter answering `ENOSYS`/`EPERM`): the walk is used alone.
static OPENAT2_UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// The managed root, opened as a directory descriptor.
#[derive(Debug)]
pub struct Root {
    dir: Dir,
}

impl Root {
    /// Opens `root`. The root itself is the operator's choice (`--root`) and
    /// may be reached through links; nothing below it is.
    pub fn open(root: &Path) -> Result<Root, FsError> {
        let fd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FsError::io(format!("racine {}", root.display()), e))?;
        Ok(Root {
            dir: Dir {
                fd,
                path: String::new(),
            },
        })
    }

    /// The directory holding `absolute`'s last component, or `None` when one
    /// of its parent directories does not exist (yet).
    pub fn locate(&self, absolute: &str) -> Result<Option<Location>, FsError> {
        self.resolve(absolute, false)
    }

    /// The directory holding `absolute`'s last component; missing parent
    /// directories are created (mode 0755, owned by the agent).
    pub fn locate_creating(&self, absolute: &str) -> Result<Location, FsError> {
        self.resolve(absolute, true)?.ok_or_else(|| {
            FsError::io(absolute, std::io::Error::from(std::io::ErrorKind::NotFound))
        })
    }

    fn resolve(&self, absolute: &str, create: bool) -> Result<Option<Location>, FsError> {
        let components = components(absolute)?;
        let (name, parents) = components
            .split_last()
            .ok_or_else(|| invalid(absolute, "la racine elle-même"))?;
        let use_openat2 = !OPENAT2_UNAVAILABLE.load(Ordering::Relaxed);
        Ok(self
            .open_directories(parents, create, use_openat2)?
            .map(|fd| Location {
                dir: Dir {
                    fd,
                    path: join(parents),
                },
                name: OsString::from(*name),
            }))
    }

    /// The directory `absolute` itself, opened for reading, or `None` when
    /// it does not exist.
    pub fn directory(&self, absolute: &str) -> Result<Option<Dir>, FsError> {
        match self.locate(absolute)? {
            Some(place) => place.directory(),
            None => Ok(None),
        }
    }

    /// Opens the directories `components` beneath the root without following
    /// a link: one `openat2` when it can, else (or to say which component is
    /// wrong, or to create the missing ones) a walk of one `openat` per
    /// component. `None` when one is missing and `create` is false.
    fn open_directories(
        &self,
        components: &[&str],
        create: bool,
        use_openat2: bool,
    ) -> Result<Option<OwnedFd>, FsError> {
        if use_openat2 && !components.is_empty() {
            match rustix::fs::openat2(
                &self.dir.fd,
                components.join("/"),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => return Ok(Some(fd)),
                Err(Errno::NOSYS | Errno::PERM | Errno::INVAL | Errno::TOOBIG) => {
                    tracing::debug!("openat2 unavailable: walking paths component by component");
                    OPENAT2_UNAVAILABLE.store(true, Ordering::Relaxed);
                }
                // ELOOP (a link), ENOENT, ENOTDIR, EAGAIN (a concurrent
                // rename): the walk says which component, or creates it.
                Err(_) => {}
            }
        }
        let mut dir = self.dir.fd.try_clone().map_err(|e| FsError::io("/", e))?;
        for (i, name) in components.iter().enumerate() {
            let path = || join(&components[..=i]);
            let mut created = false;
            dir = loop {
                match rustix::fs::openat(
                    &dir,
                    *name,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => break fd,
                    Err(Errno::NOENT) if !create => return Ok(None),
                    Err(Errno::NOENT) if !created => {
                        match rustix::fs::mkdirat(&dir, *name, Mode::from_raw_mode(0o755)) {
                            // EEXIST: made meanwhile; opened (or refused) next.
                            Ok(()) | Err(Errno::EXIST) => created = true,
                            Err(e) => return Err(FsError::io(path(), e)),
                        }
                    }
                    Err(Errno::NOTDIR | Errno::LOOP) => {
                        return Err(not_a_directory(&dir, name, path()));
                    }
                    Err(e) => return Err(FsError::io(path(), e)),
                }
            };
        }
        Ok(Some(dir))
    }
}

/// A directory of the managed system, open as a descriptor.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// Its managed path, for messages (empty for the root).
    path: String,
}

impl Dir {
    /// The entry `name` of this directory.
    pub fn child(&self, name: &OsStr) -> Result<Location, FsError> {
        Ok(Location {
            dir: Dir {
                fd: self
                    .fd
                    .try_clone()
                    .map_err(|e| FsError::io(&self.path, e))?,
                path: self.path.clone(),
            },
            name: name.to_owned(),
        })
    }

    /// The names of this directory's entries (not `.` and `..`), sorted.
    /// The directory must have been opened for reading ([`Location::directory`]).
    pub fn names(&self) -> Result<Vec<OsString>, FsError> {
        let fail = |e: Errno| FsError::io(self.shown(), e);
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd).map_err(fail)? {
            let name = entry.map_err(fail)?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(OsString::from(OsStr::from_bytes(&name)));
            }
        }
        names.sort();
        Ok(names)
    }

    /// Gives the directory its owner (when given), then its mode (after:
    /// `chown` clears set-id bits), on its descriptor.
    pub fn set_owner_and_mode(&self, owner: Option<(u32, u32)>, mode: u32) -> Result<(), FsError> {
        set_owner_and_mode(&self.fd, owner, mode).map_err(|e| FsError::io(self.shown(), e))
    }

    /// Makes the directory's entries durable (fsync of the directory).
    pub fn sync(&self) -> Result<(), FsError> {
        let fail = |e: Errno| FsError::io(self.shown(), e);
        // An `O_PATH` descriptor cannot be fsynced: open "." through it.
        let fd = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail)?;
        rustix::fs::fsync(&fd).map_err(fail)
    }

    fn shown(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            &self.path
        }
    }
}

/// An entry of the managed system, held as (descriptor of its directory,
/// name): every operation on it is relative to that descriptor.
#[derive(Debug)]
pub struct Location {
    dir: Dir,
    name: OsString,
}

impl Location {
    /// The managed path of the entry.
    pub fn path(&self) -> String {
        format!("{}/{}", self.dir.path, self.name.to_string_lossy())
    }

    /// What the entry is, without following it: a link is a refusal.
    pub fn entry(&self) -> Result<Entry, FsError> {
        match rustix::fs::statat(&self.dir.fd, &self.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                Err(FsError::Symlink { path: self.path() })
            }
            Ok(st) => Ok(Entry::Present(Meta::of(&st))),
            Err(Errno::NOENT) => Ok(Entry::Missing),
            Err(e) => Err(FsError::io(self.path(), e)),
        }
    }

    /// Opens the entry for reading (`O_NOFOLLOW | O_NONBLOCK`): `None` when
    /// it is missing or not a regular file (as `fstat` on the descriptor
    /// says, whatever was there when it was looked at).
    pub fn open_regular(&self) -> Result<Option<(File, Meta)>, FsError> {
        let fd = match rustix::fs::openat(
            &self.dir.fd,
            &self.name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(FsError::Symlink { path: self.path() }),
            Err(e) => return Err(FsError::io(self.path(), e)),
        };
        let meta = Meta::of(&rustix::fs::fstat(&fd).map_err(|e| FsError::io(self.path(), e))?);
        Ok((meta.kind == Kind::File).then(|| (File::from(fd), meta)))
    }

    /// The bytes of the entry when it is a regular file, read up to `limit`
    /// bytes (one more tells it is longer); `None` otherwise.
    pub fn read(&self, limit: u64) -> Result<Option<Vec<u8>>, FsError> {
        let Some((file, _)) = self.open_regular()? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| FsError::io(self.path(), e))?;
        Ok(Some(bytes))
    }

    /// Replaces the entry by a regular file holding `bytes`, atomically: a
    /// temporary file with a fixed name ([`temporary_name`]) is created in
    /// the directory's descriptor (`O_CREAT | O_EXCL | O_NOFOLLOW`), written,
    /// given its owner (when given) and mode, fsynced, renamed over the entry
    /// (a link there is replaced, never followed), and the directory is
    /// fsynced. A reader or a power cut sees the old file or the new one.
    pub fn write(&self, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<(), FsError> {
        let tmp = temporary_name(&self.name);
        let fail = |e: std::io::Error| FsError::io(self.path(), e);
        // A leftover of a crash is replaced, never accumulated; removing it
        // first is what lets O_EXCL below succeed.
        match rustix::fs::unlinkat(&self.dir.fd, &tmp, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(fail(e.into())),
        }
        let result = (|| -> std::io::Result<()> {
            let fd = rustix::fs::openat(
                &self.dir.fd,
                &tmp,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            let mut file = File::from(fd);
            file.write_all(bytes)?;
            set_owner_and_mode(&file, owner, mode)?;
            file.sync_all()?;
            rustix::fs::renameat(&self.dir.fd, &tmp, &self.dir.fd, &self.name)?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = rustix::fs::unlinkat(&self.dir.fd, &tmp, AtFlags::empty());
            return Err(fail(e));
        }
        self.dir.sync()
    }

    /// Opens the entry as a directory (for reading, `O_NOFOLLOW`), or `None`
    /// when it is missing.
    pub fn directory(&self) -> Result<Option<Dir>, FsError> {
        match rustix::fs::openat(
            &self.dir.fd,
            &self.name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: self.path(),
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::NOTDIR | Errno::LOOP) => {
                Err(not_a_directory(&self.dir.fd, &self.name, self.path()))
            }
            Err(e) => Err(FsError::io(self.path(), e)),
        }
    }

    /// Creates the entry as a directory with `mode` (`mkdirat`, so the
    /// umask applies), failing if anything is there already, and opens it.
    pub fn create_directory(&self, mode: u32) -> Result<Dir, FsError> {
        rustix::fs::mkdirat(&self.dir.fd, &self.name, Mode::from_raw_mode(mode))
            .map_err(|e| FsError::io(self.path(), e))?;
        self.directory()?.ok_or_else(|| {
            FsError::io(
                self.path(),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })
    }

    /// The directory at the entry, created (mode 0700 until the caller sets
    /// the desired one) when missing.
    pub fn open_or_create_directory(&self) -> Result<Dir, FsError> {
        if let Some(dir) = self.directory()? {
            return Ok(dir);
        }
        match rustix::fs::mkdirat(&self.dir.fd, &self.name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(FsError::io(self.path(), e)),
        }
        self.directory()?.ok_or_else(|| {
            FsError::io(
                self.path(),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })
    }

    /// Opens the entry for writing, creating it with `mode` when missing
    /// (`O_NOFOLLOW`; `exclusive`: fail if it exists).
    pub fn create_file(&self, mode: u32, exclusive: bool) -> Result<File, FsError> {
        let mut flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if exclusive {
            flags |= OFlags::EXCL;
        }
        match rustix::fs::openat(&self.dir.fd, &self.name, flags, Mode::from_raw_mode(mode)) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::LOOP) => Err(FsError::Symlink { path: self.path() }),
            Err(e) => Err(FsError::io(self.path(), e)),
        }
    }

    /// Removes the entry (not a directory); a link is removed, not followed.
    pub fn remove(&self) -> Result<(), FsError> {
        rustix::fs::unlinkat(&self.dir.fd, &self.name, AtFlags::empty())
            .map_err(|e| FsError::io(self.path(), e))
    }

    /// Removes the temporary file an interrupted [`Location::write`] may have
    /// left; true when there was one.
    pub fn remove_temporary(&self) -> bool {
        rustix::fs::unlinkat(&self.dir.fd, temporary_name(&self.name), AtFlags::empty()).is_ok()
    }

    /// Makes the entry's creation or replacement durable.
    pub fn sync(&self) -> Result<(), FsError> {
        self.dir.sync()
    }

    /// The entry `file_name` of an agent directory given by its host path
    /// (its state directory): that path is the agent's own and is opened as
    /// given; the entry itself is handled like a managed one.
    pub fn at_host_path(path: &Path) -> std::io::Result<Location> {
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::other("chemin sans nom de fichier"))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            Some(_) => Path::new("."),
            None => Path::new("/"),
        };
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Location {
            dir: Dir {
                fd,
                path: dir.to_string_lossy().trim_end_matches('/').to_owned(),
            },
            name: name.to_owned(),
        })
    }
}

/// `.NAME.nird-tmp`: the fixed temporary name [`Location::write`] uses, so
/// that the next apply after a power cut finds and removes a leftover. A
/// fixed name assumes one writer per file at a time (the apply and accounts
/// locks).
pub fn temporary_name(name: &OsStr) -> OsString {
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(".nird-tmp");
    tmp
}

/// `fchown` (when `owner` is given) then `fchmod` on a descriptor.
pub fn set_owner_and_mode(
    fd: impl AsFd,
    owner: Option<(u32, u32)>,
    mode: u32,
) -> std::io::Result<()> {
    if let Some((uid, gid)) = owner {
        // -1 means "unchanged" to the kernel: never an owner to set.
        if uid == u32::MAX || gid == u32::MAX {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "identifiant 4294967295 (-1) refusé",
            ));
        }
        rustix::fs::fchown(
            &fd,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )?;
    }
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))?;
    Ok(())
}

/// The components of an absolute, normalised managed path.
fn components(absolute: &str) -> Result<Vec<&str>, FsError> {
    let relative = absolute
        .strip_prefix('/')
        .ok_or_else(|| invalid(absolute, "pas absolu"))?;
    if relative.is_empty() {
        return Err(invalid(absolute, "la racine elle-même"));
    }
    let components: Vec<&str> = relative.split('/').collect();
    if components
        .iter()
        .any(|c| c.is_empty() || *c == "." || *c == ".." || c.contains('\0'))
    {
        return Err(invalid(absolute, "composant vide, « . » ou « .. »"));
    }
    Ok(components)
}

fn invalid(path: &str, why: &'static str) -> FsError {
    FsError::InvalidPath {
        path: path.to_owned(),
        why,
    }
}

fn join(components: &[&str]) -> String {
    components.iter().map(|c| format!("/{c}")).collect()
}

/// Why `name` in `dir` could not be opened as a directory: a link, or
/// something else.
fn not_a_directory(dir: &OwnedFd, name: impl AsRef<OsStr>, path: String) -> FsError {
    match rustix::fs::statat(dir, name.as_ref(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
            FsError::Symlink { path }
        }
        Ok(_) => FsError::NotADirectory { path },
        Err(e) => FsError::io(path, e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A root with a directory, a file, links (inside, outside, dangling)
    /// and a directory reached only through a link.
    fn fixture() -> (tempfile::TempDir, tempfile::TempDir) {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("srv/classe/vrai")).unwrap();
        std::fs::write(r.join("srv/classe/fichier"), "x").unwrap();
        symlink(outside.path(), r.join("srv/classe/dehors")).unwrap();
        symlink("vrai", r.join("srv/classe/dedans")).unwrap();
        symlink("/nulle/part", r.join("srv/classe/casse")).unwrap();
        symlink(r.join("srv"), r.join("lien-srv")).unwrap();
        (root, outside)
    }

    /// Both resolutions (openat2, and the walk used without it) give the
    /// same answers.
    #[test]
    fn openat2_and_the_walk_agree() {
        let (root, outside) = fixture();
        let r = Root::open(root.path()).unwrap();
        for use_openat2 in [true, false] {
            let open = |path: &[&str], create: bool| {
                r.open_directories(path, create, use_openat2)
                    .map(|fd| fd.is_some())
            };
            assert!(open(&["srv", "classe", "vrai"], false).unwrap());
            assert!(!open(&["srv", "classe", "absent", "x"], false).unwrap());
            for link in ["dehors", "dedans", "casse"] {
                let e = open(&["srv", "classe", link, "x"], true).unwrap_err();
                assert_eq!(
                    e.to_string(),
                    format!("lien symbolique refusé : /srv/classe/{link} est un lien")
                );
            }
            let e = open(&["lien-srv", "classe"], false).unwrap_err();
            assert!(matches!(e, FsError::Symlink { ref path } if path == "/lien-srv"));
            let e = open(&["srv", "classe", "fichier", "x"], true).unwrap_err();
            assert!(matches!(e, FsError::NotADirectory { .. }), "{e}");
            // Creation makes the missing directories, beneath the root only.
            let new = if use_openat2 { "neuf2" } else { "neuf" };
            assert!(open(&["srv", new, "a", "b"], true).unwrap());
            assert!(root.path().join("srv").join(new).join("a/b").is_dir());
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_last_component_is_never_followed() {
        let (root, outside) = fixture();
        let r = Root::open(root.path()).unwrap();
        for link in ["dehors", "dedans", "casse"] {
            let p = r.locate(&format!("/srv/classe/{link}")).unwrap().unwrap();
            let refused = |e: FsError| matches!(e, FsError::Symlink { .. });
            assert!(refused(p.entry().unwrap_err()));
            assert!(refused(p.open_regular().unwrap_err()));
            assert!(refused(p.directory().unwrap_err()));
            assert!(refused(p.create_file(0o644, false).unwrap_err()));
        }
        // The rename replaces a link (the caller refuses it before; this is
        // what makes a late one harmless), it does not write through it.
        let p = r.locate("/srv/classe/dehors").unwrap().unwrap();
        p.write(b"contenu", 0o640, None).unwrap();
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        let meta = std::fs::symlink_metadata(root.path().join("srv/classe/dehors")).unwrap();
        assert!(meta.is_file());
    }

    #[test]
    fn paths_that_are_not_normalised_are_refused() {
        let (root, _outside) = fixture();
        let r = Root::open(root.path()).unwrap();
        for bad in [
            "relatif",
            "/",
            "/srv//classe",
            "/srv/../etc",
            "/srv/./x",
            "/srv/",
        ] {
            assert!(
                matches!(r.locate(bad), Err(FsError::InvalidPath { .. })),
                "{bad}"
            );
        }
    }
}
