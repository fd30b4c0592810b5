//! The attacks a receiver for a fleet must shrug off, each against the real binary over TLS:
//! no token, forged install ids, unsafe zip names, exports that list a bundle twice, export ids
//! with control characters, wrong content types with huge declared bodies, floods from one
//! install. And what an enrolled install gets: a signed receipt, the same one again.

mod support;

use std::time::{Duration, Instant};

use callhome_protocol::export::{EXPORT_FORMAT, ExportManifest, ExportedBundle};
use callhome_protocol::fs::sha256_hex;
use callhome_protocol::receipt::{Receipt, load_public_key};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_install_gets_a_signed_receipt_and_the_same_one_again() {
    let s = Server::start(&[]);
    let token = s.token("Acme", &[]);
    let c = s.client();
    let body = bundle("install-a", b"{\"x\":1}");
    let sha = sha256_hex(&body);
    let first = upload(&s, &c, Some(&token), Some("install-a"), body.clone()).await;
    assert_eq!(first.status(), 201);
    let r1: Receipt = json(first).await;
    r1.check(&sha, Some(&load_public_key(&s.dir.path().join("public.pem")).unwrap())).unwrap();
    let again = upload(&s, &c, Some(&token), Some("install-a"), body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(json::<Receipt>(again).await, r1);
    assert_eq!(s.stored(&sha).len(), 1, "stored once, under bundles/YYYY/MM/DD/install-a/");
    assert!(s.stored(&sha)[0].parent().unwrap().ends_with("install-a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_unknown_or_revoked_token_is_401() {
    let s = Server::start(&[]);
    let c = s.client();
    let body = bundle("install-a", b"{}");
    let d = expect_problem(upload(&s, &c, None, Some("install-a"), body.clone()).await, 401).await;
    assert!(d.contains("callhome register --token-stdin"), "{d}");
    let fake = format!("cht_{}_{}", "0".repeat(16), "1".repeat(64));
    expect_problem(upload(&s, &c, Some(&fake), Some("install-a"), body.clone()).await, 401).await;
    expect_problem(upload(&s, &c, Some("not-a-token"), Some("install-a"), body.clone()).await, 401).await;
    let token = s.token("Acme", &[]);
    let list = s.cli(&["tokens", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_string();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&token[20..]), "the list never shows the secret");
    assert!(s.cli(&["tokens", "revoke", &id]).status.success());
    let d = expect_problem(upload(&s, &c, Some(&token), Some("install-a"), body).await, 401).await;
    assert!(d.contains("revoked"), "{d}");
    let listed: serde_json::Value = serde_json::from_slice(&s.cli(&["tokens", "list", "--json"]).stdout).unwrap();
    assert!(listed[0]["revoked_at"].is_string(), "{listed}");
    assert!(!s.cli(&["tokens", "revoke", "ffffffffffffffff"]).status.success());
    // Nothing was stored for any of them.
    assert!(files_under(&s.store.join("bundles")).is_empty(), "nothing stored");
}

/// The Idempotency-Key is read before the token is looked up (the index is asked about the
/// bundle it names beside the token), and refused after it, each way with what to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_malformed_idempotency_key_is_400_after_the_token_is_checked() {
    let s = Server::start(&[]);
    let c = s.client();
    let token = s.token("Acme", &[]);
    let body = bundle("install-a", b"{}");
    let send = |key: Option<&str>, token: Option<&str>| {
        let mut req = c
            .post(&s.url)
            .header("content-type", "application/zip")
            .header("x-callhome-install-id", "install-a")
            .body(body.clone());
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    expect_problem(send(None, None).await.unwrap(), 401).await;
    expect_problem(send(Some("xyz"), None).await.unwrap(), 401).await;
    let d = expect_problem(send(None, Some(&token)).await.unwrap(), 400).await;
    assert!(d.contains("Idempotency-Key header (the bundle's SHA-256) is missing"), "{d}");
    let d = expect_problem(send(Some("xyz"), Some(&token)).await.unwrap(), 400).await;
    assert!(d.contains("must be the bundle's SHA-256 in hex (64 digits)"), "{d}");
    let other = "ab".repeat(32);
    let d = expect_problem(send(Some(&other), Some(&token)).await.unwrap(), 422).await;
    assert!(d.contains(&format!("not the Idempotency-Key {other}")), "{d}");
    assert!(files_under(&s.store.join("bundles")).is_empty(), "nothing stored");
    // The right key: taken.
    assert_eq!(send(Some(&sha256_hex(&body)), Some(&token)).await.unwrap().status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_401() {
    let s = Server::start(&[]);
    let past = s.cli(&["tokens", "create", "--customer", "Acme", "--expires", "2020-01-01"]);
    assert!(!past.status.success(), "a token that expired already is not made");
    assert!(String::from_utf8_lossy(&past.stderr).contains("in the past"));
    let bad = s.cli(&["tokens", "create", "--customer", "Acme", "--expires", "soon"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--expires soon"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let token = s.token("Acme", &["--expires", "2099-01-01"]);
    let c = s.client();
    assert_eq!(upload(&s, &c, Some(&token), Some("install-a"), bundle("install-a", b"{}")).await.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_install_id_is_403() {
    let s = Server::start(&[]);
    let c = s.client();
    let acme = s.token("Acme", &[]);
    let globex = s.token("Globex", &["--multi-install"]);
    assert_eq!(upload(&s, &c, Some(&acme), Some("install-a"), bundle("install-a", b"1")).await.status(), 201);
    // Another customer's token claiming Acme's install.
    let d =
        expect_problem(upload(&s, &c, Some(&globex), Some("install-a"), bundle("install-a", b"2")).await, 403).await;
    assert!(d.contains("another customer"), "{d}");
    // A second install on Acme's single-install token.
    let d = expect_problem(upload(&s, &c, Some(&acme), Some("install-b"), bundle("install-b", b"3")).await, 403).await;
    assert!(d.contains("install-a"), "{d}");
    // A bundle whose manifest names another install than the one sending it.
    let d =
        expect_problem(upload(&s, &c, Some(&globex), Some("install-g"), bundle("install-a", b"4")).await, 403).await;
    assert!(d.contains("manifest"), "{d}");
    // Many installs on a multi-install token.
    for id in ["install-g1", "install-g2"] {
        assert_eq!(upload(&s, &c, Some(&globex), Some(id), bundle(id, id.as_bytes())).await.status(), 201);
    }
    // A token without an install id, or with one that is no plain id.
    expect_problem(upload(&s, &c, Some(&globex), None, bundle("x", b"5")).await, 400).await;
    expect_problem(upload(&s, &c, Some(&globex), Some("a b\"c"), bundle("x", b"6")).await, 400).await;
    let listed: serde_json::Value = serde_json::from_slice(&s.cli(&["tokens", "list", "--json"]).stdout).unwrap();
    assert_eq!((listed[0]["installs"].as_u64(), listed[1]["installs"].as_u64()), (Some(1), Some(3)), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_entry_names_and_duplicates_are_422() {
    let s = Server::start(&["--open-enrolment"]);
    let c = s.client();
    for name in ["/abs/name", "../up.json", "C:/windows.json", "a\\b.json", "d/../../e"] {
        let body = bundle_with("i", &[(name, b"{}")]);
        let d = expect_problem(upload(&s, &c, None, Some("i"), body).await, 422).await;
        assert!(d.contains("unsafe name"), "{name}: {d}");
    }
    // Two entries of one name (a zip writer refuses to make that: rename the second in place).
    let mut body = bundle_with("i", &[("a.json", b"1"), ("b.json", b"2")]);
    for at in (0..body.len() - 6).rev() {
        if &body[at..at + 6] == b"b.json" {
            body[at] = b'a';
        }
    }
    let d = expect_problem(upload(&s, &c, None, Some("i"), body).await, 422).await;
    assert!(d.to_lowercase().contains("duplicate") || d.contains("twice"), "{d}");
    assert!(files_under(&s.store.join("bundles")).is_empty(), "nothing stored");
    assert_eq!(std::fs::read_dir(s.store.join(".incoming")).unwrap().count(), 0, "no half-received file stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_enrolment_is_logged_loudly_and_takes_bundles_without_a_token() {
    let s = Server::start(&["--open-enrolment"]);
    assert!(s.log_text().contains("OPEN ENROLMENT"), "{}", s.log_text());
    let c = s.client();
    assert_eq!(upload(&s, &c, None, None, bundle("i", b"{}")).await.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_listing_a_bundle_twice_is_422_at_once() {
    let s = Server::start(&["--open-enrolment"]);
    let c = s.client();
    // One 255 MiB zero-filled bundle, listed eight times (the request is about 260 KB).
    let zeros = vec![0u8; 255 << 20];
    let sha = sha256_hex(&zeros);
    let m = ExportManifest {
        format: EXPORT_FORMAT.into(),
        export_id: "e1".into(),
        install_id: "i".into(),
        created_at: "2026-11-30T00:00:00Z".into(),
        agent_version: "0.1.0".into(),
        bundles: (0..8)
            .map(|_| ExportedBundle {
                name: "b.zip".into(),
                program: "telemetry".into(),
                sha256: sha.clone(),
                size: zeros.len() as u64,
            })
            .collect(),
        ledger_head: None,
    };
    let body = export_zip(&m, &[("b.zip", &zeros)]);
    drop(zeros);
    assert!(body.len() < 1 << 20, "{}", body.len());
    assert_eq!(c.get(format!("{}/healthz", s.base)).send().await.unwrap().status(), 200);
    let started = Instant::now();
    let resp = post_export(&s, &c, None, body).await;
    let took = started.elapsed();
    let d = expect_problem(resp, 422).await;
    assert!(d.contains("twice"), "{d}");
    assert!(took < Duration::from_millis(100), "answered in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_or_quotes_in_an_export_id_are_422_and_never_a_panic() {
    let mut s = Server::start(&["--open-enrolment"]);
    let c = s.client();
    let b = bundle("i", b"{}");
    for id in ["a\u{1}b", "a\"; filename=evil.exe", "line\nbreak", "", &"x".repeat(129)] {
        let d = expect_problem(post_export(&s, &c, None, export_of(id, "i", &[("b.zip", &b)])).await, 422).await;
        assert!(d.contains("export_id"), "{id:?}: {d}");
    }
    let d = expect_problem(post_export(&s, &c, None, export_of("ok", "i\u{7}", &[("b.zip", &b)])).await, 422).await;
    assert!(d.contains("install_id"), "{d}");
    s.assert_alive_and_unpanicked();
    let ok = post_export(&s, &c, None, export_of("e-2026.11_30", "i", &[("b.zip", &b)])).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-disposition"], "attachment; filename=\"receipt-e-2026.11_30.json\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_take_a_customer_token_or_the_operators() {
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin-token");
    std::fs::write(&admin, "operator-secret-0123456789abcdef\n").unwrap();
    let s = Server::start_in(dir, &["--admin-token-file", admin.to_str().unwrap()], None);
    let c = s.client();
    let b = bundle("install-a", b"{}");
    let export = || export_of("e1", "install-a", &[("b.zip", &b)]);
    let d = expect_problem(post_export(&s, &c, None, export()).await, 401).await;
    assert!(d.contains("operator"), "{d}");
    expect_problem(post_export(&s, &c, Some("operator-secret-wrong"), export()).await, 401).await;
    let globex = s.token("Globex", &[]);
    let acme = s.token("Acme", &[]);
    let ok = post_export(&s, &c, Some(&acme), export()).await;
    assert_eq!(ok.status(), 200);
    let receipt: serde_json::Value = json(ok).await;
    assert_eq!(receipt["accepted"].as_array().unwrap().len(), 1, "{receipt}");
    // install-a now belongs to Acme: Globex's token cannot hand in its exports.
    let d = expect_problem(post_export(&s, &c, Some(&globex), export()).await, 403).await;
    assert!(d.contains("another customer"), "{d}");
    // The operator can.
    assert_eq!(post_export(&s, &c, Some("operator-secret-0123456789abcdef"), export()).await.status(), 200);
    // A bundle inside naming another install than the export's is rejected, not stored.
    let other = bundle("install-z", b"{}");
    let mixed: serde_json::Value =
        json(post_export(&s, &c, Some(&acme), export_of("e2", "install-a", &[("z.zip", &other)])).await).await;
    assert_eq!(mixed["accepted"].as_array().unwrap().len(), 0, "{mixed}");
    assert!(mixed["rejected"][0]["reason"].as_str().unwrap().contains("install-z"), "{mixed}");
    // The same once install-z has uploaded it (the index keeps its receipt): still rejected.
    let zeta = s.token("Zeta", &[]);
    assert_eq!(upload(&s, &c, Some(&zeta), Some("install-z"), other.clone()).await.status(), 201);
    let known: serde_json::Value =
        json(post_export(&s, &c, Some(&acme), export_of("e3", "install-a", &[("z.zip", &other)])).await).await;
    assert_eq!(known["accepted"].as_array().unwrap().len(), 0, "{known}");
    assert!(known["rejected"][0]["reason"].as_str().unwrap().contains("install-z"), "{known}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_body_of_the_wrong_type_is_refused_from_its_headers() {
    let s = Server::start(&[]);
    let token = s.token("Acme", &[]);
    let before = s.status_kb("VmHWM:");
    let head = format!(
        "POST /v1/bundles HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nX-Callhome-Install-Id: install-a\r\n\
         Content-Type: text/plain\r\nIdempotency-Key: {}\r\nContent-Length: 200000000\r\n\r\n",
        "a".repeat(64)
    );
    // Not one byte of the 200 MB body is sent: the answer comes from the headers alone.
    let answer = s.raw_head_only(&head).await;
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("content-type: application/problem+json"), "{answer}");
    // Declared too long, with the right type: 413 before reading.
    let head = head.replace("text/plain", "application/zip").replace("200000000", "300000000");
    let answer = s.raw_head_only(&head).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Without a token: 401 before anything else.
    let answer =
        s.raw_head_only("POST /v1/bundles HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000000\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(s.status_kb("VmHWM:") < before + 8 * 1024, "memory grew from {before} kB to {} kB", s.status_kb("VmHWM:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_install_flooding_gets_429_with_retry_after() {
    let s = Server::start(&["--install-burst", "2", "--install-rate", "0.01"]);
    let token = s.token("Acme", &["--multi-install"]);
    let c = s.client();
    for i in 0..2u8 {
        assert_eq!(upload(&s, &c, Some(&token), Some("install-a"), bundle("install-a", &[i])).await.status(), 201);
    }
    let resp = upload(&s, &c, Some(&token), Some("install-a"), bundle("install-a", b"x")).await;
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
    expect_problem(resp, 429).await;
    // Another install of the same customer is not held back.
    assert_eq!(upload(&s, &c, Some(&token), Some("install-b"), bundle("install-b", b"y")).await.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manual_page_is_locked_down() {
    let s = Server::start(&[]);
    let c = s.client();
    for path in ["/manual", "/manual.js", "/healthz", "/v1/nothing"] {
        let r = c.get(format!("{}{path}", s.base)).send().await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    }
    let page = c.get(format!("{}/manual", s.base)).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("<script>") && !page.contains("<style>"), "no inline code: {page}");
    assert!(page.contains("type=\"password\""), "the page asks for a token: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_files_are_readable_by_the_receiver_only() {
    use std::os::unix::fs::PermissionsExt;
    // Under a permissive umask, so the receiver's own modes are what is checked.
    let s = Server::start_in(tempfile::tempdir().unwrap(), &["--open-enrolment"], Some("umask 022;"));
    let c = s.client();
    let body = bundle("i", b"{}");
    let sha = sha256_hex(&body);
    assert_eq!(upload(&s, &c, None, Some("i"), body).await.status(), 201);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.store), 0o700);
    assert_eq!(mode(&s.store.join(".incoming")), 0o700);
    let stored = s.stored(&sha);
    assert_eq!(stored.len(), 1);
    assert_eq!(mode(&stored[0]), 0o600);
    assert_eq!(mode(&s.store.join(format!("receipts/{sha}.json"))), 0o600);
    assert_eq!(mode(&s.store.join("index.sqlite")), 0o600);
    let mut dir = stored[0].parent().unwrap();
    while dir != s.store {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
        dir = dir.parent().unwrap();
    }
    for f in files_under(&s.store) {
        assert_eq!(mode(&f) & 0o077, 0, "{} is readable by others", f.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_no_request_is_closed_after_the_header_timeout() {
    let s = Server::start(&["--header-timeout", "1s"]);
    use tokio::io::AsyncReadExt;
    let mut tls = s.tls().await;
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(30), tls.read(&mut buf)).await.expect("closed before 30 s");
    assert!(n.as_ref().map_or(true, |n| *n == 0), "the connection was closed, not answered: {n:?}");
    assert!(started.elapsed() >= Duration::from_millis(900), "closed after {:?}", started.elapsed());
}
