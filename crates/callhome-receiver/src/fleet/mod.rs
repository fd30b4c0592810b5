//! The fleet view: per install, how long since its last successful license-telemetry upload,
//! its compliance state by the agent's thresholds, and whether its agent or product is out of
//! date by the six-month currency rule.
//!
//! The index keeps per install the moment its compliance clock counts from (`clock_from`: the
//! last successful telemetry upload, else when the install was first seen) and answers a state
//! as a range of that column ([`Thresholds::range`]), so `fleet --overdue` is one indexed range
//! scan however large the fleet. What a bundle tells the view is read from the stored copy by
//! [`report`]. This module decides; it does no I/O and knows nothing of HTTP or SQL.

pub mod dto;
pub mod report;

use callhome_protocol::time::Timestamp;

const DAY: i64 = 86_400;

/// How long after a newer release came out an older one counts as out of date (the agent's
/// `upload.version_window`, six months).
pub const CURRENCY_WINDOW: i64 = 180 * DAY;

/// A compliance state, as the agent names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Ok,
    Warning,
    Critical,
    Overdue,
}

impl State {
    pub const ALL: [State; 4] = [State::Ok, State::Warning, State::Critical, State::Overdue];

    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warning => "warning",
            State::Critical => "critical",
            State::Overdue => "overdue",
        }
    }
}

impl std::str::FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        State::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| format!("{s:?} is no compliance state; give ok, warning, critical or overdue"))
    }
}

/// The agent's compliance thresholds (its `[compliance]` defaults: 90 days, warnings at 30, 14
/// and 7 days left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    pub max_days: u32,
    pub warn_days: Vec<u32>,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds { max_days: 90, warn_days: vec![30, 14, 7] }
    }
}

impl Thresholds {
    /// Whole days since `from` at `now` (never negative), as the agent counts them.
    pub fn days_since(from: Timestamp, now: Timestamp) -> i64 {
        (now - from).max(0) / DAY
    }

    /// The state of a clock counting from `from`, exactly as the agent's `compliance::evaluate`.
    pub fn state(&self, from: Timestamp, now: Timestamp) -> State {
        let remaining = i64::from(self.max_days) - Self::days_since(from, now);
        let smallest = self.warn_days.iter().copied().min().unwrap_or(0) as i64;
        let largest = self.warn_days.iter().copied().max().unwrap_or(0) as i64;
        if remaining < 0 {
            State::Overdue
        } else if remaining <= smallest {
            State::Critical
        } else if remaining <= largest {
            State::Warning
        } else {
            State::Ok
        }
    }

    /// The days-since interval `[lo, hi)` of a state (`hi` `None`: unbounded).
    fn days(&self, state: State) -> (i64, Option<i64>) {
        let max = i64::from(self.max_days);
        let smallest = self.warn_days.iter().copied().min().unwrap_or(0) as i64;
        let largest = self.warn_days.iter().copied().max().unwrap_or(0) as i64;
        let (warn, crit, over) = ((max - largest).max(0), (max - smallest).max(0), max + 1);
        match state {
            State::Ok => (0, Some(warn)),
            State::Warning => (warn, Some(crit.max(warn))),
            State::Critical => (crit, Some(over.max(crit))),
            State::Overdue => (over, None),
        }
    }

    /// The `clock_from` range of a state at `now`: `from <= upper` and `from > lower` (when
    /// given). Days since `from` is at least `k` exactly when `from <= now - k days`.
    pub fn range(&self, state: State, now: Timestamp) -> ClockRange {
        let (lo, hi) = self.days(state);
        ClockRange { upper: if lo == 0 { i64::MAX } else { now - lo * DAY }, lower: hi.map(|hi| now - hi * DAY) }
    }
}

/// Installs whose clock counts from a moment in `(lower, upper]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockRange {
    pub upper: Timestamp,
    /// Exclusive; `None`: no lower bound.
    pub lower: Option<Timestamp>,
}

impl ClockRange {
    /// Every install.
    pub const ALL: ClockRange = ClockRange { upper: i64::MAX, lower: None };
}

/// The newest release of the agent or of the product, as the receiver's operator states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: String,
    /// When it came out, UTC seconds.
    pub released: Timestamp,
}

impl Release {
    /// Parses `--latest-version V --latest-released YYYY-MM-DD`.
    pub fn parse(version: &str, released: &str) -> Result<Release, String> {
        let full = if released.len() == 10 { format!("{released}T00:00:00Z") } else { released.to_string() };
        let released = callhome_protocol::time::parse_rfc3339(&full)
            .ok_or_else(|| format!("{released}: give the release date as YYYY-MM-DD"))?;
        Ok(Release { version: version.to_string(), released })
    }

    /// Whether `running` is out of date at `now`: this release is newer and came out more than
    /// [`CURRENCY_WINDOW`] ago (the agent's rule for its own version).
    pub fn outdates(&self, running: &str, now: Timestamp) -> bool {
        version_parts(&self.version) > version_parts(running) && now - self.released > CURRENCY_WINDOW
    }
}

/// Numeric parts of a version (`1.10.2-rc1` → [1, 10, 2]).
fn version_parts(v: &str) -> Vec<u64> {
    v.split(['.', '-', '+']).map_while(|p| p.parse().ok()).collect()
}

/// The releases installs are measured against.
#[derive(Debug, Clone, Default)]
pub struct Currency {
    pub agent: Option<Release>,
    pub product: Option<Release>,
}

impl Currency {
    /// Whether the agent version is out of date.
    pub fn agent_outdated(&self, version: Option<&str>, now: Timestamp) -> bool {
        matches!((&self.agent, version), (Some(r), Some(v)) if r.outdates(v, now))
    }

    /// Whether the product version is out of date.
    pub fn product_outdated(&self, version: Option<&str>, now: Timestamp) -> bool {
        matches!((&self.product, version), (Some(r), Some(v)) if r.outdates(v, now))
    }
}

/// One install as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    pub install_id: String,
    /// The customer its token belongs to; `None` for an install never enrolled (open
    /// enrolment, an operator's import).
    pub customer: Option<String>,
    pub first_seen: Timestamp,
    /// The last successful license-telemetry upload.
    pub last_success: Option<Timestamp>,
    /// What the compliance clock counts from: `last_success`, else `first_seen`.
    pub clock_from: Timestamp,
    pub agent_version: Option<String>,
    pub product_version: Option<String>,
    /// The last license usage summary (JSON, [`report::UsageSummary`]).
    pub usage: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_match_the_agents_thresholds_and_ranges_match_states() {
        let t = Thresholds::default();
        let now = 1_000 * DAY + 5;
        let at = |d: i64| t.state(now - d * DAY, now);
        assert_eq!(
            [at(0), at(59), at(60), at(82), at(83), at(90), at(91)],
            [State::Ok, State::Ok, State::Warning, State::Warning, State::Critical, State::Critical, State::Overdue]
        );
        // Every second around each boundary falls in exactly the range of its state.
        for d in [0, 59, 60, 82, 83, 90, 91, 400] {
            for off in [-1, 0, 1, DAY - 1] {
                let from = now - d * DAY + off;
                let st = t.state(from, now);
                for s in State::ALL {
                    let r = t.range(s, now);
                    let inside = from <= r.upper && r.lower.is_none_or(|l| from > l);
                    assert_eq!(inside, s == st, "from {from} ({d} days, {off}) in {s:?}'s range: {r:?}");
                }
            }
        }
        assert_eq!(t.state(now + DAY, now), State::Ok, "a clock from the future is ok, as the agent says");
    }

    #[test]
    fn six_month_currency() {
        let r = Release::parse("1.4.0", "2026-01-01").unwrap();
        let jan = r.released;
        assert!(!r.outdates("1.3.9", jan + 179 * DAY));
        assert!(r.outdates("1.3.9", jan + 181 * DAY));
        assert!(!r.outdates("1.4.0", jan + 400 * DAY));
        assert!(!r.outdates("1.10.0", jan + 400 * DAY));
        assert!(Release::parse("1", "yesterday").is_err());
        let c = Currency { agent: Some(r), product: None };
        assert!(!c.product_outdated(Some("0.1"), jan + 400 * DAY));
        assert!(!c.agent_outdated(None, jan + 400 * DAY));
    }
}
