//! Crash safety for real: `nird-agent apply` is killed with SIGKILL at
//! various moments of a long apply (a power cut, as far as the files are
//! concerned), then run again. Whatever the moment, the second run converges:
//! every file has its full content, no temporary file is left, the accounts
//! files are whole, the journal is gone and the floor is recorded.

mod apply_support;

use std::time::Duration;

use apply_support::*;
use nird_agent::apply::plan_assigned;
use nird_proto::api::{ApplyOutcome, ProfileRef};

const FILES: usize = 100;
const USERS: usize = 20;
/// When to kill: before the process has done anything, then spread over
/// the apply.
const DELAYS_MS: [u64; 7] = [0, 20, 35, 50, 75, 110, 160];

fn big_profile() -> String {
    let mut text = String::from(
        "[profile]\nname = \"gros\"\nversion = 7\nexpires = 2027-08-31\ndescription = \"Beaucoup de fichiers\"\naudience = \"all\"\n\n[[group]]\nname = \"eleves\"\n",
    );
    for i in 0..USERS {
        text.push_str(&format!(
            "\n[[user]]\nname = \"eleve{i:02}\"\ngroups = [\"eleves\"]\npassword = \"empty\"\n"
        ));
    }
    for i in 0..FILES {
        text.push_str(&format!(
            "\n[[file]]\npath = \"/srv/docs/{:02}/doc{i:03}.txt\"\ncontent = \"{}\"\ngroup = \"eleves\"\nmode = \"0640\"\n",
            i % 10,
            format!("document {i} ").repeat(150)
        ));
    }
    text
}

fn leftovers(dir: &std::path::Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if path.is_dir() && !path.is_symlink() {
            leftovers(&path, out);
        } else if e.file_name().to_string_lossy().ends_with(".nird-tmp") {
            out.push(path.display().to_string());
        }
    }
}

#[test]
fn an_apply_killed_at_any_moment_converges_on_the_next_run() {
    let signer = Signer::new();
    let releases = Releases::for_real_clock();
    let profile = big_profile();
    releases.publish(&signer, "gros", &profile);
    let bin = env!("CARGO_BIN_EXE_nird-agent");
    let mut interrupted_mid_way = 0;
    for delay_ms in DELAYS_MS {
        let root = test_root(&signer);
        let r = root.path();
        let mut child = std::process::Command::new(bin)
            .arg("--root")
            .arg(r)
            .args(["apply", "--from"])
            .arg(releases.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let opts = options(r);
        let journal_left = opts.paths.journal_file().exists();
        if journal_left {
            interrupted_mid_way += 1;
        }

        let reports = apply(&opts, &releases, &["gros"]);
        assert_eq!(
            reports[0].outcome,
            ApplyOutcome::Applied,
            "after a kill at {delay_ms} ms ({status}): {:?}",
            reports[0]
        );
        let outcome = plan_assigned(
            &opts,
            &[ProfileRef {
                name: "gros".into(),
                version: 7,
            }],
            &releases.source(),
        )
        .unwrap();
        assert_eq!(
            outcome.plan.changes().count(),
            0,
            "converged after {delay_ms} ms"
        );
        for i in (0..FILES).step_by(37) {
            let text =
                std::fs::read_to_string(r.join(format!("srv/docs/{:02}/doc{i:03}.txt", i % 10)))
                    .unwrap();
            assert_eq!(text, format!("document {i} ").repeat(150));
        }
        let mut left = Vec::new();
        leftovers(r, &mut left);
        assert!(
            left.is_empty(),
            "temporary files left after {delay_ms} ms: {left:?}"
        );
        assert!(!opts.paths.journal_file().exists());
        let passwd = std::fs::read_to_string(r.join("etc/passwd")).unwrap();
        for i in 0..USERS {
            let name = format!("eleve{i:02}:");
            assert_eq!(
                passwd.lines().filter(|l| l.starts_with(&name)).count(),
                1,
                "{passwd}"
            );
        }
        assert!(
            passwd.lines().all(|l| l.split(':').count() == 7),
            "{passwd}"
        );
        let state =
            nird_agent::apply::state::AppliedState::load(&opts.paths.applied_file()).unwrap();
        assert_eq!(state.floor("gros"), Some(7));
    }
    // Not a timing assertion: only a note of how many kills landed inside
    // the apply on this machine (the convergence checks above hold for all).
    eprintln!(
        "{interrupted_mid_way} of {} kills interrupted an apply in progress",
        DELAYS_MS.len()
    );
}
