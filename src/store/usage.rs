//! Samples (performance and usage readings waiting for a bundle), hourly license usage merged
//! from the debug logs, and the logs' read cursors.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{LogKey, Result, Store};
use crate::clock::Timestamp;
use crate::programs::Program;

/// Usage of one feature in one hour, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub feature: String,
    /// Start of the hour, UTC seconds.
    pub hour: Timestamp,
    pub peak: u32,
    pub checkouts: u32,
    pub denials: u32,
    pub queued: u32,
    pub unsupported: u32,
    /// Sorted user names.
    pub users: Vec<String>,
    /// Sorted device (host) names.
    pub devices: Vec<String>,
}

impl Store {
    pub fn add_sample(&self, p: Program, at: Timestamp, data: &str) -> Result<()> {
        self.conn
            .execute("INSERT INTO samples (program, at, data) VALUES (?1, ?2, ?3)", params![p.name(), at, data])?;
        Ok(())
    }

    /// The program's pending samples, oldest first, with the highest id (for [`Store::drop_samples`]).
    pub fn samples(&self, p: Program) -> Result<(Vec<(Timestamp, String)>, i64)> {
        let mut stmt = self.conn.prepare_cached("SELECT id, at, data FROM samples WHERE program = ?1 ORDER BY id")?;
        let mut max = 0;
        let mut out = Vec::new();
        let mut rows = stmt.query([p.name()])?;
        while let Some(r) = rows.next()? {
            max = r.get(0)?;
            out.push((r.get(1)?, r.get(2)?));
        }
        Ok((out, max))
    }

    /// Drops the program's samples up to and including `max_id` (once they are in a bundle).
    pub fn drop_samples(&self, p: Program, max_id: i64) -> Result<usize> {
        Ok(self.conn.execute("DELETE FROM samples WHERE program = ?1 AND id <= ?2", params![p.name(), max_id])?)
    }

    /// A log's saved cursor; a file never read (or a damaged cursor) starts from the beginning.
    pub fn log_cursor<T: serde::de::DeserializeOwned + Default>(&self, log: LogKey<'_>) -> Result<T> {
        let json: Option<String> = self
            .conn
            .query_row("SELECT cursor FROM log_cursors WHERE path = ?1", [log.as_str()], |r| r.get(0))
            .optional()?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default())
    }

    /// Merges a read's hourly usage and saves its cursor, in one transaction: a crash never
    /// counts the same bytes twice.
    pub fn apply_usage(
        &mut self,
        debug_log: &Path,
        cursor_json: &str,
        hours: &crate::licenses::debuglog::Hours,
        names: &crate::licenses::debuglog::Names,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        for (feature, by_hour) in hours {
            // Hours after the latest one stored are new: no row to merge with, no lookup.
            let latest: Option<i64> =
                tx.query_row("SELECT MAX(hour) FROM usage_hourly WHERE feature = ?1", [feature], |r| r.get(0))?;
            for (hour, h) in by_hour {
                let stored = latest.is_some_and(|l| *hour <= l);
                let old: Option<(u32, u32, u32, u32, u32, String, String)> = if !stored {
                    None
                } else {
                    tx.prepare_cached(
                        "SELECT peak, checkouts, denials, queued, unsupported, users, devices FROM usage_hourly WHERE feature = ?1 AND hour = ?2",
                    )?
                    .query_row(params![feature, hour], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
                    })
                    .optional()?
                };
                // Names in a sorted set: the stored JSON is the same whatever the order of reading.
                let mut users: std::collections::BTreeSet<&str> = h.users.iter().map(|id| names.name(*id)).collect();
                let mut devices: std::collections::BTreeSet<&str> =
                    h.devices.iter().map(|id| names.name(*id)).collect();
                let (mut peak, mut checkouts, mut denials, mut queued, mut unsupported) =
                    (h.peak, h.checkouts, h.denials, h.queued, h.unsupported);
                let old_names;
                if let Some((o_peak, o_checkouts, o_denials, o_queued, o_unsupported, o_users, o_devices)) = old {
                    peak = peak.max(o_peak);
                    checkouts += o_checkouts;
                    denials += o_denials;
                    queued += o_queued;
                    unsupported += o_unsupported;
                    let parse = |s: &str| serde_json::from_str::<Vec<String>>(s).unwrap_or_default();
                    old_names = (parse(&o_users), parse(&o_devices));
                    users.extend(old_names.0.iter().map(String::as_str));
                    devices.extend(old_names.1.iter().map(String::as_str));
                }
                let json =
                    |set: &std::collections::BTreeSet<&str>| serde_json::to_string(set).expect("strings serialize");
                tx.prepare_cached(
                    "INSERT INTO usage_hourly (feature, hour, peak, checkouts, denials, queued, unsupported, users, devices)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT(feature, hour) DO UPDATE SET peak = excluded.peak, checkouts = excluded.checkouts,
                        denials = excluded.denials, queued = excluded.queued, unsupported = excluded.unsupported,
                        users = excluded.users, devices = excluded.devices",
                )?
                .execute(params![
                        feature,
                        hour,
                        peak,
                        checkouts,
                        denials,
                        queued,
                        unsupported,
                        json(&users),
                        json(&devices)
                ])?;
            }
        }
        save_cursor(&tx, LogKey::DebugLog(debug_log), cursor_json)?;
        tx.commit()?;
        Ok(())
    }

    /// Hourly usage in `[since, until)`, of one feature or all, ordered by feature then hour.
    pub fn usage(&self, feature: Option<&str>, since: Timestamp, until: Timestamp) -> Result<Vec<UsageRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT feature, hour, peak, checkouts, denials, queued, unsupported, users, devices FROM usage_hourly
             WHERE hour >= ?1 AND hour < ?2 AND (?3 IS NULL OR feature = ?3) ORDER BY feature, hour",
        )?;
        let rows = stmt.query_map(params![since, until, feature], |r| {
            let list = |s: String| serde_json::from_str::<Vec<String>>(&s).unwrap_or_default();
            Ok(UsageRow {
                feature: r.get(0)?,
                hour: r.get(1)?,
                peak: r.get(2)?,
                checkouts: r.get(3)?,
                denials: r.get(4)?,
                queued: r.get(5)?,
                unsupported: r.get(6)?,
                users: list(r.get(7)?),
                devices: list(r.get(8)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Most licenses in use at once per feature since `since`.
    pub fn peaks_since(&self, since: Timestamp) -> Result<std::collections::HashMap<String, u32>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT feature, MAX(peak) FROM usage_hourly WHERE hour >= ?1 GROUP BY feature")?;
        let rows = stmt.query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl Store {
    /// The first hour since `since` in which more of `feature` were in use at once than
    /// `capacity`.
    pub fn first_over(&self, feature: &str, capacity: u32, since: Timestamp) -> Result<Option<Timestamp>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT MIN(hour) FROM usage_hourly WHERE feature = ?1 AND peak > ?2 AND hour >= ?3")?;
        Ok(stmt.query_row(rusqlite::params![feature, capacity, since], |r| r.get(0))?)
    }
}

pub(super) fn save_cursor(conn: &Connection, log: LogKey<'_>, cursor_json: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO log_cursors (path, cursor) VALUES (?1, ?2) ON CONFLICT(path) DO UPDATE SET cursor = excluded.cursor",
        [log.as_str().as_ref(), cursor_json],
    )?;
    Ok(())
}
