//! Alerts as objects (`alerts`): one row per condition ever open, keyed by the condition's key,
//! with a stable id, kind, severity, title, text, first and last seen, whether it is open now,
//! and the administrator's acknowledgement (when, until when, at which severity, why).
//!
//! [`Store::sync_alerts`] makes a list of open conditions the open set: a condition seen again
//! keeps its id and first-seen time; one that went away is closed (and forgets its
//! acknowledgement, so it comes back unacknowledged); an acknowledgement ends when its `until`
//! passes or the condition got worse than it was when acknowledged. Deciding what is open is
//! `alerts::open`'s business, not this module's.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store};
use crate::alerts::open::{Condition, Severity};
use crate::clock::Timestamp;

/// One alert as kept in the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    /// Stable: derived from the condition's key (what `callhome alerts ack` takes).
    pub id: String,
    pub key: String,
    pub kind: String,
    pub severity: Severity,
    pub title: String,
    pub text: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// When it was acknowledged; `None` while it is not (or no longer) acknowledged.
    pub acked_at: Option<Timestamp>,
    /// The acknowledgement holds until this moment; `None` with `acked_at`: until the condition
    /// clears or gets worse.
    pub acked_until: Option<Timestamp>,
    pub ack_reason: Option<String>,
}

impl AlertRow {
    pub fn acknowledged(&self) -> bool {
        self.acked_at.is_some()
    }
}

/// Why an acknowledgement was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error(transparent)]
    Store(#[from] super::StoreError),
    /// No open alert has this id.
    #[error("no open alert {0:?}; `callhome alerts list` (GET /api/v1/alerts) lists them")]
    NotOpen(String),
}

impl From<rusqlite::Error> for AckError {
    fn from(e: rusqlite::Error) -> AckError {
        AckError::Store(e.into())
    }
}

const COLUMNS: &str = "id, key, kind, severity, title, text, first_seen, last_seen, acked_at, acked_until, ack_reason";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRow> {
    let severity: String = r.get(3)?;
    Ok(AlertRow {
        id: r.get(0)?,
        key: r.get(1)?,
        kind: r.get(2)?,
        severity: severity.parse().unwrap_or(Severity::Critical),
        title: r.get(4)?,
        text: r.get(5)?,
        first_seen: r.get(6)?,
        last_seen: r.get(7)?,
        acked_at: r.get(8)?,
        acked_until: r.get(9)?,
        ack_reason: r.get(10)?,
    })
}

impl Store {
    /// Makes `open` the set of open alerts as of `now` and returns them, oldest first.
    pub fn sync_alerts(&mut self, open: &[Condition], now: Timestamp) -> Result<Vec<AlertRow>> {
        let tx = self.write_tx()?;
        tx.execute("UPDATE alerts SET open = 2 WHERE open = 1", [])?;
        for c in open {
            tx.execute(
                "INSERT INTO alerts (id, key, kind, severity, title, text, first_seen, last_seen, open)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1)
                 ON CONFLICT(key) DO UPDATE SET kind = excluded.kind, severity = excluded.severity,
                    title = excluded.title, text = excluded.text, last_seen = excluded.last_seen,
                    first_seen = CASE WHEN open = 0 THEN excluded.first_seen ELSE first_seen END, open = 1",
                params![c.id(), c.key, c.kind, c.severity.name(), c.title, c.text, now],
            )?;
        }
        // Closed now: the acknowledgement goes with the condition.
        tx.execute(
            "UPDATE alerts SET open = 0, acked_at = NULL, acked_until = NULL, acked_severity = NULL, ack_reason = NULL
             WHERE open = 2",
            [],
        )?;
        // Acknowledgements that ran out, or whose alert got worse than when acknowledged.
        tx.execute(
            "UPDATE alerts SET acked_at = NULL, acked_until = NULL, acked_severity = NULL, ack_reason = NULL
             WHERE acked_at IS NOT NULL AND ((acked_until IS NOT NULL AND acked_until <= ?1)
                OR (severity = 'critical' AND acked_severity = 'warning'))",
            [now],
        )?;
        let rows = {
            let mut stmt =
                tx.prepare(&format!("SELECT {COLUMNS} FROM alerts WHERE open = 1 ORDER BY first_seen, id"))?;
            stmt.query_map([], row)?.collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        Ok(rows)
    }

    /// Acknowledges the open alert `id` (until `until`, when given) at its current severity.
    pub fn ack_alert(
        &mut self,
        id: &str,
        now: Timestamp,
        until: Option<Timestamp>,
        reason: Option<&str>,
    ) -> std::result::Result<AlertRow, AckError> {
        self.update_open_alert(
            id,
            "UPDATE alerts SET acked_at = ?2, acked_until = ?3, acked_severity = severity, ack_reason = ?4
             WHERE id = ?1 AND open = 1",
            params![id, now, until, reason],
        )
    }

    /// Takes back the acknowledgement of the open alert `id` (acknowledged or not).
    pub fn unack_alert(&mut self, id: &str) -> std::result::Result<AlertRow, AckError> {
        self.update_open_alert(
            id,
            "UPDATE alerts SET acked_at = NULL, acked_until = NULL, acked_severity = NULL, ack_reason = NULL
             WHERE id = ?1 AND open = 1",
            params![id],
        )
    }

    /// Runs `update` (which names the alert as `?1` and touches only an open one) and answers
    /// the row as it now stands, in one transaction; no open alert `id` is [`AckError::NotOpen`].
    fn update_open_alert(
        &mut self,
        id: &str,
        update: &str,
        args: impl rusqlite::Params,
    ) -> std::result::Result<AlertRow, AckError> {
        let tx = self.write_tx()?;
        if tx.execute(update, args)? == 0 {
            return Err(AckError::NotOpen(id.to_string()));
        }
        let r = tx.query_row(&format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"), [id], row)?;
        tx.commit()?;
        Ok(r)
    }

    /// One alert by id, open or not.
    pub fn alert(&self, id: &str) -> Result<Option<AlertRow>> {
        Ok(self.conn.query_row(&format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"), [id], row).optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(key: &str, severity: Severity) -> Condition {
        Condition {
            key: key.into(),
            kind: "compliance-threshold".into(),
            severity,
            title: format!("title {key}"),
            text: "text".into(),
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("state.sqlite")).unwrap();
        (dir, s)
    }

    #[test]
    fn an_alert_keeps_its_id_and_first_seen_while_open_and_starts_over_when_it_returns() {
        let (_d, mut s) = store();
        let a = s.sync_alerts(&[cond("compliance:1", Severity::Warning)], 10).unwrap();
        let b = s.sync_alerts(&[cond("compliance:1", Severity::Warning)], 20).unwrap();
        assert_eq!((a[0].id.clone(), b[0].first_seen, b[0].last_seen), (b[0].id.clone(), 10, 20));
        assert!(s.sync_alerts(&[], 30).unwrap().is_empty());
        let c = s.sync_alerts(&[cond("compliance:1", Severity::Warning)], 40).unwrap();
        assert_eq!((c[0].id.clone(), c[0].first_seen), (a[0].id.clone(), 40));
    }

    #[test]
    fn an_acknowledgement_ends_at_its_until_when_it_gets_worse_or_when_the_alert_closes() {
        let (_d, mut s) = store();
        let id = s.sync_alerts(&[cond("k", Severity::Warning)], 10).unwrap()[0].id.clone();
        let acked = s.ack_alert(&id, 11, Some(100), Some("known")).unwrap();
        assert_eq!(
            (acked.acked_at, acked.acked_until, acked.ack_reason.as_deref()),
            (Some(11), Some(100), Some("known"))
        );
        assert!(s.sync_alerts(&[cond("k", Severity::Warning)], 99).unwrap()[0].acknowledged());
        assert!(!s.sync_alerts(&[cond("k", Severity::Warning)], 100).unwrap()[0].acknowledged(), "until passed");

        s.ack_alert(&id, 101, None, None).unwrap();
        assert!(s.sync_alerts(&[cond("k", Severity::Warning)], 500).unwrap()[0].acknowledged(), "no until");
        assert!(!s.sync_alerts(&[cond("k", Severity::Critical)], 501).unwrap()[0].acknowledged(), "got worse");

        s.ack_alert(&id, 502, None, None).unwrap();
        s.sync_alerts(&[], 503).unwrap();
        assert!(!s.sync_alerts(&[cond("k", Severity::Critical)], 504).unwrap()[0].acknowledged(), "came back");
        assert!(matches!(s.ack_alert("nope", 505, None, None), Err(AckError::NotOpen(_))));
        assert!(!s.unack_alert(&id).unwrap().acknowledged());
    }
}
