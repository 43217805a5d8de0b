//! The Windows 11 CPU verdict on real processors: identifications (model
//! name, CPUID family / model / stepping) from public hardware probes, with
//! the Microsoft list entry each one is expected to match, found
//! independently of `normalize_cpu_name` (see the fixture's header).
//!
//! Checks that every listed processor is found under its real brand string
//! and decided by the list, that the others fall back to the family / model
//! rule and say so, and prints how often the old rule alone agreed with the
//! list (quoted in BENCHMARKS.md).
//!
//! `NIRD_CPU_CORPUS=file.tsv cargo test -p nird-proto --test
//! windows11_cpu_corpus -- --ignored --nocapture` prints the same figures for
//! a larger corpus in the same format (its `listed_as` column may be `?`).

use nird_proto::inventory::windows11::{
    CpuBasis, cpu_requirement, cpu_supported, microsoft_cpu_list,
};

const FIXTURE: &str = include_str!("fixtures/windows11-cpu-corpus.tsv");
const LIST: &str = include_str!("../data/windows11-cpus.tsv");

struct Cpu {
    line: usize,
    vendor: String,
    name: String,
    family: u32,
    model: u32,
    stepping: u32,
    /// `Some(entry)`: expected to match that list line; `Some("")` for `-`
    /// (expected not listed); `None` for `?` (not known).
    listed_as: Option<String>,
    /// "random" (drawn at random from the source) or "edge" (hand-picked).
    group: String,
}

fn parse(text: &str) -> Vec<Cpu> {
    let mut cpus = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        assert!(f.len() >= 7, "line {}: {line:?}", i + 1);
        let num = |s: &str| -> u32 {
            s.parse()
                .unwrap_or_else(|_| panic!("line {}: bad number {s:?}", i + 1))
        };
        cpus.push(Cpu {
            line: i + 1,
            vendor: f[0].to_string(),
            name: f[1].to_string(),
            family: num(f[2]),
            model: num(f[3]),
            stepping: num(f[4]),
            listed_as: match f[5] {
                "?" => None,
                "-" => Some(String::new()),
                entry => Some(entry.to_string()),
            },
            group: f[6].to_string(),
        });
    }
    cpus
}

#[derive(Default, Debug)]
struct Figures {
    total: usize,
    listed: usize,
    /// Listed processors the family / model rule also calls supported.
    rule_agrees_listed: usize,
    /// Unlisted processors the rule calls unsupported.
    rule_agrees_unlisted: usize,
    /// Unlisted processors the rule calls supported (newer than the list,
    /// or parts Microsoft left out).
    rule_says_yes_unlisted: usize,
    /// Processors the rule cannot judge.
    rule_unknown: usize,
    /// Not on the list: decided by the rule (estimate) or unknown.
    fell_back: usize,
}

/// Checks every processor and counts the figures. Processors whose
/// `listed_as` is known must be found on (or absent from) the list as
/// expected.
fn run<'a>(cpus: impl IntoIterator<Item = &'a Cpu>) -> Figures {
    let list = microsoft_cpu_list();
    let retrieved = list.retrieved().to_string();
    let mut fig = Figures::default();
    let mut wrong = Vec::new();
    for c in cpus {
        let vendor = Some(c.vendor.as_str());
        let (ok, basis) = cpu_requirement(
            vendor,
            Some(c.family),
            Some(c.model),
            Some(c.stepping),
            Some(&c.name),
        );
        let rule = cpu_supported(
            vendor,
            Some(c.family),
            Some(c.model),
            Some(c.stepping),
            Some(&c.name),
        );
        let on_list = matches!(basis, CpuBasis::MicrosoftList { .. });
        if let Some(expected) = &c.listed_as {
            let expected_listed = !expected.is_empty();
            if on_list != expected_listed {
                wrong.push(format!(
                    "line {}: {:?} expected {}",
                    c.line,
                    c.name,
                    if expected_listed {
                        format!("listed as {expected:?}")
                    } else {
                        "not listed".into()
                    }
                ));
            }
        }
        fig.total += 1;
        if rule.is_none() {
            fig.rule_unknown += 1;
        }
        if on_list {
            fig.listed += 1;
            // The list's answer, and its date.
            assert_eq!(ok, Some(true), "line {}: {:?}", c.line, c.name);
            assert_eq!(
                basis,
                CpuBasis::MicrosoftList {
                    retrieved: retrieved.clone()
                },
                "line {}",
                c.line
            );
            if rule == Some(true) {
                fig.rule_agrees_listed += 1;
            }
        } else {
            fig.fell_back += 1;
            // The fallback is the rule, labelled as such.
            assert_eq!(ok, rule, "line {}: {:?}", c.line, c.name);
            let want = if rule.is_some() {
                CpuBasis::Estimate
            } else {
                CpuBasis::Unknown
            };
            assert_eq!(basis, want, "line {}: {:?}", c.line, c.name);
            match rule {
                Some(false) => fig.rule_agrees_unlisted += 1,
                Some(true) => fig.rule_says_yes_unlisted += 1,
                None => {}
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} processors found on / missing from the list against expectation:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    fig
}

fn report(what: &str, fig: &Figures) {
    let agreed = fig.rule_agrees_listed + fig.rule_agrees_unlisted;
    println!(
        "{what}: {} processors, {} on Microsoft's list (copy of {}).\n\
         family/model rule alone: agreed with the list on {agreed} of {} \
         ({} of {} listed called supported; {} of {} unlisted called unsupported, \
         {} unlisted called supported, {} not judged).\n\
         list-based verdict: the list's answer on all {} listed; {} not on the list fell back \
         to the rule (estimate or unknown).",
        fig.total,
        fig.listed,
        microsoft_cpu_list().retrieved(),
        fig.total,
        fig.rule_agrees_listed,
        fig.listed,
        fig.rule_agrees_unlisted,
        fig.total - fig.listed,
        fig.rule_says_yes_unlisted,
        fig.rule_unknown,
        fig.listed,
        fig.fell_back,
    );
}

#[test]
fn verdict_follows_microsofts_list_on_real_processors() {
    let cpus = parse(FIXTURE);
    assert!(cpus.len() >= 100, "corpus of {} only", cpus.len());
    // The expectations name real lines of the data file.
    let entries: Vec<&str> = LIST
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t').map(|(_, name)| name))
        .collect();
    for c in &cpus {
        if let Some(expected) = c.listed_as.as_deref().filter(|e| !e.is_empty()) {
            assert!(
                entries.contains(&expected),
                "line {}: {expected:?} is not a line of the list",
                c.line
            );
        }
    }
    let fig = run(&cpus);
    for group in ["random", "edge"] {
        let part: Vec<&Cpu> = cpus.iter().filter(|c| c.group == group).collect();
        assert!(!part.is_empty(), "no {group:?} rows");
        report(&format!("fixture, {group} rows"), &run(part));
    }
    report("fixture, all rows", &fig);
    assert!(fig.listed > 0 && fig.fell_back > 0, "{fig:?}");
    // The cases that motivated the list: listed, and the rule said no.
    for name in [
        "Intel(R) Core(TM) i7-7820HQ CPU @ 2.90GHz",
        "Intel(R) Core(TM) m3-8100Y CPU @ 1.10GHz",
    ] {
        let c = cpus
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} missing from the corpus"));
        assert_eq!(
            cpu_supported(
                Some(&c.vendor),
                Some(c.family),
                Some(c.model),
                Some(c.stepping),
                Some(name)
            ),
            Some(false),
            "{name}"
        );
    }
}

#[test]
#[ignore = "needs NIRD_CPU_CORPUS=<tsv>"]
fn figures_on_a_larger_corpus() {
    let path = std::env::var("NIRD_CPU_CORPUS").expect("set NIRD_CPU_CORPUS");
    let text = std::fs::read_to_string(&path).expect("read NIRD_CPU_CORPUS");
    let cpus = parse(&text);
    let fig = run(&cpus);
    report(&path, &fig);
}

#[test]
#[ignore = "needs NIRD_CPU_CORPUS=<tsv>; lists the disagreements"]
fn disagreements_on_a_larger_corpus() {
    let path = std::env::var("NIRD_CPU_CORPUS").expect("set NIRD_CPU_CORPUS");
    let text = std::fs::read_to_string(&path).expect("read NIRD_CPU_CORPUS");
    for c in parse(&text) {
        let vendor = Some(c.vendor.as_str());
        let (_, basis) = cpu_requirement(
            vendor,
            Some(c.family),
            Some(c.model),
            Some(c.stepping),
            Some(&c.name),
        );
        let rule = cpu_supported(
            vendor,
            Some(c.family),
            Some(c.model),
            Some(c.stepping),
            Some(&c.name),
        );
        let on_list = matches!(basis, CpuBasis::MicrosoftList { .. });
        if on_list != (rule == Some(true)) {
            println!(
                "{}\t{}\t{}-{}-{}\trule {:?}",
                if on_list { "listed" } else { "unlisted" },
                c.name,
                c.family,
                c.model,
                c.stepping,
                rule
            );
        }
    }
}
