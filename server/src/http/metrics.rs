//! `/metrics` in the Prometheus text format: requests by route and status,
//! request latency histograms by route, machines by status, inventories
//! received by form.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Latency histogram of one route.
#[derive(Default)]
struct Histogram {
    /// Count per bucket (not cumulative; summed when rendered).
    buckets: [u64; BUCKETS.len()],
    /// Requests slower than the last bucket.
    overflow: u64,
    /// Sum of latencies, seconds.
    sum: f64,
}

/// What the counters hold.
#[derive(Default)]
struct Counters {
    /// Requests by (route, status code).
    requests: BTreeMap<(String, u16), u64>,
    /// Latency by route.
    latency: BTreeMap<String, Histogram>,
    /// Check-in inventories by form ([`InventoryForm`]).
    inventories: BTreeMap<&'static str, u64>,
}

/// How a check-in carried its inventory.
#[derive(Debug, Clone, Copy)]
pub enum InventoryForm {
    /// The whole document.
    Document,
    /// A delta the server applied.
    Delta,
    /// A delta the server could not apply: it asked for the document.
    DeltaRefused,
}

impl InventoryForm {
    fn label(self) -> &'static str {
        match self {
            InventoryForm::Document => "document",
            InventoryForm::Delta => "delta",
            InventoryForm::DeltaRefused => "delta_refused",
        }
    }
}

/// Request counters shared by every connection.
#[derive(Default)]
pub struct Metrics {
    /// One lock for everything: a few hundred nanoseconds per request.
    counters: Mutex<Counters>,
}

impl Metrics {
    /// Records one finished request.
    pub fn record(&self, route: &str, status: u16, elapsed: Duration) {
        let Ok(mut c) = self.counters.lock() else {
            return;
        };
        *c.requests.entry((route.to_owned(), status)).or_default() += 1;
        let secs = elapsed.as_secs_f64();
        let h = c.latency.entry(route.to_owned()).or_default();
        h.sum += secs;
        match BUCKETS.iter().position(|b| secs <= *b) {
            Some(i) => h.buckets[i] += 1,
            None => h.overflow += 1,
        }
    }

    /// Records the form of an inventory a check-in carried.
    pub fn record_inventory(&self, form: InventoryForm) {
        if let Ok(mut c) = self.counters.lock() {
            *c.inventories.entry(form.label()).or_default() += 1;
        }
    }

    /// The Prometheus text exposition, with the machine counts and the
    /// database's (commits, writes) given.
    pub fn render(&self, machines: &[(&str, u64)], commits: (u64, u64)) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP nird_db_commits_total Database transactions committed (one WAL fsync each).\n",
        );
        out.push_str("# TYPE nird_db_commits_total counter\n");
        let _ = writeln!(out, "nird_db_commits_total {}", commits.0);
        out.push_str(
            "# HELP nird_db_writes_total Writes carried by those transactions (group commit).\n",
        );
        out.push_str("# TYPE nird_db_writes_total counter\n");
        let _ = writeln!(out, "nird_db_writes_total {}", commits.1);
        out.push_str("# HELP nird_machines Machines known to the server, by status.\n");
        out.push_str("# TYPE nird_machines gauge\n");
        for (status, n) in machines {
            let _ = writeln!(out, "nird_machines{{status=\"{status}\"}} {n}");
        }
        let Ok(c) = self.counters.lock() else {
            return out;
        };
        out.push_str("# HELP nird_http_requests_total HTTP requests, by route and status.\n");
        out.push_str("# TYPE nird_http_requests_total counter\n");
        for ((route, status), n) in &c.requests {
            let _ = writeln!(
                out,
                "nird_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP nird_http_request_duration_seconds HTTP request latency, by route.\n");
        out.push_str("# TYPE nird_http_request_duration_seconds histogram\n");
        for (route, h) in &c.latency {
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.buckets.iter()) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "nird_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let total = cumulative + h.overflow;
            let _ = writeln!(
                out,
                "nird_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {total}"
            );
            let _ = writeln!(
                out,
                "nird_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "nird_http_request_duration_seconds_count{{route=\"{route}\"}} {total}"
            );
        }
        out.push_str(
            "# HELP nird_checkin_inventories_total Inventories check-ins carried: whole documents, deltas applied, deltas refused (base unknown or result not matching its hash).\n",
        );
        out.push_str("# TYPE nird_checkin_inventories_total counter\n");
        for form in [
            InventoryForm::Document,
            InventoryForm::Delta,
            InventoryForm::DeltaRefused,
        ] {
            let label = form.label();
            let n = c.inventories.get(label).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "nird_checkin_inventories_total{{form=\"{label}\"}} {n}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_match() {
        let m = Metrics::default();
        m.record("/a", 200, Duration::from_micros(500));
        m.record("/a", 200, Duration::from_millis(30));
        m.record("/a", 401, Duration::from_secs(10));
        m.record_inventory(InventoryForm::Delta);
        m.record_inventory(InventoryForm::Delta);
        let text = m.render(&[("active", 3)], (2, 7));
        assert!(text.contains("nird_db_writes_total 7\n"));
        assert!(text.contains("nird_checkin_inventories_total{form=\"delta\"} 2\n"));
        assert!(text.contains("nird_checkin_inventories_total{form=\"document\"} 0\n"));
        assert!(text.contains("nird_machines{status=\"active\"} 3"));
        assert!(text.contains("nird_http_requests_total{route=\"/a\",status=\"200\"} 2"));
        assert!(text.contains("le=\"0.001\"} 1\n"));
        assert!(text.contains("le=\"0.05\"} 2\n"));
        assert!(text.contains("le=\"+Inf\"} 3\n"));
        assert!(text.contains("nird_http_request_duration_seconds_count{route=\"/a\"} 3"));
    }
}
