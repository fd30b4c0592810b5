//! The operator's API: `GET /admin/v1/installs[?state=STATE]` (the fleet view, the same JSON
//! as `callhome-receiver fleet --json`), `GET /admin/v1/installs/{id}` (one install with its
//! last license usage summary) and `GET /metrics` (Prometheus). All behind the operator's token
//! (`--admin-token-file`, `Authorization: Bearer`); without one configured they answer 403.
//! Refusals are problem+json.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{App, problem};
use crate::fleet::dto::{InstallDetail, InstallEntry};
use crate::fleet::{self, ClockRange};
use crate::ingest::plain_id;
use callhome_protocol::time::now;

/// The operator's token checked: `None` when the request may go on.
fn refused(app: &App, h: &HeaderMap) -> Option<Response> {
    let Some(admin) = &app.admin_token else {
        return Some(problem(
            StatusCode::FORBIDDEN,
            "the operator API is off; start the receiver with --admin-token-file FILE to turn it on",
        ));
    };
    let presented = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let detail = match presented {
        None => "the operator API needs the operator's token (Authorization: Bearer, the --admin-token-file's token)",
        Some(t) if bool::from(admin.as_bytes().ct_eq(t.as_bytes())) => return None,
        Some(_) => "that is not the operator's token (the first line of the receiver's --admin-token-file)",
    };
    let mut r = problem(StatusCode::UNAUTHORIZED, detail);
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(r)
}

fn index_failed(e: impl std::fmt::Display) -> Response {
    tracing::error!("{e}");
    problem(StatusCode::SERVICE_UNAVAILABLE, "the receiver's index cannot be read right now; try again later")
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    state: Option<String>,
}

/// `GET /admin/v1/installs[?state=ok|warning|critical|overdue]`.
pub(super) async fn installs(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    if let Some(r) = refused(&app, &headers) {
        return r;
    }
    let now = now();
    let range = match q.state.as_deref().map(str::parse::<fleet::State>) {
        None => ClockRange::ALL,
        Some(Ok(s)) => app.thresholds.range(s, now),
        Some(Err(e)) => return problem(StatusCode::BAD_REQUEST, &format!("state: {e}")),
    };
    match app.index.installs(range).await {
        Ok(list) => {
            let list: Vec<_> = list.iter().map(|i| InstallEntry::new(i, &app.thresholds, &app.currency, now)).collect();
            axum::Json(list).into_response()
        }
        Err(e) => index_failed(e),
    }
}

/// `GET /admin/v1/installs/{id}`.
pub(super) async fn install(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = refused(&app, &headers) {
        return r;
    }
    if !plain_id(&id) {
        return problem(StatusCode::BAD_REQUEST, "an install id is 1 to 128 letters, digits, '.', '_' or '-'");
    }
    match app.index.install(&id).await {
        Ok(Some(i)) => axum::Json(InstallDetail::new(&i, &app.thresholds, &app.currency, now())).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, &format!("no install {id} has enrolled or reported")),
        Err(e) => index_failed(e),
    }
}

/// `GET /metrics`.
pub(super) async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&app, &headers) {
        return r;
    }
    let now = now();
    let mut states = Vec::new();
    for s in fleet::State::ALL {
        match app.index.count_installs(app.thresholds.range(s, now)).await {
            Ok(n) => states.push((s, n)),
            Err(e) => return index_failed(e),
        }
    }
    let mut r = app.metrics.render(&states).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}
