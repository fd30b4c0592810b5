//! The compliance clock: days since the last successful license-telemetry upload, and its state.
//!
//! The clock starts at install when nothing was ever acknowledged. A wall clock that went
//! backwards never makes the count negative. An exemption the vendor granted makes the state
//! [`State::Exempt`] while it lasts ([`Status::exempt`]); the counts go on underneath. This
//! module decides; delivering alerts is the desktop's business.

use crate::clock::Timestamp;
use crate::config::ComplianceConfig;

const DAY: i64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ok,
    /// At or below the largest `warn_days` threshold.
    Warning,
    /// At or below the smallest `warn_days` threshold.
    Critical,
    /// Past `max_days`.
    Overdue,
    /// The vendor exempted this install from the reporting rule until a date.
    Exempt,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warning => "warning",
            State::Critical => "critical",
            State::Overdue => "overdue",
            State::Exempt => "exempt",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub days_since_last_upload: i64,
    /// `max_days - days_since_last_upload`; negative once overdue.
    pub days_remaining: i64,
    pub state: State,
    pub last_success: Option<Timestamp>,
    /// The moment the count starts from (last success, else install).
    pub counting_from: Timestamp,
    /// When the limit is reached.
    pub deadline: Timestamp,
    /// The smallest threshold already reached, if any (drives "N days left" alerts).
    pub threshold_reached: Option<u32>,
}

impl Status {
    /// The same clock under an exemption: state `exempt`, no threshold reached (nothing to warn
    /// about), the counts unchanged.
    pub fn exempt(self) -> Status {
        Status { state: State::Exempt, threshold_reached: None, ..self }
    }
}

pub fn evaluate(
    cfg: &ComplianceConfig,
    last_success: Option<Timestamp>,
    installed_at: Timestamp,
    now: Timestamp,
) -> Status {
    let from = last_success.unwrap_or(installed_at);
    let days_since = ((now - from).max(0)) / DAY;
    let remaining = cfg.max_days as i64 - days_since;
    let threshold_reached = cfg.warn_days.iter().copied().filter(|t| remaining <= *t as i64).min();
    let smallest = cfg.warn_days.last().copied().unwrap_or(0) as i64;
    let largest = cfg.warn_days.first().copied().unwrap_or(0) as i64;
    let state = if remaining < 0 {
        State::Overdue
    } else if remaining <= smallest {
        State::Critical
    } else if remaining <= largest {
        State::Warning
    } else {
        State::Ok
    };
    Status {
        days_since_last_upload: days_since,
        days_remaining: remaining,
        state,
        last_success,
        counting_from: from,
        deadline: from + cfg.max_days as i64 * DAY,
        threshold_reached,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ComplianceConfig {
        ComplianceConfig { max_days: 90, warn_days: vec![30, 14, 7] }
    }

    #[test]
    fn states_follow_the_thresholds() {
        let at = |days: i64| evaluate(&cfg(), Some(0), 0, days * DAY + 5);
        assert_eq!((at(0).state, at(0).days_remaining), (State::Ok, 90));
        assert_eq!(at(59).state, State::Ok);
        assert_eq!((at(60).state, at(60).threshold_reached), (State::Warning, Some(30)));
        assert_eq!((at(76).state, at(76).threshold_reached), (State::Warning, Some(14)));
        assert_eq!(at(83).state, State::Critical);
        assert_eq!(at(90).state, State::Critical);
        assert_eq!((at(91).state, at(91).days_remaining), (State::Overdue, -1));
    }

    #[test]
    fn counts_from_install_and_never_goes_negative() {
        let s = evaluate(&cfg(), None, 10 * DAY, 15 * DAY);
        assert_eq!(s.days_since_last_upload, 5);
        let back = evaluate(&cfg(), Some(100 * DAY), 0, 50 * DAY);
        assert_eq!((back.days_since_last_upload, back.state), (0, State::Ok));
    }

    #[test]
    fn an_exemption_keeps_the_counts_and_drops_the_threshold() {
        let overdue = evaluate(&cfg(), Some(0), 0, 95 * DAY);
        let e = overdue.exempt();
        assert_eq!((e.state.name(), e.days_remaining, e.threshold_reached), ("exempt", -5, None));
    }
}
