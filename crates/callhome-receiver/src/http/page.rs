//! The manual-upload page (`/manual`, its script and style as files of their own so the
//! Content-Security-Policy allows no inline code), and the security headers every answer
//! carries.
//!
//! The page asks for a token — the customer's enrolment token or the operator's — and sends it
//! with the export as `Authorization: Bearer`; it keeps the token nowhere but in the field.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>callhome: manual upload</title>
<link rel="stylesheet" href="/manual.css"><script src="/manual.js" defer></script></head>
<body><h1>Manual upload</h1>
<p>Choose the export made on the isolated machine with <code>callhome export --out FILE.zip</code>.
You get a signed receipt back; carry it to that machine and run <code>callhome import-receipt RECEIPT.json</code>.</p>
<form id="f" action="/v1/exports" method="post">
<p><label>Token (the customer's enrolment token, or the operator's) <input type="password" id="token" autocomplete="off"></label></p>
<p><input type="file" id="file" accept=".zip" required> <button>Upload</button></p>
</form>
<pre id="out"></pre>
</body></html>
"#;

const SCRIPT: &str = r#"document.getElementById('f').addEventListener('submit', async (e) => {
  e.preventDefault();
  const file = document.getElementById('file').files[0];
  const token = document.getElementById('token').value.trim();
  const out = document.getElementById('out');
  out.textContent = 'uploading…';
  const headers = {'Content-Type': 'application/zip'};
  if (token) headers['Authorization'] = 'Bearer ' + token;
  const r = await fetch('/v1/exports', {method: 'POST', headers, body: file});
  const text = await r.text();
  if (!r.ok) {
    let detail = text;
    try { detail = JSON.parse(text).detail || text; } catch (_) {}
    out.textContent = 'refused (' + r.status + '): ' + detail;
    return;
  }
  const receipt = JSON.parse(text);
  out.textContent = receipt.accepted.length + ' accepted, ' + receipt.rejected.length + ' rejected.';
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], {type: 'application/json'}));
  a.download = 'receipt-' + receipt.export_id + '.json';
  a.textContent = 'Download the receipt';
  out.appendChild(document.createElement('br'));
  out.appendChild(a);
});
"#;

const STYLE: &str = "body{font-family:sans-serif;max-width:40em;margin:3em auto}pre{background:#f4f4f4;padding:1em}\n";

/// The Content-Security-Policy of every answer: the page's own script and style, requests to
/// this origin only, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn asset(ctype: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, ctype)], body).into_response()
}

pub async fn manual() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// Adds the security headers to every answer.
pub async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
