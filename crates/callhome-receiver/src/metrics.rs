//! The receiver's Prometheus metrics: uploads by result, bytes received, an upload latency
//! histogram (counted in this process, lock-free) and installs by compliance state (asked of
//! the index at each scrape, so every replica reports the whole fleet). Rendered as the
//! Prometheus text format, like the agent's `/metrics`; served by [`crate::http`].

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::fleet::State;

/// How an upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new bundle, receipted (201).
    Accepted,
    /// A bundle already held, its receipt again (200).
    Duplicate,
    /// Refused for good or until the sender fixes something (4xx other than 429).
    Refused,
    /// Asked to come back later (429, 503).
    Throttled,
    /// The receiver failed (other 5xx).
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 5] =
        [Outcome::Accepted, Outcome::Duplicate, Outcome::Refused, Outcome::Throttled, Outcome::Failed];

    fn name(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Refused => "refused",
            Outcome::Throttled => "throttled",
            Outcome::Failed => "failed",
        }
    }

    /// The outcome an answer's status stands for.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            201 => Outcome::Accepted,
            200..=299 => Outcome::Duplicate,
            429 | 503 => Outcome::Throttled,
            400..=499 => Outcome::Refused,
            _ => Outcome::Failed,
        }
    }
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The counters of one receiver process.
#[derive(Default)]
pub struct Metrics {
    uploads: [AtomicU64; 5],
    bytes: AtomicU64,
    /// Per bucket (non-cumulative), the last one `+Inf`.
    latency: [AtomicU64; BUCKETS.len() + 1],
    latency_micros: AtomicU64,
}

impl Metrics {
    /// Counts one upload that ended with `outcome` after `took`.
    pub fn upload(&self, outcome: Outcome, took: Duration) {
        self.uploads[outcome as usize].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let bucket = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts body bytes received.
    pub fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text, with `installs` per compliance state.
    pub fn render(&self, installs: &[(State, u64)]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP callhome_receiver_uploads_total Bundle uploads by result.\n# TYPE callhome_receiver_uploads_total counter"
        );
        for o in Outcome::ALL {
            let n = self.uploads[o as usize].load(Ordering::Relaxed);
            let _ = writeln!(out, "callhome_receiver_uploads_total{{result=\"{}\"}} {n}", o.name());
        }
        let _ = writeln!(
            out,
            "# HELP callhome_receiver_upload_bytes_total Bytes of upload bodies received.\n# TYPE callhome_receiver_upload_bytes_total counter\ncallhome_receiver_upload_bytes_total {}",
            self.bytes.load(Ordering::Relaxed)
        );
        let name = "callhome_receiver_upload_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Time from an upload's headers to its answer.\n# TYPE {name} histogram");
        let mut total = 0u64;
        for (i, b) in BUCKETS.iter().enumerate() {
            total += self.latency[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {total}");
        }
        total += self.latency[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.latency_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
        let _ = writeln!(
            out,
            "# HELP callhome_receiver_installs Installs by compliance state (the whole fleet, from the index).\n# TYPE callhome_receiver_installs gauge"
        );
        for (state, n) in installs {
            let _ = writeln!(out, "callhome_receiver_installs{{state=\"{}\"}} {n}", state.name());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_counts_every_upload() {
        let m = Metrics::default();
        m.upload(Outcome::Accepted, Duration::from_millis(3));
        m.upload(Outcome::Refused, Duration::from_millis(70));
        m.upload(Outcome::of_status(503), Duration::from_secs(60));
        m.bytes(2048);
        let text = m.render(&[(State::Ok, 3), (State::Overdue, 1)]);
        for line in [
            "callhome_receiver_uploads_total{result=\"accepted\"} 1",
            "callhome_receiver_uploads_total{result=\"throttled\"} 1",
            "callhome_receiver_upload_bytes_total 2048",
            "callhome_receiver_upload_duration_seconds_bucket{le=\"0.005\"} 1",
            "callhome_receiver_upload_duration_seconds_bucket{le=\"0.1\"} 2",
            "callhome_receiver_upload_duration_seconds_bucket{le=\"+Inf\"} 3",
            "callhome_receiver_upload_duration_seconds_count 3",
            "callhome_receiver_installs{state=\"overdue\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
