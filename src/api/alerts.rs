//! The alert routes: open alerts, acknowledgement, test alerts and the notification settings
//! (declared in the OpenAPI document through `routes.rs`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::ApiState;
use super::dto::*;
use super::extract::{Body_, P, Problem};

type St = State<Arc<ApiState>>;

/// The open alerts (acknowledged or not), oldest first: the same list as
/// `callhome alerts list --json`.
#[utoipa::path(get, path = "/api/v1/alerts", responses(
    (status = 200, body = Vec<AlertDoc>),
    (status = 401, description = "no or a wrong token", content_type = "application/problem+json"),
    (status = 500, description = "the agent's state could not be read", content_type = "application/problem+json")))]
pub(super) async fn alerts(State(st): St) -> Result<Json<Vec<AlertDoc>>, Problem> {
    Ok(Json(st.control.alerts().await?))
}

/// Acknowledges an open alert: `callhome check` and `/metrics` leave it out through `until`
/// (a date, UTC), or without `until` until it clears — in both cases only while it does not get
/// worse (a warning that becomes critical).
#[utoipa::path(post, path = "/api/v1/alerts/{id}/ack", params(("id" = String, Path, description = "the alert's id")),
    request_body = AckRequest, responses(
    (status = 200, body = AlertDoc),
    (status = 400, description = "the body is not JSON", content_type = "application/problem+json"),
    (status = 401, description = "no or a wrong token", content_type = "application/problem+json"),
    (status = 403, description = "a read-only token, or a request from another site", content_type = "application/problem+json"),
    (status = 404, description = "no open alert has this id", content_type = "application/problem+json"),
    (status = 415, description = "the body is not application/json", content_type = "application/problem+json"),
    (status = 422, description = "until is not a date, or a day that is over", content_type = "application/problem+json"),
    (status = 500, description = "the agent's state could not be written", content_type = "application/problem+json")))]
pub(super) async fn ack_alert(
    State(st): St,
    P(id): P<String>,
    Body_(req): Body_<AckRequest>,
) -> Result<Json<AlertDoc>, Problem> {
    let doc = st.control.ack_alert(&id, &req).await?;
    st.refresh();
    Ok(Json(doc))
}

/// Takes back an alert's acknowledgement.
#[utoipa::path(delete, path = "/api/v1/alerts/{id}/ack", params(("id" = String, Path, description = "the alert's id")),
    responses(
    (status = 200, body = AlertDoc),
    (status = 401, description = "no or a wrong token", content_type = "application/problem+json"),
    (status = 403, description = "a read-only token, or a request from another site", content_type = "application/problem+json"),
    (status = 404, description = "no open alert has this id", content_type = "application/problem+json"),
    (status = 500, description = "the agent's state could not be written", content_type = "application/problem+json")))]
pub(super) async fn unack_alert(State(st): St, P(id): P<String>) -> Result<Json<AlertDoc>, Problem> {
    let doc = st.control.unack_alert(&id).await?;
    st.refresh();
    Ok(Json(doc))
}

/// Sends a test alert now on one channel (`{"channel": "email"}`) or on every configured one
/// (`{}`); a channel that fails answers `delivered: false` with its error.
#[utoipa::path(post, path = "/api/v1/alerts/test", request_body = TestAlertRequest, responses(
    (status = 200, body = Vec<TestAlertDoc>),
    (status = 400, description = "the body is not JSON", content_type = "application/problem+json"),
    (status = 401, description = "no or a wrong token", content_type = "application/problem+json"),
    (status = 403, description = "a read-only token, or a request from another site", content_type = "application/problem+json"),
    (status = 415, description = "the body is not application/json", content_type = "application/problem+json"),
    (status = 422, description = "no such channel, or it is not configured", content_type = "application/problem+json"),
    (status = 500, description = "the agent's state could not be read", content_type = "application/problem+json")))]
pub(super) async fn test_alert(
    State(st): St,
    Body_(req): Body_<TestAlertRequest>,
) -> Result<Json<Vec<TestAlertDoc>>, Problem> {
    let docs = st.control.test_alert(req.channel.as_deref()).await?;
    st.refresh();
    Ok(Json(docs))
}

/// Desktop notifications on or off, the quiet period, and each alert channel's last delivery
/// and last error.
#[utoipa::path(get, path = "/api/v1/notifications", responses(
    (status = 200, body = NotificationsDoc),
    (status = 401, description = "no or a wrong token", content_type = "application/problem+json"),
    (status = 500, description = "the agent's state could not be read", content_type = "application/problem+json")))]
pub(super) async fn notifications(State(st): St) -> Result<Json<NotificationsDoc>, Problem> {
    Ok(Json(st.control.notifications().await?))
}

/// Turns desktop notifications on or off and sets the quiet period (what is omitted stays);
/// kept in the agent's state, ahead of the configuration's `[notifications]`.
#[utoipa::path(put, path = "/api/v1/notifications", request_body = NotificationsRequest, responses(
    (status = 200, body = NotificationsDoc),
    (status = 400, description = "the body is not JSON", content_type = "application/problem+json"),
    (status = 401, description = "no or a wrong token", content_type = "application/problem+json"),
    (status = 403, description = "a read-only token, or a request from another site", content_type = "application/problem+json"),
    (status = 415, description = "the body is not application/json", content_type = "application/problem+json"),
    (status = 422, description = "a field of the wrong type, or a quiet period that is not a duration", content_type = "application/problem+json"),
    (status = 500, description = "the agent's state could not be written", content_type = "application/problem+json")))]
pub(super) async fn set_notifications(
    State(st): St,
    Body_(req): Body_<NotificationsRequest>,
) -> Result<Json<NotificationsDoc>, Problem> {
    let doc = st.control.set_notifications(&req).await?;
    st.refresh();
    Ok(Json(doc))
}
