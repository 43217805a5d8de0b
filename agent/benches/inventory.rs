//! Inventory benchmark: wall time and peak RSS of the release binary
//! (`nird-agent inventory --json`, repeated runs), in-process collection
//! time, and the size of the JSON document raw and gzip-compressed.
//!
//! ```text
//! cargo bench -p nird-agent --bench inventory            # 50 runs
//! NIRD_BENCH_RUNS=200 cargo bench -p nird-agent --bench inventory
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nird_agent::inventory::{CollectOptions, collect};

const AGENT: &str = env!("CARGO_BIN_EXE_nird-agent");

fn stats(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "min {:.2} ms, median {:.2} ms, p95 {:.2} ms, max {:.2} ms ({} runs)",
        ms(samples[0]),
        ms(pick(0.5)),
        ms(pick(0.95)),
        ms(samples[samples.len() - 1]),
        samples.len()
    )
}

/// Runs the binary once with `args`; returns its wall time and peak RSS
/// (KiB), read with wait4 for that one child.
fn run_once(args: &[&str]) -> (Duration, i64) {
    let t = Instant::now();
    let child = Command::new(AGENT)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("run nird-agent");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: wait4 writes the exit status and a `struct rusage` into the
    // pointers it is given, both valid and of the right type. The child is
    // reaped here, so `child` is never waited on again.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()) };
    let elapsed = t.elapsed();
    assert_eq!(rc, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "nird-agent failed"
    );
    drop(child);
    // SAFETY: initialised by the successful wait4 above.
    (elapsed, unsafe { usage.assume_init() }.ru_maxrss)
}

/// Times `runs` runs of the binary with `args` and prints wall time and RSS.
fn bench_binary(label: &str, args: &[&str], runs: usize) {
    // Warm the page cache like a running system would have it.
    for _ in 0..3 {
        run_once(args);
    }
    let (walls, rss): (Vec<Duration>, Vec<i64>) = (0..runs).map(|_| run_once(args)).unzip();
    println!("wall {label}: {}", stats(walls));
    let mut rss = rss;
    rss.sort();
    println!(
        "peak RSS {label}: median {} KiB, max {} KiB",
        rss[rss.len() / 2],
        rss[rss.len() - 1]
    );
}

/// A root holding only a dpkg status database of `n` packages with
/// realistic stanzas (about 1.1 kB each, as on a Linux Mint desktop).
fn big_dpkg_root(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("var/lib/dpkg/status");
    std::fs::create_dir_all(status.parent().unwrap()).unwrap();
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "Package: package-{i}\nStatus: install ok installed\nPriority: optional\n\
             Section: misc\nInstalled-Size: {}\nMaintainer: Debian Developers <debian@example.org>\n\
             Architecture: amd64\nVersion: 1.{i}.0-1\nDepends: libc6 (>= 2.34), libglib2.0-0 (>= 2.56)\n\
             Description: package number {i}\n {}\n\n",
            100 + i,
            "a long description line of the kind dpkg keeps for every package ".repeat(12)
        ));
    }
    std::fs::write(status, text).unwrap();
    dir
}

fn gzip_len(bytes: &[u8]) -> usize {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap().len()
}

fn sizes(label: &str, options: &CollectOptions) {
    let inv = collect(options);
    let compact = serde_json::to_vec(&inv).unwrap();
    let pretty = serde_json::to_vec_pretty(&inv).unwrap();
    println!(
        "json size {label}: {} B compact ({} B gzip), {} B pretty ({} B gzip)",
        compact.len(),
        gzip_len(&compact),
        pretty.len(),
        gzip_len(&pretty)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let runs: usize = std::env::var("NIRD_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .max(1);
    println!("binary: {AGENT}");

    bench_binary(
        "`nird-agent inventory --json`",
        &["inventory", "--json"],
        runs,
    );
    let big = big_dpkg_root(2_500);
    let big_root = big.path().to_str().unwrap();
    let size = std::fs::metadata(big.path().join("var/lib/dpkg/status"))
        .unwrap()
        .len();
    bench_binary(
        &format!("`--root R inventory --json`, R = 2,500-package dpkg status ({size} B)"),
        &["--root", big_root, "inventory", "--json"],
        runs.min(20),
    );

    let options = CollectOptions::default();
    let mut inproc = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(collect(&options));
        inproc.push(t.elapsed());
    }
    println!("in-process collect(): {}", stats(inproc));

    sizes("this machine", &options);
    let laptop = CollectOptions {
        root: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/laptop-t430"),
        ..CollectOptions::default()
    };
    sizes("fixture laptop-t430 (typical school laptop)", &laptop);
}
