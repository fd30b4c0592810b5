//! The index in SQLite (rusqlite, the same bundled library as the agent's): one file, 0600,
//! `index.sqlite` in the store by default. Calls block; [`super::Index`] runs them off the async
//! threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::{BindRefusal, BundleRow, IndexError, Token};
use callhome_protocol::time::Timestamp;

/// The schema, one migration per entry, applied in order (`PRAGMA user_version` counts them).
const MIGRATIONS: &[&str] = &[r#"
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
"#];

const TOKEN_COLUMNS: &str = "t.id, t.customer, t.created_at, t.expires_at, t.revoked_at, t.single_install, \
     (SELECT COUNT(*) FROM installs i WHERE i.token_id = t.id), t.secret_sha256";

/// The SQLite index.
#[derive(Clone)]
pub struct SqliteIndex {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl SqliteIndex {
    /// Opens (creating it, 0600 on Unix) the index at `path` and applies missing migrations.
    pub fn open(path: &Path) -> Result<SqliteIndex, IndexError> {
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
        Ok(SqliteIndex { path: path.to_path_buf(), conn: Arc::new(Mutex::new(conn)) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, IndexError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).map_err(|source| IndexError::Sqlite { path: self.path.clone(), source })
    }

    pub(super) fn insert_token(
        &self,
        customer: &str,
        id: &str,
        secret_sha256: &str,
        expires_at: Option<Timestamp>,
        single_install: bool,
        now: Timestamp,
    ) -> Result<(), IndexError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("INSERT OR IGNORE INTO customers (name, created_at) VALUES (?1, ?2)", params![customer, now])?;
            tx.execute(
                "INSERT INTO tokens (id, customer, secret_sha256, created_at, expires_at, single_install) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, customer, secret_sha256, now, expires_at, single_install],
            )?;
            tx.commit()
        })
    }

    pub(super) fn tokens(&self) -> Result<Vec<Token>, IndexError> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {TOKEN_COLUMNS} FROM tokens t ORDER BY t.created_at, t.rowid"))?;
            st.query_map([], |r| token_row(r).map(|(t, _)| t))?.collect()
        })
    }

    pub(super) fn revoke(&self, id: &str, now: Timestamp) -> Result<bool, IndexError> {
        self.with(|c| {
            c.execute("UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1", params![id, now])
                .map(|n| n > 0)
        })
    }

    /// The token `id` and the SHA-256 of its secret.
    pub(super) fn token(&self, id: &str) -> Result<Option<(Token, String)>, IndexError> {
        self.with(|c| c.query_row(&format!("SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.id = ?1"), [id], token_row).optional())
    }

    pub(super) fn bind(&self, install_id: &str, token: &Token, now: Timestamp) -> Result<Result<(), BindRefusal>, IndexError> {
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

    pub(super) fn record_bundle(&self, b: &BundleRow) -> Result<(), IndexError> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO bundles (sha256, install_id, program, size, receipt_id, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![b.sha256, b.install_id, b.program, i64::try_from(b.size).unwrap_or(i64::MAX), b.receipt_id, b.received_at],
            )
            .map(|_| ())
        })
    }

    pub(super) fn bundle_count(&self) -> Result<u64, IndexError> {
        self.with(|c| c.query_row("SELECT COUNT(*) FROM bundles", [], |r| r.get::<_, i64>(0)))
            .map(|n| u64::try_from(n).unwrap_or(0))
    }
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Token, String)> {
    Ok((
        Token {
            id: r.get(0)?,
            customer: r.get(1)?,
            created_at: r.get(2)?,
            expires_at: r.get(3)?,
            revoked_at: r.get(4)?,
            single_install: r.get(5)?,
            installs: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
        },
        r.get(7)?,
    ))
}
