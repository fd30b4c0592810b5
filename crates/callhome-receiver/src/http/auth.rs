//! Who is sending: an enrolled install (its token and install id), a customer's token or the
//! operator (exports), or anyone under open enrolment. Refusals are 401 for a missing, unknown,
//! revoked or expired token and 403 for an install id the token may not speak for.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::{App, problem};
use crate::Refusal;
use crate::index::{BindRefusal, Index, Token, TokenRefusal, UploadLookup};
use crate::ingest::plain_id;
use callhome_protocol::export::ExportManifest;
use callhome_protocol::headers::INSTALL_ID;
use callhome_protocol::time::now;

/// Who sent a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Open enrolment: nobody was asked.
    Open,
    /// An install enrolled with `token`.
    Install { install_id: String },
    /// A customer's token, for an export of one of the customer's installs.
    Customer(Token),
    /// The operator (`--admin-token-file`).
    Operator,
    /// Nobody: an anonymous CEIP upload (no token, no install id), taken only when the bundle's
    /// manifest says it is an anonymous CEIP bundle.
    AnonymousCeip,
}

impl Caller {
    /// The authenticated install, if the caller is one.
    pub fn install_id(&self) -> Option<&str> {
        match self {
            Caller::Install { install_id, .. } => Some(install_id),
            _ => None,
        }
    }
}

const HOW_TO_ENROL: &str = "enrol the install with a token from the vendor (`callhome register --token-stdin`)";

fn bearer(h: &HeaderMap) -> Option<&str> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

fn unauthorized(detail: &str) -> Response {
    let mut r = problem(StatusCode::UNAUTHORIZED, detail);
    r.headers_mut().insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
    r
}

fn token_refused(why: TokenRefusal) -> Response {
    unauthorized(&match why {
        TokenRefusal::Malformed | TokenRefusal::Unknown => {
            format!("the token is not one this receiver issued; {HOW_TO_ENROL}")
        }
        TokenRefusal::Revoked => format!("the token was revoked; {HOW_TO_ENROL}"),
        TokenRefusal::Expired => format!("the token has expired; {HOW_TO_ENROL}"),
    })
}

fn index_failed(e: impl std::fmt::Display) -> Response {
    tracing::error!("{e}");
    problem(StatusCode::SERVICE_UNAVAILABLE, "the receiver's index cannot be read right now; try again later")
}

fn bind_refused(install_id: &str, why: &BindRefusal) -> Refusal {
    Refusal {
        status: 403,
        reason: match why {
            BindRefusal::OtherCustomer => {
                format!("install {install_id} is enrolled for another customer; this token cannot speak for it")
            }
            BindRefusal::TokenTaken { install_id: first } => format!(
                "this token enrolled install {first} and is for that install only; enrol install {install_id} with its own token"
            ),
        },
    }
}

/// The (token, install) pairs this process saw bound: a binding is never undone (an install
/// stays with its customer, a single-install token with its install), so a pair found here needs
/// no write to the index again. The token itself is still looked up on every request, so a
/// revoked or expired token is refused at once. At most [`Bound::MAX`] pairs are kept.
#[derive(Default)]
pub struct Bound {
    pairs: std::sync::Mutex<BoundPairs>,
}

/// Per token id, the installs seen bound to it (looked up without allocating), and how many.
#[derive(Default)]
struct BoundPairs {
    by_token: std::collections::HashMap<String, std::collections::HashSet<String>>,
    count: usize,
}

impl Bound {
    const MAX: usize = 50_000;

    fn holds(&self, token_id: &str, install_id: &str) -> bool {
        let pairs = self.pairs.lock().unwrap_or_else(|e| e.into_inner());
        pairs.by_token.get(token_id).is_some_and(|installs| installs.contains(install_id))
    }

    fn insert(&self, token_id: &str, install_id: &str) {
        let mut pairs = self.pairs.lock().unwrap_or_else(|e| e.into_inner());
        if pairs.count >= Self::MAX {
            *pairs = BoundPairs::default();
        }
        if pairs.by_token.entry(token_id.to_string()).or_default().insert(install_id.to_string()) {
            pairs.count += 1;
        }
    }
}

/// Looks the presented token up.
async fn lookup(app: &Arc<App>, token: &str) -> Result<Token, Response> {
    judged(app.index.authenticate(token, now())).await
}

/// The index's answer about a presented token, or the response refusing it.
async fn judged<T>(
    answer: impl Future<Output = Result<Result<T, TokenRefusal>, crate::index::IndexError>>,
) -> Result<T, Response> {
    match answer.await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(why)) => Err(token_refused(why)),
        Err(e) => Err(index_failed(e)),
    }
}

/// Whether an upload is an anonymous CEIP one: no token, program `ceip`, and the receiver is not
/// under open enrolment (which takes everything anyway).
pub fn anonymous_ceip(app: &App, h: &HeaderMap) -> bool {
    !app.open_enrolment
        && h.get(header::AUTHORIZATION).is_none()
        && h.get(callhome_protocol::headers::PROGRAM).and_then(|v| v.to_str().ok())
            == Some(callhome_protocol::manifest::CEIP_PROGRAM)
}

/// The sender of an upload or probe: an enrolled install, bound to its token's customer on
/// first use.
pub async fn install(app: &Arc<App>, h: &HeaderMap) -> Result<Caller, Response> {
    install_uploading(app, h, None).await.map(|(caller, _)| caller)
}

/// [`install`], for an upload of the bundle `sha256` when given: the index's lookup for it
/// ([`Index::upload_lookup`], the install's exemption with it) comes back beside the caller, asked
/// with the token in one round trip. None under open enrolment.
pub async fn install_uploading(
    app: &Arc<App>,
    h: &HeaderMap,
    sha256: Option<&str>,
) -> Result<(Caller, Option<UploadLookup>), Response> {
    if app.open_enrolment {
        return Ok((Caller::Open, None));
    }
    let Some(presented) = bearer(h) else {
        return Err(unauthorized(&format!("no Authorization: Bearer token; {HOW_TO_ENROL}")));
    };
    let install_id = match h.get(INSTALL_ID).map(|v| v.to_str().map(str::to_string)) {
        Some(Ok(id)) if plain_id(&id) => id,
        Some(_) => {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "X-Callhome-Install-Id must be 1 to 128 letters, digits, '.', '_' or '-'",
            ));
        }
        None => return Err(problem(StatusCode::BAD_REQUEST, "name the install with X-Callhome-Install-Id")),
    };
    let (token, looked) = match sha256 {
        None => (lookup(app, presented).await?, None),
        Some(sha) => {
            let (t, looked) = judged(app.index.authenticate_upload(presented, now(), sha, Some(&install_id))).await?;
            (t, Some(looked))
        }
    };
    if app.bound.holds(&token.id, &install_id) {
        return Ok((Caller::Install { install_id }, looked));
    }
    match app.index.bind(&install_id, &token, now()).await {
        Ok(Ok(())) => {
            app.bound.insert(&token.id, &install_id);
            Ok((Caller::Install { install_id }, looked))
        }
        Ok(Err(why)) => {
            let r = bind_refused(&install_id, &why);
            tracing::warn!(install = %install_id, token = %token.id, "refused: {}", r.reason);
            Err(super::refusal(&r))
        }
        Err(e) => Err(index_failed(e)),
    }
}

/// The sender of an export: the operator, a customer's token, or anyone under open enrolment.
pub async fn exporter(app: &Arc<App>, h: &HeaderMap) -> Result<Caller, Response> {
    if app.open_enrolment {
        return Ok(Caller::Open);
    }
    let Some(presented) = bearer(h) else {
        return Err(unauthorized(
            "exports are taken with the customer's enrolment token or the operator's token (Authorization: Bearer …)",
        ));
    };
    if let Some(admin) = &app.admin_token
        && bool::from(admin.as_bytes().ct_eq(presented.as_bytes()))
    {
        return Ok(Caller::Operator);
    }
    lookup(app, presented).await.map(Caller::Customer)
}

/// Whether `caller` may hand in the export `m`: a customer's token binds the export's install
/// to that customer (and then every bundle in it must name that install). Called from the
/// blocking export check, it waits for the index on `rt`.
pub fn admit_export(
    rt: &tokio::runtime::Handle,
    index: &Index,
    caller: &Caller,
    m: &ExportManifest,
) -> Result<Option<String>, Refusal> {
    match caller {
        Caller::Open | Caller::Operator => Ok(None),
        Caller::AnonymousCeip => Err(Refusal {
            status: 401,
            reason: "exports are taken only from a customer's or the operator's token".into(),
        }),
        Caller::Install { install_id, .. } => Ok(Some(install_id.clone())),
        Caller::Customer(token) => match rt.block_on(index.bind(&m.install_id, token, now())) {
            Ok(Ok(())) => Ok(Some(m.install_id.clone())),
            Ok(Err(why)) => Err(bind_refused(&m.install_id, &why)),
            Err(e) => {
                Err(Refusal { status: 503, reason: format!("the receiver's index cannot be written right now: {e}") })
            }
        },
    }
}
