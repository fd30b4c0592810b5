//! The agent's bundle bookkeeping for the work that runs beside the scheduler (manual reporting):
//! the pending bundles a front end may list, the exports remembered, and retiring a bundle by
//! name. Each goes through the store and [`Spool::retire`](crate::spool::Spool::retire), so manual
//! reporting never reaches either itself.

use crate::agent::{Agent, AgentError};
use crate::clock::Timestamp;
use crate::programs::Program;
use crate::spool::{Fate, Pending};
use crate::store::{Attempt, LedgerEntry};

type Result<T> = std::result::Result<T, AgentError>;

impl Agent {
    /// The pending bundles of `p`, oldest first.
    pub fn pending(&self, p: Program) -> Result<Vec<Pending>> {
        Ok(self.spool().pending(p)?)
    }

    /// Remembers an export (its id and the bundles it holds, as JSON) for its receipt.
    pub fn record_export(&self, export_id: &str, at: Timestamp, bundles_json: &str) -> Result<()> {
        Ok(self.store().record_export(export_id, at, bundles_json)?)
    }

    /// The bundles (JSON) of an export this agent made, if it made it.
    pub fn export_bundles(&self, export_id: &str) -> Result<Option<String>> {
        Ok(self.store().export_bundles(export_id)?)
    }

    /// Records `name` (of `program`) as acknowledged with `entry` and `attempt`, and retires its
    /// file when it is still pending here; a bundle not pending here (retired already, or never
    /// in this spool) only gets its ledger row. Returns whether the ledger row was new.
    pub fn acknowledge(&self, name: &str, program: Program, entry: &LedgerEntry, attempt: &Attempt) -> Result<bool> {
        match self.spool().find(name)?.filter(|p| p.program == program) {
            Some(p) => Ok(self.spool().retire(&mut self.store(), &p, Fate::Sent { entry, attempt })?),
            None => Ok(self.store().record_sent(attempt, entry)?),
        }
    }

    /// Retires `name` (of `program`) with `entry` when it is pending here; false when it is not.
    pub fn retire_pending(&self, name: &str, program: Program, entry: &LedgerEntry) -> Result<bool> {
        let Some(p) = self.spool().find(name)?.filter(|p| p.program == program) else { return Ok(false) };
        self.spool().retire(&mut self.store(), &p, Fate::Recorded(entry))?;
        Ok(true)
    }
}
