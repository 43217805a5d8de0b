//! systemd units and the lesson guard, against a private `dbus-daemon`
//! serving the systemd and logind methods the agent uses (real zbus
//! services that record calls and keep state).

mod apply_support;

use apply_support::dbus::{FakeSession, FakeUnit, Logind, PrivateBus, Systemd};
use apply_support::*;
use nird_agent::apply::{Bus, ProgressEvent, apply_assigned, plan_assigned};
use nird_proto::api::{ApplyOutcome, ProfileRef, ResourceStatus};

const SERVICES: &str = r#"[profile]
name = "services"
version = 1
expires = 2027-08-31
description = "Services du poste"
audience = "all"

[[unit]]
name = "ssh.service"
enablement = "enabled"
state = "running"

[[unit]]
name = "cups.service"
enablement = "masked"
state = "stopped"

[[unit]]
name = "avahi-daemon.service"
enablement = "disabled"

[[unit]]
name = "inconnu.service"
state = "running"

[[unit]]
name = "casse.service"
state = "running"

[[file]]
path = "/etc/systemd/system/nird.conf"
content = "[Manager]\n"
"#;

fn units() -> Vec<(&'static str, FakeUnit)> {
    let mut casse = FakeUnit::new("enabled", "inactive");
    casse.broken = true;
    vec![
        ("ssh.service", FakeUnit::new("disabled", "inactive")),
        ("cups.service", FakeUnit::new("enabled", "active")),
        ("avahi-daemon.service", FakeUnit::new("enabled", "active")),
        ("casse.service", casse),
    ]
}

fn assigned() -> Vec<ProfileRef> {
    vec![ProfileRef {
        name: "services".into(),
        version: 1,
    }]
}

#[test]
fn units_are_enabled_masked_started_and_stopped_over_dbus() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let systemd = Systemd::serve(&bus, &units());
    let signer = Signer::new();
    let releases = Releases::new();
    releases.publish(&signer, "services", SERVICES);
    let root = test_root(&signer);
    let mut opts = options(root.path());
    opts.bus = Bus::Address(bus.address.clone());
    let _logind = Logind::serve(&bus, &[]);

    let outcome = plan_assigned(&opts, &assigned(), &releases.source()).unwrap();
    assert!(outcome.plan.is_disruptive());
    assert!(systemd.changing_calls().is_empty(), "planning only reads");
    let blocked: Vec<_> = outcome.plan.blocked().map(|r| r.id.as_str()).collect();
    assert_eq!(blocked, ["unit:inconnu.service"]);

    // Nobody logged in: the disruptive plan runs.
    let mut events = Vec::new();
    let reports = apply_assigned(&opts, &assigned(), &releases.source(), &mut |e| {
        events.push(e)
    });
    let report = &reports[0];
    assert_eq!(report.outcome, ApplyOutcome::Failed);
    let status = |id: &str| {
        let r = report.resources.iter().find(|r| r.id == id).unwrap();
        (r.status, r.message.clone().unwrap_or_default())
    };
    assert_eq!(status("unit:ssh.service").0, ResourceStatus::Changed);
    assert_eq!(status("unit:cups.service").0, ResourceStatus::Changed);
    assert_eq!(
        status("unit:avahi-daemon.service").0,
        ResourceStatus::Changed
    );
    let (s, m) = status("unit:inconnu.service");
    assert_eq!(s, ResourceStatus::Failed);
    assert!(m.contains("introuvable"), "{m}");
    let (s, m) = status("unit:casse.service");
    assert_eq!(s, ResourceStatus::Failed);
    assert!(m.contains("failed"), "{m}");
    assert!(
        events.contains(&ProgressEvent::Planned { changes: 5 }),
        "{events:?}"
    );

    assert_eq!(
        systemd.changing_calls(),
        [
            // Units are handled in name order: enablement first...
            "DisableUnitFiles avahi-daemon.service",
            "MaskUnitFiles cups.service",
            "EnableUnitFiles ssh.service",
            // ...one daemon-reload after unit files and enablement changed...
            "Reload",
            // ...then start and stop jobs.
            "StartUnit casse.service replace",
            "StopUnit cups.service replace",
            "StartUnit ssh.service replace",
        ]
    );
    assert_eq!(
        systemd.unit("ssh.service"),
        FakeUnit::new("enabled", "active")
    );
    assert_eq!(
        systemd.unit("cups.service"),
        FakeUnit::new("masked", "inactive")
    );
    // Disabling does not stop: the profile did not ask for a state.
    assert_eq!(
        systemd.unit("avahi-daemon.service"),
        FakeUnit::new("disabled", "active")
    );

    // Converged: a second apply changes nothing on systemd.
    systemd.state.lock().unwrap().calls.clear();
    let reports = apply(&opts, &releases, &["services"]);
    assert_eq!(
        systemd.changing_calls(),
        ["StartUnit casse.service replace"],
        "only the broken unit is retried"
    );
    let unchanged = reports[0]
        .resources
        .iter()
        .filter(|r| r.status == ResourceStatus::Unchanged)
        .count();
    assert_eq!(unchanged, 4, "{:?}", reports[0]);
}

const LESSON: &str = r#"[profile]
name = "salle"
version = 1
expires = 2027-08-31
description = "Salle informatique"
audience = "école"

[[unit]]
name = "ssh.service"
state = "running"

[[file]]
path = "/etc/ecole/salle"
content = "salle 12\n"
"#;

const FILES_ONLY: &str = r#"[profile]
name = "salle"
version = 2
expires = 2027-08-31
description = "Salle informatique"
audience = "école"

[[file]]
path = "/etc/ecole/salle"
content = "salle 12\n"
"#;

fn pupil_session(kind: &str, class: &str, active: bool) -> FakeSession {
    FakeSession {
        id: "c2".into(),
        user: "eleve".into(),
        kind: kind.into(),
        class: class.into(),
        active,
    }
}

/// Runs the `salle` profile at `local` (UTC offset +1, like Paris in
/// winter) with the given sessions; returns the outcome and whether the
/// unit was started.
fn run_lesson(
    sessions: &[FakeSession],
    local: time::PrimitiveDateTime,
    now_flag: bool,
    profile: &str,
) -> (ApplyOutcome, Option<String>, bool, bool) {
    run_lesson_with(
        Some(sessions),
        local,
        |o| o.ignore_lesson_guard = now_flag,
        profile,
    )
}

/// As [`run_lesson`], `sessions` being `None` for a bus without logind.
fn run_lesson_with(
    sessions: Option<&[FakeSession]>,
    local: time::PrimitiveDateTime,
    tweak: impl FnOnce(&mut nird_agent::apply::ApplyOptions),
    profile: &str,
) -> (ApplyOutcome, Option<String>, bool, bool) {
    let bus = PrivateBus::start().expect("dbus-daemon");
    let systemd = Systemd::serve(
        &bus,
        &[("ssh.service", FakeUnit::new("enabled", "inactive"))],
    );
    let logind = sessions.map(|sessions| Logind::serve(&bus, sessions));
    let signer = Signer::new();
    let releases = Releases::new();
    releases.publish(&signer, "salle", profile);
    let root = test_root(&signer);
    let offset = time::UtcOffset::from_hms(1, 0, 0).unwrap();
    let mut opts = options(root.path());
    opts.bus = Bus::Address(bus.address.clone());
    opts.local_offset = offset;
    opts.now = local.assume_offset(offset);
    tweak(&mut opts);
    let before = snapshot(root.path());
    let reports = apply(&opts, &releases, &["salle"]);
    let started = systemd.unit("ssh.service").active_state == "active";
    let root_changed = snapshot(root.path()) != before;
    if reports[0].outcome == ApplyOutcome::Deferred {
        assert!(!root_changed, "a deferred apply changes nothing");
        assert!(systemd.changing_calls().is_empty());
        if let Some(logind) = &logind {
            assert!(!logind.calls.lock().unwrap().is_empty());
        }
    }
    (
        reports[0].outcome,
        reports[0].message.clone(),
        started,
        root_changed,
    )
}

#[test]
fn disruptive_changes_wait_for_the_maintenance_window_during_a_lesson() {
    if PrivateBus::start().is_none() {
        return;
    }
    use time::macros::datetime;
    let lesson = [pupil_session("x11", "user", true)];
    // Monday 10:00 local, a pupil logged in: deferred, nothing touched.
    let (outcome, message, started, changed) =
        run_lesson(&lesson, datetime!(2026-11-23 10:00), false, LESSON);
    assert_eq!(outcome, ApplyOutcome::Deferred);
    assert!(!started && !changed);
    let message = message.unwrap();
    assert!(
        message.contains("session graphique ouverte (eleve)"),
        "{message}"
    );
    assert!(message.contains("lundi 12:00"), "{message}");

    // Lunch break: inside the default window.
    let (outcome, _, started, _) = run_lesson(&lesson, datetime!(2026-11-23 12:15), false, LESSON);
    assert_eq!(outcome, ApplyOutcome::Applied);
    assert!(started);

    // `--now` overrides the guard.
    let (outcome, _, started, _) = run_lesson(&lesson, datetime!(2026-11-23 10:00), true, LESSON);
    assert_eq!(outcome, ApplyOutcome::Applied);
    assert!(started);

    // A greeter, a text console or a session switched away is no lesson.
    for s in [
        pupil_session("x11", "greeter", true),
        pupil_session("tty", "user", true),
        pupil_session("wayland", "user", false),
    ] {
        let (outcome, _, started, _) = run_lesson(
            std::slice::from_ref(&s),
            datetime!(2026-11-23 10:00),
            false,
            LESSON,
        );
        assert_eq!(outcome, ApplyOutcome::Applied, "{s:?}");
        assert!(started);
    }

    // A dry run during the lesson says it would wait, and changes nothing.
    let (outcome, message, started, changed) = run_lesson_with(
        Some(&lesson),
        datetime!(2026-11-23 10:00),
        |o| o.dry_run = true,
        LESSON,
    );
    assert_eq!(outcome, ApplyOutcome::Deferred);
    assert!(message.unwrap().contains("fenêtre de maintenance"));
    assert!(!started && !changed);

    // A pupil logging out between the list and its properties does not
    // hide the others' lesson (found by review: the whole list was then
    // unknown, read as « nobody »).
    let mut gone = pupil_session("x11", "gone", true);
    gone.id = "c1".into();
    let (outcome, _, started, _) = run_lesson(
        &[gone, pupil_session("x11", "user", true)],
        datetime!(2026-11-23 10:00),
        false,
        LESSON,
    );
    assert_eq!(outcome, ApplyOutcome::Deferred);
    assert!(!started);

    // A session that cannot be read (not one that ended) leaves the list
    // unknown: the plan waits too (found by review: it was skipped, and
    // with every read failing the list read as « nobody »).
    let (outcome, message, started, _) = run_lesson(
        &[pupil_session("x11", "refused", true)],
        datetime!(2026-11-23 10:00),
        false,
        LESSON,
    );
    assert_eq!(outcome, ApplyOutcome::Deferred);
    assert!(message.unwrap().contains("logind ne répond pas"));
    assert!(!started);

    // When logind does not answer, nobody can say whether a lesson is going
    // on: the plan waits for the window (found by review: it used to run at
    // once), and runs in it, so the machine still converges.
    let (outcome, message, started, changed) =
        run_lesson_with(None, datetime!(2026-11-23 10:00), |_| {}, LESSON);
    assert_eq!(outcome, ApplyOutcome::Deferred);
    let message = message.unwrap();
    assert!(message.contains("logind ne répond pas"), "{message}");
    assert!(message.contains("(lundi 12:00)"), "{message}");
    assert!(!started && !changed);
    let (outcome, _, started, _) =
        run_lesson_with(None, datetime!(2026-11-23 12:15), |_| {}, LESSON);
    assert_eq!(outcome, ApplyOutcome::Applied);
    assert!(started);

    // With no system bus at all (no socket) there is no desktop, so no
    // lesson (the packaging test's chroot has none); a bus that is there
    // but refuses the connection (its daemon restarting) may serve one, so
    // the plan would wait (found by review).
    use nird_agent::apply::guard::{SessionsError, graphical_sessions};
    let absent = graphical_sessions(&Bus::Address("unix:path=/nonexistent/nird-bus".into()));
    assert!(matches!(absent, Err(SessionsError::NoBus(_))), "{absent:?}");
    let not_a_socket = tempfile::NamedTempFile::new().unwrap();
    let refusing = graphical_sessions(&Bus::Address(format!(
        "unix:path={}",
        not_a_socket.path().display()
    )));
    assert!(
        matches!(refusing, Err(SessionsError::Unknown(_))),
        "{refusing:?}"
    );

    // A non-disruptive plan (a file only) is applied during the lesson.
    let (outcome, _, _, changed) =
        run_lesson(&lesson, datetime!(2026-11-23 10:00), false, FILES_ONLY);
    assert_eq!(outcome, ApplyOutcome::Applied);
    assert!(changed);
}
