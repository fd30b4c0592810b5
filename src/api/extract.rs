//! What the routes share: problem documents (RFC 9457) from the control layer's errors, the
//! extractors whose rejections are problem documents too, a job's outcome, raw JSON answers.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::security::problem;
use crate::agent::AgentError;
use crate::control::{self, ControlError};

/// An error answer: its status and what to say.
pub(super) struct Problem(pub(super) StatusCode, pub(super) String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        problem(self.0, self.1)
    }
}

impl Problem {
    pub(super) fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem(status, detail.into())
    }
}

impl From<ControlError> for Problem {
    fn from(e: ControlError) -> Problem {
        let status = match &e {
            ControlError::NotFound(_) => StatusCode::NOT_FOUND,
            ControlError::Refused(_) => StatusCode::CONFLICT,
            ControlError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ControlError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ControlError::Agent(_) | ControlError::Failed(_) | ControlError::Api(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Problem(status, scrub_paths(&e.to_string()))
    }
}

/// Error text without local paths: every absolute path (`/var/lib/callhome/exports/x.zip`,
/// `C:\ProgramData\…`) is cut to its last part, so an answer never tells a client where the
/// data directory is.
pub(super) fn scrub_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(['/', '\\']).map(|i| {
        // Back up over a drive letter (`C:`).
        let b = rest.as_bytes();
        if i >= 2 && b[i - 1] == b':' && b[i - 2].is_ascii_alphabetic() { i - 2 } else { i }
    }) {
        let preceded_by_word =
            rest[..start].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '.' || c == ':');
        let len = rest[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | ',' | ';' | '`'))
            .unwrap_or(rest.len() - start);
        let token = &rest[start..start + len];
        let token = token.strip_suffix(':').unwrap_or(token);
        let separators = token.matches(['/', '\\']).count();
        out.push_str(&rest[..start]);
        let api_route = token.starts_with("/api/") || token.starts_with("/ui/");
        if !preceded_by_word && !api_route && separators >= 2 {
            out.push_str(token.rsplit(['/', '\\']).next().unwrap_or(""));
        } else {
            out.push_str(token);
        }
        rest = &rest[start + token.len()..];
    }
    out.push_str(rest);
    out
}

impl From<AgentError> for Problem {
    fn from(e: AgentError) -> Problem {
        Problem::from(ControlError::from(e))
    }
}

/// A job's outcome as its document holds it: the result, or the error.
pub(super) fn job_outcome<T: serde::Serialize>(
    r: control::Result<T>,
    ok: impl FnOnce(&T) -> bool,
) -> (bool, serde_json::Value) {
    match r {
        Ok(doc) => (ok(&doc), serde_json::to_value(&doc).expect("wire documents serialize")),
        Err(e) => (false, serde_json::json!({ "error": e.to_string() })),
    }
}

pub(super) fn internal(e: impl std::fmt::Display) -> Problem {
    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, scrub_paths(&e.to_string()))
}

/// The raw body whose rejections (413 above the limit) are problem documents.
pub(super) struct RawBody(pub(super) bytes::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Problem;
    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        bytes::Bytes::from_request(req, state).await.map(RawBody).map_err(|r| Problem::new(r.status(), r.body_text()))
    }
}

/// How the detail of a 422 for a body of the wrong shape starts (the contract test tells these
/// from a well-formed request refused on its merits).
pub(super) const NOT_PER_SCHEMA: &str = "the body does not fit the schema";

/// `Json` whose rejections are problem documents.
pub(super) struct Body_<T>(pub(super) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body_<T> {
    type Rejection = Problem;
    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        Json::<T>::from_request(req, state).await.map(|Json(v)| Body_(v)).map_err(|r: JsonRejection| {
            let detail = match r.status() {
                // Well-formed JSON of the wrong shape: say so in the words the document uses.
                StatusCode::UNPROCESSABLE_ENTITY => format!("{NOT_PER_SCHEMA}: {}", r.body_text()),
                _ => r.body_text(),
            };
            Problem::new(r.status(), detail)
        })
    }
}

/// `Query` whose rejections are problem documents.
pub(super) struct Q<T>(pub(super) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Q(v))
            .map_err(|r: QueryRejection| Problem::new(StatusCode::BAD_REQUEST, r.body_text()))
    }
}

/// `Path` whose rejections are problem documents.
pub(super) struct P<T>(pub(super) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for P<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| P(v))
            .map_err(|r: PathRejection| Problem::new(StatusCode::BAD_REQUEST, r.body_text()))
    }
}

pub(super) fn json_bytes(bytes: bytes::Bytes) -> Response {
    let mut r = Response::new(Body::from(bytes));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::scrub_paths;

    #[test]
    fn local_paths_are_cut_to_their_file_names() {
        assert_eq!(scrub_paths("/var/lib/callhome/exports/x.zip: not found"), "x.zip: not found");
        assert_eq!(scrub_paths("cannot open \"/tmp/a/b/state.sqlite\" (busy)"), "cannot open \"state.sqlite\" (busy)");
        assert_eq!(scrub_paths("C:\\ProgramData\\callhome\\api.json missing"), "api.json missing");
        assert_eq!(
            scrub_paths("no bundle nope.zip; GET /api/v1/bundles lists them"),
            "no bundle nope.zip; GET /api/v1/bundles lists them"
        );
        assert_eq!(scrub_paths("https://example.com/v1/bundles and 1/2"), "https://example.com/v1/bundles and 1/2");
    }
}
