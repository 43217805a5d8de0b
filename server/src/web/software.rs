//! Installed software on the dashboard: one machine's packages
//! (`/machines/{id}/logiciels`) and, for a school, which machines have a
//! package (`/etablissements/{uai}/logiciels?q=gcompris`: "which machines
//! still have the old GCompris?"). Both read the latest inventory each
//! machine sent, so they show what the agent saw at its last change: its
//! stored core, then the package list it refers to, by hash — a school
//! search reads and parses each distinct list once, however many machines
//! share it (machines installed from one image and upgraded together).

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use futures_util::StreamExt as _;
use maud::{Markup, html};
use nird_proto::inventory::{Reading, Software, not_reported};
use serde::Deserialize;

use super::layout::{self, date_time, html, state_badge};
use super::school::school_or_404;
use super::{FormData, WebError, WebResult, scope};
use crate::auth::{self, Session};
use crate::http::AppState;
use crate::store::sqlite::inventory::software_reference;
use crate::store::web::{MachineQuery, MachineRow, MachineState};

/// Package lists a school search reads and parses at once.
const LISTS_AT_ONCE: usize = 4;

/// Longest name filter accepted (dpkg names are far shorter).
const MAX_FILTER_CHARS: usize = 100;

/// Package names a school search shows at most (each with its versions and
/// machines); a broader search asks to be narrowed.
const MAX_NAMES_SHOWN: usize = 50;

/// The `q` of a query string: trimmed, lowercased, `None` when empty.
/// Only the characters of Debian package names and Flatpak ids.
fn name_filter(raw: Option<&str>) -> Result<Option<String>, WebError> {
    let form = FormData::parse(raw.unwrap_or("").as_bytes());
    let text = form.get("q").unwrap_or("").trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > MAX_FILTER_CHARS
        || !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c))
    {
        return Err(WebError::bad_request(format!(
            "Nom de logiciel « {} » invalide : lettres, chiffres et « + - . _ » seulement, \
             {MAX_FILTER_CHARS} caractères au plus.",
            crate::echo::quoted(text, MAX_FILTER_CHARS)
        )));
    }
    Ok(Some(text.to_ascii_lowercase()))
}

/// True when `name` contains the (lowercase ASCII) filter, ignoring case,
/// without allocating (a school search tries it on every package).
fn matches(name: &str, filter: Option<&str>) -> bool {
    filter.is_none_or(|f| {
        f.is_empty()
            || name
                .as_bytes()
                .windows(f.len())
                .any(|w| w.eq_ignore_ascii_case(f.as_bytes()))
    })
}

/// Only the `software` member of an inventory document: the rest is
/// skipped by the parser, never built.
#[derive(Deserialize)]
struct SoftwareOnly {
    #[serde(default = "not_reported")]
    software: Reading<Software>,
}

/// Where a machine's latest package list is.
enum LatestList {
    /// No inventory yet.
    NoInventory,
    /// Stored apart, by hash (the document held a list).
    Stored(String),
    /// In the stored document itself (the document held no list: the
    /// agent's reason, or an older agent's silence).
    Inline(String),
}

/// Where the software list of a machine's latest inventory is.
async fn latest_list(state: &AppState, machine_id: &str) -> Result<LatestList, WebError> {
    let Some(core) = state.store.latest_inventory_core(machine_id).await? else {
        return Ok(LatestList::NoInventory);
    };
    Ok(match software_reference(&core) {
        Ok(Some(hash)) => LatestList::Stored(hash),
        Ok(None) => LatestList::Inline(core),
        Err(e) => {
            tracing::warn!(machine = machine_id, error = %e, "stored inventory unreadable");
            LatestList::NoInventory
        }
    })
}

/// The software list in a machine's latest inventory: `None` when the
/// machine has no readable inventory.
pub(super) async fn latest_software(
    state: &AppState,
    machine_id: &str,
) -> Result<Option<Reading<Software>>, WebError> {
    let parsed = match latest_list(state, machine_id).await? {
        LatestList::NoInventory => return Ok(None),
        LatestList::Stored(hash) => {
            let text = state.store.software_list(&hash).await?;
            let Some(text) = text else {
                tracing::warn!(
                    machine = machine_id,
                    list = hash,
                    "stored package list missing"
                );
                return Ok(None);
            };
            serde_json::from_str::<Reading<Software>>(&text)
        }
        LatestList::Inline(core) => serde_json::from_str::<SoftwareOnly>(&core).map(|d| d.software),
    };
    match parsed {
        Ok(software) => Ok(Some(software)),
        Err(e) => {
            tracing::warn!(machine = machine_id, error = %e, "stored inventory unreadable");
            Ok(None)
        }
    }
}

/// Installed size in words (dpkg gives KiB).
fn size_label(kib: Option<u64>) -> String {
    match kib {
        None => "—".into(),
        Some(k) if k < 1024 => format!("{k} Kio"),
        Some(k) => format!("{:.1} Mio", k as f64 / 1024.0).replace('.', ","),
    }
}

/// The name filter form (GET), keeping `value`.
fn filter_form(action: &str, label: &str, value: Option<&str>, hint: &str) -> Markup {
    html! {
        form method="get" action=(action) role="search" aria-label=(label) {
            p {
                label for="q" { (label) }
                " "
                input #q type="search" name="q" value=(value.unwrap_or("")) maxlength=(MAX_FILTER_CHARS)
                    aria-describedby="q-aide" autocomplete="off";
                " "
                button type="submit" { "Rechercher" }
            }
            p #q-aide .hint { (hint) }
        }
    }
}

/// `GET /machines/{id}/logiciels?q=`.
pub async fn machine(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> WebResult {
    let filter = name_filter(raw.as_deref())?;
    let m = super::machine::find(&state, &session, &id).await?;
    let software = latest_software(&state, &m.row.id).await?;
    let recorded = m.history.first().map(|(_, at, _)| *at);
    let title = format!("Logiciels de {}", m.row.hostname);
    let body = html! {
        p { a href={"/machines/" (m.row.id)} { "Retour à la machine " (m.row.hostname) } }
        @match &software {
            None => p { "Cette machine n'a pas encore transmis d'inventaire lisible." },
            Some(Reading::Unavailable(why)) => p {
                "L'agent de cette machine ne transmet pas la liste des logiciels ("
                (nird_proto::inventory::reason::french(why)) ")."
            },
            Some(Reading::Value(list)) => {
                p { "Selon l'inventaire du " (date_time(recorded)) " (UTC) : "
                    strong { (list.packages.len()) " paquets Debian" }
                    @if !list.flatpaks.is_empty() { " et " strong { (list.flatpaks.len()) " applications Flatpak" } }
                    "." }
                (filter_form(&format!("/machines/{}/logiciels", m.row.id), "Filtrer par nom",
                    filter.as_deref(), "Une partie du nom suffit, sans tenir compte des majuscules : « gcompris », « libreoffice »."))
                (package_tables(list, filter.as_deref()))
            }
        }
    };
    Ok(html(layout::page(&title, Some(&session), body)))
}

/// The packages and Flatpak applications of `list` whose name matches.
fn package_tables(list: &Software, filter: Option<&str>) -> Markup {
    let packages: Vec<_> = list
        .packages
        .iter()
        .filter(|p| matches(&p.name, filter))
        .collect();
    let flatpaks: Vec<_> = list
        .flatpaks
        .iter()
        .filter(|a| matches(&a.id, filter))
        .collect();
    html! {
        @if let Some(f) = filter {
            p role="status" { (packages.len()) " paquet(s) et " (flatpaks.len())
                " application(s) Flatpak dont le nom contient « " (f) " »." }
        }
        @if !packages.is_empty() {
            table {
                caption { "Paquets Debian (" (packages.len()) ")" }
                thead { tr {
                    th scope="col" { "Paquet" } th scope="col" { "Version" }
                    th scope="col" { "Architecture" } th scope="col" { "Section" }
                    th scope="col" { "Taille installée" }
                } }
                tbody {
                    @for p in &packages {
                        tr {
                            th scope="row" { (p.name) }
                            td { (p.version) }
                            td { (p.arch) }
                            td { (p.section.as_deref().unwrap_or("—")) }
                            td.n { (size_label(p.size_kib)) }
                        }
                    }
                }
            }
        }
        @if !flatpaks.is_empty() {
            table {
                caption { "Applications Flatpak (" (flatpaks.len()) ")" }
                thead { tr {
                    th scope="col" { "Application" } th scope="col" { "Version" }
                    th scope="col" { "Branche" } th scope="col" { "Architecture" }
                } }
                tbody {
                    @for a in &flatpaks {
                        tr {
                            th scope="row" { (a.id) }
                            td { (a.version.as_deref().unwrap_or("—")) }
                            td { (a.branch) }
                            td { (a.arch) }
                        }
                    }
                }
            }
        }
    }
}

/// A reading as the document spells it (`{"value": …}` or
/// `{"unavailable": …}`), for the borrowed parse below.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReadingRef<T> {
    Value(T),
    Unavailable(serde::de::IgnoredAny),
}

/// A package or Flatpak application's name, version and architecture,
/// borrowed from the document's text (no allocation unless escaped).
#[derive(Deserialize)]
struct EntryRef<'a> {
    #[serde(borrow, alias = "id")]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arch: Cow<'a, str>,
    #[serde(borrow, default)]
    branch: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct SoftwareRef<'a> {
    #[serde(borrow)]
    packages: Vec<EntryRef<'a>>,
    #[serde(borrow, default)]
    flatpaks: Vec<EntryRef<'a>>,
}

/// The (name, version, architecture) of every package and Flatpak
/// application in the stored package list `text` (a `software` member)
/// whose name contains `f`; `None` when it cannot be read. Borrowed: a
/// school search reads 2,500-package lists, and building owned packages
/// (five strings each) cost most of its time in the allocator.
fn hits_in(text: &str, f: &str) -> Option<Vec<(String, String, String)>> {
    let ReadingRef::Value(list) = serde_json::from_str::<ReadingRef<SoftwareRef>>(text).ok()?
    else {
        return None;
    };
    let version = |c: &Option<Cow<str>>| c.as_deref().unwrap_or("—").to_owned();
    Some(
        list.packages
            .iter()
            .filter(|p| matches(&p.name, Some(f)))
            .map(|p| (p.name.to_string(), version(&p.version), p.arch.to_string()))
            .chain(
                list.flatpaks
                    .iter()
                    .filter(|a| matches(&a.name, Some(f)))
                    .map(|a| {
                        let branch = a.branch.as_deref().unwrap_or("");
                        (
                            a.name.to_string(),
                            version(&a.version),
                            format!("Flatpak {branch}"),
                        )
                    }),
            )
            .collect(),
    )
}

/// Files `hits` under each of `machines`.
fn add_hits<'r>(
    found: &mut BTreeMap<String, Versions<'r>>,
    hits: Vec<(String, String, String)>,
    machines: &[&'r MachineRow],
) {
    for (name, version, arch) in hits {
        found
            .entry(name)
            .or_default()
            .entry((version, arch))
            .or_default()
            .extend(machines);
    }
}

/// A stored list's findings.
enum ListHits {
    /// Read: its hits, `None` when it cannot be parsed.
    Read(Option<Vec<(String, String, String)>>),
    /// No such list (any more).
    Gone,
}

/// The hits of `wanted` in stored list `hash`, parsed on the blocking pool
/// (a 250 KB list is CPU work).
async fn list_hits(
    store: &dyn crate::store::Store,
    hash: &str,
    wanted: String,
) -> Result<ListHits, WebError> {
    let Some(text) = store.software_list(hash).await? else {
        return Ok(ListHits::Gone);
    };
    let hits = tokio::task::spawn_blocking(move || hits_in(&text, &wanted))
        .await
        .ok()
        .flatten();
    Ok(ListHits::Read(hits))
}

/// One package name's findings in a school: version (and architecture) →
/// machines that have it.
type Versions<'a> = BTreeMap<(String, String), Vec<&'a MachineRow>>;

/// `GET /etablissements/{uai}/logiciels?q=`: the machines of the school
/// (retired ones aside) that have a package or Flatpak application whose
/// name contains `q`, by name and version.
pub async fn school(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(uai): Path<String>,
    RawQuery(raw): RawQuery,
) -> WebResult {
    let filter = name_filter(raw.as_deref())?;
    let school = school_or_404(&state, &session, &uai).await?;
    let mut found: BTreeMap<String, Versions> = BTreeMap::new();
    let mut searched = 0usize;
    let mut without_list: Vec<MachineRow> = Vec::new();
    let rows = if filter.is_some() {
        let page = state
            .store
            .machines_in(
                &scope(&session),
                &MachineQuery {
                    school: Some(school.uai.clone()),
                    limit: None,
                    ..MachineQuery::default()
                },
                auth::now(),
            )
            .await?;
        page.rows
            .into_iter()
            .filter(|r| r.state != MachineState::Retired)
            .collect()
    } else {
        Vec::new()
    };
    if let Some(f) = filter.as_deref() {
        // Machines by the list they have: each list read and parsed once.
        let mut by_list: BTreeMap<String, Vec<&MachineRow>> = BTreeMap::new();
        for row in &rows {
            match latest_list(&state, &row.id).await? {
                LatestList::Stored(hash) => by_list.entry(hash).or_default().push(row),
                LatestList::NoInventory | LatestList::Inline(_) => without_list.push(row.clone()),
            }
        }
        // A few lists at a time (reading one waits on the database, parsing
        // it is CPU work, off the async workers), in the lists' order.
        let (hashes, machines_of): (Vec<String>, Vec<Vec<&MachineRow>>) =
            by_list.into_iter().unzip();
        let lists = futures_util::stream::iter(hashes.into_iter().map(|hash| {
            let (store, wanted) = (state.store.clone(), f.to_owned());
            async move { list_hits(store.as_ref(), &hash, wanted).await }
        }))
        .buffered(LISTS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
        for (hits, machines) in lists.into_iter().zip(machines_of) {
            match hits? {
                ListHits::Read(Some(hits)) => {
                    searched += machines.len();
                    add_hits(&mut found, hits, &machines);
                }
                ListHits::Read(None) => without_list.extend(machines.into_iter().cloned()),
                // Replaced by a check-in since its machines were read (found
                // by review: they read « sans liste »): each read again.
                ListHits::Gone => {
                    for row in machines {
                        let again = match latest_list(&state, &row.id).await? {
                            LatestList::Stored(hash) => {
                                match list_hits(state.store.as_ref(), &hash, f.to_owned()).await? {
                                    ListHits::Read(hits) => hits,
                                    ListHits::Gone => None,
                                }
                            }
                            LatestList::NoInventory | LatestList::Inline(_) => None,
                        };
                        match again {
                            Some(hits) => {
                                searched += 1;
                                add_hits(&mut found, hits, &[row]);
                            }
                            None => without_list.push(row.clone()),
                        }
                    }
                }
            }
        }
        // The table lists machines by name, whatever list they had.
        for versions in found.values_mut() {
            for machines in versions.values_mut() {
                machines.sort_by(|a, b| (&a.hostname, &a.id).cmp(&(&b.hostname, &b.id)));
            }
        }
        without_list.sort_by(|a, b| (&a.hostname, &a.id).cmp(&(&b.hostname, &b.id)));
    }
    let title = format!("Logiciels — {}", school.name);
    let action = format!("/etablissements/{}/logiciels", school.uai);
    // « g++ » in a link: « + » would read as a space.
    let query: String =
        form_urlencoded::byte_serialize(filter.as_deref().unwrap_or("").as_bytes()).collect();
    let body = html! {
        p { a href={"/etablissements/" (school.uai)} { "Retour à l'établissement" } }
        (filter_form(&action, "Nom du logiciel", filter.as_deref(),
            "Une partie du nom suffit, sans tenir compte des majuscules : « gcompris » trouve gcompris-qt et org.kde.gcompris."))
        @if let Some(f) = filter.as_deref() {
            p role="status" {
                @if found.is_empty() {
                    "Aucune des " (searched) " machines dont la liste est connue n'a de logiciel dont le nom contient « " (f) " »."
                } @else {
                    (found.len()) " logiciel(s) dont le nom contient « " (f) " », sur les "
                    (searched) " machines dont la liste est connue."
                }
            }
            @if found.len() > MAX_NAMES_SHOWN {
                p { "Seuls les " (MAX_NAMES_SHOWN) " premiers par ordre alphabétique sont montrés : précisez le nom." }
            }
            @for (name, versions) in found.iter().take(MAX_NAMES_SHOWN) {
                table {
                    caption { (name) " : " (versions.values().map(Vec::len).sum::<usize>()) " installation(s)" }
                    thead { tr {
                        th scope="col" { "Version" } th scope="col" { "Architecture" }
                        th scope="col" { "Machines" }
                    } }
                    tbody {
                        @for ((version, arch), machines) in versions {
                            tr {
                                th scope="row" { (version) }
                                td { (arch) }
                                td {
                                    (machines.len()) " : "
                                    @for (i, m) in machines.iter().enumerate() {
                                        @if i > 0 { ", " }
                                        a href={"/machines/" (m.id) "/logiciels?q=" (query)} { (m.hostname) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !without_list.is_empty() {
                table {
                    caption { "Machines sans liste de logiciels connue (" (without_list.len()) ")" }
                    thead { tr { th scope="col" { "Machine" } th scope="col" { "État" } th scope="col" { "Dernier contact (UTC)" } } }
                    tbody {
                        @for m in &without_list {
                            tr {
                                th scope="row" { a href={"/machines/" (m.id)} { (m.hostname) } }
                                td { (state_badge(m.state)) }
                                td { (date_time(m.last_seen)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(html(layout::page(&title, Some(&session), body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_takes_package_names_only() {
        assert_eq!(name_filter(None).unwrap(), None);
        assert_eq!(
            name_filter(Some("q=g%2B%2B")).unwrap().as_deref(),
            Some("g++")
        );
        assert_eq!(name_filter(Some("q=+")).unwrap(), None);
        assert_eq!(
            name_filter(Some("q=GCompris-Qt")).unwrap().as_deref(),
            Some("gcompris-qt")
        );
        assert_eq!(
            name_filter(Some("q=org.kde.gcompris")).unwrap().as_deref(),
            Some("org.kde.gcompris")
        );
        for bad in ["q=%3Cscript%3E", "q=a%20b", "q=%C3%A9", "q=a%27"] {
            assert!(name_filter(Some(bad)).is_err(), "{bad}");
        }
        let long = format!("q={}", "a".repeat(MAX_FILTER_CHARS + 1));
        assert!(name_filter(Some(&long)).is_err());
        assert!(matches("org.KDE.GCompris", Some("kde.gc")));
        assert!(!matches("gimp", Some("gcompris")));
        assert!(matches("gimp", None));
    }

    #[test]
    fn sizes_read_in_french() {
        assert_eq!(size_label(None), "—");
        assert_eq!(size_label(Some(900)), "900 Kio");
        assert_eq!(size_label(Some(1536)), "1,5 Mio");
    }
}
