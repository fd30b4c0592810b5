//! The web dashboard's server side: its assets (the files of `ui/`, compiled into the binary),
//! the one-time sign-in code, the session secret that code is traded for, the sign-in page
//! `callhome dashboard` writes for the browser, and the opener of the user's browser (for
//! `callhome dashboard` and the tray).
//!
//! A session is a secret the page keeps in its tab's `sessionStorage` and sends in the
//! `X-Callhome-Session` header on every call: never a cookie, because browsers send a host's
//! cookies to every port of it, so any other local server the browser visits would receive one.
//! The code reaches the agent in a form POSTed from a private file (or from a link printed for a
//! browser started elsewhere), never on a command line.
//!
//! The page itself is plain HTML, CSS and JavaScript that reads and changes the agent only
//! through the REST API, so it holds no state of its own. This module does not decide what a
//! session may do: `security` does. Codes and sessions live in memory only (never on disk,
//! never in a log): an agent restart signs everyone out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::ApiState;
use super::dto::DashboardLinkDoc;
use super::security::{Auth, problem};
use crate::clock::{Clock, SystemClock, rfc3339};

/// How long a sign-in link may wait before it is used.
pub const LINK_LIFETIME: Duration = Duration::from_secs(120);
/// How long a session lasts (an agent restart ends it sooner).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// At most this many unused links and this many sessions are kept; the oldest go first.
const MAX_KEPT: usize = 32;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! assets {
    ($($name:literal => $ctype:expr),* $(,)?) => {
        &[$(($name, $ctype, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/", $name)) as &[u8])),*]
    };
}

/// Every file of `ui/` the agent serves at `/ui/<name>`: name, content type, bytes.
pub const ASSETS: &[(&str, &str, &[u8])] = assets! {
    "index.html" => HTML,
    "signin.html" => HTML,
    "link-refused.html" => HTML,
    "signed-in.html" => HTML,
    "signed-in.js" => JS,
    "style.css" => CSS,
    "favicon.svg" => SVG,
    "app.js" => JS,
    "api.js" => JS,
    "dom.js" => JS,
    "chart.js" => JS,
    "overview.js" => JS,
    "programs.js" => JS,
    "preview.js" => JS,
    "history.js" => JS,
    "licenses.js" => JS,
    "settings.js" => JS,
};

fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS.iter().find(|(n, _, _)| *n == name).map(|(_, t, b)| (*t, *b))
}

fn page(status: StatusCode, name: &str) -> Response {
    let (ctype, bytes) = asset(name).expect("the page is one of the assets");
    let mut r = (status, Body::from(bytes)).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// The one-time codes and the sessions, in memory only. Both are 256 random bits; only their
/// SHA-256 is kept as the map key, so looking one up leaks nothing through timing.
pub struct Sessions {
    inner: Mutex<Inner>,
}

/// The header that carries a dashboard session.
pub const SESSION_HEADER: &str = "x-callhome-session";

#[derive(Default)]
struct Inner {
    /// Unused sign-in codes and when each stops being valid.
    codes: HashMap<[u8; 32], Instant>,
    /// Sessions and when each ends.
    sessions: HashMap<[u8; 32], Instant>,
}

fn key(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex::encode(bytes)
}

/// Drops expired entries, then the soonest to expire while more than [`MAX_KEPT`] remain.
fn prune(map: &mut HashMap<[u8; 32], Instant>, now: Instant) {
    map.retain(|_, until| *until > now);
    while map.len() > MAX_KEPT {
        let oldest = *map.iter().min_by_key(|(_, until)| **until).map(|(k, _)| k).expect("not empty");
        map.remove(&oldest);
    }
}

impl Sessions {
    pub fn new() -> Sessions {
        Sessions { inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new single-use sign-in code, valid for [`LINK_LIFETIME`] from `now`.
    pub fn mint_code(&self, now: Instant) -> String {
        let code = random_secret();
        let mut inner = self.lock();
        inner.codes.insert(key(&code), now + LINK_LIFETIME);
        prune(&mut inner.codes, now);
        code
    }

    /// Trades a valid code (used up by this) for a new session's secret.
    pub fn redeem(&self, code: &str, now: Instant) -> Option<String> {
        let mut inner = self.lock();
        let until = inner.codes.remove(&key(code))?;
        if until <= now {
            return None;
        }
        let session = random_secret();
        inner.sessions.insert(key(&session), now + SESSION_LIFETIME);
        prune(&mut inner.sessions, now);
        Some(session)
    }

    /// Whether `value` is a live session.
    pub fn is_valid(&self, value: &str, now: Instant) -> bool {
        self.lock().sessions.get(&key(value)).is_some_and(|until| *until > now)
    }

    /// Ends a session; whether it was live.
    pub fn end(&self, value: &str) -> bool {
        self.lock().sessions.remove(&key(value)).is_some()
    }
}

impl Default for Sessions {
    fn default() -> Sessions {
        Sessions::new()
    }
}

/// The dashboard. The page itself holds no data and asks for nothing: it reads its session
/// from its tab and shows the way to sign in when there is none.
#[utoipa::path(get, path = "/", responses(
    (status = 200, description = "the dashboard (text/html)", content_type = "text/html")))]
pub(super) async fn index() -> Response {
    page(StatusCode::OK, "index.html")
}

/// `/login`'s query or form: the one-time code.
#[derive(Debug, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only: the handlers read the raw query or form
pub(super) struct LoginForm {
    /// The one-time code from `POST /api/v1/dashboard/link` (64 hexadecimal digits).
    #[param(pattern = "^[0-9a-f]{64}$")]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    code: String,
}

/// Trades a one-time sign-in code (from a link printed by `callhome dashboard --no-open`) for a
/// session: the page that answers hands the session to the tab and goes on to `/` (keeping the
/// link's `#fragment`). A used or expired code answers 403 with a page saying to run
/// `callhome dashboard` again.
#[utoipa::path(get, path = "/login", params(LoginForm), responses(
    (status = 200, description = "signed in: a page that keeps the session in this tab and opens /", content_type = "text/html"),
    (status = 403, description = "the link was used already or expired", content_type = "text/html")))]
pub(super) async fn login(State(st): State<Arc<ApiState>>, RawQuery(query): RawQuery) -> Response {
    signed_in(&st, &code_in(query.as_deref().unwrap_or("")))
}

/// The same for the sign-in page `callhome dashboard` writes: it POSTs the code as a form, so
/// the code is on no command line and in no address bar.
#[utoipa::path(post, path = "/login", request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"), responses(
    (status = 200, description = "signed in: a page that keeps the session in this tab and opens /", content_type = "text/html"),
    (status = 403, description = "the code was used already or expired", content_type = "text/html")))]
pub(super) async fn login_form(
    State(st): State<Arc<ApiState>>,
    super::extract::RawBody(body): super::extract::RawBody,
) -> Response {
    signed_in(&st, &code_in(&String::from_utf8_lossy(&body)))
}

/// The code in `code=…` of a query or form (codes are hex: no decoding needed, and anything
/// else simply does not match).
fn code_in(pairs: &str) -> String {
    pairs.split('&').find_map(|kv| kv.strip_prefix("code=")).unwrap_or("").trim().to_string()
}

fn signed_in(st: &ApiState, code: &str) -> Response {
    let Some(session) = st.sessions.redeem(code, Instant::now()) else {
        return page(StatusCode::FORBIDDEN, "link-refused.html");
    };
    let (ctype, bytes) = asset("signed-in.html").expect("an asset");
    let html = String::from_utf8_lossy(bytes).replace("{{session}}", &session);
    let mut r = (StatusCode::OK, html).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// Ends the session that sends it (`X-Callhome-Session`); the page forgets it too.
#[utoipa::path(post, path = "/logout", request_body = super::dto::EmptyRequest, responses(
    (status = 204, description = "the session has ended")))]
pub(super) async fn logout(
    State(st): State<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    super::extract::Body_(_empty): super::extract::Body_<super::dto::EmptyRequest>,
) -> Response {
    // The guard let only a credential through; a bearer token has no session to end.
    for v in headers.get_all(SESSION_HEADER).iter().filter_map(|v| v.to_str().ok()) {
        for s in v.split(',') {
            st.sessions.end(s.trim());
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The dashboard's static files (HTML, CSS, JavaScript, icon); they hold no data.
#[utoipa::path(get, path = "/ui/{file}", params(("file" = String, Path, description = "app.js, style.css, …")),
    responses((status = 200, description = "the file", content(
        (String = "text/html"), (String = "text/css"), (String = "text/javascript"), (String = "image/svg+xml"))), (status = 404)))]
pub(super) async fn ui_file(super::extract::P(file): super::extract::P<String>) -> Response {
    match asset(&file) {
        Some((ctype, bytes)) => {
            let mut r = Response::new(Body::from(bytes));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
            r
        }
        None => problem(StatusCode::NOT_FOUND, format!("the dashboard has no file {file:?}")),
    }
}

/// A one-time sign-in link to the dashboard, valid for two minutes (write token only: a
/// dashboard session cannot make links). `callhome dashboard` and the tray write the sign-in
/// page for it ([`write_signin_page`]); `--no-open` prints the link. The body is `{}`.
#[utoipa::path(post, path = "/api/v1/dashboard/link", request_body = super::dto::EmptyRequest,
    responses((status = 200, body = DashboardLinkDoc)))]
pub(super) async fn dashboard_link(
    State(st): State<Arc<ApiState>>,
    Extension(auth): Extension<Auth>,
    super::extract::Body_(_empty): super::extract::Body_<super::dto::EmptyRequest>,
) -> Result<Json<DashboardLinkDoc>, super::extract::Problem> {
    if auth.via != super::security::Via::Bearer {
        return Err(super::extract::Problem::new(
            StatusCode::FORBIDDEN,
            "a dashboard session cannot make sign-in links; run `callhome dashboard` on this machine",
        ));
    }
    let code = st.sessions.mint_code(Instant::now());
    let login = format!("http://127.0.0.1:{}/login", st.port);
    Ok(Json(DashboardLinkDoc {
        url: format!("{login}?code={code}"),
        login,
        code,
        expires_at: rfc3339(SystemClock.now() + LINK_LIFETIME.as_secs() as i64),
        expires_in_seconds: LINK_LIFETIME.as_secs(),
    }))
}

/// Writes the page that signs the browser in with `link`'s code: a form POSTed to the agent as
/// soon as it opens (to `fragment`, such as `#/preview`, once signed in). It goes to the user's
/// runtime directory (`$XDG_RUNTIME_DIR/callhome/`, else a private folder of the temporary
/// directory), mode 0600, replacing the previous one; its path holds no secret, so it can be
/// handed to a browser on its command line. The approach is Jupyter's.
pub fn write_signin_page(link: &DashboardLinkDoc, fragment: &str) -> std::io::Result<std::path::PathBuf> {
    let dir = private_runtime_dir()?;
    let port = link.login.rsplit(':').next().and_then(|p| p.split('/').next()).unwrap_or("0");
    let path = dir.join(format!("dashboard-{port}.html"));
    let code: String = link.code.chars().filter(char::is_ascii_hexdigit).collect();
    let action = format!(
        "{}{}",
        link.login,
        fragment.chars().filter(|c| !matches!(c, '"' | '<' | '>' | '&')).collect::<String>()
    );
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signing in · callhome dashboard</title></head>\n\
<body><form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"code\" value=\"{code}\">\n\
<p>Signing in to the callhome dashboard… <button type=\"submit\">Continue</button></p></form>\n\
<script>document.forms[0].submit();</script></body></html>\n"
    );
    crate::fsutil::write_atomic_with_mode(&path, html.as_bytes(), 0o600)?;
    Ok(path)
}

/// `$XDG_RUNTIME_DIR/callhome` (the user's own, 0700 by the system), else
/// `<temp>/callhome-<user>`: created 0700, and refused when it is not a folder of this user's
/// that only they can enter.
fn private_runtime_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = match directories::BaseDirs::new().and_then(|b| b.runtime_dir().map(|d| d.join("callhome"))) {
        Some(d) => d,
        None => {
            let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "user".into());
            std::env::temp_dir().join(format!("callhome-{user}"))
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(std::io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        }
        let m = std::fs::symlink_metadata(&dir)?;
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        if !m.is_dir() || m.uid() != me || m.permissions().mode() & 0o077 != 0 {
            return Err(std::io::Error::other(format!(
                "{} is not a private folder of this user's; remove it and run `callhome dashboard` again",
                dir.display()
            )));
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Opens the dashboard in the browser: writes the sign-in page for `link` and opens that file
/// (`fragment`: the page to land on, such as `#/licenses`). The code is on no command line.
pub fn open_signin_page(link: &DashboardLinkDoc, fragment: &str) -> std::io::Result<()> {
    let page = write_signin_page(link, fragment)?;
    let url = format!("file://{}", page.display());
    open_in_browser(&url)
}

/// Opens `url` in the user's browser: each command of `$BROWSER` in turn (`:`-separated, `;` on
/// Windows; `%s` stands for the URL, else it is appended), else the platform's opener
/// (`xdg-open` on Linux and BSD, `open` on macOS, `cmd /c start` on Windows).
///
/// Returns once the opener has started (it is reaped in the background, so a long-lived caller
/// such as the tray leaves no zombie); an error means no opener could be started.
pub fn open_in_browser(url: &str) -> std::io::Result<()> {
    let sep = if cfg!(windows) { ';' } else { ':' };
    if let Some(list) = std::env::var_os("BROWSER").filter(|v| !v.is_empty()) {
        let list = list.to_string_lossy().into_owned();
        let mut last = None;
        for cmd in list.split(sep).map(str::trim).filter(|c| !c.is_empty()) {
            let mut argv: Vec<String> = cmd.split_whitespace().map(|a| a.replace("%s", url)).collect();
            if !cmd.contains("%s") {
                argv.push(url.to_string());
            }
            match spawn_reaped(&argv) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(std::io::Error::new(e.kind(), format!("$BROWSER command {:?}: {e}", argv[0]))),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
    }
    let argv: Vec<String> = if cfg!(windows) {
        vec!["cmd".into(), "/c".into(), "start".into(), String::new(), url.into()]
    } else if cfg!(target_os = "macos") {
        vec!["open".into(), url.into()]
    } else {
        vec!["xdg-open".into(), url.into()]
    };
    spawn_reaped(&argv).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot start {} ({e}); set $BROWSER to your browser's command", argv[0]))
    })
}

fn spawn_reaped(argv: &[String]) -> std::io::Result<()> {
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(&argv[0]);
    // The opener gets the desktop's variables and none of the agent's secrets.
    let desktop: Vec<String> = crate::childenv::DESKTOP.iter().map(|s| s.to_string()).collect();
    crate::childenv::apply(&mut cmd, &desktop);
    let mut child = cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    std::thread::spawn(move || child.wait());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once_and_only_in_time() {
        let s = Sessions::new();
        let t0 = Instant::now();
        let code = s.mint_code(t0);
        let session = s.redeem(&code, t0 + Duration::from_secs(5)).expect("a fresh code signs in");
        assert!(s.is_valid(&session, t0 + Duration::from_secs(6)));
        assert_eq!(s.redeem(&code, t0 + Duration::from_secs(7)), None, "used once");
        let late = s.mint_code(t0);
        assert_eq!(s.redeem(&late, t0 + LINK_LIFETIME), None, "expired at its lifetime");
        assert!(!s.is_valid(&session, t0 + Duration::from_secs(5) + SESSION_LIFETIME), "sessions end");
        assert!(!s.is_valid(&code, t0), "a code is not a session");
        assert_eq!(s.redeem("", t0), None);
    }

    #[test]
    fn an_ended_session_is_gone() {
        let s = Sessions::new();
        let t0 = Instant::now();
        let session = s.redeem(&s.mint_code(t0), t0).unwrap();
        assert!(s.end(&session));
        assert!(!s.is_valid(&session, t0));
        assert!(!s.end(&session));
    }

    #[test]
    fn links_and_sessions_are_bounded() {
        let s = Sessions::new();
        let t0 = Instant::now();
        let codes: Vec<String> = (0..100).map(|i| s.mint_code(t0 + Duration::from_millis(i))).collect();
        assert!(s.lock().codes.len() <= MAX_KEPT);
        assert!(s.redeem(codes.last().unwrap(), t0).is_some(), "the newest survives");
    }

    #[test]
    fn every_file_of_ui_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if name != "README.md" {
                assert!(asset(&name).is_some(), "ui/{name} is not in ASSETS");
            }
        }
    }
}
