//! Inventory deltas: what a check-in carries when the server already holds
//! an earlier document of the same machine.
//!
//! A package upgrade changes a handful of the 2,500 entries of
//! [`super::Software::packages`]; sending the whole document again would cost
//! ≈ 45 KB gzip-compressed per change, the delta of a 20-package upgrade
//! well under 2 KB. The delta works on the JSON documents (the wire form), so
//! members a newer agent adds travel too:
//! - top-level members that differ are sent whole in
//!   [`InventoryDelta::changed`] (they are small), those that disappeared are
//!   named in [`InventoryDelta::removed`];
//! - the package list is diffed entry by entry, keyed by name and
//!   architecture ([`SoftwareDelta`]).
//!
//! [`apply`] rebuilds exactly the document [`diff`] was given — the package
//! list is kept sorted by name then architecture, the order the agent
//! writes — so the server verifies the result against the check-in's
//! `inventory_hash` like a full document. A delta against a base the server
//! does not have is not applied: the server asks for the full document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The difference between the document the server holds (`base_hash`) and
/// the machine's current one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InventoryDelta {
    /// `content_hash` of the document this delta applies to: the last one
    /// the server acknowledged.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9a-f]{64}$"))]
    pub base_hash: String,
    /// Top-level members that differ from the base, whole (`software` is
    /// here only when it cannot be diffed: unavailable on one side).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub changed: Map<String, Value>,
    /// Top-level members of the base that the new document lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// The change of the software list, when both documents have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<SoftwareDelta>,
}

/// The change of `software.value` between two documents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SoftwareDelta {
    /// Packages of the base no longer installed, as `[name, arch]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<PackageKey>))]
    pub removed: Vec<(String, String)>,
    /// Packages new or changed (version, section, size), whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub upserted: Vec<Value>,
    /// Other members of `software.value` (`flatpaks`) that changed, whole.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub changed: Map<String, Value>,
    /// Other members of `software.value` that disappeared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
}

/// Schema of one removed package: exactly `[name, arch]`.
#[cfg(feature = "openapi")]
pub struct PackageKey;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for PackageKey {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String),
            )
            .min_items(Some(2))
            .max_items(Some(2))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for PackageKey {}

/// Why a delta cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The base document is not a JSON object.
    #[error("the base inventory is not a JSON object")]
    BaseNotObject,
    /// The delta changes the software list but the base has none.
    #[error("the base inventory has no package list")]
    BaseWithoutPackages,
    /// A package entry lacks its name or architecture.
    #[error("package entry without string \"name\" and \"arch\"")]
    BadPackage,
}

/// The delta turning `base` (whose content hash is `base_hash`) into `new`;
/// `None` when either is not a JSON object.
pub fn diff(base: &Value, new: &Value, base_hash: &str) -> Option<InventoryDelta> {
    let (base, new) = (base.as_object()?, new.as_object()?);
    let mut delta = InventoryDelta {
        base_hash: base_hash.to_owned(),
        changed: Map::new(),
        removed: base
            .keys()
            .filter(|k| !new.contains_key(*k))
            .cloned()
            .collect(),
        software: None,
    };
    for (key, value) in new {
        if base.get(key) == Some(value) {
            continue;
        }
        if key == "software"
            && let Some(software) = base.get(key).and_then(|b| software_diff(b, value))
        {
            delta.software = Some(software);
        } else {
            delta.changed.insert(key.clone(), value.clone());
        }
    }
    Some(delta)
}

/// `{"value": {"packages": [...], ...}}` as its object and package map.
type PackageMap<'a> = BTreeMap<(&'a str, &'a str), &'a Value>;

fn software_parts(software: &Value) -> Option<(&Map<String, Value>, PackageMap<'_>)> {
    let value = software.get("value")?.as_object()?;
    let mut packages = BTreeMap::new();
    for p in value.get("packages")?.as_array()? {
        packages.insert(package_key(p)?, p);
    }
    Some((value, packages))
}

fn package_key(p: &Value) -> Option<(&str, &str)> {
    Some((p.get("name")?.as_str()?, p.get("arch")?.as_str()?))
}

fn software_diff(base: &Value, new: &Value) -> Option<SoftwareDelta> {
    let (base_value, base_packages) = software_parts(base)?;
    let (new_value, new_packages) = software_parts(new)?;
    let mut delta = SoftwareDelta {
        removed: base_packages
            .keys()
            .filter(|k| !new_packages.contains_key(*k))
            .map(|(n, a)| (n.to_string(), a.to_string()))
            .collect(),
        ..SoftwareDelta::default()
    };
    for (key, p) in &new_packages {
        if base_packages.get(key) != Some(p) {
            delta.upserted.push((*p).clone());
        }
    }
    for (key, value) in new_value {
        if key != "packages" && base_value.get(key) != Some(value) {
            delta.changed.insert(key.clone(), value.clone());
        }
    }
    delta.dropped = base_value
        .keys()
        .filter(|k| !new_value.contains_key(*k))
        .cloned()
        .collect();
    Some(delta)
}

/// Applies `delta` to `base` (the caller checked that `base`'s content hash
/// is `delta.base_hash`, and verifies the result's hash).
pub fn apply(base: &Value, delta: &InventoryDelta) -> Result<Value, DeltaError> {
    let mut doc = base.as_object().ok_or(DeltaError::BaseNotObject)?.clone();
    for key in &delta.removed {
        doc.remove(key);
    }
    for (key, value) in &delta.changed {
        doc.insert(key.clone(), value.clone());
    }
    if let Some(sd) = &delta.software {
        let value = doc
            .get_mut("software")
            .and_then(|s| s.get_mut("value"))
            .and_then(Value::as_object_mut)
            .ok_or(DeltaError::BaseWithoutPackages)?;
        let old = match value.remove("packages") {
            Some(Value::Array(list)) => list,
            _ => return Err(DeltaError::BaseWithoutPackages),
        };
        let mut packages: BTreeMap<(String, String), Value> = BTreeMap::new();
        for p in old.into_iter().chain(sd.upserted.iter().cloned()) {
            let (name, arch) = package_key(&p).ok_or(DeltaError::BadPackage)?;
            packages.insert((name.to_owned(), arch.to_owned()), p);
        }
        for key in &sd.removed {
            packages.remove(key);
        }
        for key in &sd.dropped {
            value.remove(key);
        }
        for (key, v) in &sd.changed {
            value.insert(key.clone(), v.clone());
        }
        value.insert(
            "packages".into(),
            Value::Array(packages.into_values().collect()),
        );
    }
    Ok(Value::Object(doc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pkg(name: &str, arch: &str, version: &str) -> Value {
        json!({"name": name, "version": version, "arch": arch, "section": "misc", "size_kib": 10})
    }

    fn doc(packages: Vec<Value>, kernel: &str) -> Value {
        json!({
            "schema_version": 2,
            "os": {"kernel": {"value": kernel}},
            "software": {"value": {"packages": packages}},
        })
    }

    #[test]
    fn upgrade_travels_as_the_changed_packages_only() {
        let base = doc(
            vec![
                pkg("a", "amd64", "1"),
                pkg("b", "amd64", "1"),
                pkg("b", "i386", "1"),
                pkg("c", "all", "1"),
            ],
            "6.1",
        );
        let new = doc(
            vec![
                pkg("a", "amd64", "2"),
                pkg("b", "amd64", "1"),
                pkg("c", "all", "1"),
                pkg("d", "amd64", "1"),
            ],
            "6.1",
        );
        let delta = diff(&base, &new, "h").unwrap();
        assert!(delta.changed.is_empty(), "{delta:?}");
        let sd = delta.software.as_ref().unwrap();
        assert_eq!(sd.removed, vec![("b".to_string(), "i386".to_string())]);
        assert_eq!(
            sd.upserted,
            vec![pkg("a", "amd64", "2"), pkg("d", "amd64", "1")]
        );
        assert_eq!(apply(&base, &delta).unwrap(), new);
        // Through the wire form too.
        let wire: InventoryDelta =
            serde_json::from_str(&serde_json::to_string(&delta).unwrap()).unwrap();
        assert_eq!(apply(&base, &wire).unwrap(), new);
    }

    #[test]
    fn other_members_travel_whole_and_removals_are_named() {
        let mut base = doc(vec![pkg("a", "amd64", "1")], "6.1");
        base["old"] = json!(1);
        base["software"]["value"]["flatpaks"] = json!([{"id": "x"}]);
        let mut new = doc(vec![pkg("a", "amd64", "1")], "6.12");
        new["software"]["value"]["gone"] = Value::Null;
        let delta = diff(&base, &new, "h").unwrap();
        assert_eq!(delta.removed, vec!["old".to_string()]);
        assert_eq!(delta.changed.keys().collect::<Vec<_>>(), vec!["os"]);
        assert_eq!(delta.software.as_ref().unwrap().dropped, vec!["flatpaks"]);
        assert_eq!(apply(&base, &delta).unwrap(), new);
    }

    #[test]
    fn unavailable_software_is_sent_whole() {
        let base = json!({"software": {"unavailable": "no dpkg"}});
        let new = doc(vec![pkg("a", "amd64", "1")], "6.1");
        let delta = diff(&base, &new, "h").unwrap();
        assert!(delta.software.is_none());
        assert!(delta.changed.contains_key("software"));
        assert_eq!(apply(&base, &delta).unwrap(), new);
        // A package delta against a base without packages is refused.
        let d2 = diff(&new, &doc(vec![], "6.1"), "h").unwrap();
        assert_eq!(apply(&base, &d2), Err(DeltaError::BaseWithoutPackages));
    }

    #[test]
    fn malformed_packages_are_refused() {
        let base = doc(vec![pkg("a", "amd64", "1")], "6.1");
        let delta = InventoryDelta {
            base_hash: "h".into(),
            changed: Map::new(),
            removed: vec![],
            software: Some(SoftwareDelta {
                upserted: vec![json!({"name": 3})],
                ..SoftwareDelta::default()
            }),
        };
        assert_eq!(apply(&base, &delta), Err(DeltaError::BadPackage));
        assert_eq!(apply(&json!([]), &delta), Err(DeltaError::BaseNotObject));
    }

    proptest::proptest! {
        #[test]
        fn apply_inverts_diff(
            old in proptest::collection::btree_map(("[a-e]{1,2}", "(amd64|i386)"), "[0-3]", 0..12),
            new in proptest::collection::btree_map(("[a-e]{1,2}", "(amd64|i386)"), "[0-3]", 0..12),
        ) {
            let list = |m: &BTreeMap<(String, String), String>| {
                m.iter().map(|((n, a), v)| pkg(n, a, v)).collect::<Vec<_>>()
            };
            let (base, new) = (doc(list(&old), "1"), doc(list(&new), "2"));
            let delta = diff(&base, &new, "h").unwrap();
            proptest::prop_assert_eq!(apply(&base, &delta).unwrap(), new);
        }
    }
}
