//! The alert channels' deliveries (`alert_deliveries`): per channel, when it was last tried, with
//! which alert, the last success, the last error, and counters. One row per channel, updated in
//! place: status shows the latest, the log keeps the history.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store};
use crate::clock::Timestamp;

/// One channel's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `email`, `webhook`, `journal`.
    pub channel: String,
    pub last_attempt: Timestamp,
    /// The key of the alert last tried.
    pub last_key: String,
    pub last_success: Option<Timestamp>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    /// Alerts delivered since the channel was first used.
    pub delivered: u64,
    /// Attempts that failed (each retry counts).
    pub failed_attempts: u64,
    /// Alerts given up on after the last retry.
    pub given_up: u64,
}

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome<'a> {
    Delivered,
    /// Failed; retried later.
    Failed(&'a str),
    /// Failed at the last retry: the alert is dropped for this channel.
    GaveUp(&'a str),
}

impl Store {
    /// Records one attempt of `channel` with the alert `key`.
    pub fn record_delivery(
        &mut self,
        channel: &str,
        key: &str,
        at: Timestamp,
        outcome: DeliveryOutcome<'_>,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO alert_deliveries (channel, last_attempt, last_key) VALUES (?1, ?2, ?3)
             ON CONFLICT (channel) DO UPDATE SET last_attempt = ?2, last_key = ?3",
            params![channel, at, key],
        )?;
        match outcome {
            DeliveryOutcome::Delivered => tx.execute(
                "UPDATE alert_deliveries SET last_success = ?2, delivered = delivered + 1 WHERE channel = ?1",
                params![channel, at],
            )?,
            DeliveryOutcome::Failed(e) => tx.execute(
                "UPDATE alert_deliveries SET last_error = ?2, last_error_at = ?3, failed_attempts = failed_attempts + 1
                 WHERE channel = ?1",
                params![channel, e, at],
            )?,
            DeliveryOutcome::GaveUp(e) => tx.execute(
                "UPDATE alert_deliveries SET last_error = ?2, last_error_at = ?3, failed_attempts = failed_attempts + 1,
                 given_up = given_up + 1 WHERE channel = ?1",
                params![channel, e, at],
            )?,
        };
        tx.commit()?;
        Ok(())
    }

    /// The record of `channel`, if it was ever tried.
    pub fn delivery(&self, channel: &str) -> Result<Option<Delivery>> {
        Ok(self
            .conn
            .query_row(
                "SELECT channel, last_attempt, last_key, last_success, last_error, last_error_at, delivered,
                 failed_attempts, given_up FROM alert_deliveries WHERE channel = ?1",
                [channel],
                |r| {
                    Ok(Delivery {
                        channel: r.get(0)?,
                        last_attempt: r.get(1)?,
                        last_key: r.get(2)?,
                        last_success: r.get(3)?,
                        last_error: r.get(4)?,
                        last_error_at: r.get(5)?,
                        delivered: r.get::<_, i64>(6)? as u64,
                        failed_attempts: r.get::<_, i64>(7)? as u64,
                        given_up: r.get::<_, i64>(8)? as u64,
                    })
                },
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_attempt_updates_the_channels_one_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("state.sqlite")).unwrap();
        assert_eq!(s.delivery("email").unwrap(), None);
        s.record_delivery("email", "upload-failed:TLS", 10, DeliveryOutcome::Failed("connection refused")).unwrap();
        s.record_delivery("email", "upload-failed:TLS", 12, DeliveryOutcome::Delivered).unwrap();
        s.record_delivery("email", "uploads-work", 20, DeliveryOutcome::GaveUp("timed out")).unwrap();
        let d = s.delivery("email").unwrap().unwrap();
        assert_eq!((d.last_attempt, d.last_key.as_str(), d.last_success), (20, "uploads-work", Some(12)));
        assert_eq!((d.last_error.as_deref(), d.last_error_at), (Some("timed out"), Some(20)));
        assert_eq!((d.delivered, d.failed_attempts, d.given_up), (1, 2, 1));
        assert_eq!(s.delivery("webhook").unwrap(), None);
    }
}
