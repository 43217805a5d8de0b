//! `nird-agent plan` and `nird-agent apply`: the apply engine in the
//! foreground, with French output for the person at the keyboard.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use nird_proto::api::{ApplyOutcome, ApplyReport, ProfileRef, ResourceStatus};

use super::{
    ApplyOptions, Bus, DirectorySource, MaintenanceWindows, PlanOutcome, ProgressEvent,
    ReleaseVerdict, Verdict, apply_assigned, plan_assigned,
};
use crate::paths::AgentPaths;

/// Where the releases come from and which ones.
#[derive(clap::Args, Debug)]
pub struct SourceArgs {
    /// Dossier de profils signés (NOM.toml, NOM.toml.minisig, blobs/<sha256>),
    /// par exemple une clé USB. Par défaut : le cache de l'agent.
    #[arg(long, value_name = "DOSSIER")]
    pub from: Option<PathBuf>,
    /// Adresse D-Bus où joindre systemd et logind (par défaut : le bus
    /// système si la racine est /, aucun sinon).
    #[arg(long, value_name = "ADRESSE")]
    pub bus: Option<String>,
    /// Profils à appliquer (par défaut : tous ceux du dossier).
    #[arg(value_name = "PROFIL")]
    pub profiles: Vec<String>,
}

/// `nird-agent plan`.
#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Sortie JSON (pour les scripts).
    #[arg(long)]
    pub json: bool,
}

/// `nird-agent apply`.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Appliquer tout de suite, même pendant une session ouverte.
    #[arg(long)]
    pub now: bool,
    /// Montrer ce qui serait fait, sans rien modifier.
    #[arg(long)]
    pub dry_run: bool,
    /// Rapports JSON (pour les scripts).
    #[arg(long)]
    pub json: bool,
}

/// Exit status of `apply` when the plan was deferred (EX_TEMPFAIL).
pub const EXIT_DEFERRED: u8 = 75;

fn options(paths: &AgentPaths, source: &SourceArgs) -> anyhow::Result<ApplyOptions> {
    let mut opts = ApplyOptions::new(paths.clone(), time::OffsetDateTime::now_utc());
    opts.maintenance = maintenance_windows(paths)?;
    if let Some(addr) = &source.bus {
        opts.bus = Bus::Address(addr.clone());
    }
    Ok(opts)
}

/// The `[maintenance] windows` of `agent.toml`, or the defaults when the
/// machine is not enrolled (offline use). Only the `[maintenance]` table is
/// read, with the same type and checks as the daemon's configuration
/// ([`crate::config::Maintenance`]): a plan from a USB key still works on a
/// machine whose other settings are incomplete.
fn maintenance_windows(paths: &AgentPaths) -> anyhow::Result<MaintenanceWindows> {
    /// `agent.toml` seen through its `[maintenance]` table alone.
    #[derive(serde::Deserialize)]
    struct MaintenanceOnly {
        #[serde(default)]
        maintenance: crate::config::Maintenance,
    }
    let file = paths.config_file();
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(MaintenanceWindows::default());
        }
        Err(e) => return Err(e).with_context(|| format!("lecture de {}", file.display())),
    };
    let config: MaintenanceOnly = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} invalide : {}",
            file.display(),
            crate::config::toml_error_fr(&text, &e)
        )
    })?;
    config
        .maintenance
        .parsed()
        .with_context(|| format!("{} : [maintenance] windows", file.display()))
}

fn source_and_assigned(
    paths: &AgentPaths,
    args: &SourceArgs,
) -> anyhow::Result<(DirectorySource, Vec<ProfileRef>)> {
    let dir = args.from.clone().unwrap_or_else(|| paths.cache_dir());
    let source = DirectorySource::new(dir);
    let names = if args.profiles.is_empty() {
        source.profile_names()?
    } else {
        args.profiles.clone()
    };
    if names.is_empty() {
        anyhow::bail!(
            "aucun profil dans {} (attendu : NOM.toml et NOM.toml.minisig)",
            source.dir.display()
        );
    }
    // The directory holds one release per profile; its version is read from
    // the signed file itself.
    let assigned = names
        .into_iter()
        .map(|name| ProfileRef { name, version: 0 })
        .collect();
    Ok((source, assigned))
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `nird-agent plan`: prints what would change. Exit status 0 when every
/// release is usable, 1 otherwise.
pub fn plan(paths: &AgentPaths, args: &PlanArgs) -> anyhow::Result<u8> {
    let opts = options(paths, &args.source)?;
    let (source, assigned) = source_and_assigned(paths, &args.source)?;
    let outcome = plan_assigned(&opts, &assigned, &source)?;
    if args.json {
        let value = serde_json::json!({
            "releases": outcome.releases.iter().map(verdict_json).collect::<Vec<_>>(),
            "plan": outcome.plan,
        });
        emit(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
    } else {
        emit(&render_plan(&outcome))?;
    }
    let all_ready = outcome
        .releases
        .iter()
        .all(|v| matches!(v, ReleaseVerdict::Ready { .. }));
    Ok(if all_ready { 0 } else { 1 })
}

fn verdict_json(v: &ReleaseVerdict) -> serde_json::Value {
    match v {
        ReleaseVerdict::Ready {
            profile,
            signed_by,
            unchanged,
        } => {
            serde_json::json!({"profile": profile, "status": "ready", "signed_by": signed_by, "unchanged": unchanged})
        }
        ReleaseVerdict::Refused {
            profile,
            reason,
            message,
        } => {
            serde_json::json!({"profile": profile, "status": "refused", "reason": reason, "message": message})
        }
        ReleaseVerdict::Unavailable { profile, message } => {
            serde_json::json!({"profile": profile, "status": "unavailable", "message": message})
        }
    }
}

/// The plan in French, for people.
pub fn render_plan(outcome: &PlanOutcome) -> String {
    let mut out = String::new();
    out.push_str("Profils :\n");
    for v in &outcome.releases {
        match v {
            ReleaseVerdict::Ready {
                profile, signed_by, ..
            } => out.push_str(&format!(
                "  ✓ {} version {} (signé par {signed_by})\n",
                profile.name, profile.version
            )),
            ReleaseVerdict::Refused {
                profile, message, ..
            } => out.push_str(&format!("  ✗ {} refusé : {message}\n", profile.name)),
            ReleaseVerdict::Unavailable { profile, message } => {
                out.push_str(&format!("  ? {} indisponible : {message}\n", profile.name))
            }
        }
    }
    let plan = &outcome.plan;
    let changes: Vec<_> = plan.changes().collect();
    if changes.is_empty() {
        out.push_str("Rien à changer.\n");
    } else {
        out.push_str(&format!("À changer ({}) :\n", changes.len()));
        for r in &changes {
            if let Verdict::Change {
                summary,
                disruptive,
            } = &r.verdict
            {
                let mark = if *disruptive { " [perturbant]" } else { "" };
                out.push_str(&format!("  ~ {} : {summary}{mark}\n", r.id));
            }
        }
    }
    let blocked: Vec<_> = plan.blocked().collect();
    if !blocked.is_empty() {
        out.push_str(&format!("Impossible ({}) :\n", blocked.len()));
        for r in blocked {
            if let Verdict::Blocked { reason } = &r.verdict {
                out.push_str(&format!("  ✗ {} : {reason}\n", r.id));
            }
        }
    }
    out.push_str(&format!("Déjà conformes : {}\n", plan.unchanged_count()));
    if plan.is_disruptive() {
        out.push_str(
            "Changements perturbants : ils attendront une fenêtre de maintenance si une session graphique est ouverte ou si logind ne répond pas (sauf avec --now).\n",
        );
    }
    out
}

/// `nird-agent apply`: applies in the foreground with a progress bar.
/// Exit status 0 when everything applied, 75 when deferred, 1 otherwise.
pub fn apply(paths: &AgentPaths, args: &ApplyArgs) -> anyhow::Result<u8> {
    let mut opts = options(paths, &args.source)?;
    opts.dry_run = args.dry_run;
    opts.ignore_lesson_guard = args.now;
    let (source, assigned) = source_and_assigned(paths, &args.source)?;
    let bar = if std::io::stderr().is_terminal() && !args.json {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut progress = |event: ProgressEvent| match event {
        ProgressEvent::Recovering => bar.println("Reprise d'une application interrompue…"),
        ProgressEvent::Planned { changes } => bar.set_length(changes as u64),
        ProgressEvent::Applying { id, .. } => bar.set_message(id),
        ProgressEvent::Done { .. } => bar.inc(1),
    };
    let reports = apply_assigned(&opts, &assigned, &source, &mut progress);
    bar.finish_and_clear();
    if args.json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&reports)?))?;
    } else {
        emit(&render_reports(&reports))?;
    }
    let code = if reports.iter().any(|r| r.outcome == ApplyOutcome::Deferred) {
        EXIT_DEFERRED
    } else if reports.iter().all(|r| r.outcome == ApplyOutcome::Applied) {
        0
    } else {
        1
    };
    Ok(code)
}

/// Reports in French, for people.
pub fn render_reports(reports: &[ApplyReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let outcome = match r.outcome {
            ApplyOutcome::Applied => "appliqué",
            ApplyOutcome::Refused => "refusé",
            ApplyOutcome::Failed => "échec",
            ApplyOutcome::Deferred => "reporté",
        };
        // Version 0: refused before its signed version could be read.
        if r.version > 0 {
            out.push_str(&format!("{} version {} : {outcome}", r.profile, r.version));
        } else {
            out.push_str(&format!("{} : {outcome}", r.profile));
        }
        if let Some(m) = &r.message {
            out.push_str(&format!(" — {m}"));
        }
        out.push('\n');
        let mut unchanged = 0;
        for res in &r.resources {
            let status = match res.status {
                ResourceStatus::Unchanged => {
                    unchanged += 1;
                    continue;
                }
                ResourceStatus::Changed => "modifié",
                ResourceStatus::Failed => "ÉCHEC",
            };
            out.push_str(&format!("  {status} {}", res.id));
            if let Some(m) = &res.message {
                out.push_str(&format!(" : {m}"));
            }
            out.push('\n');
        }
        if unchanged > 0 {
            out.push_str(&format!("  {unchanged} ressource(s) déjà conforme(s)\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `agent.toml` under a fresh root holding `text` (none when `None`).
    fn root_with_config(text: Option<&str>) -> (tempfile::TempDir, AgentPaths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = AgentPaths::new(dir.path());
        if let Some(text) = text {
            let file = paths.config_file();
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, text).unwrap();
        }
        (dir, paths)
    }

    #[test]
    fn maintenance_windows_come_from_the_maintenance_table_alone() {
        let (_dir, paths) = root_with_config(None);
        assert_eq!(
            maintenance_windows(&paths).unwrap(),
            MaintenanceWindows::default()
        );
        // Other settings are not needed (nor checked) to plan offline.
        let (_dir, paths) = root_with_config(Some(
            "server = \"?\"\n[maintenance]\nwindows = [\"sat-sun\"]\n",
        ));
        assert_eq!(
            maintenance_windows(&paths).unwrap(),
            MaintenanceWindows::parse_list(&["sat-sun"]).unwrap()
        );
        let (_dir, paths) = root_with_config(Some("server = \"?\"\n"));
        assert_eq!(
            maintenance_windows(&paths).unwrap(),
            MaintenanceWindows::default()
        );
    }

    #[test]
    fn a_bad_maintenance_table_is_an_error_not_the_defaults() {
        for text in [
            "[maintenance]\nwindows = [\"lundi midi\"]\n",
            "[maintenance]\nwindows = \"sat-sun\"\n",
            // A misspelt key is refused, as the daemon refuses it.
            "[maintenance]\nwindow = [\"sat-sun\"]\n",
        ] {
            let (_dir, paths) = root_with_config(Some(text));
            let err = maintenance_windows(&paths).unwrap_err();
            assert!(format!("{err:#}").contains("agent.toml"), "{text}: {err:#}");
        }
    }
}
