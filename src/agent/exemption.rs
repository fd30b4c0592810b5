//! Exemptions from the reporting rule: taking one in (beside a receipt, or imported from a file
//! carried to an isolated network), and the compliance clock with the one held applied.
//!
//! An exemption is taken only when it verifies with `upload.receipt_public_key`, names this
//! install and has not ended; the newest granted replaces an older one. It is kept as its signed
//! text and checked again whenever it is read, so an exemption written into the state database
//! by hand changes nothing. While one is held the compliance state is `exempt` (the clock's
//! counts go on underneath); it ends with its `until` day.

use super::*;
use crate::receipt::load_public_key;
use callhome_protocol::exemption::{Exemption, ExemptionError};

/// Why an exemption was not taken; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ExemptionRefusal {
    /// The file is not an exemption at all.
    #[error("{label} is not a callhome exemption ({why}); nothing was changed")]
    Unreadable { label: String, why: String },
    /// No key to check it with.
    #[error(
        "no upload.receipt_public_key is configured to check the exemption with; set it to the receiver's public key. Nothing was changed"
    )]
    NoKey,
    /// The configured key cannot be read.
    #[error("{0}; nothing was changed")]
    Key(String),
    /// Forged, changed, from another receiver, or for another install.
    #[error("{label}: {source}; nothing was changed")]
    NotGenuine { label: String, source: ExemptionError },
    /// It ended already.
    #[error("the exemption ended with {until}; ask the vendor for a new one. Nothing was changed")]
    Ended { until: String },
    /// A newer one is held.
    #[error("a newer exemption is held ({held}, granted {granted_at}, until {until}); nothing was changed")]
    Superseded { held: String, granted_at: String, until: String },
    #[error(transparent)]
    Agent(#[from] AgentError),
}

impl From<StoreError> for ExemptionRefusal {
    fn from(e: StoreError) -> Self {
        ExemptionRefusal::Agent(AgentError::Store(e))
    }
}

impl ExemptionRefusal {
    /// Whether the exemption itself is not genuine (as opposed to a configuration, a date or a
    /// newer exemption held).
    pub fn is_forgery(&self) -> bool {
        matches!(self, ExemptionRefusal::Unreadable { .. } | ExemptionRefusal::NotGenuine { .. })
    }
}

impl Agent {
    fn receipt_key(&self) -> std::result::Result<ed25519_dalek::VerifyingKey, ExemptionRefusal> {
        let path = self.cfg.upload.receipt_public_key.as_ref().ok_or(ExemptionRefusal::NoKey)?;
        load_public_key(&self.cfg.resolve(path)).map_err(|e| ExemptionRefusal::Key(e.to_string()))
    }

    /// Imports an exemption file's bytes (`callhome exemption import`); `label` names it in
    /// messages. Returns the exemption and whether it is new (false: it was held already).
    pub fn import_exemption(
        &self,
        bytes: &[u8],
        label: &str,
    ) -> std::result::Result<(Exemption, bool), ExemptionRefusal> {
        let e: Exemption = serde_json::from_slice(bytes)
            .map_err(|err| ExemptionRefusal::Unreadable { label: label.into(), why: err.to_string() })?;
        let new = self.take_exemption(&e, label)?;
        Ok((e, new))
    }

    /// Takes `e` when it is genuine, for this install, not ended and not older than the one held.
    pub(super) fn take_exemption(&self, e: &Exemption, label: &str) -> std::result::Result<bool, ExemptionRefusal> {
        let key = self.receipt_key()?;
        e.verify(&key, &self.install.install_id)
            .map_err(|source| ExemptionRefusal::NotGenuine { label: label.into(), source })?;
        if e.ends_at() <= self.clock.now() {
            return Err(ExemptionRefusal::Ended { until: e.until.clone() });
        }
        let store = self.store();
        if let Some(held) = self.held_exemption(&store, &key) {
            if held.exemption_id == e.exemption_id {
                return Ok(false);
            }
            if held.granted() > e.granted() {
                return Err(ExemptionRefusal::Superseded {
                    held: held.exemption_id,
                    granted_at: held.granted_at,
                    until: held.until,
                });
            }
        }
        store.set_setting(Key::Exemption, &serde_json::to_string(e).expect("an exemption serializes"))?;
        drop(store);
        info!(exemption = %e.exemption_id, until = %e.until, "exemption from reporting taken: {}", e.reason);
        self.notify(Notice::StateChanged { what: format!("exemption {} until {}", e.exemption_id, e.until) });
        Ok(true)
    }

    /// An exemption that came beside a receipt: taken when genuine, logged when not.
    pub(super) fn exemption_from_receiver(&self, e: &Exemption) {
        match self.take_exemption(e, "the exemption beside the receipt") {
            Ok(_) => {}
            Err(ExemptionRefusal::Superseded { .. }) => {}
            Err(err) => warn!("{err}"),
        }
    }

    /// The exemption kept in the state, when it still verifies with `key` for this install.
    fn held_exemption(&self, store: &Store, key: &ed25519_dalek::VerifyingKey) -> Option<Exemption> {
        let text = store.setting(Key::Exemption).ok()??;
        let e: Exemption = serde_json::from_str(&text).ok()?;
        match e.verify(key, &self.install.install_id) {
            Ok(()) => Some(e),
            Err(err) => {
                warn!("the exemption kept in the state does not verify ({err}); it is ignored");
                None
            }
        }
    }

    /// The exemption that covers this install at `now`, if any.
    pub fn active_exemption(&self, now: Timestamp) -> Result<Option<Exemption>> {
        if self.store().setting(Key::Exemption)?.is_none() {
            return Ok(None);
        }
        let Ok(key) = self.receipt_key() else {
            warn!("an exemption is kept but no usable upload.receipt_public_key checks it; it is ignored");
            return Ok(None);
        };
        let store = self.store();
        Ok(self.held_exemption(&store, &key).filter(|e| e.ends_at() > now))
    }

    /// The compliance clock at `now` from `last_success`, with an exemption held applied.
    pub(super) fn clock_at(
        &self,
        last_success: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(compliance::Status, Option<Exemption>)> {
        let c = compliance::evaluate(&self.cfg.compliance, last_success, self.install.created_at, now);
        let exemption = self.active_exemption(now)?;
        Ok(match exemption {
            Some(e) => (c.exempt(), Some(e)),
            None => (c, None),
        })
    }
}
