//! What the agent keeps for alerts as objects and for the notification settings: the open
//! alerts synced from its status (`store::alerts`), acknowledging them, supplemental grace
//! periods (their start remembered in the settings), and the notification switch and quiet
//! period as set over the API on top of the configuration.

use std::time::Duration;

use super::{Agent, AgentError, Status};
use crate::clock::Timestamp;
use crate::config::NotificationsConfig;
use crate::licenses::{self, GracePeriod, Inventory};
use crate::store::{AckError, AlertRow, Key};

type Result<T> = std::result::Result<T, AgentError>;

impl Agent {
    /// Makes the conditions open in `status` the open alerts, and returns them.
    pub(super) fn sync_alerts(&self, status: &Status) -> Result<Vec<AlertRow>> {
        let open = crate::alerts::open::conditions(status);
        Ok(self.store().sync_alerts(&open, status.now)?)
    }

    /// The open alerts as of now (acknowledged or not), oldest first.
    pub fn open_alerts(&self) -> Result<Vec<AlertRow>> {
        Ok(self.status()?.alerts)
    }

    /// Acknowledges the open alert `id`, until `until` when given (else until it clears or
    /// gets worse).
    pub fn ack_alert(&self, id: &str, until: Option<Timestamp>, reason: Option<&str>) -> Result<AlertRow> {
        self.status()?;
        let row = self.store().ack_alert(id, self.now(), until, reason)?;
        self.notify(super::Notice::StateChanged { what: format!("alert {id} acknowledged") });
        Ok(row)
    }

    /// Takes back the acknowledgement of the open alert `id`.
    pub fn unack_alert(&self, id: &str) -> Result<AlertRow> {
        self.status()?;
        let row = self.store().unack_alert(id)?;
        self.notify(super::Notice::StateChanged { what: format!("alert {id} no longer acknowledged") });
        Ok(row)
    }

    /// The supplemental grace periods running (or ended while the feature is still over its
    /// capacity). The start is remembered, so it stays put while the debug log's hours age; a
    /// period that ended with use back within capacity is forgotten.
    pub fn grace_periods(&self, inv: &Inventory) -> Result<Vec<GracePeriod>> {
        let now = self.now();
        let store = self.store();
        let mut out = Vec::new();
        for (feature, days, capacity) in licenses::grace_capacity(inv) {
            let len = i64::from(days) * 86_400;
            let key = Key::GraceStart(feature.clone());
            let stored = store.setting_as::<Timestamp>(key.clone())?;
            let Some(start) = stored.or(store.first_over(&feature, capacity, now - len)?) else { continue };
            let end = start + len;
            if now >= end && store.first_over(&feature, capacity, now - 86_400)?.is_none() {
                store.delete_setting(key)?;
                continue;
            }
            if stored.is_none() {
                store.set_setting(key, &start.to_string())?;
            }
            out.push(GracePeriod { feature, days, start, end });
        }
        Ok(out)
    }

    /// Desktop notifications on or off and the quiet period: as set over the API, else as
    /// configured.
    pub fn notification_settings(&self) -> Result<NotificationsConfig> {
        let store = self.store();
        let cfg = &self.config().notifications;
        let enabled = match store.setting(Key::NotifyEnabled)?.as_deref() {
            Some("on") => true,
            Some("off") => false,
            _ => cfg.enabled,
        };
        let quiet_period =
            store.setting_as::<u64>(Key::NotifyQuiet)?.map(Duration::from_secs).unwrap_or(cfg.quiet_period);
        Ok(NotificationsConfig { enabled, quiet_period })
    }

    /// Changes the notification settings (what is `None` stays); kept in the state database.
    pub fn set_notification_settings(
        &self,
        enabled: Option<bool>,
        quiet: Option<Duration>,
    ) -> Result<NotificationsConfig> {
        {
            let store = self.store();
            if let Some(on) = enabled {
                store.set_setting(Key::NotifyEnabled, if on { "on" } else { "off" })?;
            }
            if let Some(q) = quiet {
                store.set_setting(Key::NotifyQuiet, &q.as_secs().to_string())?;
            }
        }
        self.notify(super::Notice::StateChanged { what: "notifications".into() });
        self.notification_settings()
    }
}

impl From<AckError> for AgentError {
    fn from(e: AckError) -> AgentError {
        match e {
            AckError::Store(s) => AgentError::Store(s),
            AckError::NotOpen(_) => AgentError::NotFound(e.to_string()),
        }
    }
}
