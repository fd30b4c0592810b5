//! The receiver's index in SQLite: customers, their enrolment tokens, the installs bound to
//! them, the bundles taken in, and the exemptions granted. Migrations run when it is opened.
//!
//! Tokens are kept as the SHA-256 of their secret half only: the index never holds a token an
//! attacker could present. It knows nothing of HTTP; [`crate::auth`] turns its answers into
//! statuses.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use subtle::ConstantTimeEq;

use callhome_protocol::exemption::Exemption;
use callhome_protocol::fs::sha256_hex;
use callhome_protocol::time::Timestamp;

/// What a token looks like: `cht_<id>_<secret>`, both halves lowercase hex.
const TOKEN_PREFIX: &str = "cht_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// The schema, one migration per entry, applied in order (`PRAGMA user_version` counts them).
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE customers (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    customer TEXT NOT NULL REFERENCES customers(name),
    secret_sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    single_install INTEGER NOT NULL
);
CREATE TABLE installs (
    install_id TEXT PRIMARY KEY,
    customer TEXT NOT NULL REFERENCES customers(name),
    token_id TEXT NOT NULL REFERENCES tokens(id),
    first_seen INTEGER NOT NULL
);
CREATE INDEX installs_by_token ON installs(token_id);
CREATE TABLE bundles (
    sha256 TEXT PRIMARY KEY,
    install_id TEXT,
    program TEXT NOT NULL,
    size INTEGER NOT NULL,
    receipt_id TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE exemptions (
    exemption_id TEXT PRIMARY KEY,
    install_id TEXT NOT NULL,
    until TEXT NOT NULL,
    ends_at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    document TEXT NOT NULL
);
CREATE INDEX exemptions_by_install ON exemptions(install_id, granted_at);
"#,
];

/// What went wrong with the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The database could not be opened, migrated or queried.
    #[error("index {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    /// A name given to a command does not fit.
    #[error("{0}")]
    Invalid(String),
}

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
    /// How many installs it enrolled.
    pub installs: u64,
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
pub struct BundleRow<'a> {
    pub sha256: &'a str,
    pub install_id: Option<&'a str>,
    pub program: &'a str,
    pub size: u64,
    pub receipt_id: &'a str,
    pub received_at: Timestamp,
}

/// The SQLite index.
pub struct Index {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Index {
    /// Opens (creating it, 0600 on Unix) the index at `path` and applies missing migrations.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let err = |source| IndexError::Sqlite { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::store::create_private_dir(dir)
                .map_err(|e| IndexError::Invalid(format!("index {}: {e}", path.display())))?;
        }
        let fresh = !path.exists();
        let conn = Connection::open(path).map_err(err)?;
        #[cfg(unix)]
        if fresh {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let _ = fresh;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "wal").map_err(err)?;
        conn.pragma_update(None, "synchronous", "normal").map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "on").map_err(err)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(err)?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
            let tx = conn.unchecked_transaction().map_err(err)?;
            tx.execute_batch(m).map_err(err)?;
            tx.pragma_update(None, "user_version", i as i64 + 1).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(Index { path: path.to_path_buf(), conn: Mutex::new(conn) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, IndexError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).map_err(|source| IndexError::Sqlite { path: self.path.clone(), source })
    }

    /// Makes a token for `customer` (the customer is created on first use); returns the token
    /// id and the token itself, which is shown once and never stored.
    pub fn create_token(
        &self,
        customer: &str,
        expires_at: Option<Timestamp>,
        single_install: bool,
        now: Timestamp,
    ) -> Result<(String, String), IndexError> {
        let customer = customer.trim();
        if customer.is_empty() || customer.len() > 200 || customer.chars().any(char::is_control) {
            return Err(IndexError::Invalid(
                "--customer: give the customer's name (1 to 200 characters, no control characters)".into(),
            ));
        }
        let mut bytes = [0u8; ID_BYTES + SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| IndexError::Invalid(format!("no randomness for a token: {e}")))?;
        let id = hex::encode(&bytes[..ID_BYTES]);
        let secret = hex::encode(&bytes[ID_BYTES..]);
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("INSERT OR IGNORE INTO customers (name, created_at) VALUES (?1, ?2)", params![customer, now])?;
            tx.execute(
                "INSERT INTO tokens (id, customer, secret_sha256, created_at, expires_at, single_install) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, customer, sha256_hex(secret.as_bytes()), now, expires_at, single_install],
            )?;
            tx.commit()
        })?;
        Ok((id.clone(), format!("{TOKEN_PREFIX}{id}_{secret}")))
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> Result<Vec<Token>, IndexError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT t.id, t.customer, t.created_at, t.expires_at, t.revoked_at, t.single_install,
                        (SELECT COUNT(*) FROM installs i WHERE i.token_id = t.id)
                 FROM tokens t ORDER BY t.created_at, t.rowid",
            )?;
            st.query_map([], token_row)?.collect()
        })
    }

    /// Revokes the token `id`; false when there is no such token.
    pub fn revoke(&self, id: &str, now: Timestamp) -> Result<bool, IndexError> {
        self.with(|c| {
            c.execute("UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1", params![id, now])
                .map(|n| n > 0)
        })
    }

    /// The token `presented` stands for, when it is known, unrevoked and unexpired at `now`.
    pub fn authenticate(&self, presented: &str, now: Timestamp) -> Result<Result<Token, TokenRefusal>, IndexError> {
        let Some((id, secret)) = presented.strip_prefix(TOKEN_PREFIX).and_then(|t| t.split_once('_')) else {
            return Ok(Err(TokenRefusal::Malformed));
        };
        if id.len() != 2 * ID_BYTES || secret.len() != 2 * SECRET_BYTES {
            return Ok(Err(TokenRefusal::Malformed));
        }
        let row = self.with(|c| {
            c.query_row(
                "SELECT t.id, t.customer, t.created_at, t.expires_at, t.revoked_at, t.single_install,
                        (SELECT COUNT(*) FROM installs i WHERE i.token_id = t.id), t.secret_sha256
                 FROM tokens t WHERE t.id = ?1",
                [id],
                |r| Ok((token_row(r)?, r.get::<_, String>(7)?)),
            )
            .optional()
        })?;
        let Some((token, stored)) = row else { return Ok(Err(TokenRefusal::Unknown)) };
        if !bool::from(sha256_hex(secret.as_bytes()).as_bytes().ct_eq(stored.as_bytes())) {
            return Ok(Err(TokenRefusal::Unknown));
        }
        if token.revoked_at.is_some() {
            return Ok(Err(TokenRefusal::Revoked));
        }
        if token.expires_at.is_some_and(|e| e <= now) {
            return Ok(Err(TokenRefusal::Expired));
        }
        Ok(Ok(token))
    }

    /// Binds `install_id` to `token`'s customer on its first use; refuses an install bound to
    /// another customer, and a second install on a single-install token.
    pub fn bind(&self, install_id: &str, token: &Token, now: Timestamp) -> Result<Result<(), BindRefusal>, IndexError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let bound: Option<String> = tx
                .query_row("SELECT customer FROM installs WHERE install_id = ?1", [install_id], |r| r.get(0))
                .optional()?;
            if bound.as_ref().is_some_and(|c| *c != token.customer) {
                return Ok(Err(BindRefusal::OtherCustomer));
            }
            if token.single_install {
                let first: Option<String> = tx
                    .query_row("SELECT install_id FROM installs WHERE token_id = ?1 LIMIT 1", [&token.id], |r| r.get(0))
                    .optional()?;
                if let Some(first) = first.filter(|f| f != install_id) {
                    return Ok(Err(BindRefusal::TokenTaken { install_id: first }));
                }
            }
            if bound.is_none() {
                tx.execute(
                    "INSERT INTO installs (install_id, customer, token_id, first_seen) VALUES (?1, ?2, ?3, ?4)",
                    params![install_id, token.customer, token.id, now],
                )?;
            }
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// Records a bundle taken in (once per SHA-256).
    pub fn record_bundle(&self, b: &BundleRow<'_>) -> Result<(), IndexError> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO bundles (sha256, install_id, program, size, receipt_id, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![b.sha256, b.install_id, b.program, i64::try_from(b.size).unwrap_or(i64::MAX), b.receipt_id, b.received_at],
            )
            .map(|_| ())
        })
    }

    /// Whether `install_id` ever enrolled or sent a bundle.
    pub fn install_known(&self, install_id: &str) -> Result<bool, IndexError> {
        self.with(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM installs WHERE install_id = ?1)
                     OR EXISTS(SELECT 1 FROM bundles WHERE install_id = ?1)",
                [install_id],
                |r| r.get(0),
            )
        })
    }

    /// Keeps a signed exemption (the newest granted for an install is the one that counts).
    pub fn record_exemption(&self, e: &Exemption) -> Result<(), IndexError> {
        let document = serde_json::to_string(e).map_err(|err| IndexError::Invalid(err.to_string()))?;
        self.with(|c| {
            c.execute(
                "INSERT INTO exemptions (exemption_id, install_id, until, ends_at, reason, granted_at, document)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![e.exemption_id, e.install_id, e.until, e.ends_at(), e.reason, e.granted(), document],
            )
            .map(|_| ())
        })
    }

    /// The exemption that covers `install_id` at `now`: the newest granted, unless it has ended
    /// (a newer grant replaces an older one, even to end it sooner — as the agent sees it).
    pub fn exemption_for(&self, install_id: &str, now: Timestamp) -> Result<Option<Exemption>, IndexError> {
        let row: Option<(String, Timestamp)> = self.with(|c| {
            c.query_row(
                "SELECT document, ends_at FROM exemptions WHERE install_id = ?1
                 ORDER BY granted_at DESC, rowid DESC LIMIT 1",
                [install_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })?;
        Ok(row.filter(|(_, ends)| *ends > now).and_then(|(doc, _)| serde_json::from_str(&doc).ok()))
    }

    /// Every exemption granted, newest first.
    pub fn exemptions(&self) -> Result<Vec<Exemption>, IndexError> {
        let docs: Vec<String> = self.with(|c| {
            let mut st = c.prepare("SELECT document FROM exemptions ORDER BY granted_at DESC, rowid DESC")?;
            st.query_map([], |r| r.get(0))?.collect()
        })?;
        Ok(docs.iter().filter_map(|d| serde_json::from_str(d).ok()).collect())
    }

    /// How many bundles the index records.
    pub fn bundle_count(&self) -> Result<u64, IndexError> {
        self.with(|c| c.query_row("SELECT COUNT(*) FROM bundles", [], |r| r.get::<_, i64>(0)))
            .map(|n| u64::try_from(n).unwrap_or(0))
    }
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Token> {
    Ok(Token {
        id: r.get(0)?,
        customer: r.get(1)?,
        created_at: r.get(2)?,
        expires_at: r.get(3)?,
        revoked_at: r.get(4)?,
        single_install: r.get(5)?,
        installs: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_binds_one_install_and_stops_at_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.sqlite")).unwrap();
        let (id, token) = index.create_token("Acme", Some(1_000), true, 10).unwrap();
        let t = index.authenticate(&token, 20).unwrap().unwrap();
        assert_eq!((t.id.as_str(), t.customer.as_str()), (id.as_str(), "Acme"));
        assert_eq!(index.bind("install-a", &t, 20).unwrap(), Ok(()));
        assert_eq!(index.bind("install-a", &t, 21).unwrap(), Ok(()));
        assert!(matches!(index.bind("install-b", &t, 22).unwrap(), Err(BindRefusal::TokenTaken { .. })));
        let (_, other) = index.create_token("Globex", None, false, 10).unwrap();
        let other = index.authenticate(&other, 20).unwrap().unwrap();
        assert_eq!(index.bind("install-a", &other, 23).unwrap(), Err(BindRefusal::OtherCustomer));
        let forged = format!("{}{}", &token[..token.len() - 1], if token.ends_with('0') { '1' } else { '0' });
        assert_eq!(index.authenticate(&forged, 20).unwrap(), Err(TokenRefusal::Unknown));
        assert_eq!(index.authenticate("nonsense", 20).unwrap(), Err(TokenRefusal::Malformed));
        assert_eq!(index.authenticate(&token, 1_000).unwrap(), Err(TokenRefusal::Expired));
        assert!(index.revoke(&id, 30).unwrap());
        assert!(!index.revoke("0000000000000000", 30).unwrap());
        assert_eq!(index.authenticate(&token, 40).unwrap(), Err(TokenRefusal::Revoked));
        assert_eq!(index.tokens().unwrap().len(), 2);
    }

    #[test]
    fn the_newest_exemption_granted_counts_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.sqlite")).unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        let grant = |id: &str, until: &str, at: &str| {
            Exemption::grant(&key, id.into(), "inst-1", until, "audit", at.into()).unwrap()
        };
        assert_eq!(index.exemption_for("inst-1", 0).unwrap(), None);
        index.record_exemption(&grant("a", "2027-06-30", "2026-11-01T00:00:00Z")).unwrap();
        let now = callhome_protocol::time::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(index.exemption_for("inst-1", now).unwrap().unwrap().exemption_id, "a");
        assert_eq!(index.exemption_for("inst-2", now).unwrap(), None);
        index.record_exemption(&grant("b", "2026-12-31", "2026-11-20T00:00:00Z")).unwrap();
        assert_eq!(index.exemption_for("inst-1", now).unwrap().unwrap().exemption_id, "b", "a newer grant replaces");
        let january = callhome_protocol::time::parse_rfc3339("2027-01-01T00:00:00Z").unwrap();
        assert_eq!(index.exemption_for("inst-1", january).unwrap(), None, "ended with its day");
        assert_eq!(index.exemptions().unwrap().len(), 2);
    }
}
