//! Local users and groups.
//!
//! Why the files are edited directly instead of running `useradd`: the agent
//! must manage a test root, a mounted disk or a chroot exactly like `/`, and
//! plan without side effects in well under a second. `useradd --root` needs
//! the target's shadow tools and a chroot, `--prefix` behaves differently
//! across shadow versions, and neither can tell us what *would* change. The
//! four files (`/etc/passwd`, `/etc/group`, `/etc/shadow`, `/etc/gshadow`)
//! are simple, stable formats; we take the same lock as the shadow tools and
//! glibc's `lckpwdf()` (an fcntl write lock on `/etc/.pwd.lock`), re-read
//! the files under it, and replace each whole by an atomic rename keeping its
//! mode and owner, so `passwd`, `useradd` and the agent never interleave.
//! New accounts follow Debian's `useradd` defaults: a user-private group,
//! system ids allocated downwards from 999, others upwards from 1000, a
//! home copied from `/etc/skel` for non-system users.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nird_proto::profile::{GroupResource, PRIVILEGED_GROUPS, PasswordPolicy, UserResource};

use super::files::describe;
use super::plan::Check;
use super::safe_fs::{Dir, Entry, Kind, Root};
use crate::paths::AgentPaths;

/// How long to wait for another tool holding the accounts lock (like
/// `lckpwdf`).
const LOCK_TIMEOUT: Duration = Duration::from_secs(15);

/// One of the colon-separated account files, line by line.
#[derive(Debug, Clone, Default)]
struct Table {
    /// The managed root it lives under.
    root: PathBuf,
    /// Its path on the managed system (`/etc/passwd`), reached without
    /// following links like every managed path.
    path: &'static str,
    /// False when the file does not exist (a bare test root).
    exists: bool,
    /// Its lines, split on `:`; comments and blank lines kept as one field.
    lines: Vec<Vec<String>>,
}

impl Table {
    fn load(paths: &AgentPaths, path: &'static str) -> Result<Self, String> {
        let unreadable = |e| describe(e, "lecture de", path);
        let bytes = match Root::open(&paths.root)
            .and_then(|r| r.locate(path))
            .map_err(unreadable)?
        {
            None => None,
            Some(place) => match place.entry().map_err(unreadable)? {
                Entry::Missing => None,
                Entry::Present(m) if m.kind == Kind::File => {
                    place.read(u64::MAX).map_err(unreadable)?
                }
                Entry::Present(_) => {
                    return Err(format!("{path} n'est pas un fichier ordinaire"));
                }
            },
        };
        let Some(bytes) = bytes else {
            return Ok(Table {
                root: paths.root.clone(),
                path,
                exists: false,
                lines: Vec::new(),
            });
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("{path} illisible : contenu qui n'est pas de l'UTF-8"))?;
        Ok(Table {
            lines: text
                .lines()
                .map(|l| l.split(':').map(str::to_owned).collect())
                .collect(),
            root: paths.root.clone(),
            path,
            exists: true,
        })
    }

    fn find(&self, name: &str) -> Option<&Vec<String>> {
        self.lines.iter().find(|l| l.len() > 1 && l[0] == name)
    }

    fn find_mut(&mut self, name: &str) -> Option<&mut Vec<String>> {
        self.lines.iter_mut().find(|l| l.len() > 1 && l[0] == name)
    }

    /// The numeric field (uid or gid) of every entry.
    fn ids(&self) -> BTreeSet<u32> {
        self.lines
            .iter()
            .filter_map(|l| l.get(2)?.parse().ok())
            .collect()
    }

    fn id_of(&self, name: &str) -> Option<u32> {
        self.find(name)?.get(2)?.parse().ok()
    }

    /// Writes the table back atomically, keeping the file's mode and owner
    /// (`default_mode` for a new file).
    fn save(&self, default_mode: u32, default_owner: (u32, u32)) -> Result<(), String> {
        let fail = |e| describe(e, "écriture de", self.path);
        let place = Root::open(&self.root)
            .and_then(|r| r.locate_creating(self.path))
            .map_err(fail)?;
        let (mode, owner) = match place.entry().map_err(fail)? {
            Entry::Present(m) => (m.mode, (m.uid, m.gid)),
            Entry::Missing => (default_mode, default_owner),
        };
        let mut text = String::new();
        for line in &self.lines {
            text.push_str(&line.join(":"));
            text.push('\n');
        }
        place
            .write(text.as_bytes(), mode, Some(owner))
            .map_err(fail)
    }
}

/// The accounts of the managed system, as read from its files.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    passwd: Table,
    group: Table,
    shadow: Table,
    gshadow: Table,
}

impl Accounts {
    /// Reads `/etc/passwd`, `/etc/group`, `/etc/shadow` and `/etc/gshadow`
    /// under the root; missing files are empty.
    pub fn load(paths: &AgentPaths) -> Result<Self, String> {
        Ok(Accounts {
            passwd: Table::load(paths, "/etc/passwd")?,
            group: Table::load(paths, "/etc/group")?,
            shadow: Table::load(paths, "/etc/shadow")?,
            gshadow: Table::load(paths, "/etc/gshadow")?,
        })
    }

    /// The uid of a user name (`root` is always 0).
    pub fn uid(&self, name: &str) -> Option<u32> {
        self.passwd
            .id_of(name)
            .or_else(|| (name == "root").then_some(0))
    }

    /// The gid of a group name (`root` is always 0).
    pub fn gid(&self, name: &str) -> Option<u32> {
        self.group
            .id_of(name)
            .or_else(|| (name == "root").then_some(0))
    }

    /// Compares a managed group with the machine.
    pub fn check_group(&self, g: &GroupResource) -> Check {
        match self.group.id_of(&g.name) {
            None => Check::Change("à créer".to_owned()),
            Some(gid) => match g.gid {
                Some(want) if want != gid => Check::Blocked(format!(
                    "le groupe existe avec le gid {gid} au lieu de {want} : à corriger à la main"
                )),
                _ => Check::Unchanged(None),
            },
        }
    }

    /// Compares a managed user with the machine.
    pub fn check_user(&self, u: &UserResource) -> Check {
        let Some(entry) = self.passwd.find(&u.name) else {
            return Check::Change("à créer".to_owned());
        };
        let field = |i: usize| entry.get(i).map(String::as_str).unwrap_or("");
        if let Some(want) = u.uid
            && field(2) != want.to_string()
        {
            return Check::Blocked(format!(
                "le compte existe avec l'uid {} au lieu de {want} : à corriger à la main",
                field(2)
            ));
        }
        // A profile that lists a privileged group with an empty password
        // was signed with its opt-in (the validator checks); one that does
        // not must not make an account the machine already has in sudo (or
        // with such a primary group) an administrator without a password
        // (found by review).
        if u.password == PasswordPolicy::Empty
            && let Some(g) = self
                .privileged_membership(&u.name, field(3))
                .filter(|g| !u.groups.iter().any(|listed| listed == g))
        {
            return Check::Blocked(format!(
                "le compte est dans le groupe « {g} » sur cette machine : un mot de passe vide \
                 en ferait un administrateur sans mot de passe ; si c'est voulu, le profil doit \
                 lister ce groupe (et être signé avec allow = [\"empty-admin-password\"])"
            ));
        }
        let mut differences = Vec::new();
        // The full name is managed only when the profile gives one.
        if let Some(gecos) = &u.full_name
            && field(4).split(',').next().unwrap_or("") != gecos
        {
            differences.push(format!("nom complet « {gecos} »"));
        }
        if field(5) != u.home {
            differences.push(format!("dossier personnel {} → {}", field(5), u.home));
        }
        if field(6) != u.shell {
            differences.push(format!("shell {} → {}", field(6), u.shell));
        }
        for g in &u.groups {
            if !self.is_member(&u.name, g) {
                differences.push(format!("ajout au groupe {g}"));
            }
        }
        if let Some(change) = self.password_change(u) {
            differences.push(change.to_owned());
        }
        Check::from_differences(differences)
    }

    /// True when applying `u` creates the account, and so its home.
    pub fn creates_home(&self, u: &UserResource) -> bool {
        !u.system && self.passwd.find(&u.name).is_none()
    }

    /// The first privileged group ([`PRIVILEGED_GROUPS`]) `user` is in on
    /// this machine: as a member, or as its primary group (`gid`).
    fn privileged_membership(&self, user: &str, gid: &str) -> Option<String> {
        PRIVILEGED_GROUPS
            .iter()
            .find(|g| {
                self.is_member(user, g)
                    || self
                        .group
                        .find(g)
                        .and_then(|entry| entry.get(2))
                        .is_some_and(|group_gid| group_gid == gid)
            })
            .map(|g| (*g).to_owned())
    }

    fn is_member(&self, user: &str, group: &str) -> bool {
        self.group
            .find(group)
            .and_then(|g| g.get(3))
            .is_some_and(|members| members.split(',').any(|m| m == user))
    }

    /// What the password policy would change, if anything.
    fn password_change(&self, u: &UserResource) -> Option<&'static str> {
        let current = self
            .shadow
            .find(&u.name)
            .and_then(|l| l.get(1))
            .map(String::as_str);
        match (u.password, current) {
            (PasswordPolicy::Unmanaged, _) => None,
            (PasswordPolicy::Locked, Some(p)) if p.starts_with('!') || p.starts_with('*') => None,
            (PasswordPolicy::Locked, _) => Some("mot de passe verrouillé"),
            (PasswordPolicy::Empty, Some("")) => None,
            (PasswordPolicy::Empty, _) => Some("mot de passe vide (connexion sans mot de passe)"),
        }
    }
}

/// The lock shared with the shadow tools: an fcntl write lock on
/// `/etc/.pwd.lock`, as `lckpwdf(3)` takes. Released on drop (close).
struct AccountsLock {
    _file: std::fs::File,
}

impl AccountsLock {
    fn acquire(paths: &AgentPaths) -> Result<Self, String> {
        const PATH: &str = "/etc/.pwd.lock";
        let file = Root::open(&paths.root)
            .and_then(|r| r.locate_creating(PATH))
            .and_then(|p| p.create_file(0o600, false))
            .map_err(|e| describe(e, "verrouillage de", PATH))?;
        let deadline = Instant::now() + LOCK_TIMEOUT;
        loop {
            // An open-file-description fcntl lock: on Linux it conflicts
            // with the classic fcntl lock `lckpwdf` takes.
            if rustix::fs::fcntl_lock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .is_ok()
            {
                return Ok(AccountsLock { _file: file });
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "comptes verrouillés par un autre outil ({PATH}) depuis plus de {} s",
                    LOCK_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Picks a free id: system ids downwards from 999 to 100, others upwards
/// from the highest used in 1000..60000 (like `useradd`), else the lowest
/// free.
fn allocate(used: &BTreeSet<u32>, system: bool, prefer: Option<u32>) -> Option<u32> {
    if let Some(p) = prefer
        && !used.contains(&p)
    {
        return Some(p);
    }
    if system {
        (100..=999).rev().find(|id| !used.contains(id))
    } else {
        let next = used.range(1000..60000).next_back().map_or(1000, |m| m + 1);
        (next..60000)
            .chain(1000..next)
            .find(|id| !used.contains(id))
    }
}

fn days_since_epoch(now: time::OffsetDateTime) -> String {
    (now.unix_timestamp() / 86_400).to_string()
}

/// The group id of the `shadow` group, which owns `/etc/shadow` on Debian.
fn shadow_owner(db: &Accounts) -> (u32, u32) {
    (0, db.gid("shadow").unwrap_or(0))
}

/// Creates a managed group if missing. Returns whether something changed.
pub fn apply_group(paths: &AgentPaths, g: &GroupResource) -> Result<bool, String> {
    let _lock = AccountsLock::acquire(paths)?;
    let mut db = Accounts::load(paths)?;
    if let Check::Blocked(why) = db.check_group(g) {
        return Err(why);
    }
    if db.group.find(&g.name).is_some() {
        return Ok(false);
    }
    let used = db.group.ids();
    if let Some(want) = g.gid
        && used.contains(&want)
    {
        return Err(format!("le gid {want} est déjà pris par un autre groupe"));
    }
    let gid = allocate(&used, g.system, g.gid).ok_or("plus aucun gid libre")?;
    add_group(&mut db, &g.name, gid)?;
    Ok(true)
}

fn add_group(db: &mut Accounts, name: &str, gid: u32) -> Result<(), String> {
    db.group.lines.push(vec![
        name.to_owned(),
        "x".into(),
        gid.to_string(),
        String::new(),
    ]);
    if db.gshadow.exists {
        db.gshadow.lines.push(vec![
            name.to_owned(),
            "!".into(),
            String::new(),
            String::new(),
        ]);
        db.gshadow.save(0o640, shadow_owner(db))?;
    }
    db.group.save(0o644, (0, 0))
}

/// Creates or corrects a managed user. Returns whether something changed.
pub fn apply_user(
    paths: &AgentPaths,
    u: &UserResource,
    now: time::OffsetDateTime,
) -> Result<bool, String> {
    let _lock = AccountsLock::acquire(paths)?;
    let mut db = Accounts::load(paths)?;
    match db.check_user(u) {
        Check::Blocked(why) => return Err(why),
        Check::Unchanged(_) => return Ok(false),
        Check::Change(_) => {}
    }
    for g in &u.groups {
        if db.group.find(g).is_none() {
            return Err(format!(
                "groupe « {g} » inexistant : déclarez-le dans le profil"
            ));
        }
    }
    let created = db.passwd.find(&u.name).is_none();
    if created {
        create_user(paths, &mut db, u, now)?;
    } else {
        update_user(&mut db, u, now)?;
    }
    // Supplementary groups, in group and gshadow.
    let mut group_changed = false;
    let mut gshadow_changed = false;
    for g in &u.groups {
        if db.is_member(&u.name, g) {
            continue;
        }
        add_member(db.group.find_mut(g), 3, &u.name);
        group_changed = true;
        if db.gshadow.find(g).is_some() {
            add_member(db.gshadow.find_mut(g), 3, &u.name);
            gshadow_changed = true;
        }
    }
    if gshadow_changed {
        db.gshadow.save(0o640, shadow_owner(&db))?;
    }
    if group_changed {
        db.group.save(0o644, (0, 0))?;
    }
    Ok(true)
}

fn add_member(line: Option<&mut Vec<String>>, field: usize, user: &str) {
    if let Some(line) = line {
        line.resize(line.len().max(field + 1), String::new());
        let members = &mut line[field];
        if !members.is_empty() {
            members.push(',');
        }
        members.push_str(user);
    }
}

fn shadow_line(u: &UserResource, now: time::OffsetDateTime) -> Vec<String> {
    let password = match u.password {
        PasswordPolicy::Empty => "",
        PasswordPolicy::Locked | PasswordPolicy::Unmanaged => "!",
    };
    let aging: [&str; 4] = if u.system {
        ["", "", "", ""]
    } else {
        ["0", "99999", "7", ""]
    };
    let mut line = vec![u.name.clone(), password.to_owned(), days_since_epoch(now)];
    line.extend(aging.iter().map(|s| s.to_string()));
    line.extend([String::new(), String::new()]);
    line
}

fn create_user(
    paths: &AgentPaths,
    db: &mut Accounts,
    u: &UserResource,
    now: time::OffsetDateTime,
) -> Result<(), String> {
    let used_uids = db.passwd.ids();
    if let Some(want) = u.uid
        && used_uids.contains(&want)
    {
        return Err(format!("l'uid {want} est déjà pris par un autre compte"));
    }
    // A home that cannot be made safely refuses the account before any
    // accounts file is written.
    if !u.system
        && let Some(why) = home_problem(paths, &u.home)
    {
        return Err(why);
    }
    let uid = allocate(&used_uids, u.system, u.uid).ok_or("plus aucun uid libre")?;
    // Primary group: the group of the same name (user-private group).
    let gid = match db.group.id_of(&u.name) {
        Some(gid) => gid,
        None => {
            let gid =
                allocate(&db.group.ids(), u.system, Some(uid)).ok_or("plus aucun gid libre")?;
            add_group(db, &u.name, gid)?;
            gid
        }
    };
    db.passwd.lines.push(vec![
        u.name.clone(),
        "x".into(),
        uid.to_string(),
        gid.to_string(),
        u.full_name.clone().unwrap_or_default(),
        u.home.clone(),
        u.shell.clone(),
    ]);
    db.shadow.lines.push(shadow_line(u, now));
    db.shadow.save(0o640, shadow_owner(db))?;
    db.passwd.save(0o644, (0, 0))?;
    if !u.system {
        create_home(paths, &u.home, uid, gid)?;
    }
    Ok(())
}

fn update_user(
    db: &mut Accounts,
    u: &UserResource,
    now: time::OffsetDateTime,
) -> Result<(), String> {
    let password = db.password_change(u);
    if let Some(entry) = db.passwd.find_mut(&u.name) {
        entry.resize(7, String::new());
        if let Some(gecos) = &u.full_name
            && entry[4].split(',').next().unwrap_or("") != gecos
        {
            entry[4] = gecos.clone();
        }
        entry[5] = u.home.clone();
        entry[6] = u.shell.clone();
    }
    db.passwd.save(0o644, (0, 0))?;
    if password.is_some() {
        match db.shadow.find_mut(&u.name) {
            Some(line) => {
                line.resize(9, String::new());
                line[1] = match u.password {
                    PasswordPolicy::Empty => String::new(),
                    _ => format!("!{}", line[1]),
                };
                line[2] = days_since_epoch(now);
            }
            None => db.shadow.lines.push(shadow_line(u, now)),
        }
        let owner = shadow_owner(db);
        db.shadow.save(0o640, owner)?;
    }
    Ok(())
}

/// Why the home of a user the profile creates cannot be made, if it cannot:
/// a link on its way (or in its place) is refused like for any managed path.
/// A home that already exists is kept as it is.
pub fn home_problem(paths: &AgentPaths, home: &str) -> Option<String> {
    let place = match Root::open(&paths.root).and_then(|r| r.locate(home)) {
        Ok(Some(p)) => p,
        Ok(None) => return None,
        Err(e) => return Some(describe(e, "lecture de", home)),
    };
    place.entry().err().map(|e| describe(e, "lecture de", home))
}

/// Creates a home directory (0700) from `/etc/skel` if it does not exist,
/// through descriptors only: the directory is made by the agent, filled,
/// and given to the user last.
fn create_home(paths: &AgentPaths, home: &str, uid: u32, gid: u32) -> Result<(), String> {
    let fail = |e| describe(e, "création de", home);
    let root = Root::open(&paths.root).map_err(fail)?;
    let place = root.locate_creating(home).map_err(fail)?;
    if let Entry::Present(_) = place.entry().map_err(fail)? {
        return Ok(());
    }
    let dir = place.create_directory(0o700).map_err(fail)?;
    if let Some(skel) = root.directory("/etc/skel").map_err(fail)? {
        copy_tree(&skel, &dir, uid, gid).map_err(fail)?;
    }
    dir.set_owner_and_mode(Some((uid, gid)), 0o700)
        .map_err(fail)?;
    place.sync().map_err(fail)
}

/// Copies the regular files and directories of `from` into `to`, giving
/// everything to uid:gid (links and special files are skipped).
fn copy_tree(from: &Dir, to: &Dir, uid: u32, gid: u32) -> Result<(), super::safe_fs::FsError> {
    for name in from.names()? {
        let source = from.child(&name)?;
        let dest = to.child(&name)?;
        let meta = match source.entry() {
            Ok(Entry::Present(m)) => m,
            // Gone meanwhile, or a link: not copied.
            Ok(Entry::Missing) | Err(super::safe_fs::FsError::Symlink { .. }) => continue,
            Err(e) => return Err(e),
        };
        match meta.kind {
            Kind::Directory => {
                let Some(inner) = source.directory()? else {
                    continue;
                };
                let made = dest.create_directory(0o700)?;
                copy_tree(&inner, &made, uid, gid)?;
                made.set_owner_and_mode(Some((uid, gid)), meta.mode & 0o777)?;
            }
            Kind::File => {
                let Some((mut input, opened)) = source.open_regular()? else {
                    continue;
                };
                let mut output = dest.create_file(0o600, true)?;
                let io = |e| super::safe_fs::FsError::Io {
                    path: dest.path(),
                    source: e,
                };
                std::io::copy(&mut input, &mut output).map_err(io)?;
                super::safe_fs::set_owner_and_mode(&output, Some((uid, gid)), opened.mode & 0o777)
                    .map_err(io)?;
            }
            Kind::Other => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_follows_useradd() {
        let used: BTreeSet<u32> = [0, 100, 999, 1000, 1001, 1005].into();
        assert_eq!(allocate(&used, true, None), Some(998));
        assert_eq!(allocate(&used, false, None), Some(1006));
        assert_eq!(allocate(&used, false, Some(1002)), Some(1002));
        assert_eq!(allocate(&used, false, Some(1001)), Some(1006));
        assert_eq!(allocate(&BTreeSet::new(), false, None), Some(1000));
    }
}
