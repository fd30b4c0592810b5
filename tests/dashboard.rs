//! The web dashboard's server side over a real socket, against a real running agent: the
//! one-time sign-in code and the session it is traded for (a header the page sends, never a
//! cookie), the session's same-origin rule, sign-out, the pages and assets with their headers,
//! `callhome dashboard` (and `$BROWSER`), withdrawing one bundle and verifying the ledger through
//! the API. The pages themselves are tested in Chromium (tests/browser).

mod common;

use std::time::Duration;

use common::http::*;
use common::*;

/// A fresh one-time link, as `POST /api/v1/dashboard/link` gives it.
fn link(a: &AgentApi) -> String {
    let r = a.call("POST", "/api/v1/dashboard/link", Some("{}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["url"].as_str().unwrap().to_string()
}

/// The session a sign-in page hands to its tab (`<meta name="callhome-session">`).
fn session_in(page: &Answer) -> String {
    let html = page.text();
    let needle = "name=\"callhome-session\" content=\"";
    let at = html.find(needle).expect("the session in the page") + needle.len();
    html[at..at + 64].to_string()
}

/// POSTs `form` to `/login` as the sign-in page's form does (from a file: Origin "null").
fn post_form(a: &AgentApi, form: &str) -> Answer {
    let host = a.host();
    let h = [
        ("Host", host.as_str()),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "cross-site"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    a.raw("POST", "/login", &h, form.as_bytes())
}

/// Signs in with a fresh link; returns the session to send as `X-Callhome-Session`.
fn sign_in(a: &AgentApi) -> String {
    let url = link(a);
    let r = a.send("GET", url.strip_prefix(&a.origin()).unwrap(), &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    session_in(&r)
}

#[test]
fn a_link_signs_in_once_and_the_session_is_memory_only() {
    let mut a = RunningAgent::offline("");
    let url = link(&a);
    let code = url.strip_prefix(&format!("{}/login?code=", a.origin())).expect("a link to this agent's /login");
    assert!(code.len() == 64 && code.bytes().all(|b| b.is_ascii_hexdigit()), "256 random bits: {code}");
    assert_eq!(a.call_with(&a.read_token, "POST", "/api/v1/dashboard/link", Some("{}")).status, 403);
    assert_eq!(a.send("POST", "/api/v1/dashboard/link", &[], Some("{}")).status, 401);

    let path = format!("/login?code={code}");
    let evil = a.raw("GET", &path, &[("Host", "evil.test")], b"");
    assert_eq!(evil.status, 403, "the Host rule holds for /login, and the code is not used up by it");
    let first = a.send("GET", &path, &[], None);
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(first.header("set-cookie").is_none(), "no cookie: a browser would send it to every local port");
    assert!(first.text().contains("/ui/signed-in.js"), "{}", first.text());
    assert_eq!(first.header("cache-control"), Some("no-store"));
    let session = session_in(&first);
    assert!(session.bytes().all(|b| b.is_ascii_hexdigit()) && session != code, "{session}");

    let again = a.send("GET", &path, &[], None);
    assert_eq!(again.status, 403, "used once");
    assert!(again.header("content-type").unwrap().starts_with("text/html"));
    assert!(again.text().contains("callhome dashboard"), "says what to do: {}", again.text());
    assert_eq!(a.send("GET", "/login?code=nothex", &[], None).status, 403);
    assert_eq!(a.send("GET", "/login", &[], None).status, 403);

    let app = a.send("GET", "/", &[], None);
    assert_eq!(app.status, 200, "the page holds no data; it signs in from its tab");
    assert!(app.text().contains("/ui/app.js"));
    let csp = app.header("content-security-policy").unwrap();
    for part in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(part), "{part} missing in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!((app.header("x-frame-options"), app.header("x-content-type-options")), (Some("DENY"), Some("nosniff")));
    let signed = [("X-Callhome-Session", session.as_str())];
    assert_eq!(a.raw("GET", "/api/v1/status", &[("Host", "evil.test"), signed[0]], b"").status, 403);
    assert_eq!(a.send("GET", "/api/v1/status", &signed, None).status, 200);

    // The agent restarts: sessions were in memory only.
    a.stop();
    a.restart();
    let r = a.send("GET", "/api/v1/status", &[("X-Callhome-Session", &session)], None);
    assert_eq!(r.status, 401);
    assert!(is_problem(&r) && r.json()["detail"].as_str().unwrap().contains("callhome dashboard"), "{}", r.text());
    let mentions = files_containing(&a.s.data, &session);
    assert!(mentions.is_empty(), "the session never reached the data directory: {mentions:?}");
}

#[test]
fn the_sign_in_page_posts_the_code_as_a_form_from_a_file() {
    let a = RunningAgent::offline("");
    let r = a.call("POST", "/api/v1/dashboard/link", Some("{}"));
    let doc = r.json();
    let code = doc["code"].as_str().unwrap();
    assert_eq!(doc["login"], format!("{}/login", a.origin()));
    // A form posted from a file: Origin "null", cross-site, not JSON.
    let form = format!("code={code}");
    let signed = post_form(&a, &form);
    assert_eq!(signed.status, 200, "{}", signed.text());
    let session = session_in(&signed);
    assert_eq!(a.send("GET", "/api/v1/status", &[("X-Callhome-Session", &session)], None).status, 200);
    assert_eq!(post_form(&a, &form).status, 403, "used once");
}

#[test]
fn a_session_cannot_make_links_and_ends_at_logout() {
    let a = RunningAgent::offline("");
    let session = sign_in(&a);
    let own = a.origin();
    let h = [("X-Callhome-Session", session.as_str()), ("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")];
    let minted = a.send("POST", "/api/v1/dashboard/link", &h, Some("{}"));
    assert_eq!(minted.status, 403, "{}", minted.text());
    assert!(is_problem(&minted) && minted.text().contains("callhome dashboard"), "{}", minted.text());
    // Any live session among several values counts.
    let both = format!("{}, {session}", "0".repeat(64));
    assert_eq!(a.send("GET", "/api/v1/status", &[("X-Callhome-Session", &both)], None).status, 200);
    assert_eq!(a.send("POST", "/logout", &h, Some("{}")).status, 204);
    let after = a.send("GET", "/api/v1/status", &[("X-Callhome-Session", &session)], None);
    assert_eq!(after.status, 401, "{}", after.text());
}

#[test]
fn the_session_counts_only_from_the_dashboards_own_origin() {
    let a = RunningAgent::offline("");
    let session = sign_in(&a);
    let own = a.origin();
    let put = |extra: &[(&str, &str)]| {
        let mut h = vec![("X-Callhome-Session", session.as_str())];
        h.extend_from_slice(extra);
        a.send("PUT", "/api/v1/programs/ceip", &h, Some("{\"enabled\": false}")).status
    };
    let get = |extra: &[(&str, &str)]| {
        let mut h = vec![("X-Callhome-Session", session.as_str())];
        h.extend_from_slice(extra);
        a.send("GET", "/api/v1/status", &h, None).status
    };
    let cases: Vec<(&str, u16, u16)> = vec![
        ("change with no Origin and no Sec-Fetch-Site", put(&[]), 403),
        ("change with this agent's Origin", put(&[("Origin", &own)]), 200),
        ("change marked same-origin", put(&[("Sec-Fetch-Site", "same-origin")]), 200),
        (
            "change from another local port",
            put(&[("Origin", "http://127.0.0.1:1"), ("Sec-Fetch-Site", "same-site")]),
            403,
        ),
        ("change marked same-site, own Origin forged", put(&[("Origin", &own), ("Sec-Fetch-Site", "same-site")]), 403),
        ("change from a typed address", put(&[("Sec-Fetch-Site", "none")]), 403),
        ("change from a foreign Origin", put(&[("Origin", "https://evil.test")]), 403),
        ("read from the dashboard", get(&[("Sec-Fetch-Site", "same-origin")]), 200),
        ("read by an old browser", get(&[]), 200),
        ("read embedded by another local site", get(&[("Sec-Fetch-Site", "same-site")]), 403),
        ("read embedded cross-site", get(&[("Sec-Fetch-Site", "cross-site")]), 403),
        (
            "a made-up session",
            a.send("GET", "/api/v1/status", &[("X-Callhome-Session", &"0".repeat(64))], None).status,
            401,
        ),
        (
            "the session as a cookie, replayed with same-origin headers",
            a.send(
                "PUT",
                "/api/v1/programs/ceip",
                &[
                    ("Cookie", &format!("callhome_session_{}={session}", a.port)),
                    ("Origin", &own),
                    ("Sec-Fetch-Site", "same-origin"),
                ],
                Some("{\"enabled\": false}"),
            )
            .status,
            401,
        ),
        (
            "the token still works without Origin",
            a.call("PUT", "/api/v1/programs/ceip", Some("{\"enabled\": true}")).status,
            200,
        ),
    ];
    for (what, got, want) in &cases {
        assert_eq!(got, want, "{what}");
    }
    let refused =
        a.send("PUT", "/api/v1/programs/ceip", &[("X-Callhome-Session", &session)], Some("{\"enabled\": false}"));
    assert!(is_problem(&refused) && refused.text().contains("same origin"), "{}", refused.text());
    let text_plain = a.send(
        "POST",
        "/api/v1/collect",
        &[("X-Callhome-Session", &session), ("Origin", &own), ("Content-Type", "text/plain")],
        None,
    );
    assert_eq!(text_plain.status, 415, "the JSON rule holds for the session too");
}

#[test]
fn the_pages_and_assets_are_served_with_their_types() {
    let a = RunningAgent::offline("");
    for (path, ctype, status) in [
        ("/ui/app.js", "text/javascript; charset=utf-8", 200),
        ("/ui/style.css", "text/css; charset=utf-8", 200),
        ("/ui/favicon.svg", "image/svg+xml", 200),
        ("/ui/index.html", "text/html; charset=utf-8", 200),
        ("/ui/nosuch.js", "application/problem+json", 404),
        ("/ui/..%2F..%2FCargo.toml", "application/problem+json", 404),
    ] {
        let r = a.send("GET", path, &[], None);
        assert_eq!((r.status, r.header("content-type")), (status, Some(ctype)), "{path}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{path}");
    }
    let js = a.send("GET", "/ui/app.js", &[], None);
    assert_eq!(js.body, std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/app.js")).unwrap(), "compiled in as is");
    assert_eq!(a.raw("GET", "/ui/app.js", &[("Host", "evil.test")], b"").status, 403);
    // No inline script anywhere: the CSP would refuse it.
    for page in ["index.html", "signin.html", "link-refused.html", "signed-in.html"] {
        let html = std::fs::read_to_string(format!("{}/ui/{page}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(!html.contains("<script>") && !html.contains(" style=") && !has_event_attribute(&html), "{page}");
    }
}

/// Whether the HTML has an inline event handler (` onclick=`, ` onload=`, …).
fn has_event_attribute(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    })
}

#[test]
fn callhome_dashboard_prints_a_link_and_opens_a_private_sign_in_page_with_browser() {
    let s = Setup::new();
    s.configure_offline("");
    let out = s.cli(&["dashboard", "--no-open"]);
    assert_eq!(out.status.code(), Some(1), "no agent: {}", stdout(&out));
    assert!(stderr(&out).contains("no agent runs") && stderr(&out).contains("callhome run"), "{}", stderr(&out));

    let a = RunningAgent::start(s, None);
    let out = a.s.cli(&["dashboard", "--no-open"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let url = stdout(&out).trim().to_string();
    let r = a.send("GET", url.strip_prefix(&a.origin()).expect("a link to this agent"), &[], None);
    assert_eq!(r.status, 200, "the printed link signs in");

    // $BROWSER: a list tried in turn; here the first does not exist, the second records what it
    // was given and copies the page it was asked to open.
    let runtime = a.s.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let opened = a.s.path().join("opened.txt");
    let script = a.s.path().join("browser.sh");
    std::fs::write(&script, format!("#!/bin/sh\nprintf '%s' \"$1\" > {}.tmp && mv {0}.tmp {0}\n", opened.display()))
        .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let browser = format!("/nonexistent/browser:{}", script.display());
    let out = a.s.cli_env(&["dashboard"], &[("BROWSER", &browser), ("XDG_RUNTIME_DIR", runtime.to_str().unwrap())]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "the code is printed only with --no-open");
    wait_until(Duration::from_secs(10), "the $BROWSER command to run", || opened.exists());
    let given = std::fs::read_to_string(&opened).unwrap();
    let page = runtime.join("callhome").join(format!("dashboard-{}.html", a.port));
    assert_eq!(given, format!("file://{}", page.display()), "the browser got the page, not the code");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&page).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(page.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains(&format!("action=\"{}/login\"", a.origin())) && html.contains("method=\"post\""), "{html}");
    let needle = "name=\"code\" value=\"";
    let at = html.find(needle).unwrap() + needle.len();
    let code = &html[at..at + 64];
    assert!(!url.contains(code), "a new code each time");
    let form = format!("code={code}");
    let signed = post_form(&a, &form);
    assert_eq!(signed.status, 200, "the page's form signs in: {}", signed.text());
}

#[test]
fn one_bundle_is_withdrawn_through_the_api_and_the_ledger_verifies() {
    let a = RunningAgent::with_receiver("first_upload_delay = \"1h\"");
    assert_eq!(a.job(&a.call("POST", "/api/v1/collect", Some("{}")))["state"], "succeeded");
    let bundles = a.get("/api/v1/bundles").json();
    let of = |p: &str| {
        bundles.as_array().unwrap().iter().find(|b| b["program"] == p).unwrap()["id"].as_str().unwrap().to_string()
    };
    let (call_home, telemetry) = (of("call_home"), of("telemetry"));
    let path = format!("/api/v1/bundles/{call_home}");
    assert_eq!(a.call_with(&a.read_token, "DELETE", &path, None).status, 403);
    let mandatory = a.call("DELETE", &format!("/api/v1/bundles/{telemetry}"), None);
    assert_eq!(mandatory.status, 409);
    assert!(mandatory.text().contains("mandatory"), "{}", mandatory.text());
    assert_eq!(a.call("DELETE", "/api/v1/bundles/upload_usage_nosuch.zip", None).status, 404);
    let done = a.call("DELETE", &path, None);
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json()["program"], "call_home");
    assert!(!a.s.spool("callhome").contains(&call_home), "the file is gone");
    assert_eq!(a.s.spool("compliance"), vec![telemetry.clone()], "nothing else was touched");
    let row = a.s.ledger().into_iter().find(|r| r["bundle"] == call_home.as_str()).expect("a ledger row");
    assert_eq!(row["event"], "withdrawn");
    assert_eq!(a.call("DELETE", &path, None).status, 404, "withdrawn once");

    assert_eq!(a.job(&a.call("POST", "/api/v1/upload", Some("{}")))["result"]["ok"], true);
    let v = a.get("/api/v1/ledger/verify").json();
    assert_eq!((v["ok"].as_bool(), v["signatures_checked"].as_bool()), (Some(true), Some(true)), "{v}");
    assert!(v["receipts"].as_u64().unwrap() >= 1, "{v}");
    let cli = a.s.cli(&["ledger", "verify"]);
    assert_eq!(stdout(&cli).trim(), v["summary"].as_str().unwrap(), "the API and the CLI say the same");
}

#[test]
fn the_ledger_check_over_the_api_reports_a_receipt_that_does_not_verify() {
    let mut a = RunningAgent::with_receiver("first_upload_delay = \"1h\"");
    assert_eq!(a.job(&a.call("POST", "/api/v1/upload", Some("{\"program\": \"telemetry\"}")))["result"]["ok"], true);
    a.stop();
    // Another receiver's key: the stored receipt's signature no longer verifies with it.
    let other = a.s.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let stranger = Receiver::start(&other, &[]);
    let text = std::fs::read_to_string(&a.s.config).unwrap();
    let key = a.s.path().join("receiver-public.pem").display().to_string();
    std::fs::write(&a.s.config, text.replace(&key, &stranger.public_key.display().to_string())).unwrap();
    a.restart();
    let v = a.get("/api/v1/ledger/verify").json();
    assert_eq!(v["ok"], false, "{v}");
    assert!(v["problem"].as_str().unwrap().contains("signature does not verify"), "{v}");
    assert_eq!(a.s.cli(&["ledger", "verify"]).status.code(), Some(6), "the CLI agrees");
}
