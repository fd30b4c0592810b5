//! License events (expiry, overuse, …) and their upload state, and every license line an
//! inventory scan saw, so lines that disappear stay in history.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store};
use crate::clock::Timestamp;

/// A license event as kept in the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub key: String,
    pub kind: String,
    pub feature: String,
    pub message: String,
    pub days: Option<i64>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// A license line seen in an inventory scan, kept so lines that disappear stay in history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenLicense {
    pub id: String,
    pub feature: String,
    pub version: String,
    pub vendor: String,
    pub quantity: Option<u32>,
    /// `YYYY-MM-DD` or `permanent`.
    pub expiry: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

impl Store {
    /// Makes `events` the active set; returns the keys that were not active before.
    pub fn sync_events(&mut self, events: &[crate::licenses::LicenseEvent], now: Timestamp) -> Result<Vec<String>> {
        let tx = self.write_tx()?;
        let mut new = Vec::new();
        tx.execute("UPDATE license_events SET active = 0 WHERE active = 1", [])?;
        for e in events {
            let was: Option<bool> =
                tx.query_row("SELECT active FROM license_events WHERE key = ?1", [&e.key], |r| r.get(0)).optional()?;
            if was.is_none() {
                new.push(e.key.clone());
            }
            tx.execute(
                "INSERT INTO license_events (key, kind, feature, message, days, first_seen, last_seen, active)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1)
                 ON CONFLICT(key) DO UPDATE SET message = excluded.message, days = excluded.days,
                    last_seen = excluded.last_seen, active = 1",
                params![e.key, e.kind.name(), e.feature, e.message, e.days, now],
            )?;
        }
        tx.commit()?;
        Ok(new)
    }

    /// Active events not yet put into an Event data bundle.
    pub fn events_to_upload(&self) -> Result<Vec<EventRow>> {
        self.event_rows("WHERE active = 1 AND uploaded = 0")
    }

    fn event_rows(&self, filter: &str) -> Result<Vec<EventRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT key, kind, feature, message, days, first_seen, last_seen FROM license_events {filter} ORDER BY feature, key"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(EventRow {
                key: r.get(0)?,
                kind: r.get(1)?,
                feature: r.get(2)?,
                message: r.get(3)?,
                days: r.get(4)?,
                first_seen: r.get(5)?,
                last_seen: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn mark_events_uploaded(&mut self, keys: &[String]) -> Result<()> {
        let tx = self.write_tx()?;
        for k in keys {
            tx.execute("UPDATE license_events SET uploaded = 1 WHERE key = ?1", [k])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records the lines of an inventory scan made at `now`.
    pub fn record_seen(&mut self, lines: &[SeenLicense], now: Timestamp) -> Result<()> {
        let tx = self.write_tx()?;
        for l in lines {
            tx.execute(
                "INSERT INTO license_seen (id, feature, version, vendor, quantity, expiry, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT(id) DO UPDATE SET last_seen = excluded.last_seen",
                params![l.id, l.feature, l.version, l.vendor, l.quantity, l.expiry, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Lines seen in an earlier scan but not in the one made at `latest`.
    pub fn license_history(&self, latest: Timestamp) -> Result<Vec<SeenLicense>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, feature, version, vendor, quantity, expiry, first_seen, last_seen FROM license_seen
             WHERE last_seen < ?1 ORDER BY feature, version",
        )?;
        let rows = stmt.query_map([latest], |r| {
            Ok(SeenLicense {
                id: r.get(0)?,
                feature: r.get(1)?,
                version: r.get(2)?,
                vendor: r.get(3)?,
                quantity: r.get(4)?,
                expiry: r.get(5)?,
                first_seen: r.get(6)?,
                last_seen: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
