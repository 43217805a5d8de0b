//! Resolution of `includes`: a profile and everything it includes, composed
//! in order (includes first, depth-first, each profile once), flattened into
//! one [`DesiredState`]. Layers may repeat an identical resource; two layers
//! that disagree about one resource are a conflict, never a silent override.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    AptRepository, DirectoryResource, FileResource, GroupResource, Profile, ResourceId,
    UnitResource, UserResource,
};

/// One profile that contributed to a desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layer {
    pub name: String,
    pub version: u64,
}

/// A resource with the profile it came from, for plans and reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sourced<T> {
    /// Name of the profile that declared it first.
    pub origin: String,
    pub resource: T,
}

/// What a machine should look like after applying a profile and its
/// includes. Every collection is keyed by its resource's identity and
/// iterates in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DesiredState {
    /// Profiles composed, in application order (includes before includers).
    pub layers: Vec<Layer>,
    /// Package name → origin profile.
    pub packages_install: BTreeMap<String, String>,
    /// Package name → origin profile.
    pub packages_remove: BTreeMap<String, String>,
    pub repositories: BTreeMap<String, Sourced<AptRepository>>,
    pub directories: BTreeMap<String, Sourced<DirectoryResource>>,
    pub files: BTreeMap<String, Sourced<FileResource>>,
    pub units: BTreeMap<String, Sourced<UnitResource>>,
    pub groups: BTreeMap<String, Sourced<GroupResource>>,
    pub users: BTreeMap<String, Sourced<UserResource>>,
}

/// Why a set of profiles cannot be composed. Messages in French.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("inclusion circulaire : {}", .0.join(" → "))]
    Cycle(Vec<String>),
    #[error(
        "le profil « {included_by} » inclut « {name} », introuvable : publiez-le ou retirez l'inclusion"
    )]
    Missing { name: String, included_by: String },
    #[error("conflit sur {resource} : « {first} » et « {second} » le déclarent différemment")]
    Conflict {
        resource: String,
        first: String,
        second: String,
    },
}

/// Resolves `root` and its includes. `lookup` returns the profile of a name
/// (the agent passes its verified releases, `lint` the files at hand).
pub fn resolve<'p>(
    root: &'p Profile,
    lookup: impl Fn(&str) -> Option<&'p Profile>,
) -> Result<DesiredState, ResolveError> {
    let mut order = Vec::new();
    let mut stack = Vec::new();
    visit(root, &lookup, &mut stack, &mut order)?;
    let mut state = DesiredState::default();
    for profile in order {
        state.add_layer(profile)?;
    }
    Ok(state)
}

/// Depth-first post-order walk: includes before includers, each profile once.
fn visit<'p>(
    profile: &'p Profile,
    lookup: &impl Fn(&str) -> Option<&'p Profile>,
    stack: &mut Vec<String>,
    order: &mut Vec<&'p Profile>,
) -> Result<(), ResolveError> {
    if let Some(pos) = stack.iter().position(|n| *n == profile.name) {
        let mut cycle = stack[pos..].to_vec();
        cycle.push(profile.name.clone());
        return Err(ResolveError::Cycle(cycle));
    }
    if order.iter().any(|p| p.name == profile.name) {
        return Ok(());
    }
    stack.push(profile.name.clone());
    for name in &profile.includes {
        let included = lookup(name).ok_or_else(|| ResolveError::Missing {
            name: name.clone(),
            included_by: profile.name.clone(),
        })?;
        visit(included, lookup, stack, order)?;
    }
    stack.pop();
    order.push(profile);
    Ok(())
}

/// Inserts `resource` under `key`, or checks it equals what is already there.
fn merge<T: PartialEq>(
    map: &mut BTreeMap<String, Sourced<T>>,
    key: String,
    resource: T,
    origin: &str,
    id: impl FnOnce() -> String,
) -> Result<(), ResolveError> {
    match map.get(&key) {
        Some(existing) if existing.resource == resource => Ok(()),
        Some(existing) => Err(ResolveError::Conflict {
            resource: id(),
            first: existing.origin.clone(),
            second: origin.to_owned(),
        }),
        None => {
            map.insert(
                key,
                Sourced {
                    origin: origin.to_owned(),
                    resource,
                },
            );
            Ok(())
        }
    }
}

impl DesiredState {
    fn add_layer(&mut self, p: &Profile) -> Result<(), ResolveError> {
        let origin = p.name.as_str();
        self.layers.push(Layer {
            name: p.name.clone(),
            version: p.version,
        });
        for pkg in &p.packages_install {
            if let Some(other) = self.packages_remove.get(pkg) {
                return Err(conflict(format!("package:{pkg}"), other, origin));
            }
            self.packages_install
                .entry(pkg.clone())
                .or_insert_with(|| origin.to_owned());
        }
        for pkg in &p.packages_remove {
            if let Some(other) = self.packages_install.get(pkg) {
                return Err(conflict(format!("package:{pkg}"), other, origin));
            }
            self.packages_remove
                .entry(pkg.clone())
                .or_insert_with(|| origin.to_owned());
        }
        for r in &p.repositories {
            merge(
                &mut self.repositories,
                r.name.clone(),
                r.clone(),
                origin,
                || r.resource_id(),
            )?;
        }
        for d in &p.directories {
            if let Some(f) = self.files.get(&d.path) {
                return Err(conflict(d.resource_id(), &f.origin, origin));
            }
            merge(
                &mut self.directories,
                d.path.clone(),
                d.clone(),
                origin,
                || d.resource_id(),
            )?;
        }
        for f in &p.files {
            if let Some(d) = self.directories.get(&f.path) {
                return Err(conflict(f.resource_id(), &d.origin, origin));
            }
            merge(&mut self.files, f.path.clone(), f.clone(), origin, || {
                f.resource_id()
            })?;
        }
        for u in &p.units {
            merge(&mut self.units, u.name.clone(), u.clone(), origin, || {
                u.resource_id()
            })?;
        }
        for g in &p.groups {
            merge(&mut self.groups, g.name.clone(), g.clone(), origin, || {
                g.resource_id()
            })?;
        }
        for u in &p.users {
            merge(&mut self.users, u.name.clone(), u.clone(), origin, || {
                u.resource_id()
            })?;
        }
        Ok(())
    }

    /// Number of resources in the state (each package counts as one).
    pub fn resource_count(&self) -> usize {
        self.packages_install.len()
            + self.packages_remove.len()
            + self.repositories.len()
            + self.directories.len()
            + self.files.len()
            + self.units.len()
            + self.groups.len()
            + self.users.len()
    }
}

fn conflict(resource: String, first: &str, second: &str) -> ResolveError {
    ResolveError::Conflict {
        resource,
        first: first.to_owned(),
        second: second.to_owned(),
    }
}
