//! Documents of the agent's settings: the proxy and where its secrets come from, the endpoint
//! token, the dashboard's sign-in link.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The proxy uploads go through, and where the secrets come from (never their values).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProxyDoc {
    pub url: Option<String>,
    pub username: Option<String>,
    pub no_proxy: Option<String>,
    /// `settings` (chosen with `callhome proxy set` or PUT /api/v1/proxy) or `config`.
    pub origin: String,
    pub password_set: bool,
    /// `environment`, `systemd-credential` or `keyring`.
    pub password_source: Option<String>,
    pub token_set: bool,
    pub token_source: Option<String>,
}

impl From<&crate::upload::Access> for ProxyDoc {
    fn from(a: &crate::upload::Access) -> ProxyDoc {
        ProxyDoc {
            url: a.url.clone(),
            username: a.user.clone(),
            no_proxy: a.no_proxy.clone(),
            origin: a.origin.to_string(),
            password_set: a.password.is_some(),
            password_source: a.password.as_ref().map(|(_, s)| s.name().to_string()),
            token_set: a.token.is_some(),
            token_source: a.token.as_ref().map(|(_, s)| s.name().to_string()),
        }
    }
}

/// `PUT /api/v1/proxy`: the password is write-only (omit it to keep the stored one).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyRequest {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// `PUT /api/v1/registration`: the endpoint token, write-only.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub token: String,
}

/// `DELETE /api/v1/bundles/{id}`: the bundle withdrawn (the ledger records it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WithdrawnDoc {
    pub bundle: String,
    pub program: String,
    pub size: u64,
}

/// A file in quarantine/ (`GET /api/v1/quarantine`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuarantinedDoc {
    /// Its file name in quarantine/: the id to retry or purge it by.
    pub id: String,
    pub size: u64,
    /// Why it is there (the receiver's refusal, or the failed check).
    pub reason: String,
    pub quarantined_at: String,
}

/// What a retry or a purge of a quarantined file did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuarantineActionDoc {
    pub id: String,
    /// `requeued` (back in the spool for the next upload) or `purged` (deleted; the ledger says so).
    pub action: String,
    /// The pending bundle's name, once requeued.
    pub bundle: Option<String>,
    pub program: Option<String>,
}

/// `GET /api/v1/ledger/verify`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LedgerCheckDoc {
    /// The chain is intact and every receipt matches its bundle (and verifies, with a key).
    pub ok: bool,
    /// One line for a person, as `callhome ledger verify` prints it.
    pub summary: String,
    pub rows: usize,
    pub receipts: usize,
    /// Receipts that signed a ledger head the chain still reaches (receipts from receivers
    /// that sign no head anchor nothing).
    #[serde(default)]
    pub anchored: usize,
    /// Whether receipt signatures were checked (`upload.receipt_public_key` is set).
    pub signatures_checked: bool,
    /// Bundles reported by hand without a receipt.
    pub unverified: usize,
    /// What is wrong, when `ok` is false.
    pub problem: Option<String>,
}

/// `POST /api/v1/dashboard/link`: a one-time sign-in link to the dashboard.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DashboardLinkDoc {
    /// `http://127.0.0.1:PORT/login?code=…`: open it once, within `expires_in_seconds`.
    pub url: String,
    /// Where the code is POSTed as a form (`code=…`): `http://127.0.0.1:PORT/login`.
    pub login: String,
    /// The one-time code itself (64 hexadecimal digits).
    pub code: String,
    pub expires_at: String,
    pub expires_in_seconds: u64,
}
