//! The receiver's index: customers, their enrolment tokens, the installs bound to them, and the
//! bundles taken in — in SQLite (one receiver, the embedded default) or PostgreSQL (a fleet's
//! replicas sharing one index). Migrations run when it is opened.
//!
//! Tokens are kept as the SHA-256 of their secret half only: the index never holds a token an
//! attacker could present. Both back ends answer the same questions through [`Index`]; it
//! knows nothing of HTTP ([`crate::http`] turns its answers into statuses).

mod fleet;
mod pg_conn;
mod pg_schema;
mod postgres;
mod sqlite;

use std::path::PathBuf;

use callhome_protocol::exemption::Exemption;
use callhome_protocol::time::Timestamp;

use crate::store::StoreSpec;

pub use fleet::InstallFacts;
pub use postgres::PgIndex;
pub use sqlite::{SqliteIndex, SqliteThread};

/// What a token looks like: `cht_<id>_<secret>`, both halves lowercase hex.
const TOKEN_PREFIX: &str = "cht_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// What went wrong with the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The SQLite database could not be opened, migrated or queried.
    #[error("index {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    /// PostgreSQL could not be reached, migrated or queried.
    #[error("index on PostgreSQL ({url}): {message}")]
    Postgres { url: String, message: String },
    /// A value given to a command does not fit.
    #[error("{0}")]
    Invalid(String),
}

/// Where the index is: `sqlite:PATH` or `postgres://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexSpec {
    Sqlite(PathBuf),
    Postgres(String),
}

impl IndexSpec {
    /// Parses `--index`; without one, `index.sqlite` in a local store (an S3 store needs one).
    pub fn parse(spec: Option<&str>, store: &StoreSpec) -> Result<IndexSpec, IndexError> {
        match spec {
            None => match store.local_dir() {
                Some(dir) => Ok(IndexSpec::Sqlite(dir.join("index.sqlite"))),
                None => Err(IndexError::Invalid(format!(
                    "--store {store}: the index is not kept in a bucket; give --index sqlite:PATH or \
                     postgres://USER@HOST:PORT/DATABASE (the replicas' shared index)"
                ))),
            },
            Some(s) if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                Ok(IndexSpec::Postgres(s.to_string()))
            }
            Some(s) => match s.strip_prefix("sqlite:") {
                Some(p) if !p.is_empty() => Ok(IndexSpec::Sqlite(PathBuf::from(p))),
                _ => Err(IndexError::Invalid(format!(
                    "--index {s}: give sqlite:PATH or postgres://USER@HOST:PORT/DATABASE"
                ))),
            },
        }
    }
}

/// What the index holds for an upload ([`Index::upload_lookup`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UploadLookup {
    /// The bundle has a row: a replica recorded it, and answered its receipt.
    pub recorded: bool,
    /// That receipt (JSON), when the row keeps it (rows older than receipts in the index do not).
    pub receipt: Option<String>,
    /// The exemption that covers the install now.
    pub exemption: Option<Exemption>,
}

/// What both back ends answer for an upload's lookup: whether the bundle has a row (`Some`) and
/// the receipt it keeps, and the newest exemption granted to the install (its document and end).
type LookupRows = (Option<Option<String>>, Option<(String, Timestamp)>);

impl UploadLookup {
    /// The receipt the index keeps for the bundle `sha256`, when it reads as one (an unreadable
    /// one is said in the log and counts as none).
    pub fn held_receipt(&self, sha256: &str) -> Option<callhome_protocol::receipt::Receipt> {
        let json = self.receipt.as_deref()?;
        serde_json::from_str(json)
            .map_err(|e| tracing::warn!("the index holds an unreadable receipt for {sha256}: {e}"))
            .ok()
    }

    /// The lookup from its rows: the exemption only when it still runs at `now`.
    fn of(row: Option<Option<String>>, exemption: Option<(String, Timestamp)>, now: Timestamp) -> UploadLookup {
        let exemption = exemption.filter(|(_, ends)| *ends > now).and_then(|(doc, _)| serde_json::from_str(&doc).ok());
        UploadLookup { recorded: row.is_some(), receipt: row.flatten(), exemption }
    }
}

/// A token's columns as both back ends read them (`tokens t`), the SHA-256 of its secret last.
const TOKEN_COLUMNS: &str =
    "t.id, t.customer, t.created_at, t.expires_at, t.revoked_at, t.single_install, t.secret_sha256";
/// How many installs the token `t` enrolled, after [`TOKEN_COLUMNS`] in `tokens list` only.
const TOKEN_INSTALLS: &str = "(SELECT COUNT(*) FROM installs i WHERE i.token_id = t.id)";

/// An enrolment token as the index keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    pub customer: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// Only one install may enrol with it.
    pub single_install: bool,
}

/// Why a presented token was refused (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Malformed,
    Unknown,
    Revoked,
    Expired,
}

/// Why an install may not use a token (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindRefusal {
    /// The install id is bound to another customer.
    OtherCustomer,
    /// The single-install token already enrolled another install.
    TokenTaken { install_id: String },
}

/// A bundle taken in, for the index.
#[derive(Debug, Clone)]
pub struct BundleRow {
    pub sha256: String,
    pub install_id: Option<String>,
    pub program: String,
    pub size: u64,
    pub receipt_id: String,
    pub received_at: Timestamp,
    /// The signed receipt (JSON): what every replica answers for this SHA-256.
    pub receipt: String,
}

/// What recording a bundle found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The receipt the index holds for the SHA-256: the one just recorded, or the one another
    /// replica recorded first.
    pub receipt: String,
    /// This call recorded the bundle (it was new to the whole receiver).
    pub inserted: bool,
}

/// An export taken in.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub receipt_id: String,
    pub export_id: String,
    pub install_id: String,
    pub received_at: Timestamp,
    pub accepted: u64,
    pub rejected: u64,
}

/// A new token: its id, the whole token (shown once) and the SHA-256 the index keeps.
struct NewToken {
    id: String,
    token: String,
    secret_sha256: String,
}

fn check_customer(customer: &str) -> Result<&str, IndexError> {
    let customer = customer.trim();
    if customer.is_empty() || customer.len() > 200 || customer.chars().any(char::is_control) {
        return Err(IndexError::Invalid(
            "--customer: give the customer's name (1 to 200 characters, no control characters)".into(),
        ));
    }
    Ok(customer)
}

fn new_token() -> Result<NewToken, IndexError> {
    let mut bytes = [0u8; ID_BYTES + SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| IndexError::Invalid(format!("no randomness for a token: {e}")))?;
    let id = hex::encode(&bytes[..ID_BYTES]);
    let secret = hex::encode(&bytes[ID_BYTES..]);
    let secret_sha256 = callhome_protocol::fs::sha256_hex(secret.as_bytes());
    Ok(NewToken { token: format!("{TOKEN_PREFIX}{id}_{secret}"), id, secret_sha256 })
}

/// The id and the SHA-256 of the secret of a presented token, when it has the token's form.
fn parse_token(presented: &str) -> Option<(&str, String)> {
    let (id, secret) = presented.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
    (id.len() == 2 * ID_BYTES && secret.len() == 2 * SECRET_BYTES)
        .then(|| (id, callhome_protocol::fs::sha256_hex(secret.as_bytes())))
}

/// Whether the stored token `row` (the token and the SHA-256 of its secret; none when unknown)
/// answers a presented one at `now`.
fn judge(row: Option<(Token, String)>, presented_sha256: &str, now: Timestamp) -> Result<Token, TokenRefusal> {
    use subtle::ConstantTimeEq;
    let Some((token, stored_sha256)) = row else { return Err(TokenRefusal::Unknown) };
    if !bool::from(stored_sha256.as_bytes().ct_eq(presented_sha256.as_bytes())) {
        return Err(TokenRefusal::Unknown);
    }
    if token.revoked_at.is_some() {
        return Err(TokenRefusal::Revoked);
    }
    if token.expires_at.is_some_and(|e| e <= now) {
        return Err(TokenRefusal::Expired);
    }
    Ok(token)
}

/// The index, on either back end.
pub enum Index {
    Sqlite(SqliteThread),
    Postgres(PgIndex),
}

impl Index {
    /// Opens the index `spec` names and applies missing migrations.
    pub async fn open(spec: &IndexSpec) -> Result<Index, IndexError> {
        match spec {
            IndexSpec::Sqlite(path) => {
                let path = path.clone();
                let index = tokio::task::spawn_blocking(move || SqliteIndex::open(&path))
                    .await
                    .map_err(|e| IndexError::Invalid(e.to_string()))??;
                SqliteThread::start(index).map(Index::Sqlite)
            }
            IndexSpec::Postgres(url) => PgIndex::connect(url).await.map(Index::Postgres),
        }
    }

    /// Makes a token for `customer` (the customer is created on first use); returns the token
    /// id and the token itself, which is shown once and never stored.
    pub async fn create_token(
        &self,
        customer: &str,
        expires_at: Option<Timestamp>,
        single_install: bool,
        now: Timestamp,
    ) -> Result<(String, String), IndexError> {
        let customer = check_customer(customer)?.to_string();
        let new = new_token()?;
        match self {
            Index::Sqlite(i) => {
                let (id, sha) = (new.id.clone(), new.secret_sha256.clone());
                i.call(move |i| i.insert_token(&customer, &id, &sha, expires_at, single_install, now)).await??;
            }
            Index::Postgres(i) => {
                i.insert_token(&customer, &new.id, &new.secret_sha256, expires_at, single_install, now).await?;
            }
        }
        Ok((new.id, new.token))
    }

    /// Every token, oldest first, with how many installs it enrolled (counted here only: an
    /// upload's authentication reads the token alone, whatever the size of its fleet).
    pub async fn tokens(&self) -> Result<Vec<(Token, u64)>, IndexError> {
        match self {
            Index::Sqlite(i) => i.call(move |i| i.tokens()).await?,
            Index::Postgres(i) => i.tokens().await,
        }
    }

    /// Revokes the token `id`; false when there is no such token.
    pub async fn revoke(&self, id: &str, now: Timestamp) -> Result<bool, IndexError> {
        match self {
            Index::Sqlite(i) => {
                let id = id.to_string();
                i.call(move |i| i.revoke(&id, now)).await?
            }
            Index::Postgres(i) => i.revoke(id, now).await,
        }
    }

    /// The token `presented` stands for, when it is known, unrevoked and unexpired at `now`.
    pub async fn authenticate(
        &self,
        presented: &str,
        now: Timestamp,
    ) -> Result<Result<Token, TokenRefusal>, IndexError> {
        let Some((id, presented_sha)) = parse_token(presented) else { return Ok(Err(TokenRefusal::Malformed)) };
        let row = match self {
            Index::Sqlite(i) => {
                let id = id.to_string();
                i.call(move |i| i.token(&id)).await??
            }
            Index::Postgres(i) => i.token(id).await?,
        };
        Ok(judge(row, &presented_sha, now))
    }

    /// [`Index::authenticate`] and, beside it, [`Index::upload_lookup`] for the upload of
    /// `sha256` the token comes with: on PostgreSQL both go in one round trip. The lookup is
    /// answered only with the token.
    pub async fn authenticate_upload(
        &self,
        presented: &str,
        now: Timestamp,
        sha256: &str,
        install_id: Option<&str>,
    ) -> Result<Result<(Token, UploadLookup), TokenRefusal>, IndexError> {
        let Some((id, presented_sha)) = parse_token(presented) else { return Ok(Err(TokenRefusal::Malformed)) };
        let (row, (bundle, exemption)) = match self {
            Index::Sqlite(i) => {
                let (id, sha, install) = (id.to_string(), sha256.to_string(), install_id.map(str::to_string));
                i.call(move |i| Ok::<_, IndexError>((i.token(&id)?, i.upload_lookup(&sha, install.as_deref())?)))
                    .await??
            }
            Index::Postgres(i) => i.token_and_upload_lookup(id, sha256, install_id).await?,
        };
        Ok(judge(row, &presented_sha, now).map(|t| (t, UploadLookup::of(bundle, exemption, now))))
    }

    /// Binds `install_id` to `token`'s customer on its first use; refuses an install bound to
    /// another customer, and a second install on a single-install token.
    pub async fn bind(
        &self,
        install_id: &str,
        token: &Token,
        now: Timestamp,
    ) -> Result<Result<(), BindRefusal>, IndexError> {
        match self {
            Index::Sqlite(i) => {
                let (id, t) = (install_id.to_string(), token.clone());
                i.call(move |i| i.bind(&id, &t, now)).await?
            }
            Index::Postgres(i) => i.bind(install_id, token, now).await,
        }
    }

    /// Whether `install_id` ever enrolled or sent a bundle.
    pub async fn install_known(&self, install_id: &str) -> Result<bool, IndexError> {
        match self {
            Index::Sqlite(i) => {
                let id = install_id.to_string();
                i.call(move |i| i.install_known(&id)).await?
            }
            Index::Postgres(i) => i.install_known(install_id).await,
        }
    }

    /// Keeps a signed exemption (the newest granted for an install is the one that counts).
    pub async fn record_exemption(&self, e: &Exemption) -> Result<(), IndexError> {
        let document = serde_json::to_string(e).map_err(|err| IndexError::Invalid(err.to_string()))?;
        match self {
            Index::Sqlite(i) => {
                let e = e.clone();
                i.call(move |i| i.insert_exemption(&e, &document)).await?
            }
            Index::Postgres(i) => i.insert_exemption(e, &document).await,
        }
    }

    /// What the index holds for an upload of `sha256` from `install_id`, in one query: the
    /// receipt (JSON) given for it by any replica ([`Index::receipt`]), and the exemption that
    /// covers the install at `now` — the newest granted, unless it has ended (a newer grant
    /// replaces an older one, even to end it sooner — as the agent sees it).
    pub async fn upload_lookup(
        &self,
        sha256: &str,
        install_id: Option<&str>,
        now: Timestamp,
    ) -> Result<UploadLookup, IndexError> {
        let (row, exemption) = match self {
            Index::Sqlite(i) => {
                let (sha, id) = (sha256.to_string(), install_id.map(str::to_string));
                i.call(move |i| i.upload_lookup(&sha, id.as_deref())).await??
            }
            Index::Postgres(i) => i.upload_lookup(sha256, install_id).await?,
        };
        Ok(UploadLookup::of(row, exemption, now))
    }

    /// Every exemption granted, newest first.
    pub async fn exemptions(&self) -> Result<Vec<Exemption>, IndexError> {
        let docs = match self {
            Index::Sqlite(i) => i.call(move |i| i.exemption_documents()).await??,
            Index::Postgres(i) => i.exemption_documents().await?,
        };
        Ok(docs.iter().filter_map(|d| serde_json::from_str(d).ok()).collect())
    }

    /// How many bundles the index records.
    pub async fn bundle_count(&self) -> Result<u64, IndexError> {
        match self {
            Index::Sqlite(i) => i.call(move |i| i.bundle_count()).await?,
            Index::Postgres(i) => i.bundle_count().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_binds_one_install_and_stops_at_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&IndexSpec::Sqlite(dir.path().join("index.sqlite"))).await.unwrap();
        let (id, token) = index.create_token("Acme", Some(1_000), true, 10).await.unwrap();
        let t = index.authenticate(&token, 20).await.unwrap().unwrap();
        assert_eq!((t.id.as_str(), t.customer.as_str()), (id.as_str(), "Acme"));
        assert_eq!(index.bind("install-a", &t, 20).await.unwrap(), Ok(()));
        assert_eq!(index.bind("install-a", &t, 21).await.unwrap(), Ok(()));
        assert!(matches!(index.bind("install-b", &t, 22).await.unwrap(), Err(BindRefusal::TokenTaken { .. })));
        let (_, other) = index.create_token("Globex", None, false, 10).await.unwrap();
        let other = index.authenticate(&other, 20).await.unwrap().unwrap();
        assert_eq!(index.bind("install-a", &other, 23).await.unwrap(), Err(BindRefusal::OtherCustomer));
        let forged = format!("{}{}", &token[..token.len() - 1], if token.ends_with('0') { '1' } else { '0' });
        assert_eq!(index.authenticate(&forged, 20).await.unwrap(), Err(TokenRefusal::Unknown));
        assert_eq!(index.authenticate("nonsense", 20).await.unwrap(), Err(TokenRefusal::Malformed));
        assert_eq!(index.authenticate(&token, 1_000).await.unwrap(), Err(TokenRefusal::Expired));
        assert!(index.revoke(&id, 30).await.unwrap());
        assert!(!index.revoke("0000000000000000", 30).await.unwrap());
        assert_eq!(index.authenticate(&token, 40).await.unwrap(), Err(TokenRefusal::Revoked));
        assert_eq!(index.tokens().await.unwrap().len(), 2);
        assert!(index.create_token(" ", None, true, 1).await.is_err());
    }

    #[tokio::test]
    async fn the_newest_exemption_granted_counts_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&IndexSpec::Sqlite(dir.path().join("index.sqlite"))).await.unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        let grant = |id: &str, until: &str, at: &str| {
            Exemption::grant(&key, id.into(), "inst-1", until, "audit", at.into()).unwrap()
        };
        let sha = format!("{:064x}", 1);
        let exemption_for = |id: &'static str, at| {
            let (index, sha) = (&index, &sha);
            async move { index.upload_lookup(sha, Some(id), at).await.unwrap().exemption }
        };
        assert_eq!(exemption_for("inst-1", 0).await, None);
        index.record_exemption(&grant("a", "2027-06-30", "2026-11-01T00:00:00Z")).await.unwrap();
        let now = callhome_protocol::time::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(exemption_for("inst-1", now).await.unwrap().exemption_id, "a");
        assert_eq!(exemption_for("inst-2", now).await, None);
        index.record_exemption(&grant("b", "2026-12-31", "2026-11-20T00:00:00Z")).await.unwrap();
        assert_eq!(exemption_for("inst-1", now).await.unwrap().exemption_id, "b", "a newer grant replaces");
        let january = callhome_protocol::time::parse_rfc3339("2027-01-01T00:00:00Z").unwrap();
        assert_eq!(exemption_for("inst-1", january).await, None, "ended with its day");
        assert_eq!(index.exemptions().await.unwrap().len(), 2);
        // Beside whether the upload's bundle has a row.
        let looked = index.upload_lookup(&sha, Some("inst-1"), now).await.unwrap();
        assert_eq!(
            (looked.recorded, looked.receipt, looked.exemption.map(|e| e.exemption_id)),
            (false, None, Some("b".into()))
        );
        assert_eq!(index.upload_lookup(&sha, Some("inst-1"), january).await.unwrap(), UploadLookup::default());
        assert_eq!(index.upload_lookup(&sha, None, now).await.unwrap(), UploadLookup::default());
    }

    #[test]
    fn index_specs() {
        let store = &StoreSpec::Local("/s".into());
        assert_eq!(IndexSpec::parse(None, store).unwrap(), IndexSpec::Sqlite("/s/index.sqlite".into()));
        let bucket = &"s3://bundles/eu".parse::<StoreSpec>().unwrap();
        let e = IndexSpec::parse(None, bucket).unwrap_err().to_string();
        assert!(e.contains("the index is not kept in a bucket") && e.contains("--index sqlite:PATH"), "{e}");
        assert_eq!(IndexSpec::parse(Some("sqlite:/x.db"), bucket).unwrap(), IndexSpec::Sqlite("/x.db".into()));
        assert_eq!(IndexSpec::parse(Some("sqlite:/x.db"), store).unwrap(), IndexSpec::Sqlite("/x.db".into()));
        assert!(matches!(IndexSpec::parse(Some("postgres://u@h/d"), store).unwrap(), IndexSpec::Postgres(_)));
        assert!(IndexSpec::parse(Some("mysql://x"), store).unwrap_err().to_string().contains("postgres://"));
    }
}
