//! Upload attempts: one row per try (or skip), with its result code, for status, history and
//! the metrics.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store};
use crate::clock::Timestamp;
use crate::programs::Program;

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

impl Store {
    pub fn record_attempt(&self, a: &Attempt) -> Result<()> {
        insert_attempt(&self.conn, a)
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

    /// Attempts counted by program and result code.
    pub fn attempt_counts(&self) -> Result<Vec<(String, String, u64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT program, code, COUNT(*) FROM attempts GROUP BY program, code ORDER BY program, code",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
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

pub(super) fn insert_attempt(conn: &Connection, a: &Attempt) -> Result<()> {
    conn.execute(
        "INSERT INTO attempts (at, program, bundle, sha256, code, message, http_status, duration_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![a.at, a.program.name(), a.bundle, a.sha256, a.code, a.message, a.http_status, a.duration_ms as i64],
    )?;
    Ok(())
}
