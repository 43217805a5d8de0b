//! The operator's commands on a data directory (`school`, `token`,
//! `machine`, `assign`, `user`, `trust`). Each returns the text to print;
//! `main` prints it. Every change goes through [`Store`] and lands in the
//! audit log under `actor`.

use std::fmt::Write as _;

use anyhow::{Context as _, bail};
use nird_proto::api::MachineStatus;
use nird_proto::uai::Uai;

use crate::secrets;
use crate::store::web::{ScopeLevel, ScopeNode};
use crate::store::{NewToken, NewUser, Role, School, SchoolKind, Store, StoreError};
use crate::trust;

/// Who runs the CLI, for the audit log: `cli:<unix user>`.
pub fn cli_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "inconnu".into());
    format!("cli:{user}")
}

/// Refuses an empty (or blank) text argument.
pub fn non_empty(what: &str, value: &str) -> anyhow::Result<String> {
    let v = value.trim();
    if v.is_empty() {
        bail!("{what} ne peut pas être vide");
    }
    if v.chars().any(char::is_control) {
        bail!("{what} contient des caractères de contrôle");
    }
    Ok(v.to_owned())
}

/// Formats Unix seconds as an RFC 3339 UTC date for listings.
pub fn format_time(t: Option<i64>) -> String {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

/// Parses `--expires`: a date `AAAA-MM-JJ` (valid through that day, UTC) or
/// a duration `30m`, `12h`, `7d`. Refuses the past.
pub fn parse_expiry(text: &str, now: time::OffsetDateTime) -> anyhow::Result<i64> {
    let t = text.trim();
    let at = if let Some((n, unit)) = t
        .char_indices()
        .last()
        .filter(|(_, c)| matches!(c, 'm' | 'h' | 'd' | 'j'))
        .map(|(i, c)| (&t[..i], c))
    {
        let n: i64 = n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("durée « {t} » invalide (exemples : 30m, 12h, 7d)"))?;
        let secs = match unit {
            'm' => 60,
            'h' => 3600,
            _ => 86400,
        };
        now.unix_timestamp()
            .checked_add(n.checked_mul(secs).context("durée trop longue")?)
            .context("durée trop longue")?
    } else {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        // The parser's own (English) reason is dropped: one French sentence.
        let date = time::Date::parse(t, &format).map_err(|_| {
            anyhow::anyhow!(
                "date d'expiration « {t} » invalide : attendu AAAA-MM-JJ ou une durée (30m, 12h, 7d)"
            )
        })?;
        date.with_hms(23, 59, 59)
            .context("date invalide")?
            .assume_utc()
            .unix_timestamp()
    };
    if at <= now.unix_timestamp() {
        bail!("la date d'expiration « {t} » est déjà passée");
    }
    Ok(at)
}

/// `school add`.
pub async fn school_add(store: &dyn Store, actor: &str, school: School) -> anyhow::Result<String> {
    let uai = school.uai.clone();
    store.add_school(actor, school).await?;
    Ok(format!("Établissement {uai} ajouté."))
}

/// Builds a [`School`] from CLI text, validating each field.
pub fn school_from_args(
    uai: &str,
    name: &str,
    commune: &str,
    departement: Option<&str>,
    academie: &str,
    kind: &str,
    require_approval: bool,
) -> anyhow::Result<School> {
    let uai = Uai::parse(uai)?;
    let departement = match departement {
        Some(d) => non_empty("le département", d)?,
        None => uai.departement().to_owned(),
    };
    Ok(School {
        name: non_empty("le nom", name)?,
        commune: non_empty("la commune", commune)?,
        departement,
        academie: non_empty("l'académie", academie)?,
        kind: SchoolKind::parse(kind).with_context(|| {
            format!("type d'établissement « {kind} » inconnu : ecole, college ou lycee")
        })?,
        require_approval,
        uai,
    })
}

/// `school list`.
pub async fn school_list(store: &dyn Store) -> anyhow::Result<String> {
    let mut out = String::new();
    for s in store.list_schools().await? {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}{}",
            s.uai,
            s.kind.as_str(),
            s.name,
            s.commune,
            s.departement,
            s.academie,
            if s.require_approval {
                "\tapprobation requise"
            } else {
                ""
            }
        );
    }
    Ok(out)
}

/// `token create`: returns the clear token (printed alone on stdout).
pub async fn token_create(
    store: &dyn Store,
    actor: &str,
    school: &str,
    uses: u32,
    expires: Option<&str>,
) -> anyhow::Result<String> {
    let school = Uai::parse(school)?;
    if uses == 0 {
        bail!("le nombre d'utilisations doit être au moins 1");
    }
    let expires_at = expires
        .map(|e| parse_expiry(e, time::OffsetDateTime::now_utc()))
        .transpose()?;
    let token = secrets::new_secret();
    store
        .create_token(
            actor,
            NewToken {
                school,
                token_hash: secrets::hash_secret(&token),
                expires_at,
                max_uses: uses,
            },
        )
        .await?;
    Ok(token)
}

/// `token list`.
pub async fn token_list(store: &dyn Store) -> anyhow::Result<String> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut out = String::new();
    for t in store.list_tokens().await? {
        let _ = writeln!(
            out,
            "{}\t{}\t{}/{} utilisations\texpire : {}\t{}",
            t.id,
            t.school,
            t.uses,
            t.max_uses,
            format_time(t.expires_at),
            // The same states as the dashboard's: a token used up or past
            // its date enrols nothing.
            if t.revoked_at.is_some() {
                "révoqué"
            } else if t.uses >= t.max_uses {
                "épuisé"
            } else if t.expires_at.is_some_and(|at| at <= now) {
                "expiré"
            } else {
                "actif"
            }
        );
    }
    Ok(out)
}

/// `machine list`.
pub async fn machine_list(store: &dyn Store, school: Option<&str>) -> anyhow::Result<String> {
    let school = school.map(Uai::parse).transpose()?;
    let trust: std::collections::HashMap<String, nird_proto::api::TrustReport> = store
        .trust_reports()
        .await?
        .into_iter()
        .filter_map(|(id, json)| Some((id, serde_json::from_str(&json).ok()?)))
        .collect();
    let index_published = store.catalogue_index(None).await?.is_some();
    let mut out = String::new();
    for m in store.list_machines(school.as_ref()).await? {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\tvue : {}\t{} check-ins\t{}",
            m.id,
            m.school,
            m.hostname,
            m.status.as_str(),
            format_time(m.last_seen),
            m.checkins,
            trust_text(
                trust.get(&m.id),
                m.status == MachineStatus::Pending,
                index_published
            )
        );
    }
    Ok(out)
}

/// A machine's trust anchors and alerts, for `machine list`: keyring and
/// index versions, then each problem code (a frozen server shows here as
/// `index_expired` or `applied_expired:NAME`). A machine waiting for
/// approval gets no index yet: that is no alert. The advice for a missing
/// index depends on whether one is published.
fn trust_text(
    report: Option<&nird_proto::api::TrustReport>,
    pending: bool,
    index_published: bool,
) -> String {
    let Some(r) = report else {
        return "confiance : inconnue".into();
    };
    let problems: Vec<&String> = r
        .problems
        .iter()
        .filter(|p| !(pending && p.as_str() == "no_index"))
        .collect();
    let version = |v: Option<u64>| v.map_or("aucun".to_owned(), |v| format!("v{v}"));
    let mut text = format!(
        "trousseau {} index {}",
        version(r.keyring_version),
        version(r.index_version)
    );
    if pending && r.index_version.is_none() {
        text.push_str(" (l'index viendra avec l'approbation)");
    }
    if !problems.is_empty() {
        text.push_str(" ALERTE ");
        let codes: Vec<&str> = problems.iter().map(|p| p.as_str()).collect();
        text.push_str(&codes.join(","));
        let french: Vec<String> = problems
            .iter()
            .map(|p| match p.as_str() {
                "no_index" if index_published => "aucun index du catalogue reçu alors qu'un \
                    index est publié : la machine n'a pas repris contact depuis, ou l'a refusé \
                    (voir son journal : journalctl -u nird-agent)"
                    .to_owned(),
                other => problem_fr(other),
            })
            .collect();
        text.push_str(&format!(" ({})", french.join(" ; ")));
    }
    text
}

/// A machine's trust problem code (see the agent's trust report) for the
/// operator, in French, with what to do.
pub fn problem_fr(code: &str) -> String {
    match code.split_once(':') {
        Some(("applied_expired", name)) => {
            format!("le profil « {name} » appliqué a expiré sans successeur (serveur figé ?)")
        }
        _ => match code {
            "no_keyring" => "aucun trousseau de clés : la machine n'appliquera rien ; \
                             ré-enrôlez-la avec un kit (nird-server kit create)"
                .into(),
            "keyring_expired" => "trousseau de clés expiré : publiez-en un nouveau".into(),
            "no_index" => "aucun index du catalogue reçu : publiez-en un (index publish)".into(),
            "index_expired" => "index du catalogue expiré : publiez-en un nouveau".into(),
            other => other.to_owned(),
        },
    }
}

/// Checks a machine id's shape before looking it up.
pub fn machine_id(text: &str) -> anyhow::Result<String> {
    let t = text.trim().to_ascii_lowercase();
    if t.len() != 32 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("identifiant de machine « {text} » invalide (32 caractères hexadécimaux)");
    }
    Ok(t)
}

/// `machine reports ID [--json]`: what a machine reported about each profile
/// release it handled, oldest first, with every resource that did not stay
/// unchanged.
pub async fn machine_reports(store: &dyn Store, id: &str, json: bool) -> anyhow::Result<String> {
    use nird_proto::api::{ApplyOutcome, ResourceStatus};
    let id = machine_id(id)?;
    // Every enrolled machine has an inventory: none means no such machine.
    if store.latest_inventory(&id).await?.is_none() {
        bail!("machine {id} inconnue : voyez « nird-server machine list »");
    }
    let reports = store.reports(&id).await?;
    if json {
        return Ok(serde_json::to_string_pretty(&reports)? + "\n");
    }
    if reports.is_empty() {
        return Ok(format!("Aucun rapport de la machine {id}.\n"));
    }
    let mut out = String::new();
    for r in &reports {
        let outcome = match r.outcome {
            ApplyOutcome::Applied => "appliqué",
            ApplyOutcome::Refused => "refusé",
            ApplyOutcome::Failed => "échec",
            ApplyOutcome::Deferred => "reporté",
        };
        let reason = r
            .reason
            .map(|c| format!(" ({})", c.as_str()))
            .unwrap_or_default();
        let at = format_time(Some(r.finished_at.unix_timestamp()));
        let _ = write!(
            out,
            "#{}\t{at}\t{} v{}\t{outcome}{reason}",
            r.seq, r.profile, r.version
        );
        if let Some(m) = &r.message {
            let _ = write!(out, " : {m}");
        }
        out.push('\n');
        for res in r
            .resources
            .iter()
            .filter(|x| x.status != ResourceStatus::Unchanged)
        {
            let status = match res.status {
                ResourceStatus::Changed => "modifié",
                ResourceStatus::Failed => "échec",
                ResourceStatus::Unchanged => "inchangé",
            };
            let _ = write!(out, "\t{status}\t{}", res.id);
            if let Some(m) = &res.message {
                let _ = write!(out, " : {m}");
            }
            out.push('\n');
        }
    }
    Ok(out)
}

/// `machine approve` / `machine retire`.
pub async fn machine_set_status(
    store: &dyn Store,
    actor: &str,
    id: &str,
    status: MachineStatus,
) -> anyhow::Result<String> {
    let id = machine_id(id)?;
    store.set_machine_status(actor, &id, status).await?;
    Ok(match status {
        MachineStatus::Active => format!("Machine {id} approuvée."),
        MachineStatus::Retired => format!("Machine {id} retirée de la flotte."),
        MachineStatus::Pending => format!("Machine {id} en attente."),
    })
}

/// Checks a profile name with the rule every profile follows
/// ([`nird_proto::profile::is_slug`]), so no assignment names a profile that
/// cannot exist.
fn profile_name(text: &str) -> anyhow::Result<String> {
    let t = text.trim();
    if !nird_proto::profile::is_slug(t) {
        bail!(
            "nom de profil « {text} » invalide : lettres minuscules, chiffres et tirets \
             simples (pas en début ni en fin), 64 caractères au plus"
        );
    }
    Ok(t.to_owned())
}

/// The assigned closure `names` would give a machine: each name plus,
/// transitively, what its newest live release includes. Returns the closure
/// (sorted) and the names that have no live release on this server.
async fn closure_of(
    store: &dyn Store,
    names: &[String],
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    use std::collections::{BTreeMap, BTreeSet};
    // Newest live release of each name → its includes.
    let mut newest: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    for r in store.live_releases().await? {
        if newest.get(&r.name).is_some_and(|(v, _)| *v >= r.version) {
            continue;
        }
        let includes = nird_proto::profile::parse(&format!("{}.toml", r.name), &r.bytes)
            .map(|p| p.includes)
            .unwrap_or_default();
        newest.insert(r.name.clone(), (r.version, includes));
    }
    let mut closure = BTreeSet::new();
    let mut missing = BTreeSet::new();
    let mut todo: Vec<String> = names.to_vec();
    while let Some(name) = todo.pop() {
        if !closure.insert(name.clone()) {
            continue;
        }
        match newest.get(&name) {
            Some((_, includes)) => todo.extend(includes.iter().cloned()),
            None => {
                missing.insert(name);
            }
        }
    }
    Ok((closure.into_iter().collect(), missing.into_iter().collect()))
}

/// What an assignment would do to the machines it reaches (see
/// [`assignability`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignability {
    /// Agents would accept it. The names without a published release
    /// (machines get nothing for them until they are published).
    Accepted { unpublished: Vec<String> },
    /// More profiles, includes counted, than an agent accepts.
    TooMany { profiles: usize },
}

impl Assignability {
    /// The French refusal, when refused.
    pub fn refusal(&self) -> Option<String> {
        match self {
            Assignability::TooMany { profiles } => Some(format!(
                "Affectation refusée : avec ce qu'ils incluent, ces profils font {profiles} \
                 profils, plus que les {} qu'un agent accepte",
                nird_proto::api::MAX_ASSIGNED
            )),
            Assignability::Accepted { .. } => None,
        }
    }

    /// The French warning about unpublished profiles ("" when none).
    pub fn warning(&self) -> String {
        match self {
            Assignability::Accepted { unpublished } if !unpublished.is_empty() => format!(
                "ATTENTION : {} pas publié sur ce serveur : les machines ne recevront rien pour \
                 lui tant qu'il ne l'est pas (nird-server profile list, nird-server profile \
                 publish …).",
                unpublished
                    .iter()
                    .map(|m| format!("« {m} »"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => String::new(),
        }
    }
}

/// Judges an assignment against what agents accept: more than
/// [`nird_proto::api::MAX_ASSIGNED`] profiles in all (includes counted) is
/// refused, as every agent would refuse it. A profile (or an include) not
/// yet published is allowed — assigning before publishing is a normal
/// order — with a loud warning. The command line and the dashboard both
/// ask this before they assign.
pub async fn assignability(
    store: &dyn Store,
    names: &[String],
) -> Result<Assignability, StoreError> {
    let (closure, missing) = closure_of(store, names).await?;
    if closure.len() > nird_proto::api::MAX_ASSIGNED {
        return Ok(Assignability::TooMany {
            profiles: closure.len(),
        });
    }
    Ok(Assignability::Accepted {
        unpublished: missing,
    })
}

/// [`assignability`] for the command line: the refusal as an error, else
/// the warning to print before the result (with its line break).
pub async fn check_assignable(store: &dyn Store, names: &[String]) -> anyhow::Result<String> {
    let verdict = assignability(store, names).await?;
    if let Some(refusal) = verdict.refusal() {
        bail!(refusal);
    }
    let warning = verdict.warning();
    Ok(if warning.is_empty() {
        warning
    } else {
        format!("{warning}\n")
    })
}

/// `assign --school U PROFILE...`: replaces the school's whole list.
pub async fn assign_school(
    store: &dyn Store,
    actor: &str,
    school: &str,
    profiles: &[String],
) -> anyhow::Result<String> {
    let school = Uai::parse(school)?;
    let profiles = profiles
        .iter()
        .map(|p| profile_name(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let warning = check_assignable(store, &profiles).await?;
    let before = store.school_assignments(&school).await?;
    store
        .assign_school(actor, &school, profiles.clone())
        .await?;
    let list = |v: &[String]| {
        if v.is_empty() {
            "aucun".to_owned()
        } else {
            v.join(", ")
        }
    };
    let done = if profiles.is_empty() {
        format!(
            "Plus aucun profil affecté à {school} (avant : {}).",
            list(&before)
        )
    } else {
        format!(
            "La liste des profils de {school} est remplacée : {} (avant : {}).",
            list(&profiles),
            list(&before)
        )
    };
    Ok(format!("{warning}{done}"))
}

/// `assign --machine M [--exclude] PROFILE...`.
pub async fn assign_machine(
    store: &dyn Store,
    actor: &str,
    machine: &str,
    profiles: &[String],
    exclude: bool,
) -> anyhow::Result<String> {
    let id = machine_id(machine)?;
    if profiles.is_empty() {
        bail!("indiquez au moins un profil");
    }
    let profiles = profiles
        .iter()
        .map(|p| profile_name(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut warning = String::new();
    if !exclude {
        // What the machine gets now, plus these.
        let mut names: Vec<String> = store
            .assigned_closure(&id)
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect();
        names.extend(profiles.iter().cloned());
        warning = check_assignable(store, &names).await?;
    }
    for p in &profiles {
        store.override_machine(actor, &id, p, !exclude).await?;
    }
    Ok(format!(
        "{warning}Machine {id} : {} {}.",
        if exclude { "exclue de" } else { "ajoutée à" },
        profiles.join(", ")
    ))
}

/// `user add`: returns the generated password (shown once).
pub async fn user_add(
    store: &dyn Store,
    actor: &str,
    login: &str,
    role: Role,
    schools: &[String],
    territory: Option<&str>,
    scopes: &[String],
) -> anyhow::Result<String> {
    let login = non_empty("l'identifiant", login)?;
    if !login
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@'))
    {
        bail!("identifiant « {login} » invalide : lettres, chiffres, . - _ @");
    }
    let schools = schools
        .iter()
        .map(|s| Uai::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let territory = territory
        .map(|t| non_empty("le territoire", t))
        .transpose()?;
    let mut nodes = scopes
        .iter()
        .map(|s| ScopeNode::parse(s).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    nodes.extend(schools.iter().map(|u| ScopeNode {
        level: ScopeLevel::Uai,
        value: u.as_str().to_owned(),
    }));
    if let Some(t) = &territory {
        nodes.push(ScopeNode {
            level: ScopeLevel::Academie,
            value: t.clone(),
        });
    }
    match role {
        Role::School if nodes.is_empty() => {
            bail!("un compte « school » doit avoir au moins un --school ou un --scope")
        }
        Role::Auditor if nodes.is_empty() => {
            bail!("un compte « auditor » doit avoir un --territory ou un --scope")
        }
        _ => {}
    }
    let password = secrets::new_password();
    store
        .add_user_scoped(
            actor,
            NewUser {
                login: login.clone(),
                password_hash: secrets::hash_password(&password)
                    .map_err(|e| anyhow::anyhow!("argon2: {e}"))?,
                role,
                schools,
                territory,
            },
            nodes,
        )
        .await?;
    Ok(format!(
        "Compte « {login} » créé.\nMot de passe (affiché une seule fois) : {password}"
    ))
}

/// `keyring show`.
pub async fn keyring_show(store: &dyn Store) -> anyhow::Result<String> {
    let Some(k) = trust::current_keyring(store).await? else {
        return Ok("Aucun trousseau publié : « nird-server keyring publish » d'abord.".into());
    };
    let mut out = format!(
        "Trousseau version {} — valable jusqu'au {} — seuil {} pour le suivant\n",
        k.version, k.expires, k.threshold
    );
    if !k.description.is_empty() {
        out.push_str(&format!("{}\n", k.description));
    }
    for key in &k.keys {
        out.push_str(&format!("  clé {}  {}\n", key.id, key.name));
    }
    Ok(out.trim_end().to_owned())
}

/// `index show`.
pub async fn index_show(store: &dyn Store) -> anyhow::Result<String> {
    let Some(doc) = store.catalogue_index(None).await? else {
        return Ok(
            "Aucun index du catalogue publié : « nird-server index publish » d'abord.".into(),
        );
    };
    let index = nird_proto::index::CatalogueIndex::parse(&doc.bytes)?;
    let mut out = format!(
        "Index du catalogue version {} — valable jusqu'au {}",
        index.version, index.expires
    );
    for (name, e) in &index.profiles {
        out.push_str(&format!("\n  {name} v{}  sha256 {}", e.version, e.sha256));
    }
    Ok(out)
}

/// `user reset-password LOGIN`: a new generated password, shown once;
/// the account's sessions are closed and its API tokens revoked.
pub async fn user_reset_password(
    store: &dyn Store,
    actor: &str,
    login: &str,
) -> anyhow::Result<String> {
    let password = secrets::new_password();
    let hash = secrets::hash_password(&password).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    store.set_password(actor, login, hash, None).await?;
    Ok(format!(
        "Nouveau mot de passe de « {login} » (affiché une seule fois) : {password}"
    ))
}

/// `user list`.
pub async fn user_list(store: &dyn Store) -> anyhow::Result<String> {
    let mut out = String::new();
    for u in store.list_users().await? {
        let scope: Vec<String> = u.nodes.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}",
            u.login,
            u.role.as_str(),
            if u.disabled_at.is_some() {
                "désactivé"
            } else {
                "actif"
            },
            scope.join(",")
        );
    }
    Ok(out)
}

/// `user token create LOGIN`: prints the token alone (scripts capture it).
pub async fn user_token_create(
    store: &dyn Store,
    actor: &str,
    login: &str,
    label: &str,
) -> anyhow::Result<String> {
    let label = non_empty("le libellé", label)?;
    let (token, hash) = crate::auth::new_api_token();
    store.create_api_token(actor, login, hash, label).await?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_waiting_for_approval_has_no_index_alert() {
        let report = nird_proto::api::TrustReport {
            keyring_version: Some(1),
            index_version: None,
            problems: vec!["no_index".into()],
        };
        let pending = trust_text(Some(&report), true, true);
        assert!(!pending.contains("ALERTE"), "{pending}");
        assert!(pending.contains("l'index viendra avec l'approbation"));
        let active = trust_text(Some(&report), false, true);
        assert!(active.contains("ALERTE no_index"), "{active}");
        assert!(active.contains("alors qu'un index est publié"), "{active}");
        let none = trust_text(Some(&report), false, false);
        assert!(none.contains("publiez-en un (index publish)"), "{none}");
    }

    #[test]
    fn expiry_accepts_dates_and_durations_and_refuses_the_past() {
        let now = time::macros::datetime!(2026-01-10 12:00 UTC);
        assert_eq!(
            parse_expiry("2h", now).unwrap(),
            now.unix_timestamp() + 7200
        );
        assert_eq!(
            parse_expiry("7d", now).unwrap(),
            now.unix_timestamp() + 7 * 86400
        );
        assert_eq!(
            parse_expiry("2026-01-11", now).unwrap(),
            time::macros::datetime!(2026-01-11 23:59:59 UTC).unix_timestamp()
        );
        assert!(parse_expiry("2026-01-09", now).is_err());
        assert!(parse_expiry("0d", now).is_err());
        assert!(parse_expiry("demain", now).is_err());
        assert!(parse_expiry("2026-13-01", now).is_err());
        // One sentence, said once (no parser detail appended).
        let err = format!("{:#}", parse_expiry("3x", now).unwrap_err());
        assert_eq!(err.matches("invalide").count(), 1, "{err}");
        assert!(!err.contains("component"), "{err}");
    }

    #[test]
    fn names_are_checked() {
        assert!(profile_name("primtux-base").is_ok());
        assert!(profile_name("PrimTux").is_err());
        assert!(profile_name("").is_err());
        // Names no profile can have (see `nird_proto::profile::is_slug`).
        assert!(profile_name("primtux-").is_err());
        assert!(profile_name("primtux--base").is_err());
        assert!(machine_id("0123456789abcdef0123456789ABCDEF").is_ok());
        assert!(machine_id("xyz").is_err());
        assert!(non_empty("le nom", "  ").is_err());
    }
}
