//! Manual exports this agent made (`callhome export`), so a receipt can be matched to them.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store};
use crate::clock::Timestamp;

impl Store {
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
}
