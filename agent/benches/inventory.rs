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

/// Largest resident set of any child process waited for so far, in KiB.
fn children_max_rss_kib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `struct rusage` into the pointer it is
    // given, which points to one of the right size and alignment.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage failed");
    // SAFETY: initialised by the successful call above.
    unsafe { usage.assume_init() }.ru_maxrss
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

    // Warm the page cache like a running system would have it.
    for _ in 0..3 {
        run_once();
    }
    let mut walls = Vec::with_capacity(runs);
    for _ in 0..runs {
        walls.push(run_once());
    }
    println!("wall `nird-agent inventory --json`: {}", stats(walls));
    println!(
        "peak RSS `nird-agent inventory --json`: {} KiB (max over runs, getrusage RUSAGE_CHILDREN)",
        children_max_rss_kib()
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

fn run_once() -> Duration {
    let t = Instant::now();
    let status = Command::new(AGENT)
        .args(["inventory", "--json"])
        .stdout(Stdio::null())
        .status()
        .expect("run nird-agent");
    let elapsed = t.elapsed();
    assert!(status.success());
    elapsed
}
