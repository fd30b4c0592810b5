//! The agent's state in SQLite: settings, schedule, upload attempts, samples, and the sent ledger.
//!
//! The database is opened in WAL mode with a busy timeout, so the agent and one-shot CLI commands
//! can share it. Migrations are numbered and recorded in `PRAGMA user_version`. The ledger is an
//! append-only hash chain: each row stores the SHA-256 of its fields and of the row before, so a
//! changed, removed or reordered row is found by [`Store::verify_ledger`]; its head is repeated,
//! fsynced, in `ledger.head` beside the database after every row (`ledger::HEAD_FILE`). This
//! module speaks no HTTP and owns no files besides the database and that head file.
//!
//! Layout: this file opens the database, migrates it and hands out write transactions;
//! `migrations` holds every schema change; one file per family of tables adds its methods to
//! [`Store`]: `settings` (settings, program choices, the schedule; `key` spells their keys), `attempts`, `ledger`,
//! `usage` (samples, hourly license usage, log cursors), `errors`, `exports`, `licenses`
//! (license events and the lines seen), `deliveries` (the alert channels' outcomes) and `alerts`
//! (open alerts and their acknowledgements).

mod alerts;
mod attempts;
mod deliveries;
mod errors;
mod exports;
mod key;
mod ledger;
mod licenses;
mod migrations;
mod settings;
mod usage;

use std::path::Path;

use rusqlite::Connection;

pub use alerts::{AckError, AlertRow};
pub use attempts::Attempt;
pub use deliveries::{Delivery, DeliveryOutcome};
pub use key::{ErrorsPart, Key, LogKey};
pub use ledger::{
    GENESIS, HEAD_FILE, LedgerBreak, LedgerEntry, LedgerEvent, LedgerRow, ReceiptCopy, row_hash, verify_chain,
};
pub use licenses::{EventRow, SeenLicense};
pub use settings::TaskState;
pub use usage::UsageRow;

use migrations::MIGRATIONS;

/// Why the state database could not do what was asked.
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

/// The open state database (one connection; the agent keeps it behind a mutex).
pub struct Store {
    conn: Connection,
    /// `ledger.head` beside the database: the ledger's head, rewritten after every new row.
    head_file: std::path::PathBuf,
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
        let mut store = Store { conn, head_file: path.with_file_name(HEAD_FILE) };
        if store.migrate()? < migrations::ANCHORS {
            // A new database, or one from before the head file: it starts now.
            store.write_head_file();
        }
        Ok(store)
    }

    /// Applies missing migrations; returns the version the database had. The version is read
    /// inside a write transaction, so two processes opening a new database at once do not both
    /// apply the same step.
    fn migrate(&mut self) -> Result<i64> {
        let known = MIGRATIONS.len() as i64;
        let mut first = None;
        loop {
            let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let from = *first.get_or_insert(version);
            if version > known {
                return Err(StoreError::TooNew { found: version, known });
            }
            if version == known {
                return Ok(from);
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
}
