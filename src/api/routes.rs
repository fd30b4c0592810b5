//! The routes of the API and their OpenAPI description (generated from these handlers).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiState;
use super::dto::*;
use super::extract::{Body_, P, Problem, Q, RawBody, internal, job_outcome, json_bytes};
use super::security::{authorize, guard, problem};
use crate::agent::Notice;
use crate::control::{self};
use crate::programs::{Program, TelemetryMode};

type St = State<Arc<ApiState>>;

/// Largest request body (a manual receipt for thousands of bundles fits).
pub const BODY_LIMIT: usize = 1 << 20;

#[derive(OpenApi)]
#[openapi(
    components(schemas(CollectedDoc, UploadReportDoc, ProgramUploadDoc, ExportDoc, ExportPartDoc)),
    info(
        title = "callhome agent API",
        description = "Control and observe the callhome agent on this machine. Every route but /healthz, /api/openapi.json and the dashboard's pages (/, /login, /ui/…) needs Authorization: Bearer <token> (api-token, or api-token-read for GET), or the dashboard's session (X-Callhome-Session, sent by the dashboard's own pages)."
    )
)]
struct ApiDoc;

pub fn router(st: Arc<ApiState>) -> axum::Router {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(openapi))
        .routes(routes!(metrics))
        .routes(routes!(status))
        .routes(routes!(programs))
        .routes(routes!(set_program))
        .routes(routes!(collect))
        .routes(routes!(upload))
        .routes(routes!(job))
        .routes(routes!(bundles))
        .routes(routes!(bundle, withdraw_bundle))
        .routes(routes!(bundle_file))
        .routes(routes!(bundle_raw))
        .routes(routes!(quarantine))
        .routes(routes!(quarantine_retry))
        .routes(routes!(quarantine_purge))
        .routes(routes!(history))
        .routes(routes!(ledger))
        .routes(routes!(ledger_verify))
        .routes(routes!(licenses))
        .routes(routes!(usage))
        .routes(routes!(events))
        .routes(routes!(export))
        .routes(routes!(export_file))
        .routes(routes!(import_receipt))
        .routes(routes!(support_bundle))
        .routes(routes!(test_connection))
        .routes(routes!(proxy, set_proxy, clear_proxy))
        .routes(routes!(register, unregister))
        .routes(routes!(super::alerts::alerts))
        .routes(routes!(super::alerts::ack_alert, super::alerts::unack_alert))
        .routes(routes!(super::alerts::test_alert))
        .routes(routes!(super::alerts::notifications, super::alerts::set_notifications))
        .routes(routes!(super::dashboard::index))
        .routes(routes!(super::dashboard::login, super::dashboard::login_form))
        .routes(routes!(super::dashboard::logout))
        .routes(routes!(super::dashboard::ui_file))
        .routes(routes!(super::dashboard::dashboard_link))
        .split_for_parts();
    let mut doc = serde_json::to_value(&api).expect("the OpenAPI document serializes");
    super::contract::complete(&mut doc);
    let declared = super::security::DeclaredMethods::of(&doc);
    let doc = Arc::new(doc.to_string());
    // An unknown route asks for a credential like a known one (which routes exist is told to
    // callers with a token, and by the public document): `route_layer` does not reach the
    // router's fallback, so it carries `authorize` itself.
    let not_found = (|| async { problem(StatusCode::NOT_FOUND, "no such route; GET /api/openapi.json lists them") })
        .layer(axum::middleware::from_fn_with_state(st.clone(), authorize));
    router
        .fallback(not_found)
        .method_not_allowed_fallback(|| async {
            problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "this route does not take that method; GET /api/openapi.json lists them",
            )
        })
        .route_layer(axum::middleware::from_fn_with_state(st.clone(), authorize))
        .layer(axum::Extension(OpenApiJson(doc)))
        .layer(axum::Extension(declared))
        .layer(axum::middleware::from_fn_with_state(st.clone(), guard))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(st)
}

#[derive(Clone)]
struct OpenApiJson(Arc<String>);

/// Liveness: no token, no data.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "the agent runs", body = String)))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
async fn openapi(axum::Extension(doc): axum::Extension<OpenApiJson>) -> Response {
    json_bytes(bytes::Bytes::from(doc.0.as_bytes().to_vec()))
}

/// Prometheus metrics (read token).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", body = String)))]
async fn metrics(State(st): St) -> Result<Response, Problem> {
    let text = st.control.metrics()?;
    let mut r = Response::new(Body::from(text));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    Ok(r)
}

/// The agent's state: the same document as `callhome status --json`.
#[utoipa::path(get, path = "/api/v1/status", responses((status = 200, body = StatusDoc)))]
async fn status(State(st): St) -> Response {
    json_bytes(st.snapshot())
}

/// The data programs.
#[utoipa::path(get, path = "/api/v1/programs", responses((status = 200, body = Vec<ProgramDoc>)))]
async fn programs(State(st): St) -> Json<Vec<ProgramDoc>> {
    Json(st.programs())
}

/// Turns an optional program on or off (`{"enabled": bool}`), or switches telemetry between
/// automatic and manual (`{"mode": "automatic"|"manual"}`). Mandatory telemetry answers 409.
#[utoipa::path(put, path = "/api/v1/programs/{name}", params(("name" = String, Path, description = "telemetry, call_home, ceip or events")),
    request_body = ProgramChange, responses((status = 200, body = ProgramChanged), (status = 409, description = "mandatory or locked")))]
async fn set_program(
    State(st): St,
    P(name): P<String>,
    Body_(change): Body_<ProgramChange>,
) -> Result<Json<ProgramChanged>, Problem> {
    let p: Program = name.parse().map_err(|e: String| Problem::new(StatusCode::NOT_FOUND, e))?;
    let change = match (change.enabled, change.mode.as_deref()) {
        (Some(on), None) => control::ProgramChange::Enabled(on),
        (None, Some(mode)) => control::ProgramChange::Mode(
            mode.parse::<TelemetryMode>().map_err(|e: String| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e))?,
        ),
        _ => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "send either {\"enabled\": bool} or {\"mode\": \"automatic\"|\"manual\"}",
            ));
        }
    };
    let changed = st.control.set_program(p, change).await?;
    st.refresh();
    Ok(Json(changed))
}

fn program_of(req: &WorkRequest) -> Result<Option<Program>, Problem> {
    req.program
        .as_deref()
        .map(|s| s.parse().map_err(|e: String| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e)))
        .transpose()
}

/// Collects now; answers 202 with the job to follow.
#[utoipa::path(post, path = "/api/v1/collect", request_body = WorkRequest, responses((status = 202, body = JobDoc)))]
async fn collect(State(st): St, Body_(req): Body_<WorkRequest>) -> Result<Response, Problem> {
    let program = program_of(&req)?;
    let control = st.control.clone();
    let job = st.start_job("collect", async move { job_outcome(control.collect(program).await, |_| true) });
    Ok(accepted(job))
}

/// Uploads now (collecting license telemetry first when due); answers 202 with the job.
#[utoipa::path(post, path = "/api/v1/upload", request_body = WorkRequest, responses((status = 202, body = JobDoc)))]
async fn upload(State(st): St, Body_(req): Body_<WorkRequest>) -> Result<Response, Problem> {
    let program = program_of(&req)?;
    let control = st.control.clone();
    let job = st.start_job("upload", async move { job_outcome(control.upload(program).await, |doc| doc.ok) });
    Ok(accepted(job))
}

fn accepted(job: JobDoc) -> Response {
    let mut r = (StatusCode::ACCEPTED, Json(&job)).into_response();
    r.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&job.href).expect("a path is a header value"));
    r
}

/// A job's state and, once finished, its result.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", params(("id" = u64, Path)), responses((status = 200, body = JobDoc), (status = 404)))]
async fn job(State(st): St, P(id): P<u64>) -> Result<Json<JobDoc>, Problem> {
    st.job(id).map(Json).ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, format!("no job {id}")))
}

/// Pending bundles.
#[utoipa::path(get, path = "/api/v1/bundles", responses((status = 200, body = Vec<BundleDoc>)))]
async fn bundles(State(st): St) -> Result<Json<Vec<BundleDoc>>, Problem> {
    Ok(Json(st.control.bundles().await?))
}

/// A pending bundle's manifest.
#[utoipa::path(get, path = "/api/v1/bundles/{id}", params(("id" = String, Path, description = "the bundle's file name")),
    responses((status = 200, description = "manifest.json of the bundle", body = Object), (status = 404)))]
async fn bundle(State(st): St, P(id): P<String>) -> Result<Response, Problem> {
    let bytes = st.control.bundle_file(&id, crate::bundle::MANIFEST_NAME).await?;
    Ok(json_bytes(bytes.into()))
}

/// One file of a pending bundle, byte for byte (URL-encode a `/` in its name as `%2F`).
#[utoipa::path(get, path = "/api/v1/bundles/{id}/files/{name}", params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "the file's exact bytes", content_type = "application/octet-stream"), (status = 404)))]
async fn bundle_file(State(st): St, P((id, name)): P<(String, String)>) -> Result<Response, Problem> {
    let bytes = st.control.bundle_file(&id, &name).await?;
    let mut r = Response::new(Body::from(bytes));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    Ok(r)
}

/// The exact zip that will be uploaded; `X-Bundle-SHA256` is what the ledger will record.
#[utoipa::path(get, path = "/api/v1/bundles/{id}/raw", params(("id" = String, Path)),
    responses((status = 200, description = "the zip", content_type = "application/zip"), (status = 404)))]
async fn bundle_raw(State(st): St, P(id): P<String>) -> Result<Response, Problem> {
    let p = st.control.raw_bundle(&id).await?;
    let sha = p.sha256;
    let file = tokio::fs::File::open(&p.path).await.map_err(internal)?;
    let mut r = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(file)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    h.insert("x-bundle-sha256", HeaderValue::from_str(&sha).expect("hex is a header value"));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{}\"", p.name)).expect("bundle names are plain"),
    );
    Ok(r)
}

/// Withdraws a pending bundle of an optional program: it is never sent, and the ledger records
/// it. License-telemetry bundles are mandatory and answer 409.
#[utoipa::path(delete, path = "/api/v1/bundles/{id}", params(("id" = String, Path, description = "the bundle's file name")),
    responses((status = 200, body = WithdrawnDoc), (status = 404), (status = 409, description = "a license-telemetry bundle")))]
async fn withdraw_bundle(State(st): St, P(id): P<String>) -> Result<Json<WithdrawnDoc>, Problem> {
    let doc = st.control.withdraw(&id).await?;
    st.refresh();
    Ok(Json(doc))
}

/// The files in quarantine/ (refused for good by the receiver, or failing verification), oldest
/// first.
#[utoipa::path(get, path = "/api/v1/quarantine", responses((status = 200, body = Vec<QuarantinedDoc>)))]
async fn quarantine(State(st): St) -> Result<Json<Vec<QuarantinedDoc>>, Problem> {
    Ok(Json(st.control.quarantine().await?))
}

/// Re-checks a quarantined bundle and queues it again for the next upload. One that fails a
/// check (damaged, not a bundle, already acknowledged, its program off) stays and answers 409.
#[utoipa::path(post, path = "/api/v1/quarantine/{id}/retry", params(("id" = String, Path, description = "the file's name in quarantine/")),
    responses((status = 200, body = QuarantineActionDoc), (status = 404, description = "no such file in quarantine/"),
        (status = 409, description = "the re-check failed; it stays in quarantine")))]
async fn quarantine_retry(State(st): St, P(id): P<String>) -> Result<Json<QuarantineActionDoc>, Problem> {
    let doc = st.control.quarantine_retry(&id).await?;
    st.refresh();
    Ok(Json(doc))
}

/// Deletes a quarantined file for good; the ledger records it (`purged`).
#[utoipa::path(delete, path = "/api/v1/quarantine/{id}", params(("id" = String, Path, description = "the file's name in quarantine/")),
    responses((status = 200, body = QuarantineActionDoc), (status = 404, description = "no such file in quarantine/")))]
async fn quarantine_purge(State(st): St, P(id): P<String>) -> Result<Json<QuarantineActionDoc>, Problem> {
    let doc = st.control.quarantine_purge(&id).await?;
    st.refresh();
    Ok(Json(doc))
}

/// `history`'s paging (documentation; [`paging`] reads the query strictly).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct Paging {
    /// How many attempts (default 50).
    #[param(minimum = 0, maximum = 1000)]
    limit: Option<u32>,
    /// How many of the newest to skip.
    #[param(minimum = 0, maximum = 4294967295_u64)]
    offset: Option<u32>,
}

/// `limit` and `offset` as plain decimal digits only (no sign, no fraction, no exponent, nothing
/// empty), `limit` at most 1000; any other key is refused.
fn paging(query: Option<&str>) -> Result<(u32, u32), Problem> {
    let (mut limit, mut offset) = (50, 0);
    for kv in query.unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let bad = |what: &str| Problem::new(StatusCode::BAD_REQUEST, format!("{k}={v:?}: {what}"));
        let n = if !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) {
            v.parse::<u64>().ok().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| bad("too large"))?
        } else {
            return Err(bad("give a whole number such as 50"));
        };
        match k {
            "limit" if n <= 1000 => limit = n,
            "limit" => return Err(bad("at most 1000")),
            "offset" => offset = n,
            _ => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    format!("unknown query parameter {k:?}; history takes limit and offset"),
                ));
            }
        }
    }
    Ok((limit, offset))
}

/// Upload attempts, newest first, paged.
#[utoipa::path(get, path = "/api/v1/history", params(Paging), responses((status = 200, body = HistoryPage)))]
async fn history(
    State(st): St,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Result<Json<HistoryPage>, Problem> {
    let (limit, offset) = paging(q.as_deref())?;
    Ok(Json(st.control.history(limit, offset).await?))
}

/// The sent ledger (sent, withdrawn, evicted, quarantined bundles), oldest first.
#[utoipa::path(get, path = "/api/v1/ledger", responses((status = 200, body = Vec<LedgerDoc>)))]
async fn ledger(State(st): St) -> Result<Json<Vec<LedgerDoc>>, Problem> {
    Ok(Json(st.control.ledger().await?))
}

/// Checks the ledger: its hash chain, and every receipt against its bundle and the receiver's
/// key (as `callhome ledger verify`). A ledger that does not verify answers 200 with `ok: false`.
#[utoipa::path(get, path = "/api/v1/ledger/verify", responses((status = 200, body = LedgerCheckDoc)))]
async fn ledger_verify(State(st): St) -> Result<Json<LedgerCheckDoc>, Problem> {
    Ok(Json(st.control.ledger_verify().await?))
}

/// The license inventory, problems found and license events.
#[utoipa::path(get, path = "/api/v1/licenses", responses((status = 200, description = "the same document as callhome licenses --json")))]
async fn licenses(State(st): St) -> Result<Json<serde_json::Value>, Problem> {
    Ok(Json(st.control.licenses().await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    /// Only this feature.
    feature: Option<String>,
    /// From this time on (RFC 3339 in UTC, such as 2026-11-01T00:00:00Z).
    #[param(pattern = "^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$")]
    since: Option<String>,
}

/// License usage by feature and hour, after reading what is new in the debug logs.
#[utoipa::path(get, path = "/api/v1/usage", params(UsageQuery), responses((status = 200, description = "the same rows as callhome usage --json")))]
async fn usage(State(st): St, Q(q): Q<UsageQuery>) -> Result<Json<Vec<serde_json::Value>>, Problem> {
    let since = match q.since.as_deref() {
        Some(s) => crate::clock::parse_rfc3339(s).ok_or_else(|| {
            Problem::new(StatusCode::BAD_REQUEST, format!("since={s:?}: use RFC 3339, such as 2026-11-01T00:00:00Z"))
        })?,
        None => 0,
    };
    Ok(Json(st.control.usage(q.feature.as_deref(), since).await?))
}

/// State changes as Server-Sent Events: `state`, `upload`, `license_event`.
#[utoipa::path(get, path = "/api/v1/events", responses((status = 200, description = "Server-Sent Events", content_type = "text/event-stream")))]
async fn events(State(st): St) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let rx = st.control.subscribe();
    let mut stop = st.shutdown.clone();
    let stopped = async move {
        let _ = stop.wait_for(|v| *v).await;
    };
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(n) => return Some((Ok(notice_event(&n)), rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .take_until(Box::pin(stopped));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn notice_event(n: &Notice) -> Event {
    let (name, data) = match n {
        Notice::StateChanged { what } => ("state", serde_json::json!({ "what": what })),
        Notice::UploadResult { program, code, message } => {
            ("upload", serde_json::json!({ "program": program.name(), "code": code, "message": message }))
        }
        Notice::LicenseEvent { kind, feature, message } => {
            ("license_event", serde_json::json!({ "kind": kind, "feature": feature, "message": message }))
        }
    };
    Event::default().event(name).data(data.to_string())
}

/// Exports the pending bundles into one zip in the data directory's `exports/`; answers 202 with
/// the job, whose result says where to download it.
#[utoipa::path(post, path = "/api/v1/export", request_body = ExportRequest, responses((status = 202, body = JobDoc)))]
async fn export(State(st): St, Body_(req): Body_<ExportRequest>) -> Result<Response, Problem> {
    let program = program_of(&WorkRequest { program: req.program })?;
    if req.max_size == Some(0) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "max_size must be more than 0 bytes (leave it out for the configured spool.export_max_size)",
        ));
    }
    let control = st.control.clone();
    let job = st.start_job("export", async move { job_outcome(control.export(program, req.max_size).await, |_| true) });
    Ok(accepted(job))
}

/// Downloads an export or support bundle written in `exports/`.
#[utoipa::path(get, path = "/api/v1/exports/{file}", params(("file" = String, Path)), responses((status = 200, description = "the zip", content_type = "application/zip"), (status = 404)))]
async fn export_file(State(st): St, P(file): P<String>) -> Result<Response, Problem> {
    let path = st.control.export_path(&file)?;
    let f = tokio::fs::File::open(&path).await.map_err(internal)?;
    let mut r = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(f)));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    Ok(r)
}

/// Imports a receiver's signed manual receipt (the body is the receipt JSON). A receipt that
/// fails a check answers 422 and changes nothing; importing twice is harmless.
#[utoipa::path(post, path = "/api/v1/import-receipt", request_body(content = Object, description = "the receipt JSON"),
    responses((status = 200, body = ImportDoc), (status = 422, description = "refused; nothing changed")))]
async fn import_receipt(State(st): St, RawBody(body): RawBody) -> Result<Json<ImportDoc>, Problem> {
    let doc = st.control.import_receipt(&body).await?;
    st.refresh();
    Ok(Json(doc))
}

/// Makes a support bundle in `exports/` (and sends it with `"upload": true`); answers 202.
#[utoipa::path(post, path = "/api/v1/support-bundle", request_body = SupportRequest, responses((status = 202, body = JobDoc)))]
async fn support_bundle(State(st): St, Body_(req): Body_<SupportRequest>) -> Result<Response, Problem> {
    if req.case.trim().is_empty() || req.severity.is_some_and(|s| !(1..=4).contains(&s)) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "give a case number, and a severity from 1 to 4 if any",
        ));
    }
    let case = crate::support::Case {
        number: req.case,
        severity: req.severity,
        impact: req.impact,
        summary: req.summary,
        contact: req.contact,
    };
    let control = st.control.clone();
    let upload = req.upload;
    let job = st.start_job("support-bundle", async move {
        job_outcome(control.support_bundle(case, upload).await, |doc| doc.get("error").is_none())
    });
    Ok(accepted(job))
}

/// Tests the path to the receiver step by step (DNS, TCP, proxy, TLS, probe).
#[utoipa::path(post, path = "/api/v1/diagnostics/connection", request_body = EmptyRequest,
    responses((status = 200, body = Vec<StepDoc>)))]
async fn test_connection(State(st): St, Body_(_req): Body_<EmptyRequest>) -> Json<Vec<StepDoc>> {
    Json(st.control.test_connection().await)
}

/// The proxy in use and where its password comes from; never the password.
#[utoipa::path(get, path = "/api/v1/proxy", responses((status = 200, body = ProxyDoc)))]
async fn proxy(State(st): St) -> Result<Json<ProxyDoc>, Problem> {
    Ok(Json(st.control.proxy().await?))
}

/// Sets the proxy; the password goes to the OS keyring and nowhere else. 503 when there is no
/// keyring service (the answer names the alternatives).
#[utoipa::path(put, path = "/api/v1/proxy", request_body = ProxyRequest,
    responses((status = 200, body = ProxyDoc), (status = 409, description = "the URL is refused"), (status = 503, description = "no keyring service")))]
async fn set_proxy(State(st): St, Body_(req): Body_<ProxyRequest>) -> Result<Json<ProxyDoc>, Problem> {
    let password = req.password.map(crate::secrets::Value::new);
    let doc = st.control.set_proxy(&req.url, req.username.as_deref(), password.as_ref()).await?;
    st.refresh();
    Ok(Json(doc))
}

/// Forgets the stored proxy and removes its password from the keyring.
#[utoipa::path(delete, path = "/api/v1/proxy", responses((status = 200, body = ProxyDoc)))]
async fn clear_proxy(State(st): St) -> Result<Json<ProxyDoc>, Problem> {
    let doc = st.control.clear_proxy().await?;
    st.refresh();
    Ok(Json(doc))
}

/// Stores the endpoint token in the OS keyring; uploads present it from now on.
#[utoipa::path(put, path = "/api/v1/registration", request_body = TokenRequest,
    responses((status = 200, body = ProxyDoc), (status = 503, description = "no keyring service")))]
async fn register(State(st): St, Body_(req): Body_<TokenRequest>) -> Result<Json<ProxyDoc>, Problem> {
    if req.token.trim().is_empty() {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "the token is empty"));
    }
    let doc = st.control.register(Some(&crate::secrets::Value::new(req.token.trim()))).await?;
    st.refresh();
    Ok(Json(doc))
}

/// Removes the endpoint token from the keyring.
#[utoipa::path(delete, path = "/api/v1/registration", responses((status = 200, body = ProxyDoc)))]
async fn unregister(State(st): St) -> Result<Json<ProxyDoc>, Problem> {
    let doc = st.control.register(None).await?;
    st.refresh();
    Ok(Json(doc))
}
