//! The index in SQLite (rusqlite, the same bundled library as the agent's): one file, 0600,
//! `index.sqlite` in the store by default. Calls block; [`super::Index`] queues them to the one
//! connection's own thread ([`SqliteThread`]), off the async threads: under load the calls of
//! concurrent uploads run there back to back, instead of blocking threads taking turns on a
//! lock (whose hand-overs cost more than the queries).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::fleet::{self as f, InstallFacts, merge};
use super::{
    BindRefusal, BundleRow, ExportRow, IndexError, LookupRows, Recorded, TOKEN_COLUMNS, TOKEN_INSTALLS, Token,
};
use crate::fleet::{ClockRange, Install};
use callhome_protocol::exemption::Exemption;
use callhome_protocol::time::Timestamp;

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
ALTER TABLE bundles ADD COLUMN receipt TEXT;
CREATE TABLE exports (
    receipt_id TEXT PRIMARY KEY,
    export_id TEXT NOT NULL,
    install_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    accepted INTEGER NOT NULL,
    rejected INTEGER NOT NULL
);
CREATE TABLE install_reports (
    install_id TEXT PRIMARY KEY,
    customer TEXT,
    first_seen INTEGER NOT NULL,
    last_success INTEGER,
    clock_from INTEGER NOT NULL,
    agent_version TEXT,
    product_version TEXT,
    versions_at INTEGER,
    usage_summary TEXT,
    usage_at INTEGER
);
CREATE INDEX install_reports_by_clock ON install_reports(clock_from, install_id);
INSERT INTO install_reports (install_id, customer, first_seen, clock_from)
    SELECT install_id, customer, first_seen, first_seen FROM installs;
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

/// A call queued to the index's thread: it runs, then is told whether its transaction committed
/// (`None`) or why not, and only then answers.
type Job = Box<dyn FnOnce(&SqliteIndex) -> Box<dyn FnOnce(Option<IndexError>) + Send> + Send>;

/// The thread that owns the SQLite index's connection, and the queue of calls to it. It stops
/// when the last handle is dropped.
///
/// The calls queued while it was busy run together in one transaction (a group commit: one
/// `BEGIN IMMEDIATE` … `COMMIT` for the uploads that arrived meanwhile instead of one each);
/// each call's own writes are a savepoint in it, so a call that fails undoes only its own. No
/// call answers before the transaction has committed: when the commit fails, every call of it
/// answers that error.
#[derive(Clone)]
pub struct SqliteThread {
    jobs: std::sync::mpsc::Sender<Job>,
}

/// The most calls run in one transaction.
const MAX_BATCH: usize = 256;

impl SqliteThread {
    /// Starts the thread for `index`.
    pub fn start(index: SqliteIndex) -> Result<SqliteThread, IndexError> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("callhome-index".into())
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    batch.extend(queue.try_iter().take(MAX_BATCH - 1));
                    index.run_batch(batch);
                }
            })
            .map_err(|e| IndexError::Invalid(format!("cannot start the index's thread: {e}")))?;
        Ok(SqliteThread { jobs })
    }

    /// Runs `f` on the index's thread and answers what it returns once its transaction has
    /// committed.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteIndex) -> T + Send + 'static,
    ) -> Result<T, IndexError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |index| {
            let value = f(index);
            Box::new(move |failed: Option<IndexError>| {
                let _ = answer.send(match failed {
                    None => Ok(value),
                    Some(e) => Err(e),
                });
            })
        });
        let stopped = || IndexError::Invalid("the index call failed: the index's thread stopped".into());
        self.jobs.send(job).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// The SQLite index: its one connection, owned by [`SqliteThread`].
pub struct SqliteIndex {
    path: PathBuf,
    conn: Mutex<Connection>,
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
        Ok(SqliteIndex { path: path.to_path_buf(), conn: Mutex::new(conn) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, IndexError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).map_err(|source| IndexError::Sqlite { path: self.path.clone(), source })
    }

    /// Runs `batch` in one transaction and answers each call once it has committed (see
    /// [`SqliteThread`]).
    fn run_batch(&self, batch: Vec<Job>) {
        // A transaction left open (a failed COMMIT whose ROLLBACK failed too) is rolled back
        // first. Without the shared transaction (the database locked by another process past
        // the busy timeout), each call runs on its own: its savepoint is its transaction.
        let begin = || {
            self.with(|c| {
                if !c.is_autocommit() {
                    c.execute_batch("ROLLBACK")?;
                }
                c.execute_batch("BEGIN IMMEDIATE")
            })
            .is_ok()
        };
        let mut shared = begin();
        // Each answer with the transaction it ran in, and why each transaction failed.
        let mut answers = Vec::with_capacity(batch.len());
        let mut failed: Vec<Option<String>> = vec![None];
        for job in batch {
            // A call that panics fails alone: its caller sees the answer dropped.
            if let Ok(a) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(self))) {
                answers.push((a, failed.len() - 1));
            }
            // An error that made SQLite roll the whole transaction back (a full disk, an I/O
            // error): the calls of that transaction answer it, the next ones run in a new one.
            if shared && self.with(|c| Ok(c.is_autocommit())).unwrap_or(true) {
                let last = failed.len() - 1;
                failed[last] =
                    Some(format!("index {}: the transaction was rolled back by an error", self.path.display()));
                failed.push(None);
                shared = begin();
            }
        }
        if shared && let Err(e) = self.with(|c| c.execute_batch("COMMIT")) {
            let _ = self.with(|c| c.execute_batch("ROLLBACK"));
            let last = failed.len() - 1;
            failed[last] = Some(format!("index {}: the transaction did not commit: {e}", self.path.display()));
        }
        for (answer, n) in answers {
            answer(failed[n].clone().map(IndexError::Invalid));
        }
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
            let tx = c.savepoint()?;
            tx.execute("INSERT OR IGNORE INTO customers (name, created_at) VALUES (?1, ?2)", params![customer, now])?;
            tx.execute(
                "INSERT INTO tokens (id, customer, secret_sha256, created_at, expires_at, single_install) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, customer, secret_sha256, now, expires_at, single_install],
            )?;
            tx.commit()
        })
    }

    pub(super) fn tokens(&self) -> Result<Vec<(Token, u64)>, IndexError> {
        self.with(|c| {
            let sql = format!("SELECT {TOKEN_COLUMNS}, {TOKEN_INSTALLS} FROM tokens t ORDER BY t.created_at, t.rowid");
            let mut st = c.prepare(&sql)?;
            st.query_map([], |r| Ok((token_row(r)?.0, u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0))))?.collect()
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
        self.with(|c| {
            c.prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.id = ?1"))?
                .query_row([id], token_row)
                .optional()
        })
    }

    pub(super) fn bind(
        &self,
        install_id: &str,
        token: &Token,
        now: Timestamp,
    ) -> Result<Result<(), BindRefusal>, IndexError> {
        self.with(|c| {
            let tx = c.savepoint()?;
            let bound: Option<String> = tx
                .prepare_cached("SELECT customer FROM installs WHERE install_id = ?1")?
                .query_row([install_id], |r| r.get(0))
                .optional()?;
            if bound.as_ref().is_some_and(|c| *c != token.customer) {
                return Ok(Err(BindRefusal::OtherCustomer));
            }
            if token.single_install {
                let first: Option<String> = tx
                    .prepare_cached("SELECT install_id FROM installs WHERE token_id = ?1 LIMIT 1")?
                    .query_row([&token.id], |r| r.get(0))
                    .optional()?;
                if let Some(first) = first.filter(|f| f != install_id) {
                    return Ok(Err(BindRefusal::TokenTaken { install_id: first }));
                }
            }
            if bound.is_none() {
                tx.prepare_cached(
                    "INSERT INTO installs (install_id, customer, token_id, first_seen) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![install_id, token.customer, token.id, now])?;
                // The fleet view counts an enrolled install's clock from its enrolment.
                tx.prepare_cached(&super::fleet::ENROL_INSTALL.replace('$', "?"))?.execute(params![
                    install_id,
                    token.customer,
                    now
                ])?;
            }
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    pub(super) fn receipt(&self, sha256: &str) -> Result<Option<String>, IndexError> {
        self.bundle_row(sha256).map(Option::flatten)
    }

    /// Whether `sha256` has a row (`Some`), and the receipt it keeps (rows older than receipts
    /// in the index keep none).
    pub(super) fn bundle_row(&self, sha256: &str) -> Result<Option<Option<String>>, IndexError> {
        self.with(|c| {
            c.prepare_cached("SELECT receipt FROM bundles WHERE sha256 = ?1")?
                .query_row([sha256], |r| r.get::<_, Option<String>>(0))
                .optional()
        })
    }

    /// An upload's lookup ([`super::Index::upload_lookup`]): the bundle's row, and the newest
    /// exemption granted to `install_id`.
    pub(super) fn upload_lookup(&self, sha256: &str, install_id: Option<&str>) -> Result<LookupRows, IndexError> {
        let exemption = install_id.map(|id| self.newest_exemption(id)).transpose()?.flatten();
        Ok((self.bundle_row(sha256)?, exemption))
    }

    pub(super) fn record_bundle(&self, b: &BundleRow, facts: Option<&InstallFacts>) -> Result<Recorded, IndexError> {
        self.with(|c| {
            let tx = c.savepoint()?;
            let n = tx.prepare_cached(
                "INSERT OR IGNORE INTO bundles (sha256, install_id, program, size, receipt_id, received_at, receipt) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?.execute(
                params![b.sha256, b.install_id, b.program, i64::try_from(b.size).unwrap_or(i64::MAX), b.receipt_id, b.received_at, b.receipt],
            )?;
            if n == 0 {
                let kept: Option<String> =
                    tx.query_row("SELECT receipt FROM bundles WHERE sha256 = ?1", [&b.sha256], |r| r.get(0))?;
                tx.commit()?;
                return Ok(Recorded { receipt: kept.unwrap_or_else(|| b.receipt.clone()), inserted: false });
            }
            if let Some(facts) = facts {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO install_reports (install_id, first_seen, clock_from) VALUES (?1, ?2, ?2)",
                )?
                .execute(params![facts.install_id, facts.at])?;
                let old = tx.prepare_cached(&f::ONE_INSTALL.replace('$', "?"))?.query_row([&facts.install_id], install_row).optional()?;
                let m = merge(old, facts);
                let i = &m.install;
                tx.prepare_cached(&f::UPDATE_INSTALL.replace('$', "?"))?.execute(
                    params![i.install_id, i.first_seen, i.last_success, i.clock_from, i.agent_version, i.product_version, m.versions_at, i.usage, m.usage_at],
                )?;
            }
            tx.commit()?;
            Ok(Recorded { receipt: b.receipt.clone(), inserted: true })
        })
    }

    pub(super) fn record_export(&self, e: &ExportRow) -> Result<(), IndexError> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO exports (receipt_id, export_id, install_id, received_at, accepted, rejected) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![e.receipt_id, e.export_id, e.install_id, e.received_at, e.accepted as i64, e.rejected as i64],
            )
            .map(|_| ())
        })
    }

    pub(super) fn installs(&self, range: ClockRange) -> Result<Vec<Install>, IndexError> {
        let (upper, lower) = f::bounds(range);
        self.with(|c| {
            let mut st = c.prepare_cached(&f::LIST_INSTALLS.replace('$', "?"))?;
            st.query_map(params![upper, lower], |r| install_row(r).map(|(i, _, _)| i))?.collect()
        })
    }

    pub(super) fn count_installs(&self, range: ClockRange) -> Result<u64, IndexError> {
        let (upper, lower) = f::bounds(range);
        self.with(|c| c.query_row(&f::COUNT_INSTALLS.replace('$', "?"), params![upper, lower], |r| r.get::<_, i64>(0)))
            .map(|n| u64::try_from(n).unwrap_or(0))
    }

    pub(super) fn install(&self, install_id: &str) -> Result<Option<Install>, IndexError> {
        self.with(|c| {
            c.query_row(&f::ONE_INSTALL.replace('$', "?"), [install_id], install_row)
                .optional()
                .map(|o| o.map(|(i, _, _)| i))
        })
    }

    pub(super) fn explain_installs(&self, range: ClockRange) -> Result<String, IndexError> {
        let (upper, lower) = f::bounds(range);
        self.with(|c| {
            let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {}", f::LIST_INSTALLS.replace('$', "?")))?;
            let lines: Vec<String> =
                st.query_map(params![upper, lower], |r| r.get::<_, String>(3))?.collect::<Result<_, _>>()?;
            Ok(lines.join("\n"))
        })
    }

    pub(super) fn seed(&self, customer: &str, count: u64, spread_days: u32, now: Timestamp) -> Result<u64, IndexError> {
        let spread = i64::from(spread_days.max(1)) * 86_400;
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.with(|c| {
            let tx = c.savepoint()?;
            tx.execute("INSERT OR IGNORE INTO customers (name, created_at) VALUES (?1, ?2)", params![customer, now])?;
            let token = format!("seed{:012x}", fastrand::u64(..) >> 16);
            tx.execute(
                "INSERT INTO tokens (id, customer, secret_sha256, created_at, revoked_at, single_install) VALUES (?1, ?2, '', ?3, ?3, 0)",
                params![token, customer, now],
            )?;
            let added = tx.execute(
                "WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k + 1 < ?1)
                 INSERT OR IGNORE INTO installs (install_id, customer, token_id, first_seen)
                 SELECT 'seed-' || ?2 || '-' || k, ?2, ?3, ?4 - ?5 FROM n",
                params![count, customer, token, now, spread],
            )?;
            tx.execute(
                "WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k + 1 < ?1)
                 INSERT OR IGNORE INTO install_reports (install_id, customer, first_seen, last_success, clock_from, agent_version, product_version, versions_at)
                 SELECT 'seed-' || ?2 || '-' || k, ?2, ?4 - ?5, ?4 - (k * ?5) / ?1, ?4 - (k * ?5) / ?1, '0.1.0', '1.0', ?4 FROM n",
                params![count, customer, token, now, spread],
            )?;
            tx.commit()?;
            Ok(added as u64)
        })
    }

    pub(super) fn install_known(&self, install_id: &str) -> Result<bool, IndexError> {
        self.with(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM installs WHERE install_id = ?1)
                     OR EXISTS(SELECT 1 FROM bundles WHERE install_id = ?1)",
                [install_id],
                |r| r.get(0),
            )
        })
    }

    pub(super) fn insert_exemption(&self, e: &Exemption, document: &str) -> Result<(), IndexError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO exemptions (exemption_id, install_id, until, ends_at, reason, granted_at, document)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![e.exemption_id, e.install_id, e.until, e.ends_at(), e.reason, e.granted(), document],
            )
            .map(|_| ())
        })
    }

    /// The newest exemption granted to `install_id`: its document and when it ends.
    pub(super) fn newest_exemption(&self, install_id: &str) -> Result<Option<(String, Timestamp)>, IndexError> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT document, ends_at FROM exemptions WHERE install_id = ?1
                 ORDER BY granted_at DESC, rowid DESC LIMIT 1",
            )?
            .query_row([install_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
        })
    }

    pub(super) fn exemption_documents(&self) -> Result<Vec<String>, IndexError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT document FROM exemptions ORDER BY granted_at DESC, rowid DESC")?;
            st.query_map([], |r| r.get(0))?.collect()
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
        },
        r.get(6)?,
    ))
}

/// An install row of [`f::ONE_INSTALL`] or [`f::LIST_INSTALLS`] (the latter without the times).
fn install_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Install, Option<Timestamp>, Option<Timestamp>)> {
    Ok((
        Install {
            install_id: r.get(0)?,
            customer: r.get(1)?,
            first_seen: r.get(2)?,
            last_success: r.get(3)?,
            clock_from: r.get(4)?,
            agent_version: r.get(5)?,
            product_version: r.get(6)?,
            usage: r.get(7)?,
        },
        r.get(8).ok().flatten(),
        r.get(9).ok().flatten(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    /// Polls `f` once, so that its call is queued, and keeps it.
    fn queue<F: Future>(f: F) -> std::pin::Pin<Box<F>> {
        let mut f = Box::pin(f);
        assert!(matches!(f.as_mut().poll(&mut Context::from_waker(Waker::noop())), Poll::Pending));
        f
    }

    /// Queues a call that holds the thread until released, and waits until it runs: the calls
    /// queued after it run together, in one batch.
    fn hold(
        thread: &SqliteThread,
    ) -> (std::pin::Pin<Box<impl Future<Output = Result<(), IndexError>> + '_>>, std::sync::mpsc::Sender<()>) {
        let (entered, running) = std::sync::mpsc::channel();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let gate = queue(thread.call(move |_| {
            entered.send(()).unwrap();
            held.recv().unwrap();
        }));
        running.recv().unwrap();
        (gate, release)
    }

    #[tokio::test]
    async fn calls_queued_together_commit_together_and_one_that_fails_undoes_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let thread = SqliteThread::start(SqliteIndex::open(&dir.path().join("index.sqlite")).unwrap()).unwrap();
        let (gate, release) = hold(&thread);
        let token = |id: &'static str| move |i: &SqliteIndex| i.insert_token("Acme", id, "00", None, false, 1);
        let first = queue(thread.call(token("t1")));
        let again = queue(thread.call(token("t1")));
        let panics = queue(thread.call(|_| -> () { panic!("a call that panics") }));
        let shared = queue(thread.call(|i| i.with(|c| Ok(c.is_autocommit()))));
        let second = queue(thread.call(token("t2")));
        release.send(()).unwrap();
        gate.await.unwrap();
        first.await.unwrap().unwrap();
        assert!(again.await.unwrap().is_err(), "a second token with the same id is refused");
        assert!(panics.await.is_err(), "a call that panics answers an error");
        assert!(!shared.await.unwrap().unwrap(), "the queued calls ran in one transaction");
        second.await.unwrap().unwrap();
        let ids: Vec<String> =
            thread.call(|i| i.tokens()).await.unwrap().unwrap().into_iter().map(|(t, _)| t.id).collect();
        assert_eq!(ids, ["t1", "t2"], "the calls beside the failed one are committed");
        let other = Connection::open(dir.path().join("index.sqlite")).unwrap();
        let seen = || other.query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(seen(), 2, "committed: another connection sees them");

        // A batch whose COMMIT fails (a foreign key checked only then): every call of it
        // answers the failure, none with its own success, and nothing of it is kept.
        let (gate, release) = hold(&thread);
        let third = queue(thread.call(token("t3")));
        let dangling = queue(thread.call(|i| {
            i.with(|c| {
                c.execute_batch(
                    "PRAGMA defer_foreign_keys = ON;
                     INSERT INTO installs (install_id, customer, token_id, first_seen) VALUES ('i', 'nobody', 'none', 1);",
                )
            })
        }));
        release.send(()).unwrap();
        gate.await.unwrap();
        assert!(third.await.unwrap_err().to_string().contains("did not commit"));
        dangling.await.unwrap_err();
        assert_eq!(seen(), 2, "nothing of the failed batch is kept");
        thread.call(token("t4")).await.unwrap().unwrap();
        assert_eq!(seen(), 3, "the next call commits");
    }
}
