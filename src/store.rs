//! The agent's state in SQLite: settings, schedule, upload attempts, samples, and the sent ledger.
//!
//! The database is opened in WAL mode with a busy timeout, so the agent and one-shot CLI commands
//! can share it. Migrations are numbered and recorded in `PRAGMA user_version`. The ledger is an
//! append-only hash chain: each row stores the SHA-256 of its fields and of the row before, so a
//! changed, removed or reordered row is found by [`Store::verify_ledger`]. This module speaks no
//! HTTP and owns no files besides the database.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::Timestamp;
use crate::fsutil::sha256_hex;
use crate::programs::{Choices, Program, TelemetryMode};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (file unreadable, disk full, database corrupt).
    #[error("state database: {0}{hint}", hint = sqlite_hint(.0))]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer agent.
    #[error("state database schema version {found} is newer than this agent understands ({known}); upgrade callhome")]
    TooNew { found: i64, known: i64 },
}

type Result<T> = std::result::Result<T, StoreError>;

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// What to do about the SQLite failures a user can fix.
fn sqlite_hint(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DiskFull | SystemIoFailure) => {
            " (the disk holding the data directory may be full or failing: free some space and try again; nothing was lost)"
        }
        Some(ReadOnly | CannotOpen | PermissionDenied) => {
            " (the data directory is not writable: fix its permissions or choose another with --data-dir)"
        }
        Some(NotADatabase | DatabaseCorrupt) => {
            " (state.sqlite is damaged: move it aside to start a fresh state; the spool is kept)"
        }
        _ => "",
    }
}

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE schedule (task TEXT PRIMARY KEY, due_at INTEGER NOT NULL, last_run INTEGER, failures INTEGER NOT NULL DEFAULT 0);
     CREATE TABLE attempts (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, program TEXT NOT NULL, bundle TEXT,
        sha256 TEXT, code TEXT NOT NULL, message TEXT NOT NULL, http_status INTEGER, duration_ms INTEGER NOT NULL);
     CREATE INDEX attempts_program ON attempts (program, id);
     CREATE TABLE ledger (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, event TEXT NOT NULL, program TEXT NOT NULL,
        bundle TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
     CREATE UNIQUE INDEX ledger_sent_once ON ledger (sha256) WHERE event = 'sent';
     CREATE INDEX ledger_bundle ON ledger (bundle);
     CREATE INDEX ledger_program_sent ON ledger (program, event, at);
     CREATE TABLE samples (id INTEGER PRIMARY KEY, program TEXT NOT NULL, at INTEGER NOT NULL, data TEXT NOT NULL);",
    // 2: license data.
    "CREATE TABLE log_cursors (path TEXT PRIMARY KEY, cursor TEXT NOT NULL);
     CREATE TABLE usage_hourly (feature TEXT NOT NULL, hour INTEGER NOT NULL, peak INTEGER NOT NULL,
        checkouts INTEGER NOT NULL, denials INTEGER NOT NULL, queued INTEGER NOT NULL, unsupported INTEGER NOT NULL,
        users TEXT NOT NULL, devices TEXT NOT NULL, PRIMARY KEY (feature, hour));
     CREATE INDEX usage_hour ON usage_hourly (hour);
     CREATE TABLE license_events (key TEXT PRIMARY KEY, kind TEXT NOT NULL, feature TEXT NOT NULL, message TEXT NOT NULL,
        days INTEGER, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, active INTEGER NOT NULL,
        uploaded INTEGER NOT NULL DEFAULT 0);
     CREATE TABLE license_seen (id TEXT PRIMARY KEY, feature TEXT NOT NULL, version TEXT NOT NULL, vendor TEXT NOT NULL,
        quantity INTEGER, expiry TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL);",
    // 3: manual reporting.
    "CREATE TABLE exports (export_id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, bundles TEXT NOT NULL);",
    // 4: the errors collector.
    "CREATE TABLE error_counts (id INTEGER PRIMARY KEY, pattern TEXT NOT NULL, hour INTEGER NOT NULL, count INTEGER NOT NULL);
     CREATE TABLE error_samples (id INTEGER PRIMARY KEY, pattern TEXT NOT NULL, at INTEGER NOT NULL, text TEXT NOT NULL);",
];

/// The chain's first `prev_hash`.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened to a bundle, as the ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerEvent {
    /// The receiver acknowledged it; `detail` holds the receipt JSON.
    Sent,
    /// The administrator turned its optional program off; it was deleted unsent.
    Withdrawn,
    /// The spool quota made room; it was deleted unsent.
    Evicted,
    /// The receiver rejected it for good, or it failed verification; moved to quarantine/.
    Quarantined,
    /// Reported by hand without a signed receipt (`callhome export confirm`): unverified.
    Reported,
}

impl LedgerEvent {
    pub fn name(self) -> &'static str {
        match self {
            LedgerEvent::Sent => "sent",
            LedgerEvent::Withdrawn => "withdrawn",
            LedgerEvent::Evicted => "evicted",
            LedgerEvent::Quarantined => "quarantined",
            LedgerEvent::Reported => "reported",
        }
    }
}

/// A row to append to the ledger.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub at: Timestamp,
    pub event: LedgerEvent,
    pub program: Program,
    pub bundle: String,
    pub sha256: String,
    pub size: u64,
    /// Receipt JSON for `sent`, the reason otherwise.
    pub detail: String,
}

/// A ledger row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub seq: i64,
    pub at: Timestamp,
    pub event: String,
    pub program: String,
    pub bundle: String,
    pub sha256: String,
    pub size: u64,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// One upload attempt (or a skipped one), as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at: Timestamp,
    pub program: Program,
    pub bundle: Option<String>,
    pub sha256: Option<String>,
    /// A result code, such as `CTX_UPLOADER_SUCCESS`.
    pub code: String,
    pub message: String,
    pub http_status: Option<u16>,
    pub duration_ms: u64,
}

/// A scheduled task's persisted state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskState {
    pub due_at: Timestamp,
    pub last_run: Option<Timestamp>,
    /// Consecutive failures (drives the backoff).
    pub failures: u32,
}

/// Where the ledger chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger row {seq} does not match the chain: {why}")]
pub struct LedgerBreak {
    pub seq: i64,
    pub why: String,
}

pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating and migrating when needed) the database. While another process is
    /// creating it or switching it to WAL, SQLite can answer "locked" without waiting; opening
    /// retries that for up to 30 seconds.
    pub fn open(path: &Path) -> Result<Store> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match Store::try_open(path) {
                Err(StoreError::Sqlite(e)) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10 + fastrand::u64(..40)));
                }
                other => return other,
            }
        }
    }

    fn try_open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    /// Applies missing migrations. The version is read inside a write transaction, so two
    /// processes opening a new database at once do not both apply the same step.
    fn migrate(&mut self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        loop {
            let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version > known {
                return Err(StoreError::TooNew { found: version, known });
            }
            if version == known {
                return Ok(());
            }
            tx.execute_batch(MIGRATIONS[version as usize])?;
            tx.pragma_update(None, "user_version", version + 1)?;
            tx.commit()?;
        }
    }

    /// A write transaction that takes the write lock at once (waiting for it under the busy
    /// timeout): a deferred one that reads first and writes later can fail with "database is
    /// locked" at once when another process wrote in between.
    fn write_tx(&mut self) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self.conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    /// A setting parsed as `T` (None when unset or unreadable).
    pub fn setting_as<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>> {
        Ok(self.setting(key)?.and_then(|v| v.parse().ok()))
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    pub fn delete_setting(&self, key: &str) -> Result<()> {
        self.conn.execute("DELETE FROM settings WHERE key = ?1", [key])?;
        Ok(())
    }

    /// The administrator's persisted program choices.
    pub fn choices(&self) -> Result<Choices> {
        let flag = |p: Program| -> Result<Option<bool>> {
            Ok(self.setting(&format!("program.{}", p.name()))?.map(|v| v == "on"))
        };
        Ok(Choices {
            call_home: flag(Program::CallHome)?,
            ceip: flag(Program::Ceip)?,
            events: flag(Program::Events)?,
            telemetry_mode: self.setting_as("program.telemetry_mode")?,
        })
    }

    pub fn set_choice(&self, p: Program, on: bool) -> Result<()> {
        self.set_setting(&format!("program.{}", p.name()), if on { "on" } else { "off" })
    }

    pub fn set_telemetry_mode(&self, mode: TelemetryMode) -> Result<()> {
        self.set_setting("program.telemetry_mode", mode.name())
    }

    pub fn task(&self, task: &str) -> Result<Option<TaskState>> {
        Ok(self
            .conn
            .query_row("SELECT due_at, last_run, failures FROM schedule WHERE task = ?1", [task], |r| {
                Ok(TaskState { due_at: r.get(0)?, last_run: r.get(1)?, failures: r.get(2)? })
            })
            .optional()?)
    }

    pub fn set_task(&self, task: &str, s: TaskState) -> Result<()> {
        self.conn.execute(
            "INSERT INTO schedule (task, due_at, last_run, failures) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(task) DO UPDATE SET due_at = excluded.due_at, last_run = excluded.last_run, failures = excluded.failures",
            params![task, s.due_at, s.last_run, s.failures],
        )?;
        Ok(())
    }

    pub fn record_attempt(&self, a: &Attempt) -> Result<()> {
        insert_attempt(&self.conn, a)
    }

    /// Records a successful upload: the attempt and the `sent` ledger row, in one transaction.
    /// A bundle already in the ledger (a repeat after a crash) gets no second row.
    pub fn record_sent(&mut self, a: &Attempt, entry: &LedgerEntry) -> Result<bool> {
        let tx = self.write_tx()?;
        insert_attempt(&tx, a)?;
        let already: bool = tx
            .query_row("SELECT 1 FROM ledger WHERE event = 'sent' AND sha256 = ?1", [&entry.sha256], |_| Ok(true))
            .optional()?
            .unwrap_or(false);
        if !already {
            append_ledger(&tx, entry)?;
        }
        tx.commit()?;
        Ok(!already)
    }

    pub fn append_ledger(&mut self, entry: &LedgerEntry) -> Result<()> {
        let tx = self.write_tx()?;
        append_ledger(&tx, entry)?;
        tx.commit()?;
        Ok(())
    }

    /// Names of bundles the ledger says were sent.
    pub fn sent_bundles(&self) -> Result<HashSet<String>> {
        let mut stmt = self.conn.prepare_cached("SELECT bundle FROM ledger WHERE event = 'sent'")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn is_sent_sha(&self, sha256: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT detail FROM ledger WHERE event = 'sent' AND sha256 = ?1", [sha256], |r| r.get(0))
            .optional()?)
    }

    /// When the program last had a bundle acknowledged (or reported by hand, unverified).
    pub fn last_success(&self, p: Program) -> Result<Option<Timestamp>> {
        Ok(self.conn.query_row(
            "SELECT MAX(at) FROM ledger WHERE program = ?1 AND event IN ('sent', 'reported')",
            [p.name()],
            |r| r.get(0),
        )?)
    }

    pub fn last_attempt(&self, p: Program) -> Result<Option<Attempt>> {
        let mut stmt =
            self.conn.prepare_cached(&format!("{ATTEMPT_SELECT} WHERE program = ?1 ORDER BY id DESC LIMIT 1"))?;
        Ok(stmt.query_row([p.name()], attempt_row).optional()?)
    }

    /// The newest attempts first.
    pub fn attempts(&self, limit: u32, offset: u32) -> Result<Vec<Attempt>> {
        let mut stmt = self.conn.prepare_cached(&format!("{ATTEMPT_SELECT} ORDER BY id DESC LIMIT ?1 OFFSET ?2"))?;
        let rows = stmt.query_map([limit, offset], attempt_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Adds one scan's error counts (in the hour `hour`) and samples, and saves the file's
    /// cursor, in one transaction.
    pub fn add_errors(
        &mut self,
        cursor_key: &str,
        cursor_json: &str,
        hour: Timestamp,
        found: &crate::collect::errors::Found,
        at: Timestamp,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        for (pattern, n) in &found.counts {
            tx.execute(
                "INSERT INTO error_counts (pattern, hour, count) VALUES (?1, ?2, ?3)",
                params![pattern, hour, *n as i64],
            )?;
        }
        for (pattern, text) in &found.samples {
            tx.execute(
                "INSERT INTO error_samples (pattern, at, text) VALUES (?1, ?2, ?3)",
                params![pattern, at, text],
            )?;
        }
        // Keep the newest 100 samples.
        tx.execute(
            "DELETE FROM error_samples WHERE id NOT IN (SELECT id FROM error_samples ORDER BY id DESC LIMIT 100)",
            [],
        )?;
        save_cursor(&tx, cursor_key, cursor_json)?;
        tx.commit()?;
        Ok(())
    }

    /// Error counts recorded after row `after` (per pattern and hour, summed), the samples
    /// recorded after sample `after_sample`, and the highest ids, to mark them sent.
    #[allow(clippy::type_complexity)]
    pub fn errors_after(
        &self,
        after: i64,
        after_sample: i64,
    ) -> Result<(Vec<(String, Timestamp, u64)>, Vec<(String, Timestamp, String)>, i64, i64)> {
        let max: i64 = self.conn.query_row("SELECT COALESCE(MAX(id), 0) FROM error_counts", [], |r| r.get(0))?;
        let max_sample: i64 =
            self.conn.query_row("SELECT COALESCE(MAX(id), 0) FROM error_samples", [], |r| r.get(0))?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT pattern, hour, SUM(count) FROM error_counts WHERE id > ?1 AND id <= ?2 GROUP BY pattern, hour ORDER BY hour, pattern",
        )?;
        let counts = stmt
            .query_map([after, max], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT pattern, at, text FROM error_samples WHERE id > ?1 AND id <= ?2 ORDER BY id")?;
        let samples = stmt
            .query_map([after_sample, max_sample], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok((counts, samples, max, max_sample))
    }

    pub fn record_export(&self, export_id: &str, created_at: Timestamp, bundles_json: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO exports (export_id, created_at, bundles) VALUES (?1, ?2, ?3)",
            params![export_id, created_at, bundles_json],
        )?;
        Ok(())
    }

    /// An export's bundle list (JSON), if this agent made it.
    pub fn export_bundles(&self, export_id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT bundles FROM exports WHERE export_id = ?1", [export_id], |r| r.get(0))
            .optional()?)
    }

    /// Attempts counted by program and result code.
    pub fn attempt_counts(&self) -> Result<Vec<(String, String, u64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT program, code, COUNT(*) FROM attempts GROUP BY program, code ORDER BY program, code",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn ledger(&self) -> Result<Vec<LedgerRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, at, event, program, bundle, sha256, size, detail, prev_hash, hash FROM ledger ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(LedgerRow {
                seq: r.get(0)?,
                at: r.get(1)?,
                event: r.get(2)?,
                program: r.get(3)?,
                bundle: r.get(4)?,
                sha256: r.get(5)?,
                size: r.get::<_, i64>(6)? as u64,
                detail: r.get(7)?,
                prev_hash: r.get(8)?,
                hash: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Recomputes the chain; the number of rows when whole, else where it breaks.
    pub fn verify_ledger(&self) -> Result<std::result::Result<usize, LedgerBreak>> {
        let rows = self.ledger()?;
        Ok(verify_chain(&rows).map(|()| rows.len()))
    }

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
}

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
    /// A log's saved cursor; a file never read (or a damaged cursor) starts from the beginning.
    pub fn log_cursor<T: serde::de::DeserializeOwned + Default>(&self, path: &str) -> Result<T> {
        let json: Option<String> =
            self.conn.query_row("SELECT cursor FROM log_cursors WHERE path = ?1", [path], |r| r.get(0)).optional()?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default())
    }

    /// Merges a read's hourly usage and saves its cursor, in one transaction: a crash never
    /// counts the same bytes twice.
    pub fn apply_usage(
        &mut self,
        path: &str,
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
        save_cursor(&tx, path, cursor_json)?;
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

fn save_cursor(conn: &Connection, key: &str, cursor_json: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO log_cursors (path, cursor) VALUES (?1, ?2) ON CONFLICT(path) DO UPDATE SET cursor = excluded.cursor",
        [key, cursor_json],
    )?;
    Ok(())
}

const ATTEMPT_SELECT: &str =
    "SELECT at, program, bundle, sha256, code, message, http_status, duration_ms FROM attempts";

fn attempt_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Attempt> {
    let program: String = r.get(1)?;
    Ok(Attempt {
        at: r.get(0)?,
        program: program.parse().unwrap_or(Program::Telemetry),
        bundle: r.get(2)?,
        sha256: r.get(3)?,
        code: r.get(4)?,
        message: r.get(5)?,
        http_status: r.get(6)?,
        duration_ms: r.get::<_, i64>(7)? as u64,
    })
}

fn insert_attempt(conn: &Connection, a: &Attempt) -> Result<()> {
    conn.execute(
        "INSERT INTO attempts (at, program, bundle, sha256, code, message, http_status, duration_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![a.at, a.program.name(), a.bundle, a.sha256, a.code, a.message, a.http_status, a.duration_ms as i64],
    )?;
    Ok(())
}

/// The hash of a row: the previous row's hash and the row's fields, one per line.
pub fn row_hash(prev: &str, r: &LedgerRow) -> String {
    let LedgerRow { seq, at, event, program, bundle, sha256, size, detail, .. } = r;
    sha256_hex(format!("{prev}\n{seq}\n{at}\n{event}\n{program}\n{bundle}\n{sha256}\n{size}\n{detail}").as_bytes())
}

fn append_ledger(conn: &Connection, e: &LedgerEntry) -> Result<()> {
    let (prev_seq, prev_hash): (i64, String) = conn
        .query_row("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, GENESIS.to_string()));
    let seq = prev_seq + 1;
    let row = LedgerRow {
        seq,
        at: e.at,
        event: e.event.name().into(),
        program: e.program.name().into(),
        bundle: e.bundle.clone(),
        sha256: e.sha256.clone(),
        size: e.size,
        detail: e.detail.clone(),
        prev_hash: prev_hash.clone(),
        hash: String::new(),
    };
    let hash = row_hash(&prev_hash, &row);
    conn.execute(
        "INSERT INTO ledger (seq, at, event, program, bundle, sha256, size, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            seq,
            e.at,
            e.event.name(),
            e.program.name(),
            e.bundle,
            e.sha256,
            e.size as i64,
            e.detail,
            prev_hash,
            hash
        ],
    )?;
    Ok(())
}

/// Checks that every row follows the one before and hashes to what it says.
pub fn verify_chain(rows: &[LedgerRow]) -> std::result::Result<(), LedgerBreak> {
    let mut prev = GENESIS.to_string();
    for (i, r) in rows.iter().enumerate() {
        let expect_seq = i as i64 + 1;
        if r.seq != expect_seq {
            return Err(LedgerBreak { seq: r.seq, why: format!("expected row {expect_seq}: a row is missing") });
        }
        if r.prev_hash != prev {
            return Err(LedgerBreak { seq: r.seq, why: "it does not point at the row before".into() });
        }
        if row_hash(&prev, r) != r.hash {
            return Err(LedgerBreak { seq: r.seq, why: "its content was changed after it was written".into() });
        }
        prev = r.hash.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sha: &str) -> LedgerEntry {
        LedgerEntry {
            at: 10,
            event: LedgerEvent::Sent,
            program: Program::Telemetry,
            bundle: format!("b-{sha}.zip"),
            sha256: sha.into(),
            size: 5,
            detail: "{}".into(),
        }
    }

    fn attempt() -> Attempt {
        Attempt {
            at: 10,
            program: Program::Telemetry,
            bundle: None,
            sha256: None,
            code: "CTX_UPLOADER_SUCCESS".into(),
            message: String::new(),
            http_status: Some(200),
            duration_ms: 3,
        }
    }

    #[test]
    fn ledger_chain_verifies_and_detects_an_edit() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.sqlite")).unwrap();
        assert!(s.record_sent(&attempt(), &entry("aa")).unwrap());
        assert!(!s.record_sent(&attempt(), &entry("aa")).unwrap(), "a repeat is recorded once");
        s.record_sent(&attempt(), &entry("bb")).unwrap();
        assert_eq!(s.verify_ledger().unwrap(), Ok(2));
        s.conn.execute("UPDATE ledger SET size = 6 WHERE seq = 1", []).unwrap();
        assert_eq!(s.verify_ledger().unwrap().unwrap_err().seq, 1);
        assert_eq!(s.last_success(Program::Telemetry).unwrap(), Some(10));
    }

    #[test]
    fn choices_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        Store::open(&path).unwrap().set_choice(Program::Ceip, false).unwrap();
        let c = Store::open(&path).unwrap().choices().unwrap();
        assert_eq!(c.ceip, Some(false));
        assert_eq!(c.call_home, None);
    }
}
