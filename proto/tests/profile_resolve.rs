//! Composition of profiles through `includes`.

use std::collections::BTreeMap;

use nird_proto::profile::{Profile, ResolveError, parse, resolve};

fn profile(name: &str, includes: &[&str], body: &str) -> Profile {
    let includes = includes
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "[profile]\nname = \"{name}\"\nversion = 1\nexpires = 2030-01-01\ndescription = \"d\"\naudience = \"all\"\nincludes = [{includes}]\n{body}"
    );
    parse(&format!("{name}.toml"), text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn catalogue(profiles: Vec<Profile>) -> BTreeMap<String, Profile> {
    profiles.into_iter().map(|p| (p.name.clone(), p)).collect()
}

fn resolve_in(
    cat: &BTreeMap<String, Profile>,
    root: &str,
) -> Result<nird_proto::profile::DesiredState, ResolveError> {
    resolve(&cat[root], |n| cat.get(n))
}

#[test]
fn includes_compose_in_order_each_once() {
    let cat = catalogue(vec![
        profile(
            "base",
            &[],
            "[packages]\ninstall = [\"curl\"]\n[[file]]\npath = \"/etc/a\"\ncontent = \"a\"\n",
        ),
        profile(
            "bureau",
            &["base"],
            "[packages]\ninstall = [\"curl\", \"gimp\"]\n",
        ),
        profile(
            "ecole",
            &["base"],
            "[packages]\ninstall = [\"tuxpaint\"]\nremove = [\"thunderbird\"]\n",
        ),
        // Diamond: base reached twice, composed once.
        profile(
            "poste",
            &["bureau", "ecole"],
            "[[file]]\npath = \"/etc/a\"\ncontent = \"a\"\n",
        ),
    ]);
    let state = resolve_in(&cat, "poste").unwrap();
    let layers: Vec<_> = state.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(layers, ["base", "bureau", "ecole", "poste"]);
    assert_eq!(
        state.packages_install.keys().collect::<Vec<_>>(),
        ["curl", "gimp", "tuxpaint"]
    );
    assert_eq!(state.packages_install["curl"], "base");
    assert_eq!(state.packages_remove["thunderbird"], "ecole");
    // Identical file declared twice: fine, first origin kept.
    assert_eq!(state.files["/etc/a"].origin, "base");
    assert_eq!(state.resource_count(), 5);
}

#[test]
fn cycles_are_rejected_with_their_path() {
    let cat = catalogue(vec![
        profile("a", &["b"], ""),
        profile("b", &["c"], ""),
        profile("c", &["a"], ""),
    ]);
    let err = resolve_in(&cat, "a").unwrap_err();
    assert_eq!(
        err,
        ResolveError::Cycle(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(err.to_string(), "inclusion circulaire : a → b → c → a");
}

#[test]
fn missing_include_is_named() {
    let cat = catalogue(vec![profile("a", &["ghost"], "")]);
    assert_eq!(
        resolve_in(&cat, "a").unwrap_err(),
        ResolveError::Missing {
            name: "ghost".into(),
            included_by: "a".into()
        }
    );
}

#[test]
fn conflicts_between_layers() {
    let cases = [
        (
            "[packages]\ninstall = [\"gimp\"]\n",
            "[packages]\nremove = [\"gimp\"]\n",
            "package:gimp",
        ),
        (
            "[packages]\nremove = [\"gimp\"]\n",
            "[packages]\ninstall = [\"gimp\"]\n",
            "package:gimp",
        ),
        (
            "[[file]]\npath = \"/etc/a\"\ncontent = \"a\"\n",
            "[[file]]\npath = \"/etc/a\"\ncontent = \"b\"\n",
            "file:/etc/a",
        ),
        (
            "[[file]]\npath = \"/etc/a\"\ncontent = \"a\"\n",
            "[[directory]]\npath = \"/etc/a\"\n",
            "directory:/etc/a",
        ),
        (
            "[[unit]]\nname = \"ssh.service\"\nstate = \"running\"\n",
            "[[unit]]\nname = \"ssh.service\"\nstate = \"stopped\"\n",
            "unit:ssh.service",
        ),
        (
            "[[user]]\nname = \"eve\"\n",
            "[[user]]\nname = \"eve\"\npassword = \"empty\"\n",
            "user:eve",
        ),
        (
            "[[group]]\nname = \"g\"\n",
            "[[group]]\nname = \"g\"\ngid = 3000\n",
            "group:g",
        ),
    ];
    for (base, top, resource) in cases {
        let cat = catalogue(vec![
            profile("base", &[], base),
            profile("top", &["base"], top),
        ]);
        let err = resolve_in(&cat, "top").unwrap_err();
        assert_eq!(
            err,
            ResolveError::Conflict {
                resource: resource.into(),
                first: "base".into(),
                second: "top".into()
            },
            "{base} / {top}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("conflit sur {resource}"))
        );
    }
}
