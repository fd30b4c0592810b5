//! The receiver: the vendor side of protocol v1, for a fleet, a demo or a test.
//!
//! `POST /v1/bundles` (any path ending in `/bundles`) takes a zip body from an enrolled install
//! (`Authorization: Bearer <token>` and `X-Callhome-Install-Id`), streams it into the store
//! while computing its SHA-256, checks it against `Idempotency-Key`, checks the stored zip, and
//! answers a receipt signed with its Ed25519 key; the same bundle again gets the same receipt.
//! `POST /v1/exports` takes an export carried from an isolated network. Faults can be injected
//! on purpose ([`faults`]). It shares only the receipt and bundle formats with the agent.
//!
//! The modules, in the order a request meets them: [`conn`] (accepting, TLS, timeouts, the
//! connection cap), [`http`] (routes, header checks, authentication, limits), [`store`] (the
//! bundles, in a folder or an S3 bucket), [`zipcheck`] and [`ingest`] (what a bundle or an export must be), [`index`]
//! (tokens, installs, bundles, receipts, exports, reported versions in SQLite or PostgreSQL),
//! [`record`] (what a stored bundle tells the index), [`fleet`] (the fleet view: compliance
//! states, currency), [`metrics`] (Prometheus), [`limits`] (per-install rate), [`tls`] (the
//! identity).

pub mod conn;
pub mod faults;
pub mod fleet;
pub mod http;
pub mod index;
pub mod ingest;
pub mod limits;
pub mod metrics;
pub mod reconcile;
pub mod record;
pub mod simulate;
pub mod store;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod zipcheck;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::warn;

pub use faults::{Fault, FaultKind};
pub use store::{BundleStore, StoreSpec};
pub use tls::TlsSource;
pub use zipcheck::check_zip;

use callhome_protocol::fs as fsutil;
use callhome_protocol::receipt;

/// Largest body accepted by default (413 beyond).
pub const DEFAULT_MAX_BODY: u64 = 256 << 20;
/// The largest anonymous CEIP bundle taken (CEIP carries counts: a few KiB a day).
pub const CEIP_MAX_BODY: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Key(#[from] receipt::ReceiptError),
    #[error(transparent)]
    Index(#[from] index::IndexError),
}

/// How to run the receiver.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// `--store DIR` or `--store s3://BUCKET/PREFIX`.
    pub store: StoreSpec,
    /// Where bodies are received and checked (`--spool`); see [`store`].
    pub spool: Option<PathBuf>,
    /// The index: `sqlite:PATH` or `postgres://…`; `STORE/index.sqlite` for a local store when
    /// not given (required with an S3 store).
    pub index: Option<String>,
    pub tls: TlsSource,
    /// Where to copy the self-signed CA (PEM), for agents to trust.
    pub ca_out: Option<PathBuf>,
    pub signing_key: PathBuf,
    pub public_key_out: Option<PathBuf>,
    pub faults: Vec<Fault>,
    pub max_body: u64,
    /// The newest agent release to advertise in receipts.
    pub latest_agent: Option<receipt::LatestAgent>,
    /// The newest product release to advertise in receipts (to agents that send their ledger
    /// head).
    pub latest_product: Option<receipt::LatestRelease>,
    /// Take bundles and exports from anyone, as the reference receiver did (demos, tests).
    pub open_enrolment: bool,
    /// The operator's token (from `--admin-token-file`): exports from the CLI or `/manual`.
    pub admin_token: Option<String>,
    pub conn: conn::ConnLimits,
    /// Uploads and exports being received at once; more get 503 with `Retry-After`.
    pub max_uploads: usize,
    /// Uploads per install.
    pub install_rate: limits::Rate,
    /// Anonymous CEIP uploads, all senders together.
    pub ceip_rate: limits::Rate,
    /// Most bytes an export's bundles may decompress to.
    pub max_export_unpacked: u64,
    /// The agent's compliance thresholds, for the fleet view and `/metrics`.
    pub thresholds: fleet::Thresholds,
    /// The agent and product releases installs are measured against (the fleet view).
    pub currency: fleet::Currency,
    /// Honour `X-Callhome-Simulated-Received-At` (the fleet simulator's backdating; never for a
    /// real fleet).
    pub allow_backdating: bool,
    /// Reconcile the store with the index over this many last days at start ([`reconcile`]);
    /// 0: not at all.
    pub reconcile_days: u32,
}

/// Why a bundle or an export was refused: the HTTP status and what to tell the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Refusal {}

/// Prepares keys, TLS, the index and the listener; `ready` gets the bound address before
/// serving starts.
pub async fn serve(
    opts: ServeOptions,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ReceiverError> {
    let key = receipt::load_or_create_signing_key(&opts.signing_key)?;
    if let Some(out) = &opts.public_key_out {
        fsutil::write_atomic(out, receipt::public_key_pem(&key).as_bytes())
            .map_err(|e| ReceiverError::Io(format!("--public-key-out {}: {e}", out.display())))?;
    }
    let index_spec = index::IndexSpec::parse(opts.index.as_deref(), &opts.store)?;
    // Opened on a blocking thread: the store drives its async client from blocking code.
    let (spec, spool) = (opts.store.clone(), opts.spool.clone());
    let store = tokio::task::spawn_blocking(move || BundleStore::open(&spec, spool.as_deref(), key))
        .await
        .map_err(|e| ReceiverError::Io(format!("opening the store: {e}")))??
        .advertise(opts.latest_agent.clone())
        .advertise_product(opts.latest_product.clone());
    let index = index::Index::open(&index_spec).await?;
    let (tls, ca) = tls::server_config(&opts.tls, store.local_dir())?;
    if let (Some(out), Some(ca)) = (&opts.ca_out, ca) {
        fsutil::write_atomic(out, ca.as_bytes())
            .map_err(|e| ReceiverError::Io(format!("--ca-out {}: {e}", out.display())))?;
    }
    let mut limits = opts.conn;
    if let Some(files) = conn::raise_open_files_limit() {
        // Room for the store's files, the index and the listener beside the connections.
        let room = usize::try_from(files.saturating_sub(64)).unwrap_or(usize::MAX).max(16);
        if limits.max_connections > room {
            warn!(
                "at most {room} connections: the limit on open files is {files} (raise it with `ulimit -n` or LimitNOFILE=)"
            );
            limits.max_connections = room;
        }
    }
    let listener =
        listen(opts.listen).map_err(|e| ReceiverError::Io(format!("cannot listen on {}: {e}", opts.listen)))?;
    let addr = listener.local_addr().map_err(|e| ReceiverError::Io(e.to_string()))?;
    if opts.allow_backdating {
        warn!(
            "BACKDATING ALLOWED: uploads may set their own received time (X-Callhome-Simulated-Received-At), \
             for the fleet simulator; never run a receiver for a fleet like this"
        );
    }
    if opts.open_enrolment {
        warn!(
            "OPEN ENROLMENT: bundles and exports are taken from anyone, without a token, and get signed receipts; \
             never run a receiver for a fleet like this"
        );
    }
    let app = Arc::new(http::App::new(store, index, &opts));
    let reconciling = (opts.reconcile_days > 0).then(|| {
        let (app, days) = (app.clone(), opts.reconcile_days);
        tokio::spawn(async move { reconcile_at_start(&app, days).await })
    });
    let service = http::service(app);
    ready(addr);
    conn::accept_loop(listener, tls, limits, service, shutdown).await;
    if let Some(task) = reconciling {
        task.abort();
        let _ = task.await;
    }
    Ok(())
}

/// Reconciles the last `days` days of the store with the index, beside the uploads, and says
/// what it did. Bundles left alone as possibly in flight ([`reconcile::Reconciled::recent`]:
/// after a crash, those the killed replica had just stored) are looked at once more when
/// [`reconcile::IN_FLIGHT`] has passed (the task ends with the server).
async fn reconcile_at_start(app: &http::App, days: u32) {
    let Some(recent) = reconcile_days(app, days).await.filter(|&n| n > 0) else { return };
    let wait = Duration::from_secs(reconcile::IN_FLIGHT.unsigned_abs() + 60);
    tracing::info!(
        "{recent} bundle(s) stored in the last minutes have no row yet; looking again in {} s",
        wait.as_secs()
    );
    tokio::time::sleep(wait).await;
    reconcile_days(app, days).await;
}

/// One pass of [`reconcile_at_start`], said in the log; the bundles it left to their uploads.
async fn reconcile_days(app: &http::App, days: u32) -> Option<u64> {
    let span = reconcile::Span::LastDays { days, now: callhome_protocol::time::now() };
    match reconcile::run(&app.store, &app.index, span).await {
        Ok(r) => {
            tracing::info!(
                bundles = r.bundles,
                indexed = r.indexed,
                receipted = r.receipted,
                removed = r.removed,
                torn = r.torn,
                recent = r.recent,
                "reconciled the store with the index over the last {days} day(s)"
            );
            Some(r.recent)
        }
        Err(e) => {
            warn!(
                "could not reconcile the store with the index at start ({e}); run `callhome-receiver reconcile` once it is reachable"
            );
            None
        }
    }
}

/// Binds `addr` with a listen backlog of 4096, so a burst of connections waits in the kernel
/// instead of being refused while the accept loop is at its cap.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// How long a client is told to wait when every upload slot is taken.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(2);
