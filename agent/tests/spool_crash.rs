//! Crash safety of the spool: a writer process killed with SIGKILL at
//! arbitrary points (mid-write, mid-rename, mid-delete) leaves a spool that
//! reopens cleanly: every entry complete and readable, sequence numbers
//! strictly increasing and never reused.
//!
//! The writer is this test binary re-executed with `NIRD_SPOOL_CRASH_DIR`
//! set (the `writer` test below does nothing otherwise).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nird_agent::spool::{Spool, SpoolLimits};
use nird_proto::api::{ApplyOutcome, ApplyReport};

fn report(i: u64) -> ApplyReport {
    let t = time::OffsetDateTime::UNIX_EPOCH;
    ApplyReport {
        seq: 0,
        profile: format!("p{i}"),
        version: i,
        outcome: ApplyOutcome::Applied,
        reason: None,
        message: Some("x".repeat((i % 50) as usize)),
        resources: vec![],
        started_at: t,
        finished_at: t,
    }
}

/// The child's job: push reports and acknowledge old ones, forever.
#[test]
fn writer() {
    let Ok(dir) = std::env::var("NIRD_SPOOL_CRASH_DIR") else {
        return;
    };
    let mut spool = Spool::open(dir.as_ref(), SpoolLimits::default()).unwrap();
    let mut i = 0;
    loop {
        i += 1;
        let seq = spool.push_report(report(i)).unwrap();
        if i % 7 == 0 {
            spool
                .push_inventory(&serde_json::json!({ "i": i }), "h")
                .unwrap();
        }
        if i % 10 == 0 {
            spool.ack_reports(seq.saturating_sub(20)).unwrap();
        }
    }
}

#[test]
fn a_killed_writer_leaves_a_consistent_spool() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut highest_seen = 0;
    for round in 0..8u64 {
        let mut child = Command::new(&exe)
            .args(["writer", "--exact", "--nocapture"])
            .env("NIRD_SPOOL_CRASH_DIR", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until it is writing (however loaded the machine), let it go
        // on for a varying while, then kill it wherever it is.
        let seq_file = dir.path().join("seq");
        let written = || {
            std::fs::read_to_string(&seq_file)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while written() < highest_seen + 20 {
            assert!(
                Instant::now() < deadline,
                "round {round}: the writer never wrote"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(3 * round));
        child.kill().unwrap();
        child.wait().unwrap();

        let mut spool = Spool::open(dir.path(), SpoolLimits::default()).unwrap();
        let reports = spool.pending_reports(usize::MAX).unwrap();
        let seqs: Vec<u64> = reports.iter().map(|r| r.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        // Reopening never goes back: numbers are never reused.
        assert!(spool.last_seq() >= highest_seen, "seq went back");
        assert!(seqs.last().is_none_or(|s| *s <= spool.last_seq()));
        highest_seen = spool.last_seq();
        let next = spool.push_report(report(0)).unwrap();
        assert_eq!(next, highest_seen + 1);
        highest_seen = next;
        // Nothing was half-written: no entry was set aside as corrupt, and
        // the leftover temporary files were cleaned at open.
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".corrupt"), "corrupt entry {name}");
            assert!(!name.contains(".tmp-"), "leftover {name}");
        }
    }
    // The writers did write (8 of the numbers are the test's own).
    assert!(highest_seen > 100, "only {highest_seen} entries written");
}
