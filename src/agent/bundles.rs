//! The agent's bookkeeping for the work that runs beside the scheduler (manual reporting, support
//! bundles, the alerts): the pending bundles, the history, the exports remembered, retiring a
//! bundle by name, what the alerts keep. Each goes through the store and
//! [`Spool::retire`](crate::spool::Spool::retire), so those modules never reach either.

use super::{Agent, AgentError};
use crate::clock::Timestamp;
use crate::programs::Program;
use crate::secrets::{self, Secret, SecretError, Value};
use crate::spool::{Fate, Pending};
use crate::store::{Attempt, Delivery, DeliveryOutcome, Key, LedgerEntry};

type Result<T> = std::result::Result<T, AgentError>;

impl Agent {
    /// Upload attempts, newest first.
    pub fn history(&self, limit: u32, offset: u32) -> Result<Vec<Attempt>> {
        Ok(self.store().attempts(limit, offset)?)
    }

    /// The ledger's hash chain checked: how many rows it holds, or where it breaks.
    pub fn verify_ledger_chain(&self) -> Result<std::result::Result<usize, crate::store::LedgerBreak>> {
        Ok(self.store().verify_ledger()?)
    }

    /// What `ledger verify` checks: `ledger.head` read first, then the receipts kept beside the
    /// chain, then the rows, so a row appended meanwhile only makes the ledger longer.
    pub fn ledger_evidence(&self) -> Result<crate::ledger::Evidence> {
        let path = self.data_dir().ledger_head_path();
        let head_file = match std::fs::read(&path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(Err(format!("{}: {e}", path.display()))),
        };
        let store = self.store();
        let copies = store.receipt_copies()?;
        let rows = store.ledger()?;
        Ok(crate::ledger::Evidence { rows, copies, head_file })
    }

    /// The ledger's head now (what an upload or an export declares).
    pub fn ledger_head(&self) -> Result<crate::receipt::LedgerHead> {
        Ok(self.store().ledger_head()?)
    }

    /// Where the agent stopped reading a vendor-daemon debug log (the default: the start).
    pub fn debug_log_cursor(&self, path: &std::path::Path) -> crate::licenses::debuglog::Cursor {
        self.store().log_cursor(crate::store::LogKey::DebugLog(path)).unwrap_or_default()
    }

    /// Where the errors collector stopped reading a product log (the default: the start).
    pub fn error_log_cursor(&self, path: &std::path::Path) -> crate::tail::TailCursor {
        self.store().log_cursor(crate::store::LogKey::ErrorLog(path)).unwrap_or_default()
    }

    /// Every pending bundle, of every program.
    pub fn all_pending(&self) -> Result<Vec<Pending>> {
        Ok(self.spool().all_pending()?)
    }

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

/// What the alerts keep between runs, in the state database.
impl Agent {
    /// The upload result code that is failing now, as the alerts last saw it.
    pub fn alert_failing(&self) -> Result<Option<String>> {
        Ok(self.store().setting(Key::NotifyFailing)?)
    }

    pub fn set_alert_failing(&self, code: Option<&str>) -> Result<()> {
        let store = self.store();
        match code {
            Some(code) => store.set_setting(Key::NotifyFailing, code)?,
            None => store.delete_setting(Key::NotifyFailing)?,
        }
        Ok(())
    }

    /// When the news with this key was last told.
    pub fn last_told(&self, news_key: &str) -> Result<Option<Timestamp>> {
        Ok(self.store().setting_as::<Timestamp>(Key::NotifyShown(news_key.into()))?)
    }

    pub fn mark_told(&self, news_key: &str, at: Timestamp) -> Result<()> {
        Ok(self.store().set_setting(Key::NotifyShown(news_key.into()), &at.to_string())?)
    }

    /// Records one attempt of an alert channel and tells live views; a database that cannot
    /// record it is logged, never a reason to stop delivering.
    pub fn record_delivery(&self, channel: &str, news_key: &str, outcome: DeliveryOutcome<'_>) {
        let now = self.now();
        if let Err(e) = self.store().record_delivery(channel, news_key, now, outcome) {
            tracing::warn!("cannot record the {channel} channel's delivery: {e}");
        }
        // Live views (the API's status snapshot, the event stream) show it at once.
        self.notify(super::Notice::StateChanged { what: format!("alerts.{channel}") });
    }

    /// What the state database knows of a channel's deliveries.
    pub fn delivery(&self, channel: &str) -> Result<Option<Delivery>> {
        Ok(self.store().delivery(channel)?)
    }

    /// An alert channel's secret (the SMTP password, the webhook secret): the environment, a
    /// systemd credential, then the keyring when `callhome alerts set-password` stored it there.
    pub fn channel_secret(&self, s: Secret) -> std::result::Result<Option<Value>, SecretError> {
        let in_keyring = self
            .store()
            .setting(Key::SecretInKeyring(s))
            .ok()
            .flatten()
            .is_some_and(|v| v == super::access::IN_KEYRING);
        Ok(secrets::lookup(s, in_keyring)?.map(|(v, _)| v))
    }

    /// Stores an alert channel's secret in the OS keyring (nowhere else) and remembers that it
    /// is there; the channels read it at their next delivery.
    pub fn set_channel_secret(&self, s: Secret, value: &Value) -> Result<()> {
        secrets::store(s, value)?;
        self.store().set_setting(Key::SecretInKeyring(s), super::access::IN_KEYRING)?;
        Ok(())
    }

    /// The 90-day clock as of now (`exempt` while an exemption is held).
    pub fn compliance(&self) -> Result<crate::compliance::Status> {
        let last = self.store().last_success(Program::Telemetry)?;
        Ok(self.clock_at(last, self.now())?.0)
    }
}
