//! The index on PostgreSQL (tokio-postgres), for a fleet: replicas share it, so an install bound
//! by one is bound for all. Migrations run under an advisory lock, so replicas starting together
//! apply each once. A connection lost (a restarted server) is made again on the next call.
//!
//! It speaks plain TCP: keep the database on loopback or a private network (or put a TLS-capable
//! pooler in front).

use tokio::sync::Mutex;
use tokio_postgres::Row;

use super::fleet::{self as f, InstallFacts, merge};
use super::pg_conn::{Conn, connect, forget_if_stale, migrate, pg_error, prepared};
use super::{
    BindRefusal, BundleRow, ExportRow, IndexError, LookupRows, Recorded, TOKEN_COLUMNS, TOKEN_INSTALLS, Token,
};
use crate::fleet::{ClockRange, Install};
use callhome_protocol::exemption::Exemption;
use callhome_protocol::time::Timestamp;

/// Binds `$1` (an install) to `$2` (a customer) through `$3` (a token for many installs) at `$4`
/// when it is bound to no one, enrolling it in the fleet view then ([`f::ENROL_INSTALL`]'s
/// rule); answers the customer it is bound to: one row, or none when a transaction that
/// committed after this statement began bound it (its row is not in this statement's snapshot).
const BIND_MANY: &str = concat!(
    "WITH bound AS (INSERT INTO installs (install_id, customer, token_id, first_seen) VALUES ($1, $2, $3, $4) ",
    "ON CONFLICT (install_id) DO NOTHING RETURNING customer), enrolled AS (",
    f::enrol_install_into!(),
    "SELECT $1, $2, $4, $4 FROM bound",
    f::enrol_install_on_conflict!(),
    ") SELECT customer FROM bound UNION ALL SELECT customer FROM installs WHERE install_id = $1"
);

/// A token by its id (`$1`): [`TOKEN_COLUMNS`].
static TOKEN_BY_ID: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.id = $1"));

/// An upload's lookup, one row: whether the bundle `$1` has a row and the receipt it keeps, and
/// the newest exemption granted to the install `$2` (document, end).
const UPLOAD_LOOKUP: &str = "SELECT b.sha256 IS NOT NULL, b.receipt, e.document, e.ends_at \
     FROM (SELECT 1) AS one LEFT JOIN bundles b ON b.sha256 = $1 \
     LEFT JOIN LATERAL (SELECT document, ends_at FROM exemptions WHERE install_id = $2 \
     ORDER BY granted_at DESC, exemption_id DESC LIMIT 1) AS e ON true";

/// Connections a receiver keeps to PostgreSQL: requests take them in turn. Measured with the
/// simulator's 48 uploads at once on 2 cores: 4 left requests queued behind a connection waiting
/// for its commit's WAL flush (~870/s), 16 cost PostgreSQL more CPU than they saved (~630/s),
/// 8 gave ~950/s.
const CONNECTIONS: usize = 8;

/// The PostgreSQL index: a few connections taken in turn, each made again when it was lost
/// (the first one lazily after a restart: that request fails with 503 and the agent retries).
pub struct PgIndex {
    url: String,
    clients: Vec<Mutex<Conn>>,
    next: std::sync::atomic::AtomicUsize,
}

impl PgIndex {
    /// Connects and applies missing migrations.
    pub async fn connect(url: &str) -> Result<PgIndex, IndexError> {
        let mut first = connect(url).await?;
        migrate(url, &mut first).await?;
        let mut clients = vec![Mutex::new(Conn::new(first))];
        for _ in 1..CONNECTIONS {
            clients.push(Mutex::new(Conn::new(connect(url).await?)));
        }
        Ok(PgIndex { url: url.to_string(), clients, next: Default::default() })
    }

    fn err(&self, e: tokio_postgres::Error) -> IndexError {
        pg_error(&self.url, e)
    }

    /// The next connection in turn, made again when the server closed it.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Conn>, IndexError> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.clients.len();
        let mut guard = self.clients[i].lock().await;
        if guard.is_closed() {
            tracing::warn!("an index connection to PostgreSQL was lost; connecting again");
            *guard = Conn::new(connect(&self.url).await?);
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

    pub(super) async fn tokens(&self) -> Result<Vec<(Token, u64)>, IndexError> {
        let c = self.client().await?;
        let rows = c
            .query(&format!("SELECT {TOKEN_COLUMNS}, {TOKEN_INSTALLS} FROM tokens t ORDER BY t.seq"), &[])
            .await
            .map_err(|e| self.err(e))?;
        let listed = |r: &Row| Ok((token_row(r)?.0, u64::try_from(r.try_get::<_, i64>(7)?).unwrap_or(0)));
        rows.iter().map(|r| listed(r).map_err(|e| self.err(e))).collect()
    }

    pub(super) async fn revoke(&self, id: &str, now: Timestamp) -> Result<bool, IndexError> {
        let c = self.client().await?;
        c.execute("UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1", &[&id, &now])
            .await
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    pub(super) async fn token(&self, id: &str) -> Result<Option<(Token, String)>, IndexError> {
        let mut c = self.client().await?;
        let row = c.query_opt_prepared(&self.url, &TOKEN_BY_ID, &[&id]).await?;
        row.as_ref().map(token_row).transpose().map_err(|e| self.err(e))
    }

    /// [`PgIndex::token`] and [`PgIndex::upload_lookup`] pipelined on one connection: one round
    /// trip.
    pub(super) async fn token_and_upload_lookup(
        &self,
        id: &str,
        sha256: &str,
        install_id: Option<&str>,
    ) -> Result<(Option<(Token, String)>, LookupRows), IndexError> {
        let mut c = self.client().await?;
        let e = |e| pg_error(&self.url, e);
        let Conn { client, prepared: cache } = &mut *c;
        let token = prepared(cache, client, &TOKEN_BY_ID).await.map_err(e)?;
        let lookup = prepared(cache, client, UPLOAD_LOOKUP).await.map_err(e)?;
        let (by_id, for_upload) =
            ([&id as &(dyn tokio_postgres::types::ToSql + Sync)], [&sha256 as _, &install_id as _]);
        let (token, lookup) =
            tokio::try_join!(client.query_opt(&token, &by_id), client.query_opt(&lookup, &for_upload))
                .map_err(|x| forget_if_stale(cache, &self.url, x))?;
        let token = token.as_ref().map(token_row).transpose().map_err(e)?;
        Ok((token, lookup_rows(lookup.as_ref()).map_err(e)?))
    }

    pub(super) async fn bind(
        &self,
        install_id: &str,
        token: &Token,
        now: Timestamp,
    ) -> Result<Result<(), BindRefusal>, IndexError> {
        let mut c = self.client().await?;
        let e = |e| pg_error(&self.url, e);
        let Conn { client, prepared: cache, .. } = &mut *c;
        if !token.single_install {
            // A token for many installs has nothing to serialise: binding the install when it is
            // bound to no one (and enrolling it) and reading whom it is bound to are one
            // statement, atomic on its own, on every upload.
            let st = prepared(cache, client, BIND_MANY).await.map_err(e)?;
            let row = client
                .query_opt(&st, &[&install_id, &token.customer, &token.id, &now])
                .await
                .map_err(|x| forget_if_stale(cache, &self.url, x))?;
            let customer: String = match row {
                Some(row) => row.get(0),
                // Bound by a transaction that committed after this statement's snapshot was taken.
                None => client
                    .query_one("SELECT customer FROM installs WHERE install_id = $1", &[&install_id])
                    .await
                    .map_err(e)?
                    .get(0),
            };
            return Ok(if customer == token.customer { Ok(()) } else { Err(BindRefusal::OtherCustomer) });
        }
        // An install already bound to this token (every upload after its first) needs no lock.
        let st = prepared(cache, client, "SELECT customer, token_id FROM installs WHERE install_id = $1")
            .await
            .map_err(e)?;
        let bound = client.query_opt(&st, &[&install_id]).await.map_err(|x| forget_if_stale(cache, &self.url, x))?;
        if let Some(row) = bound {
            let (customer, token_id): (String, String) = (row.get(0), row.get(1));
            if customer != token.customer {
                return Ok(Err(BindRefusal::OtherCustomer));
            }
            if token_id == token.id {
                return Ok(Ok(()));
            }
        }
        let tx = client.transaction().await.map_err(e)?;
        // Each statement prepared once per connection; a stale one empties the cache.
        macro_rules! run {
            ($how:ident, $sql:expr, $params:expr) => {{
                let st = prepared(cache, &tx, $sql).await.map_err(e)?;
                tx.$how(&st, $params).await.map_err(|x| forget_if_stale(cache, &self.url, x))?
            }};
        }
        // A single-install token: one bind at a time per token, across replicas.
        run!(execute, "SELECT 1 FROM tokens WHERE id = $1 FOR UPDATE", &[&token.id]);
        let first = run!(
            query_opt,
            "SELECT install_id FROM installs WHERE token_id = $1 AND install_id <> $2 LIMIT 1",
            &[&token.id, &install_id]
        );
        let bound_here = run!(
            query_opt,
            "SELECT 1 FROM installs WHERE install_id = $1 AND token_id = $2",
            &[&install_id, &token.id]
        );
        if let (Some(first), None) = (first, bound_here) {
            return Ok(Err(BindRefusal::TokenTaken { install_id: first.get(0) }));
        }
        run!(
            execute,
            "INSERT INTO installs (install_id, customer, token_id, first_seen) VALUES ($1, $2, $3, $4) ON CONFLICT (install_id) DO NOTHING",
            &[&install_id, &token.customer, &token.id, &now]
        );
        // The fleet view counts an enrolled install's clock from its enrolment.
        run!(execute, super::fleet::ENROL_INSTALL, &[&install_id, &token.customer, &now]);
        let customer: String =
            run!(query_one, "SELECT customer FROM installs WHERE install_id = $1", &[&install_id]).get(0);
        if customer != token.customer {
            return Ok(Err(BindRefusal::OtherCustomer));
        }
        tx.commit().await.map_err(e)?;
        Ok(Ok(()))
    }

    /// An upload's lookup ([`super::Index::upload_lookup`]), in one statement.
    pub(super) async fn upload_lookup(&self, sha256: &str, install_id: Option<&str>) -> Result<LookupRows, IndexError> {
        let mut c = self.client().await?;
        let row = c.query_opt_prepared(&self.url, UPLOAD_LOOKUP, &[&sha256, &install_id]).await?;
        lookup_rows(row.as_ref()).map_err(|e| self.err(e))
    }

    pub(super) async fn receipt(&self, sha256: &str) -> Result<Option<String>, IndexError> {
        let mut c = self.client().await?;
        let row = c.query_opt_prepared(&self.url, "SELECT receipt FROM bundles WHERE sha256 = $1", &[&sha256]).await?;
        Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
    }

    pub(super) async fn record_bundle(
        &self,
        b: &BundleRow,
        facts: Option<&InstallFacts>,
    ) -> Result<Recorded, IndexError> {
        let mut c = self.client().await?;
        let e = |e| pg_error(&self.url, e);
        let Conn { client, prepared: cache } = &mut *c;
        let size = i64::try_from(b.size).unwrap_or(i64::MAX);
        let insert = prepared(
            cache,
            client,
            "INSERT INTO bundles (sha256, install_id, program, size, receipt_id, received_at, receipt) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (sha256) DO NOTHING",
        )
        .await
        .map_err(e)?;
        let seed = prepared(
            cache,
            client,
            "INSERT INTO install_reports (install_id, first_seen, clock_from) VALUES ($1, $2, $2) ON CONFLICT (install_id) DO NOTHING",
        )
        .await
        .map_err(e)?;
        let lock = prepared(cache, client, &format!("{} FOR UPDATE OF r", f::ONE_INSTALL)).await.map_err(e)?;
        let update = prepared(cache, client, f::UPDATE_INSTALL).await.map_err(e)?;
        // The transaction is opened and ended by hand, so its BEGIN goes with the first
        // statements and its COMMIT with the last (pipelined, sent in the order written:
        // `biased`): two round trips instead of four. Until it is ended, dropping this call (its
        // request cancelled) sends a ROLLBACK at once, as a dropped `Transaction` does.
        let client: &tokio_postgres::Client = client;
        let mut open = RollbackOnDrop { client, armed: true };
        let url = &self.url;
        let done = async {
            let row = [
                &b.sha256 as &(dyn tokio_postgres::types::ToSql + Sync),
                &b.install_id,
                &b.program,
                &size,
                &b.receipt_id,
                &b.received_at,
                &b.receipt,
            ];
            // The bundle's row and the install's, sent together: the install's row is made and
            // locked whether or not the bundle was new, which changes nothing when not.
            let (n, old) = match facts {
                Some(facts) => {
                    let (seeded, locked) = ([&facts.install_id as _, &facts.at as _], [&facts.install_id as _]);
                    let (_, n, _, old) = tokio::try_join!(
                        biased;
                        client.batch_execute("BEGIN"),
                        client.execute(&insert, &row),
                        client.execute(&seed, &seeded),
                        client.query_opt(&lock, &locked),
                    )
                    .map_err(|x| forget_if_stale(cache, url, x))?;
                    (n, old)
                }
                None => {
                    let (_, n) = tokio::try_join!(biased; client.batch_execute("BEGIN"), client.execute(&insert, &row))
                        .map_err(|x| forget_if_stale(cache, url, x))?;
                    (n, None)
                }
            };
            if n == 0 {
                let kept: Option<String> = client
                    .query_one("SELECT receipt FROM bundles WHERE sha256 = $1", &[&b.sha256])
                    .await
                    .map_err(e)?
                    .get(0);
                // Nothing of this call is kept: not the install's seed row sent beside the insert.
                client.batch_execute("ROLLBACK").await.map_err(e)?;
                return Ok(Recorded { receipt: kept.unwrap_or_else(|| b.receipt.clone()), inserted: false });
            }
            match facts {
                Some(facts) => {
                    let old = old.as_ref().map(install_row).transpose().map_err(e)?;
                    let m = merge(old, facts);
                    let i = &m.install;
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
                        &i.install_id,
                        &i.first_seen,
                        &i.last_success,
                        &i.clock_from,
                        &i.agent_version,
                        &i.product_version,
                        &m.versions_at,
                        &i.usage,
                        &m.usage_at,
                    ];
                    // A failed UPDATE aborts the transaction, and the COMMIT sent behind it then
                    // rolls it back (PostgreSQL answers it ROLLBACK, not an error): its error
                    // is the one answered, and nothing is kept.
                    tokio::try_join!(biased; client.execute(&update, &params), client.batch_execute("COMMIT"))
                        .map_err(|x| forget_if_stale(cache, url, x))?;
                }
                None => client.batch_execute("COMMIT").await.map_err(e)?,
            }
            Ok(Recorded { receipt: b.receipt.clone(), inserted: true })
        }
        .await;
        // After an error the guard ends the transaction (after a COMMIT or ROLLBACK, only a
        // warning), queued before the connection is handed to anyone else.
        open.armed = done.is_err();
        drop(open);
        done
    }

    pub(super) async fn record_export(&self, x: &ExportRow) -> Result<(), IndexError> {
        let c = self.client().await?;
        let (accepted, rejected) = (x.accepted as i64, x.rejected as i64);
        c.execute(
            "INSERT INTO exports (receipt_id, export_id, install_id, received_at, accepted, rejected) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (receipt_id) DO NOTHING",
            &[&x.receipt_id, &x.export_id, &x.install_id, &x.received_at, &accepted, &rejected],
        )
        .await
        .map(|_| ())
        .map_err(|e| self.err(e))
    }

    pub(super) async fn installs(&self, range: ClockRange) -> Result<Vec<Install>, IndexError> {
        let (upper, lower) = f::bounds(range);
        let c = self.client().await?;
        let rows = c.query(f::LIST_INSTALLS, &[&upper, &lower]).await.map_err(|e| self.err(e))?;
        rows.iter().map(|r| install_row(r).map(|(i, _, _)| i).map_err(|e| self.err(e))).collect()
    }

    pub(super) async fn count_installs(&self, range: ClockRange) -> Result<u64, IndexError> {
        let (upper, lower) = f::bounds(range);
        let c = self.client().await?;
        let n: i64 = c.query_one(f::COUNT_INSTALLS, &[&upper, &lower]).await.map_err(|e| self.err(e))?.get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(super) async fn install(&self, install_id: &str) -> Result<Option<Install>, IndexError> {
        let c = self.client().await?;
        let row = c.query_opt(f::ONE_INSTALL, &[&install_id]).await.map_err(|e| self.err(e))?;
        row.as_ref().map(|r| install_row(r).map(|(i, _, _)| i)).transpose().map_err(|e| self.err(e))
    }

    pub(super) async fn explain_installs(&self, range: ClockRange) -> Result<String, IndexError> {
        let (upper, lower) = f::bounds(range);
        let c = self.client().await?;
        let rows =
            c.query(&format!("EXPLAIN {}", f::LIST_INSTALLS), &[&upper, &lower]).await.map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n"))
    }

    pub(super) async fn seed(
        &self,
        customer: &str,
        count: u64,
        spread_days: u32,
        now: Timestamp,
    ) -> Result<u64, IndexError> {
        let spread = i64::from(spread_days.max(1)) * 86_400;
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let mut c = self.client().await?;
        let e = |e| pg_error(&self.url, e);
        let tx = c.transaction().await.map_err(e)?;
        tx.execute(
            "INSERT INTO customers (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&customer, &now],
        )
        .await
        .map_err(e)?;
        let token = format!("seed{:012x}", fastrand::u64(..) >> 16);
        tx.execute(
            "INSERT INTO tokens (id, customer, secret_sha256, created_at, revoked_at, single_install) VALUES ($1, $2, '', $3, $3, false)",
            &[&token, &customer, &now],
        )
        .await
        .map_err(e)?;
        let added = tx
            .execute(
                "INSERT INTO installs (install_id, customer, token_id, first_seen)
                 SELECT 'seed-' || $2::text || '-' || k, $2, $3, $4::bigint - $5::bigint FROM generate_series(0, $1::bigint - 1) AS k
                 ON CONFLICT (install_id) DO NOTHING",
                &[&count, &customer, &token, &now, &spread],
            )
            .await
            .map_err(e)?;
        tx.execute(
            "INSERT INTO install_reports (install_id, customer, first_seen, last_success, clock_from, agent_version, product_version, versions_at)
             SELECT 'seed-' || $2::text || '-' || k, $2, $3::bigint - $4::bigint, $3 - (k * $4) / $1, $3 - (k * $4) / $1, '0.1.0', '1.0', $3
             FROM generate_series(0, $1::bigint - 1) AS k ON CONFLICT (install_id) DO NOTHING",
            &[&count, &customer, &now, &spread],
        )
        .await
        .map_err(e)?;
        tx.execute("ANALYZE install_reports", &[]).await.map_err(e)?;
        tx.commit().await.map_err(e)?;
        Ok(added)
    }

    pub(super) async fn install_known(&self, install_id: &str) -> Result<bool, IndexError> {
        let c = self.client().await?;
        let row = c
            .query_one(
                "SELECT EXISTS(SELECT 1 FROM installs WHERE install_id = $1)
                     OR EXISTS(SELECT 1 FROM bundles WHERE install_id = $1)",
                &[&install_id],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(row.get(0))
    }

    pub(super) async fn insert_exemption(&self, e: &Exemption, document: &str) -> Result<(), IndexError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO exemptions (exemption_id, install_id, until, ends_at, reason, granted_at, document)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&e.exemption_id, &e.install_id, &e.until, &e.ends_at(), &e.reason, &e.granted(), &document],
        )
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub(super) async fn exemption_documents(&self) -> Result<Vec<String>, IndexError> {
        let c = self.client().await?;
        let rows = c
            .query("SELECT document FROM exemptions ORDER BY granted_at DESC, exemption_id DESC", &[])
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(super) async fn bundle_count(&self) -> Result<u64, IndexError> {
        let c = self.client().await?;
        let n: i64 = c.query_one("SELECT COUNT(*) FROM bundles", &[]).await.map_err(|e| self.err(e))?.get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// While armed, a transaction opened by hand on `client` may be open: dropping it sends a
/// ROLLBACK, queued at once (a request goes out on its first poll) ahead of any later call on
/// the connection, and not waited for.
struct RollbackOnDrop<'a> {
    client: &'a tokio_postgres::Client,
    armed: bool,
}

impl Drop for RollbackOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            use futures_util::FutureExt;
            let _ = self.client.batch_execute("ROLLBACK").now_or_never();
        }
    }
}

/// An install row of [`f::ONE_INSTALL`] or [`f::LIST_INSTALLS`] (the latter without the times).
fn install_row(r: &Row) -> Result<(Install, Option<Timestamp>, Option<Timestamp>), tokio_postgres::Error> {
    Ok((
        Install {
            install_id: r.try_get(0)?,
            customer: r.try_get(1)?,
            first_seen: r.try_get(2)?,
            last_success: r.try_get(3)?,
            clock_from: r.try_get(4)?,
            agent_version: r.try_get(5)?,
            product_version: r.try_get(6)?,
            usage: r.try_get(7)?,
        },
        if r.len() > 8 { r.try_get(8)? } else { None },
        if r.len() > 9 { r.try_get(9)? } else { None },
    ))
}

/// The rows of [`UPLOAD_LOOKUP`].
fn lookup_rows(row: Option<&Row>) -> Result<LookupRows, tokio_postgres::Error> {
    let Some(row) = row else { return Ok((None, None)) };
    let recorded: bool = row.try_get(0)?;
    let receipt = recorded.then(|| row.try_get::<_, Option<String>>(1)).transpose()?;
    let exemption = match (row.try_get::<_, Option<String>>(2), row.try_get::<_, Option<Timestamp>>(3)) {
        (Ok(Some(doc)), Ok(Some(ends))) => Some((doc, ends)),
        _ => None,
    };
    Ok((receipt, exemption))
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
        },
        r.try_get(6)?,
    ))
}
