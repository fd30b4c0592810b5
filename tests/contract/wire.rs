//! One request of the contract test: built from generated values, sent over a real socket.

use super::*;

/// One request to send.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) body: Option<String>,
    pub(crate) content_type: &'static str,
}

impl Call {
    /// `method path` without a body.
    pub(crate) fn bare(method: &str, path: impl Into<String>) -> Call {
        Call { method: method.into(), path: path.into(), body: None, content_type: "" }
    }

    /// `method path` with the JSON `body`.
    pub(crate) fn json(method: &str, path: impl Into<String>, body: impl Into<String>) -> Call {
        Call { method: method.into(), path: path.into(), body: Some(body.into()), content_type: "application/json" }
    }
}

/// A query or path value as text.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Builds a call for `op` from generated parameter values and body.
pub(crate) fn build(
    path: &str,
    method: &str,
    op: &Value,
    params: &BTreeMap<String, Value>,
    body: Option<&Value>,
) -> Call {
    let mut p = path.to_string();
    let mut query = Vec::new();
    for prm in op["parameters"].as_array().into_iter().flatten() {
        let name = prm["name"].as_str().unwrap();
        let Some(v) = params.get(name) else { continue };
        match prm["in"].as_str() {
            Some("path") => p = p.replace(&format!("{{{name}}}"), &encode(&text(v))),
            Some("query") => query.push(format!("{name}={}", encode(&text(v)))),
            _ => {}
        }
    }
    if !query.is_empty() {
        p = format!("{p}?{}", query.join("&"));
    }
    let form = op["requestBody"]["content"].get("application/x-www-form-urlencoded").is_some();
    let (body, content_type) = match body {
        Some(b) if form => (
            Some(
                b.as_object()
                    .map(|o| o.iter().map(|(k, v)| format!("{k}={}", encode(&text(v)))).collect::<Vec<_>>().join("&"))
                    .unwrap_or_default(),
            ),
            "application/x-www-form-urlencoded",
        ),
        Some(b) => (Some(b.to_string()), "application/json"),
        None => (None, "application/json"),
    };
    Call { method: method.to_uppercase(), path: p, body, content_type }
}

/// Sends a call with the write token; an event stream is read up to its head only. `Err` when
/// the connection ends without an answer.
pub(crate) fn send(api: &AgentApi, call: &Call, streaming: bool) -> Result<Answer, String> {
    send_as(api, Some(&api.token), call, streaming)
}

pub(crate) fn send_as(api: &AgentApi, token: Option<&str>, call: &Call, streaming: bool) -> Result<Answer, String> {
    let what = format!("{} {}", call.method, call.path);
    let mut s = TcpStream::connect(("127.0.0.1", api.port)).map_err(|e| format!("{what}: connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = call.body.clone().unwrap_or_default();
    let mut req = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        call.method,
        call.path,
        api.host(),
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if call.body.is_some() {
        req.push_str(&format!("Content-Type: {}\r\n", call.content_type));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("{what}: write: {e}"))?;
    // The server may answer (413) before taking the whole body.
    let _ = s.write_all(body.as_bytes());
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if streaming && buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A reset after the answer (the body was not all read) ends it too.
            Err(_) if buf.windows(4).any(|w| w == b"\r\n\r\n") => break,
            Err(e) => return Err(format!("no answer to {what}: {e}")),
        }
    }
    if !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(format!("no answer to {what} (the connection closed)"));
    }
    let mut a = parse_answer(&buf);
    if streaming {
        a.body.clear();
    }
    Ok(a)
}
