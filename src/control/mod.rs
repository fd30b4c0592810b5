//! The one interface every front end uses to read and change the agent: the CLI, the tray and the
//! API's routes. Two implementations answer with the same wire documents ([`crate::api::dto`]):
//! [`Local`], the agent in this process (what the routes serve, and what the CLI and the tray use
//! when no agent runs elsewhere), and [`Remote`], a running agent's API (so nothing works on the
//! spool behind that agent's back). [`Control`] is either, chosen by [`Control::open`].
//!
//! Front ends never reach the store or the spool: what they need is a method here.

mod local;
mod metrics;
mod remote;

use std::sync::Arc;

pub use local::Local;
pub use remote::Remote;

use crate::agent::{Agent, AgentError};
use crate::api::client::{Client, ClientError};
use crate::api::dto::{
    AckRequest, AlertDoc, BundleDoc, CollectedDoc, ExportDoc, HistoryPage, LedgerCheckDoc, LedgerDoc, NotificationsDoc,
    NotificationsRequest, ProgramChanged, ProgramDoc, ProxyDoc, QuarantineActionDoc, QuarantinedDoc, StatusDoc,
    TestAlertDoc, UploadReportDoc, WithdrawnDoc,
};
use crate::clock::Timestamp;
use crate::config::Config;
use crate::datadir::DataDir;
use crate::programs::{Program, TelemetryMode};
use crate::secrets::Value as Secret;

/// Why a request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// What was asked for does not exist (a bundle, a file in a bundle).
    #[error("{0}")]
    NotFound(String),
    /// The rules refuse it (mandatory telemetry, a program locked by policy).
    #[error("{0}")]
    Refused(String),
    /// The request itself is wrong (a value of the wrong kind).
    #[error("{0}")]
    Invalid(String),
    /// Something it needs is missing on this machine (no keyring service).
    #[error("{0}")]
    Unavailable(String),
    /// The agent failed (its data directory, database or spool).
    #[error(transparent)]
    Agent(AgentError),
    /// The work failed in a way no other kind names (a manual export that could not be
    /// written, a task that ended abnormally); the message says what.
    #[error("{0}")]
    Failed(String),
    /// The running agent's API could not be reached or answered unexpectedly.
    #[error(transparent)]
    Api(ClientError),
}

impl From<AgentError> for ControlError {
    fn from(e: AgentError) -> ControlError {
        match e {
            AgentError::Refused(m) => ControlError::Refused(m),
            AgentError::NotFound(m) => ControlError::NotFound(m),
            // No keyring, or a locked one: the service is unavailable until the administrator
            // acts (503), not an internal failure.
            AgentError::Secret(
                e @ (crate::secrets::SecretError::NoKeyring { .. } | crate::secrets::SecretError::Refused { .. }),
            ) => ControlError::Unavailable(e.to_string()),
            other => ControlError::Agent(other),
        }
    }
}

impl From<ClientError> for ControlError {
    fn from(e: ClientError) -> ControlError {
        match e {
            ClientError::Status { status: 404, detail } => ControlError::NotFound(detail),
            ClientError::Status { status: 409, detail } => ControlError::Refused(detail),
            ClientError::Status { status: 400 | 422, detail } => ControlError::Invalid(detail),
            ClientError::Status { status: 503, detail } => ControlError::Unavailable(detail),
            other => ControlError::Api(other),
        }
    }
}

pub type Result<T> = std::result::Result<T, ControlError>;

/// A change to one program: on/off for an optional one, automatic/manual for telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramChange {
    Enabled(bool),
    Mode(TelemetryMode),
}

/// Calls the same method on whichever implementation answers.
macro_rules! both {
    ($control:expr, $method:ident($($arg:expr),*)) => {
        match $control {
            Control::Local(l) => l.$method($($arg),*).await,
            Control::Remote(r) => r.$method($($arg),*).await,
        }
    };
}

/// The agent, in this process or through its API.
pub enum Control {
    Local(Local),
    Remote(Remote),
}

impl Control {
    /// The running agent's API when an agent holds `dir`, else the data directory itself with
    /// `config` (work on it takes the work lock, so an agent starting meanwhile takes turns).
    pub fn open(
        dir: DataDir,
        config: impl FnOnce() -> std::result::Result<Config, crate::config::ConfigError>,
    ) -> std::result::Result<Control, OpenError> {
        if let Some(client) = Client::discover(&dir) {
            return Ok(Control::Remote(Remote::new(client)));
        }
        let agent = Agent::open(config()?, dir, Arc::new(crate::clock::SystemClock))?;
        Ok(Control::Local(Local::new(Arc::new(agent))))
    }

    /// The agent in this process, when that is where the answers come from.
    pub fn local(&self) -> Option<&Local> {
        match self {
            Control::Local(l) => Some(l),
            Control::Remote(_) => None,
        }
    }

    pub async fn status(&self) -> Result<StatusDoc> {
        both!(self, status())
    }

    pub async fn programs(&self) -> Result<Vec<ProgramDoc>> {
        both!(self, programs())
    }

    pub async fn set_program(&self, p: Program, change: ProgramChange) -> Result<ProgramChanged> {
        both!(self, set_program(p, change))
    }

    pub async fn collect(&self, p: Option<Program>) -> Result<Vec<CollectedDoc>> {
        both!(self, collect(p))
    }

    pub async fn upload(&self, p: Option<Program>) -> Result<UploadReportDoc> {
        both!(self, upload(p))
    }

    pub async fn bundles(&self) -> Result<Vec<BundleDoc>> {
        both!(self, bundles())
    }

    /// The exact bytes of a pending bundle (what preview shows and upload sends).
    pub async fn bundle_bytes(&self, name: &str) -> Result<Vec<u8>> {
        both!(self, bundle_bytes(name))
    }

    /// Withdraws a pending bundle of an optional program (the ledger records it).
    pub async fn withdraw(&self, name: &str) -> Result<WithdrawnDoc> {
        both!(self, withdraw(name))
    }

    pub async fn quarantine(&self) -> Result<Vec<QuarantinedDoc>> {
        both!(self, quarantine())
    }

    pub async fn quarantine_retry(&self, id: &str) -> Result<QuarantineActionDoc> {
        both!(self, quarantine_retry(id))
    }

    pub async fn quarantine_purge(&self, id: &str) -> Result<QuarantineActionDoc> {
        both!(self, quarantine_purge(id))
    }

    pub async fn history(&self, limit: u32, offset: u32) -> Result<HistoryPage> {
        both!(self, history(limit, offset))
    }

    pub async fn ledger(&self) -> Result<Vec<LedgerDoc>> {
        both!(self, ledger())
    }

    pub async fn ledger_verify(&self) -> Result<LedgerCheckDoc> {
        both!(self, ledger_verify())
    }

    pub async fn licenses(&self) -> Result<serde_json::Value> {
        both!(self, licenses())
    }

    pub async fn usage(&self, feature: Option<&str>, since: Timestamp) -> Result<Vec<serde_json::Value>> {
        both!(self, usage(feature, since))
    }

    pub async fn proxy(&self) -> Result<ProxyDoc> {
        both!(self, proxy())
    }

    /// Sets the proxy; the password (when given) goes to the keyring of the process that holds
    /// the agent's state: the running agent's, else this one's.
    pub async fn set_proxy(&self, url: &str, user: Option<&str>, password: Option<&Secret>) -> Result<ProxyDoc> {
        both!(self, set_proxy(url, user, password))
    }

    pub async fn clear_proxy(&self) -> Result<ProxyDoc> {
        both!(self, clear_proxy())
    }

    /// Stores (`Some`) or removes (`None`) the endpoint token.
    pub async fn register(&self, token: Option<&Secret>) -> Result<ProxyDoc> {
        both!(self, register(token))
    }

    /// A one-time sign-in link to the agent's web dashboard (its API serves the dashboard).
    pub async fn dashboard_link(&self) -> Result<crate::api::dto::DashboardLinkDoc> {
        let client = match self {
            Control::Remote(r) => return Ok(r.client().dashboard_link().await?),
            Control::Local(l) => Client::discover(l.agent().data_dir()).ok_or_else(|| {
                ControlError::Unavailable("the API is not running, so there is no dashboard (api.enabled)".into())
            })?,
        };
        Ok(client.dashboard_link().await?)
    }

    /// The open alerts, acknowledged or not.
    pub async fn alerts(&self) -> Result<Vec<AlertDoc>> {
        both!(self, alerts())
    }

    /// Acknowledges an open alert (through `until`, when the request gives one).
    pub async fn ack_alert(&self, id: &str, req: &AckRequest) -> Result<AlertDoc> {
        both!(self, ack_alert(id, req))
    }

    pub async fn unack_alert(&self, id: &str) -> Result<AlertDoc> {
        both!(self, unack_alert(id))
    }

    /// Sends a test alert on one channel, or on every configured one.
    pub async fn test_alert(&self, channel: Option<&str>) -> Result<Vec<TestAlertDoc>> {
        both!(self, test_alert(channel))
    }

    /// Desktop notifications on or off, the quiet period, the channels' state.
    pub async fn notifications(&self) -> Result<NotificationsDoc> {
        both!(self, notifications())
    }

    pub async fn set_notifications(&self, req: &NotificationsRequest) -> Result<NotificationsDoc> {
        both!(self, set_notifications(req))
    }

    /// Exports the pending bundles into the data directory's `exports/` for manual reporting.
    pub async fn export(&self, program: Option<Program>, max_size: Option<u64>) -> Result<ExportDoc> {
        both!(self, export(program, max_size))
    }
}

/// Why [`Control::open`] found no agent to work with.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Agent(#[from] AgentError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretError;

    #[test]
    fn a_locked_or_missing_keyring_is_unavailable_not_a_failure() {
        let locked = AgentError::Secret(SecretError::Refused { what: "the endpoint token", detail: "locked".into() });
        assert!(matches!(ControlError::from(locked), ControlError::Unavailable(m) if m.contains("unlock the keyring")));
        let none = AgentError::Secret(SecretError::NoKeyring {
            detail: "no service".into(),
            what: "the endpoint token",
            env: "CALLHOME_ENDPOINT_TOKEN",
            key: "endpoint-token",
        });
        assert!(matches!(ControlError::from(none), ControlError::Unavailable(_)));
        let other = AgentError::Secret(SecretError::Other { what: "the endpoint token", detail: "broken".into() });
        assert!(matches!(ControlError::from(other), ControlError::Agent(_)));
    }
}
