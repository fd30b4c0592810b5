//! The errors collector's tables: error-line counts per pattern and hour, and the newest redacted
//! samples. What a program's bundles already carry is kept in settings, not here.

use std::path::Path;

use rusqlite::params;

use super::usage::save_cursor;
use super::{LogKey, Result, Store};
use crate::clock::Timestamp;

impl Store {
    /// Adds one scan's error counts (in the hour `hour`) and samples, and saves the file's
    /// cursor, in one transaction.
    pub fn add_errors(
        &mut self,
        error_log: &Path,
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
        save_cursor(&tx, LogKey::ErrorLog(error_log), cursor_json)?;
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
}
