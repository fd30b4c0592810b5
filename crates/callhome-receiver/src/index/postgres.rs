//! The index on PostgreSQL (tokio-postgres), for a fleet: replicas share it, so an install bound
//! by one is bound for all. Migrations run under an advisory lock, so replicas starting together
//! apply each once. A connection lost (a restarted server) is made again on the next call.
//!
//! It speaks plain TCP: keep the database on loopback or a private network (or put a TLS-capable
//! pooler in front).

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Row};

use super::{BindRefusal, BundleRow, IndexError, Token};
use callhome_protocol::time::Timestamp;

/// The schema, one migration per entry, applied in order and recorded in `callhome_migrations`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE customers (name TEXT PRIMARY KEY, created_at BIGINT NOT NULL);
CREATE TABLE tokens (
    seq BIGSERIAL UNIQUE,
    id TEXT PRIMARY KEY,
    customer TEXT NOT NULL REFERENCES customers(name),
    secret_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    single_install BOOLEAN NOT NULL
);
CREATE TABLE installs (
    install_id TEXT PRIMARY KEY,
    customer TEXT NOT NULL REFERENCES customers(name),
    token_id TEXT NOT NULL REFERENCES tokens(id),
    first_seen BIGINT NOT NULL
);
CREATE INDEX installs_by_token ON installs(token_id);
CREATE TABLE bundles (
    sha256 TEXT PRIMARY KEY,
    install_id TEXT,
    program TEXT NOT NULL,
    size BIGINT NOT NULL,
    receipt_id TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
"#];

/// Any number: the key of the advisory lock that serialises migrations across replicas.
const MIGRATION_LOCK: i64 = 0x6361_6c6c_686f_6d65;

const TOKEN_COLUMNS: &str = "t.id, t.customer, t.created_at, t.expires_at, t.revoked_at, t.single_install, \
     (SELECT COUNT(*) FROM installs i WHERE i.token_id = t.id), t.secret_sha256";

/// The PostgreSQL index: one connection, made again when it was lost.
pub struct PgIndex {
    url: String,
    client: Mutex<Client>,
}

impl PgIndex {
    /// Connects and applies missing migrations.
    pub async fn connect(url: &str) -> Result<PgIndex, IndexError> {
        let mut client = connect(url).await?;
        migrate(url, &mut client).await?;
        Ok(PgIndex { url: url.to_string(), client: Mutex::new(client) })
    }

    fn err(&self, e: tokio_postgres::Error) -> IndexError {
        pg_error(&self.url, e)
    }

    /// The connection, made again when the server closed the previous one.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Client>, IndexError> {
        let mut guard = self.client.lock().await;
        if guard.is_closed() {
            tracing::warn!("the index's PostgreSQL connection was lost; connecting again");
            *guard = connect(&self.url).await?;
        }
        Ok(guard)
    }

    pub(super) async fn insert_token(
        &self,
        customer: &str,
        id: &str,
        secret_sha256: &str,
        expires_at: Option<Timestamp>,
        single_install: bool,
        now: Timestamp,
    ) -> Result<(), IndexError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO customers (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&customer, &now],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO tokens (id, customer, secret_sha256, created_at, expires_at, single_install) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&id, &customer, &secret_sha256, &now, &expires_at, &single_install],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    pub(super) async fn tokens(&self) -> Result<Vec<Token>, IndexError> {
        let c = self.client().await?;
        let rows = c
            .query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens t ORDER BY t.seq"), &[])
            .await
            .map_err(|e| self.err(e))?;
        rows.iter().map(|r| token_row(r).map(|(t, _)| t).map_err(|e| self.err(e))).collect()
    }

    pub(super) async fn revoke(&self, id: &str, now: Timestamp) -> Result<bool, IndexError> {
        let c = self.client().await?;
        c.execute("UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1", &[&id, &now])
            .await
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    pub(super) async fn token(&self, id: &str) -> Result<Option<(Token, String)>, IndexError> {
        let c = self.client().await?;
        let row = c
            .query_opt(&format!("SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.id = $1"), &[&id])
            .await
            .map_err(|e| self.err(e))?;
        row.as_ref().map(token_row).transpose().map_err(|e| self.err(e))
    }

    pub(super) async fn bind(&self, install_id: &str, token: &Token, now: Timestamp) -> Result<Result<(), BindRefusal>, IndexError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.err(e))?;
        // One bind at a time per token, across replicas.
        tx.execute("SELECT 1 FROM tokens WHERE id = $1 FOR UPDATE", &[&token.id]).await.map_err(|e| self.err(e))?;
        if token.single_install {
            let first = tx
                .query_opt("SELECT install_id FROM installs WHERE token_id = $1 AND install_id <> $2 LIMIT 1", &[&token.id, &install_id])
                .await
                .map_err(|e| self.err(e))?;
            let bound_here = tx
                .query_opt("SELECT 1 FROM installs WHERE install_id = $1 AND token_id = $2", &[&install_id, &token.id])
                .await
                .map_err(|e| self.err(e))?;
            if let (Some(first), None) = (first, bound_here) {
                return Ok(Err(BindRefusal::TokenTaken { install_id: first.get(0) }));
            }
        }
        tx.execute(
            "INSERT INTO installs (install_id, customer, token_id, first_seen) VALUES ($1, $2, $3, $4) ON CONFLICT (install_id) DO NOTHING",
            &[&install_id, &token.customer, &token.id, &now],
        )
        .await
        .map_err(|e| self.err(e))?;
        let customer: String = tx
            .query_one("SELECT customer FROM installs WHERE install_id = $1", &[&install_id])
            .await
            .map_err(|e| self.err(e))?
            .get(0);
        if customer != token.customer {
            return Ok(Err(BindRefusal::OtherCustomer));
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(Ok(()))
    }

    pub(super) async fn record_bundle(&self, b: &BundleRow) -> Result<(), IndexError> {
        let c = self.client().await?;
        let size = i64::try_from(b.size).unwrap_or(i64::MAX);
        c.execute(
            "INSERT INTO bundles (sha256, install_id, program, size, receipt_id, received_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING",
            &[&b.sha256, &b.install_id, &b.program, &size, &b.receipt_id, &b.received_at],
        )
        .await
        .map(|_| ())
        .map_err(|e| self.err(e))
    }

    pub(super) async fn bundle_count(&self) -> Result<u64, IndexError> {
        let c = self.client().await?;
        let n: i64 = c.query_one("SELECT COUNT(*) FROM bundles", &[]).await.map_err(|e| self.err(e))?.get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// The URL without a password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

fn pg_error(url: &str, e: tokio_postgres::Error) -> IndexError {
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    IndexError::Postgres { url: redact(url), message }
}

async fn connect(url: &str) -> Result<Client, IndexError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(|e| pg_error(url, e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("the index's PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

async fn migrate(url: &str, client: &mut Client) -> Result<(), IndexError> {
    let err = |e| pg_error(url, e);
    let tx = client.transaction().await.map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(err)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS callhome_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .await
        .map_err(err)?;
    let done: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM callhome_migrations", &[])
        .await
        .map_err(err)?
        .get(0);
    for (i, m) in MIGRATIONS.iter().enumerate().skip(usize::try_from(done).unwrap_or(0)) {
        tx.batch_execute(m).await.map_err(err)?;
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute("INSERT INTO callhome_migrations (version) VALUES ($1)", &[&version]).await.map_err(err)?;
    }
    tx.commit().await.map_err(err)
}

fn token_row(r: &Row) -> Result<(Token, String), tokio_postgres::Error> {
    Ok((
        Token {
            id: r.try_get(0)?,
            customer: r.try_get(1)?,
            created_at: r.try_get(2)?,
            expires_at: r.try_get(3)?,
            revoked_at: r.try_get(4)?,
            single_install: r.try_get(5)?,
            installs: u64::try_from(r.try_get::<_, i64>(6)?).unwrap_or(0),
        },
        r.try_get(7)?,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(super::redact("postgres://u:secret@h:5432/d"), "postgres://u@h:5432/d");
        assert_eq!(super::redact("postgres://h/d"), "postgres://h/d");
    }
}
