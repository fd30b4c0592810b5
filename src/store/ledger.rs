//! The sent ledger: an append-only hash chain of what happened to every bundle (sent, withdrawn,
//! evicted, quarantined, reported). Each row stores the SHA-256 of its fields and of the row
//! before, so a changed, removed or reordered row is found by [`verify_chain`].
//!
//! Two things stand beside the chain so that cutting rows from its end is found too: a copy of
//! every receipt a `sent` row holds (`ledger_receipts`, written in the row's transaction), and
//! the head (row count and newest hash) in the file [`HEAD_FILE`] beside the database,
//! rewritten and fsynced after every commit. The head file may lag one row behind after a crash
//! between the commit and the write; it is never ahead of the ledger.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use super::attempts::{Attempt, insert_attempt};
use super::{Result, Store};
use crate::clock::Timestamp;
use crate::fsutil::sha256_hex;
use crate::programs::Program;
use callhome_protocol::receipt::LedgerHead;

/// The chain's first `prev_hash`.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The file beside the database that repeats the ledger's head.
pub const HEAD_FILE: &str = "ledger.head";

/// A receipt as `ledger_receipts` keeps it: the receipt text, the row that first held it and
/// that row's bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptCopy {
    pub seq: i64,
    pub bundle: String,
    pub detail: String,
}

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
    /// The administrator deleted it from quarantine/ (`callhome quarantine purge`), unsent.
    Purged,
}

impl LedgerEvent {
    pub fn name(self) -> &'static str {
        match self {
            LedgerEvent::Sent => "sent",
            LedgerEvent::Withdrawn => "withdrawn",
            LedgerEvent::Evicted => "evicted",
            LedgerEvent::Quarantined => "quarantined",
            LedgerEvent::Reported => "reported",
            LedgerEvent::Purged => "purged",
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

/// Where the ledger chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger row {seq} does not match the chain: {why}")]
pub struct LedgerBreak {
    pub seq: i64,
    pub why: String,
}

impl Store {
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
        if !already {
            self.write_head_file();
        }
        Ok(!already)
    }

    pub fn append_ledger(&mut self, entry: &LedgerEntry) -> Result<()> {
        let tx = self.write_tx()?;
        append_ledger(&tx, entry)?;
        tx.commit()?;
        self.write_head_file();
        Ok(())
    }

    /// The ledger's head: its newest row's number and hash (0 and [`GENESIS`] when empty).
    pub fn ledger_head(&self) -> Result<LedgerHead> {
        let (rows, hash): (i64, String) = self
            .conn
            .query_row("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, GENESIS.to_string()));
        Ok(LedgerHead { rows: u64::try_from(rows).unwrap_or(0), hash })
    }

    /// Rewrites [`HEAD_FILE`] (atomically, fsynced) with the ledger's head. A failure is logged,
    /// not returned: the row it follows is committed, and `ledger verify` accepts a head file
    /// that lags behind the ledger.
    pub(super) fn write_head_file(&self) {
        let written = self.ledger_head().map_err(|e| e.to_string()).and_then(|head| {
            let json = serde_json::to_vec(&head).expect("a head serializes");
            crate::fsutil::write_atomic(&self.head_file, &json).map_err(|e| e.to_string())
        });
        if let Err(e) = written {
            tracing::warn!(
                "cannot write {}: {e}; `callhome ledger verify` checks against the older head",
                self.head_file.display()
            );
        }
    }

    /// Every receipt a `sent` row ever held (`ledger_receipts`), oldest first.
    pub fn receipt_copies(&self) -> Result<Vec<ReceiptCopy>> {
        let mut stmt = self.conn.prepare_cached("SELECT seq, bundle, detail FROM ledger_receipts ORDER BY seq")?;
        let rows = stmt.query_map([], |r| Ok(ReceiptCopy { seq: r.get(0)?, bundle: r.get(1)?, detail: r.get(2)? }))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
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
    if e.event == LedgerEvent::Sent {
        conn.execute(
            "INSERT OR IGNORE INTO ledger_receipts (detail, seq, bundle) VALUES (?1, ?2, ?3)",
            params![e.detail, seq, e.bundle],
        )?;
    }
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
    fn the_head_file_follows_every_row_and_receipts_are_kept_beside_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let head =
            || -> LedgerHead { serde_json::from_slice(&std::fs::read(dir.path().join(HEAD_FILE)).unwrap()).unwrap() };
        assert_eq!(head(), LedgerHead { rows: 0, hash: GENESIS.into() }, "a new database starts its head file");
        s.record_sent(&attempt(), &entry("aa")).unwrap();
        s.append_ledger(&LedgerEntry { event: LedgerEvent::Withdrawn, detail: "off".into(), ..entry("bb") }).unwrap();
        assert_eq!(head(), s.ledger_head().unwrap());
        assert_eq!(head().rows, 2);
        assert_eq!(head().hash, s.ledger().unwrap()[1].hash);
        let copies = s.receipt_copies().unwrap();
        assert_eq!(copies, vec![ReceiptCopy { seq: 1, bundle: "b-aa.zip".into(), detail: "{}".into() }]);
        s.conn.execute("DELETE FROM ledger WHERE seq = 1", []).unwrap();
        assert_eq!(s.receipt_copies().unwrap().len(), 1, "the copy outlives its row");
    }
}
