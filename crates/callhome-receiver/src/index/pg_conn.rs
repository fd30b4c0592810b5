//! The PostgreSQL index's connections, each with the upload path's statements prepared on it;
//! the migrations, and errors without the URL's password.

use std::collections::HashMap;

use tokio_postgres::{Client, GenericClient, NoTls, Row, Statement};

use super::IndexError;
use super::pg_schema::MIGRATIONS;

/// Any number: the key of the advisory lock that serialises migrations across replicas.
const MIGRATION_LOCK: i64 = 0x6361_6c6c_686f_6d65;

/// One connection and the statements of the upload path prepared on it: parsed and planned once
/// per connection instead of once per query (which also took a round trip each).
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) prepared: HashMap<String, Statement>,
}

impl Conn {
    pub(super) fn new(client: Client) -> Conn {
        Conn { client, prepared: HashMap::new() }
    }

    /// `sql`, prepared once on this connection, run for at most one row.
    pub(super) async fn query_opt_prepared(
        &mut self,
        url: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<Row>, IndexError> {
        let Conn { client, prepared: cache, .. } = self;
        let st = prepared(cache, client, sql).await.map_err(|e| pg_error(url, e))?;
        client.query_opt(&st, params).await.map_err(|e| forget_if_stale(cache, url, e))
    }
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// The statement `sql` prepared on the connection `c` (or a transaction on it), from `cache`.
pub(super) async fn prepared(
    cache: &mut HashMap<String, Statement>,
    c: &impl GenericClient,
    sql: &str,
) -> Result<Statement, tokio_postgres::Error> {
    if let Some(st) = cache.get(sql) {
        return Ok(st.clone());
    }
    let st = c.prepare(sql).await?;
    cache.insert(sql.to_string(), st.clone());
    Ok(st)
}

/// `e` from a statement of `cache`, as an index error; when the server no longer takes the
/// cached statement (a newer replica's migration changed a result under it, or a pooler dropped
/// it), the cache is emptied so the next call prepares again instead of failing the same way.
pub(super) fn forget_if_stale(
    cache: &mut HashMap<String, Statement>,
    url: &str,
    e: tokio_postgres::Error,
) -> IndexError {
    use tokio_postgres::error::SqlState;
    if matches!(e.code(), Some(c) if *c == SqlState::FEATURE_NOT_SUPPORTED || *c == SqlState::INVALID_SQL_STATEMENT_NAME)
    {
        cache.clear();
    }
    pg_error(url, e)
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

pub(super) fn pg_error(url: &str, e: tokio_postgres::Error) -> IndexError {
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    IndexError::Postgres { url: redact(url), message }
}

pub(super) async fn connect(url: &str) -> Result<Client, IndexError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(|e| pg_error(url, e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("the index's PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

pub(super) async fn migrate(url: &str, client: &mut Client) -> Result<(), IndexError> {
    let err = |e| pg_error(url, e);
    let tx = client.transaction().await.map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(err)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS callhome_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .await
        .map_err(err)?;
    let done: i32 =
        tx.query_one("SELECT COALESCE(MAX(version), 0) FROM callhome_migrations", &[]).await.map_err(err)?.get(0);
    for (i, m) in MIGRATIONS.iter().enumerate().skip(usize::try_from(done).unwrap_or(0)) {
        tx.batch_execute(m).await.map_err(err)?;
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute("INSERT INTO callhome_migrations (version) VALUES ($1)", &[&version]).await.map_err(err)?;
    }
    tx.commit().await.map_err(err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(super::redact("postgres://u:secret@h:5432/d"), "postgres://u@h:5432/d");
        assert_eq!(super::redact("postgres://h/d"), "postgres://h/d");
    }
}
