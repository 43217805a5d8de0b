//! The plan: the diff between the desired state and the machine, resource by
//! resource, in the order the engine applies it.
//!
//! Planning only reads (files under the root, dpkg's status database, the
//! accounts files, systemd's unit states), so `nird-agent plan` is safe to
//! run at any time and cheap enough to run at every check-in.

use std::collections::HashMap;

use nird_proto::profile::{
    AptRepository, DesiredState, DirectoryResource, FileContent, FileResource, GroupResource,
    Ownership, ResourceId, UnitResource, UserResource,
};
use serde::Serialize;

use super::accounts::Accounts;
use super::apt::{self, DpkgStatus};
use super::files;
use super::systemd::Systemd;
use crate::paths::AgentPaths;

/// What comparing one resource with the machine found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Already as desired (with a note, e.g. "held package").
    Unchanged(Option<String>),
    /// Needs a change; the text says what, in French.
    Change(String),
    /// Cannot be brought to the desired state; the text says why.
    Blocked(String),
}

impl Check {
    /// `Unchanged` when nothing differs, else a change listing differences.
    pub fn from_differences(differences: Vec<String>) -> Self {
        if differences.is_empty() {
            Check::Unchanged(None)
        } else {
            Check::Change(differences.join(", "))
        }
    }
}

/// What will be done to one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing to do.
    Unchanged {
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A change; `disruptive` changes wait for a maintenance window while a
    /// user session is open.
    Change { summary: String, disruptive: bool },
    /// The resource will fail; `reason` says why.
    Blocked { reason: String },
}

/// The resource itself, so the engine can apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Group(GroupResource),
    User(UserResource),
    Repository(AptRepository),
    Install(String),
    Remove(String),
    Directory(DirectoryResource),
    File(FileResource),
    Unit(UnitResource),
}

/// One resource of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedResource {
    /// Resource id as in reports (`file:/etc/x`, `package:hello`).
    pub id: String,
    /// Profile that declared it.
    pub origin: String,
    /// What will happen.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The resource, for the engine.
    #[serde(skip)]
    pub action: Action,
}

/// The whole plan, in application order: groups, users, repositories,
/// packages, directories, files, units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub resources: Vec<PlannedResource>,
}

impl Plan {
    /// Resources that need a change.
    pub fn changes(&self) -> impl Iterator<Item = &PlannedResource> {
        self.resources
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Change { .. }))
    }

    /// Resources that will fail.
    pub fn blocked(&self) -> impl Iterator<Item = &PlannedResource> {
        self.resources
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Blocked { .. }))
    }

    /// True when some change disturbs a user at work (packages, services
    /// started or stopped).
    pub fn is_disruptive(&self) -> bool {
        self.resources.iter().any(|r| {
            matches!(
                r.verdict,
                Verdict::Change {
                    disruptive: true,
                    ..
                }
            )
        })
    }

    /// Number of resources already in their desired state.
    pub fn unchanged_count(&self) -> usize {
        self.resources
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Unchanged { .. }))
            .count()
    }
}

/// What planning reads besides the desired state.
pub struct Machine<'a> {
    /// The root.
    pub paths: &'a AgentPaths,
    /// Verified blob bytes by sha256.
    pub blobs: &'a HashMap<String, Vec<u8>>,
    /// systemd, when units are managed (an error explains why it is absent).
    pub systemd: Option<&'a Result<Systemd, String>>,
}

/// Computes the plan of `state` on the machine.
pub fn compute(state: &DesiredState, machine: &Machine<'_>) -> Plan {
    let paths = machine.paths;
    let mut plan = Plan::default();
    let mut push = |id: String, origin: &str, check: Check, disruptive: bool, action: Action| {
        let verdict = match check {
            Check::Unchanged(note) => Verdict::Unchanged { note },
            Check::Change(summary) => Verdict::Change {
                summary,
                disruptive,
            },
            Check::Blocked(reason) => Verdict::Blocked { reason },
        };
        plan.resources.push(PlannedResource {
            id,
            origin: origin.to_owned(),
            verdict,
            action,
        });
    };

    let accounts = Accounts::load(paths);
    let accounts_check = |check: &dyn Fn(&Accounts) -> Check| match &accounts {
        Ok(a) => check(a),
        Err(e) => Check::Blocked(e.clone()),
    };
    for g in state.groups.values() {
        let check = accounts_check(&|a| a.check_group(&g.resource));
        push(
            g.resource.resource_id(),
            &g.origin,
            check,
            false,
            Action::Group(g.resource.clone()),
        );
    }
    for u in state.users.values() {
        let check = accounts_check(&|a| match a.check_user(&u.resource) {
            // The home it would create must be reachable without a link.
            Check::Change(summary) if a.creates_home(&u.resource) => {
                match super::accounts::home_problem(paths, &u.resource.home) {
                    Some(why) => Check::Blocked(why),
                    None => Check::Change(summary),
                }
            }
            other => other,
        });
        push(
            u.resource.resource_id(),
            &u.origin,
            check,
            false,
            Action::User(u.resource.clone()),
        );
    }

    let empty = Accounts::default();
    let accounts_ref = accounts.as_ref().unwrap_or(&empty);
    for r in state.repositories.values() {
        let check = match machine.blobs.get(&r.resource.key.sha256) {
            Some(key) => apt::check_repository(paths, &r.resource, key, accounts_ref),
            None => Check::Blocked("clé du dépôt non vérifiée".to_owned()),
        };
        push(
            r.resource.resource_id(),
            &r.origin,
            check,
            false,
            Action::Repository(r.resource.clone()),
        );
    }

    if !state.packages_install.is_empty() || !state.packages_remove.is_empty() {
        let status = DpkgStatus::read(paths);
        let installs = state.packages_install.iter().map(|p| (p, true));
        let removes = state.packages_remove.iter().map(|p| (p, false));
        for ((name, origin), install) in installs.chain(removes) {
            let check = match (&status, install) {
                (Ok(s), true) => s.check_install(name),
                (Ok(s), false) => s.check_remove(name),
                (Err(e), _) => Check::Blocked(e.clone()),
            };
            let action = if install {
                Action::Install(name.clone())
            } else {
                Action::Remove(name.clone())
            };
            push(format!("package:{name}"), origin, check, true, action);
        }
    }

    // Owners created by this very plan are not errors yet.
    let created = |o: &Ownership| {
        (state.users.contains_key(&o.owner) || accounts_ref.uid(&o.owner).is_some())
            && (state.groups.contains_key(&o.group)
                || state.users.contains_key(&o.group)
                || accounts_ref.gid(&o.group).is_some())
    };
    for d in state.directories.values() {
        let check = files::check_directory(paths, &d.resource, accounts_ref, &created);
        push(
            d.resource.resource_id(),
            &d.origin,
            check,
            false,
            Action::Directory(d.resource.clone()),
        );
    }
    for f in state.files.values() {
        let check = match content_of(&f.resource, machine.blobs) {
            Some(content) => files::check_file(paths, &f.resource, content, accounts_ref, &created),
            None => Check::Blocked("contenu non vérifié".to_owned()),
        };
        push(
            f.resource.resource_id(),
            &f.origin,
            check,
            false,
            Action::File(f.resource.clone()),
        );
    }

    for u in state.units.values() {
        let (check, disruptive) = match machine.systemd {
            Some(Ok(systemd)) => systemd.check_unit(&u.resource),
            Some(Err(e)) => (Check::Blocked(e.clone()), false),
            None => (Check::Blocked("systemd injoignable".to_owned()), false),
        };
        push(
            u.resource.resource_id(),
            &u.origin,
            check,
            disruptive,
            Action::Unit(u.resource.clone()),
        );
    }
    plan
}

/// The bytes a file resource must contain (blobs are looked up verified).
pub fn content_of<'a>(
    f: &'a FileResource,
    blobs: &'a HashMap<String, Vec<u8>>,
) -> Option<&'a [u8]> {
    match &f.content {
        FileContent::Inline(text) => Some(text.as_bytes()),
        FileContent::Blob(b) => blobs.get(&b.sha256).map(Vec::as_slice),
    }
}
