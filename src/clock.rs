//! Time, injectable: the scheduler and the compliance clock read it through [`Clock`].
//!
//! Persisted times are UTC seconds since the Unix epoch. Tests drive a [`ManualClock`] so a
//! 90-day scenario, or a wall-clock jump, runs in milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

pub use callhome_protocol::time::{Timestamp, parse_rfc3339, rfc3339};

pub trait Clock: Send + Sync {
    /// The wall clock, UTC seconds.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        callhome_protocol::time::now()
    }
}

/// A clock that moves only when told to (tests and simulations).
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn at(t: Timestamp) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(t)))
    }
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_secs() as i64, Ordering::SeqCst);
    }
    pub fn set(&self, t: Timestamp) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}

/// Compact UTC stamp for file names: `20261123T121133Z`.
pub fn file_stamp(t: Timestamp) -> String {
    rfc3339(t).replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_and_round_trip() {
        assert_eq!(rfc3339(1_679_283_497), "2023-03-20T03:38:17Z");
        assert_eq!(file_stamp(1_679_283_497), "20230320T033817Z");
        assert_eq!(parse_rfc3339("2023-03-20T03:38:17Z"), Some(1_679_283_497));
    }
}
