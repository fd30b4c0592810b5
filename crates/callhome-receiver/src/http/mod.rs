//! The receiver's HTTP surface on axum: routes, the checks that need only headers (who is
//! sending, content type, `Idempotency-Key`, declared length, rate and upload slots), then the
//! body streamed into the store with its SHA-256 computed on the way.
//!
//! Every refusal is `application/problem+json`; every answer carries `nosniff`,
//! `X-Frame-Options: DENY` and a Content-Security-Policy. It does not accept connections
//! ([`crate::conn`]) and does not check zips ([`crate::zipcheck`], [`crate::ingest`]).

mod admin;
mod auth;
mod body;
mod page;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ed25519_dalek::SigningKey;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::faults::{Fault, FaultKind};
use crate::fleet::{Currency, Thresholds};
use crate::index::Index;
use crate::ingest::{self, ExportLimits};
use crate::limits::RateLimiter;
use crate::metrics::{Metrics, Outcome};
use crate::record::{self, Stored};
use crate::store::BundleStore;
use crate::{Refusal, ServeOptions};
use body::{Received, receive};
use callhome_protocol::headers::{BUNDLE_CONTENT_TYPE, IDEMPOTENCY_KEY, INSTALL_ID, LEDGER_HEAD, PROGRAM};
use callhome_protocol::receipt::{LedgerHead, Receipt, UploadAnswer};
use callhome_protocol::time::{Timestamp, now};

/// What every request handler shares.
pub struct App {
    pub(crate) store: BundleStore,
    pub(crate) index: Index,
    faults: Mutex<std::collections::VecDeque<Fault>>,
    max_body: u64,
    open_enrolment: bool,
    admin_token: Option<String>,
    /// Bodies being received at once.
    uploads: Arc<Semaphore>,
    rate: RateLimiter,
    /// Installs seen bound to their tokens (no index write for them again).
    bound: auth::Bound,
    export_limits: ExportLimits,
    metrics: Metrics,
    /// The agent's compliance thresholds, for the fleet view.
    thresholds: Thresholds,
    /// The releases installs are measured against.
    currency: Currency,
    /// Whether uploads may set their received time (`--allow-backdating`).
    allow_backdating: bool,
    /// Anonymous CEIP uploads, all senders together (they name no one to count them by).
    ceip_rate: RateLimiter,
}

impl App {
    pub fn new(store: BundleStore, index: Index, opts: &ServeOptions) -> App {
        App {
            store,
            index,
            faults: Mutex::new(opts.faults.clone().into()),
            max_body: opts.max_body,
            open_enrolment: opts.open_enrolment,
            admin_token: opts.admin_token.clone(),
            uploads: Arc::new(Semaphore::new(opts.max_uploads.max(1))),
            rate: RateLimiter::new(opts.install_rate),
            bound: auth::Bound::default(),
            export_limits: ExportLimits { max_bundle: opts.max_body, max_unpacked: opts.max_export_unpacked },
            metrics: Metrics::default(),
            thresholds: opts.thresholds.clone(),
            currency: opts.currency.clone(),
            allow_backdating: opts.allow_backdating,
            ceip_rate: RateLimiter::new(opts.ceip_rate),
        }
    }

    fn next_fault(&self) -> Option<FaultKind> {
        let mut q = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let front = q.front_mut()?;
        let kind = front.kind.clone();
        if let Some(t) = &mut front.times {
            *t -= 1;
            if *t == 0 {
                q.pop_front();
            }
        }
        Some(kind)
    }
}

/// Marks a response whose connection is to be dropped unanswered (the `drop` fault).
#[derive(Clone, Copy)]
struct DropConnection;

/// The connection was dropped on purpose.
#[derive(Debug)]
pub struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}
impl std::error::Error for Dropped {}

/// The router.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/manual", get(page::manual))
        .route("/manual.js", get(page::script))
        .route("/manual.css", get(page::style))
        .route("/v1/probe", get(probe))
        .route("/v1/exports", post(take_export))
        .route("/admin/v1/installs", get(admin::installs))
        .route("/admin/v1/installs/{id}", get(admin::install))
        .route("/metrics", get(admin::metrics))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(bundles_or_404)
        .layer(axum::middleware::map_response(page::security_headers))
        .with_state(app)
}

/// The router as a hyper service that drops the connection of a response marked
/// [`DropConnection`].
#[derive(Clone)]
pub struct HyperService {
    router: Router,
}

/// The router as a hyper service.
pub fn service(app: Arc<App>) -> HyperService {
    HyperService { router: router(app) }
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for HyperService {
    type Response = Response;
    type Error = Dropped;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Response, Dropped>> + Send>>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let mut router = self.router.clone();
        Box::pin(async move {
            let resp = match tower_service::Service::call(&mut router, req.map(Body::new)).await {
                Ok(r) => r,
                Err(e) => match e {},
            };
            if resp.extensions().get::<DropConnection>().is_some() { Err(Dropped) } else { Ok(resp) }
        })
    }
}

/// A refusal as problem+json.
pub fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or(""),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    r
}

fn refusal(r: &Refusal) -> Response {
    problem(StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST), &r.reason)
}

fn with_retry_after(mut r: Response, secs: u64) -> Response {
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The body's declared length against the limit: 413 when it is over.
fn declared_length_refusal(h: &HeaderMap, max: u64, what: &str) -> Option<Response> {
    match header(h, header::CONTENT_LENGTH.as_str()).map(str::parse::<u64>) {
        Some(Ok(n)) if n > max => Some(problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{what} are limited to {max} bytes; this one declares {n}"),
        )),
        Some(Err(_)) => Some(problem(StatusCode::BAD_REQUEST, "Content-Length is not a number")),
        _ => None,
    }
}

/// 415 unless the body is declared a zip.
fn zip_type_refusal(h: &HeaderMap, what: &str) -> Option<Response> {
    let ctype = header(h, header::CONTENT_TYPE.as_str()).unwrap_or("");
    if ctype.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(BUNDLE_CONTENT_TYPE)) {
        None
    } else {
        Some(problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("send the {what} as Content-Type: {BUNDLE_CONTENT_TYPE}"),
        ))
    }
}

/// The cheap authenticated probe `callhome test-connection` ends with: an agent names itself.
async fn probe(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match auth::install(&app, &headers).await {
        Ok(caller) => {
            let id = caller.install_id().or_else(|| header(&headers, INSTALL_ID).filter(|v| !v.is_empty()));
            match id {
                Some(id) => axum::Json(
                    serde_json::json!({ "ok": true, "install_id": id, "receiver": env!("CARGO_PKG_VERSION") }),
                )
                .into_response(),
                None => problem(StatusCode::UNAUTHORIZED, "name the agent with X-Callhome-Install-Id"),
            }
        }
        Err(r) => r,
    }
}

/// A known path asked with a method it does not take, as a problem document with `Allow`:
/// exports are sent with POST, every other named route is read with GET.
async fn method_not_allowed(uri: axum::http::Uri) -> Response {
    let allow = if uri.path() == "/v1/exports" { "POST" } else { "GET, HEAD" };
    let mut r =
        problem(StatusCode::METHOD_NOT_ALLOWED, &format!("{} does not take that method; it takes {allow}", uri.path()));
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// Any path ending in `/bundles` takes uploads; anything else is unknown.
async fn bundles_or_404(State(app): State<Arc<App>>, req: Request) -> Response {
    let path = req.uri().path();
    if !path.ends_with("/bundles") {
        return problem(StatusCode::NOT_FOUND, "no such endpoint; bundles go to POST /v1/bundles");
    }
    if req.method() != Method::POST {
        let mut r = problem(StatusCode::METHOD_NOT_ALLOWED, "bundles are sent with POST");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let start = Instant::now();
    let resp = upload(app.clone(), req).await;
    app.metrics.upload(Outcome::of_status(resp.status().as_u16()), start.elapsed());
    resp
}

/// 503 when the index cannot be reached: the agent keeps the bundle and tries again.
fn index_unavailable(e: impl std::fmt::Display) -> Response {
    tracing::error!("{e}");
    with_retry_after(
        problem(StatusCode::SERVICE_UNAVAILABLE, "the receiver's index cannot be reached right now; try again later"),
        crate::BUSY_RETRY_AFTER.as_secs(),
    )
}

/// When the bundle counts as received: now, or — only under `--allow-backdating`, for the fleet
/// simulator — the past time in `X-Callhome-Simulated-Received-At` (RFC 3339).
/// A refusal is a 400's detail.
fn received_at(app: &App, h: &HeaderMap) -> Result<callhome_protocol::time::Timestamp, String> {
    let now = now();
    let Some(v) = h.get(SIMULATED_RECEIVED_AT) else { return Ok(now) };
    if !app.allow_backdating {
        return Err(format!("{SIMULATED_RECEIVED_AT} is honoured only by a receiver started with --allow-backdating"));
    }
    match v.to_str().ok().and_then(callhome_protocol::time::parse_rfc3339) {
        Some(t) if t <= now => Ok(t),
        _ => Err(format!("{SIMULATED_RECEIVED_AT} must be an RFC 3339 time in the past")),
    }
}

/// The fleet simulator's backdating header (see [`received_at`]).
pub const SIMULATED_RECEIVED_AT: &str = "x-callhome-simulated-received-at";

/// `POST …/bundles`: every header check first, then the body into the store.
async fn upload(app: Arc<App>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    // An upload without a token is refused (401) unless it is an anonymous CEIP one: then it may
    // name no install and send no ledger head, is small, and its bundle must say it is CEIP.
    let anonymous = auth::anonymous_ceip(&app, h);
    // The bundle the upload claims to be, when it says so plainly: looked up with the token.
    let claim = header(h, IDEMPOTENCY_KEY)
        .filter(|k| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase);
    let (caller, looked) = if anonymous {
        if h.contains_key(INSTALL_ID) || h.contains_key(LEDGER_HEAD) {
            return problem(
                StatusCode::BAD_REQUEST,
                "an anonymous CEIP upload names no install (X-Callhome-Install-Id) and sends no ledger head (X-Callhome-Ledger-Head)",
            );
        }
        (auth::Caller::AnonymousCeip, None)
    } else {
        match auth::install_uploading(&app, h, claim.as_deref()).await {
            Ok(c) => c,
            Err(r) => return r,
        }
    };
    let max_body = if anonymous { crate::CEIP_MAX_BODY.min(app.max_body) } else { app.max_body };
    if let Some(r) = zip_type_refusal(h, "bundle") {
        return r;
    }
    let Some(claimed) = claim else {
        return problem(
            StatusCode::BAD_REQUEST,
            if header(h, IDEMPOTENCY_KEY).is_some() {
                "the Idempotency-Key header must be the bundle's SHA-256 in hex (64 digits)"
            } else {
                "the Idempotency-Key header (the bundle's SHA-256) is missing"
            },
        );
    };
    let head = match header(h, LEDGER_HEAD).map(LedgerHead::parse) {
        None => None,
        Some(Some(head)) => Some(head),
        Some(None) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "the X-Callhome-Ledger-Head header must be the ledger's row count and head hash: `<rows> <64 hex digits>`",
            );
        }
    };
    let received_at = match received_at(&app, h) {
        Ok(t) => t,
        Err(why) => return problem(StatusCode::BAD_REQUEST, &why),
    };
    if let Some(r) = declared_length_refusal(h, max_body, if anonymous { "anonymous CEIP bundles" } else { "bundles" })
    {
        return r;
    }
    if anonymous && let Err(wait) = app.ceip_rate.take("ceip", Instant::now()) {
        let secs = wait.as_secs_f64().ceil() as u64;
        return with_retry_after(
            problem(StatusCode::TOO_MANY_REQUESTS, &format!("too many anonymous CEIP uploads; try again in {secs} s")),
            secs,
        );
    }
    if let Some(key) = caller.install_id().or_else(|| header(h, INSTALL_ID))
        && let Err(wait) = app.rate.take(key, Instant::now())
    {
        let secs = wait.as_secs_f64().ceil() as u64;
        return with_retry_after(
            problem(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("too many uploads from install {key}; try again in {secs} s"),
            ),
            secs,
        );
    }
    let Ok(_slot) = app.uploads.clone().try_acquire_owned() else {
        return with_retry_after(
            problem(StatusCode::SERVICE_UNAVAILABLE, "every upload slot is busy; try again shortly"),
            crate::BUSY_RETRY_AFTER.as_secs(),
        );
    };
    let program = header(h, PROGRAM).unwrap_or("?").chars().take(64).collect::<String>();
    let fault = app.next_fault();
    match &fault {
        Some(FaultKind::Drop) => {
            warn!("fault: dropping the connection");
            let mut r = Response::new(Body::empty());
            r.extensions_mut().insert(DropConnection);
            return r;
        }
        Some(FaultKind::Status { code, retry_after }) => {
            warn!(code, "fault: answering a status");
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let resp = problem(status, "fault injected by callhome-receiver --fault");
            return match retry_after {
                Some(s) => with_retry_after(resp, *s),
                None => resp,
            };
        }
        _ => {}
    }
    let received = match receive(&app.store, body, max_body, "bundle").await {
        Ok(r) => r,
        Err(r) => return r,
    };
    if received.sha256 != claimed {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("the body's SHA-256 is {}, not the Idempotency-Key {claimed}", received.sha256),
        );
    }
    app.metrics.bytes(received.size);
    // An exemption granted to the install goes beside the receipt: the authenticated install,
    // or (open enrolment) the one the request names.
    let exempt_install = caller.install_id().map(str::to_string).or_else(|| header(h, INSTALL_ID).map(str::to_string));
    // The receiver as a whole may hold this bundle already (taken by another replica): the
    // index answers with the receipt given then, and the install's exemption, in one query —
    // asked with the token when there was one (the body's SHA-256 is the one claimed).
    let looked = match looked {
        Some(l) => Ok(l),
        None => app.index.upload_lookup(&received.sha256, exempt_install.as_deref(), now()).await,
    };
    let looked = match looked {
        Ok(k) => k,
        Err(e) => return index_unavailable(e),
    };
    // An anonymous sender gets a receipt only once its bundle was checked to be CEIP: what the
    // index holds for it is not used before.
    let held = if anonymous { None } else { looked.held_receipt(&received.sha256) };
    // Asked, and no receipt had been answered for it.
    let unindexed = !anonymous && !looked.recorded;
    let exemption = looked.exemption;
    let (receipt, new) = match held {
        Some(r) => (r, false),
        None => match store_and_record(&app, received, &caller, &program, head, unindexed, received_at).await {
            Ok(r) => r,
            Err(r) => return r,
        },
    };
    info!(program, sha256 = %receipt.bundle_sha256, new, "bundle received");
    let receipt = match &fault {
        Some(FaultKind::Delay(d)) => {
            warn!(?d, "fault: delaying the answer");
            tokio::time::sleep(*d).await;
            receipt
        }
        Some(FaultKind::Garbage) => return (StatusCode::OK, "<html>surprise</html>").into_response(),
        Some(FaultKind::BadSignature) => app.store.sign_with(&receipt, &SigningKey::from_bytes(&[1u8; 32])),
        _ => receipt,
    };
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    (status, axum::Json(UploadAnswer { receipt, exemption })).into_response()
}

/// Checks and stores a received bundle, then records it in the index; answers the receipt the
/// index holds and whether the bundle was new to the receiver. `unindexed`: the index was asked
/// (with the token, or after the body) and held no row for it (see [`BundleStore::accept_file`]).
async fn store_and_record(
    app: &Arc<App>,
    received: Received,
    caller: &auth::Caller,
    program: &str,
    head: Option<LedgerHead>,
    unindexed: bool,
    received_at: Timestamp,
) -> Result<(Receipt, bool), Response> {
    let install = caller.install_id();
    let anonymous = matches!(caller, auth::Caller::AnonymousCeip);
    // An anonymous bundle's time is kept to the day (receipt, index row, key): to the second, it
    // would sit beside the same install's identifiable uploads of that upload cycle.
    let received_at = if anonymous { received_at - received_at.rem_euclid(86_400) } else { received_at };
    let (app2, install2) = (app.clone(), install.map(str::to_string));
    let accepted = tokio::task::spawn_blocking(move || {
        let (incoming, sha256) = received.into_incoming(&app2.store)?;
        if anonymous {
            app2.store.accept_anonymous_ceip(incoming, &sha256, received_at)
        } else {
            app2.store.accept_file(incoming, &sha256, install2.as_deref(), received_at, head, unindexed)
        }
    })
    .await
    .unwrap_or_else(|e| Err(Refusal { status: 500, reason: format!("the bundle check failed: {e}") }));
    let accepted = accepted.map_err(|r| {
        warn!(status = r.status, "refused a bundle: {}", r.reason);
        refusal(&r)
    })?;
    let stored = Stored {
        receipt: accepted.receipt,
        install_id: install.map(str::to_string),
        program: program.to_string(),
        size: accepted.size,
        received_at,
        report: accepted.report,
    };
    record::bundle(&app.index, &app.store, stored).await.map_err(index_unavailable)
}

/// `POST /v1/exports`: an export carried from an isolated network, from a customer's token,
/// the operator, or anyone under open enrolment.
async fn take_export(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let caller = match auth::exporter(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Some(r) =
        zip_type_refusal(&headers, "export").or_else(|| declared_length_refusal(&headers, app.max_body, "exports"))
    {
        return r;
    }
    let Ok(_slot) = app.uploads.clone().try_acquire_owned() else {
        return with_retry_after(
            problem(StatusCode::SERVICE_UNAVAILABLE, "every upload slot is busy; try again shortly"),
            crate::BUSY_RETRY_AFTER.as_secs(),
        );
    };
    let received = match receive(&app.store, body, app.max_body, "export").await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (app2, received_at) = (app.clone(), now());
    let rt = tokio::runtime::Handle::current();
    let done = tokio::task::spawn_blocking(move || {
        let admit = |m: &callhome_protocol::export::ExportManifest| auth::admit_export(&rt, &app2.index, &caller, m);
        let known = ingest::known_in(&rt, &app2.index);
        let (incoming, _) = received.into_incoming(&app2.store)?;
        let export =
            incoming.open().map_err(|e| Refusal { status: 500, reason: format!("the received export: {e}") })?;
        ingest::ingest_from(export, &app2.store, &app2.export_limits, &admit, &known, received_at)
    })
    .await
    .unwrap_or_else(|e| Err(Refusal { status: 500, reason: format!("the export check failed: {e}") }));
    match done {
        Ok((receipt, taken)) => {
            if let Err(e) = record::export(&app.index, &app.store, &receipt, taken, received_at).await {
                return index_unavailable(e);
            }
            info!(export = %receipt.export_id, accepted = receipt.accepted.len(), rejected = receipt.rejected.len(), "export ingested");
            let disposition = format!("attachment; filename=\"receipt-{}.json\"", receipt.export_id);
            let mut r = axum::Json(&receipt).into_response();
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(r) => {
            warn!(status = r.status, "refused an export: {}", r.reason);
            refusal(&r)
        }
    }
}
