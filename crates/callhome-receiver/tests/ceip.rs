//! Anonymous CEIP uploads against the real binary over TLS: taken without a token only when the
//! bundle is an anonymous CEIP one, stored under `ceip/` (no install, no index row naming one),
//! receipted without a ledger head; anything else without a token is 401, a CEIP upload that
//! names an install is 400, and the anonymous path has its own size cap and rate.

mod support;

use callhome_protocol::fs::sha256_hex;
use callhome_protocol::receipt::{Receipt, load_public_key};
use support::*;

const CEIP_ID: &str = "ceip-0123456789abcdef0123456789abcdef";

/// POSTs `body` without a token as program `program`, with `extra` headers.
async fn anonymous(
    s: &Server,
    c: &reqwest::Client,
    program: &str,
    extra: &[(&str, &str)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = bundle_request(s, c, program, body);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_ceip_bundle_is_stored_under_no_install_and_anything_else_anonymous_is_refused() {
    let s = Server::start(&[]);
    let c = s.client();

    // Telemetry without a token: 401, whatever program header it claims.
    let telemetry = bundle("install-a", b"{\"x\":1}");
    expect_problem(anonymous(&s, &c, "telemetry", &[], telemetry.clone()).await, 401).await;
    // Claiming CEIP does not help a bundle that is not an anonymous CEIP one: 401 after the check.
    let resp = anonymous(&s, &c, "ceip", &[], telemetry.clone()).await;
    expect_problem(resp, 401).await;
    assert!(s.stored(&sha256_hex(&telemetry)).is_empty());
    assert!(files_under(&s.store.join("ceip")).is_empty());

    // An anonymous CEIP upload that names an install or sends a ledger head: 400.
    let ceip = ceip_bundle(CEIP_ID);
    let sha = sha256_hex(&ceip);
    expect_problem(anonymous(&s, &c, "ceip", &[("x-callhome-install-id", "install-a")], ceip.clone()).await, 400).await;
    let head = format!("3 {}", "a".repeat(64));
    expect_problem(anonymous(&s, &c, "ceip", &[("x-callhome-ledger-head", head.as_str())], ceip.clone()).await, 400)
        .await;

    // The anonymous CEIP bundle: 201, a signed receipt without a ledger head, stored under ceip/.
    let resp = anonymous(&s, &c, "ceip", &[], ceip.clone()).await;
    assert_eq!(resp.status(), 201);
    let answer: serde_json::Value = json(resp).await;
    assert!(answer.get("exemption").is_none_or(|e| e.is_null()), "{answer}");
    let receipt: Receipt = serde_json::from_value(answer).unwrap();
    receipt.check(&sha, Some(&load_public_key(&s.dir.path().join("public.pem")).unwrap())).unwrap();
    assert!(receipt.ledger_head.is_none());
    // Its time only to the day: to the second, it would sit beside the install's other uploads.
    assert!(receipt.received_at.ends_with("T00:00:00Z"), "{}", receipt.received_at);
    let stored: Vec<String> = files_under(&s.store)
        .into_iter()
        .filter(|p| p.ends_with(format!("{sha}.zip")))
        .map(|p| p.strip_prefix(&s.store).unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].starts_with("ceip/") && stored[0].split('/').count() == 5, "ceip/YYYY/MM/DD/SHA.zip: {stored:?}");
    assert!(files_under(&s.store.join("bundles")).is_empty(), "nothing under an install");

    // The same bundle again: the same receipt (200).
    let again = anonymous(&s, &c, "ceip", &[], ceip).await;
    assert_eq!(again.status(), 200);
    assert_eq!(json::<Receipt>(again).await, receipt);

    // The index holds it under no install, and no install row was made for it.
    let db = rusqlite::Connection::open(s.store.join("index.sqlite")).unwrap();
    let row: (Option<String>, String) = db
        .query_row("SELECT install_id, program FROM bundles WHERE sha256 = ?1", [&sha], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(row, (None, "ceip".to_string()));
    let installs: i64 = db.query_row("SELECT COUNT(*) FROM install_reports", [], |r| r.get(0)).unwrap();
    assert_eq!(installs, 0, "no install learnt from an anonymous CEIP bundle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_ceip_uploads_have_a_small_size_cap_and_their_own_rate() {
    let s = Server::start(&["--ceip-burst", "2", "--ceip-rate", "0.01"]);
    let c = s.client();
    // Declared larger than 1 MiB: 413 from the headers alone, before a byte of the body.
    let head = format!(
        "POST /v1/bundles HTTP/1.1\r\nHost: localhost\r\nX-Callhome-Program: ceip\r\n\
         Content-Type: application/zip\r\nIdempotency-Key: {}\r\nContent-Length: {}\r\n\r\n",
        "a".repeat(64),
        (1 << 20) + 1
    );
    let answer = s.raw_head_only(&head).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    for i in 0..2 {
        let id = format!("ceip-{:032x}", i + 1);
        assert_eq!(anonymous(&s, &c, "ceip", &[], ceip_bundle(&id)).await.status(), 201, "upload {i}");
    }
    let resp = anonymous(&s, &c, "ceip", &[], ceip_bundle(&format!("ceip-{:032x}", 9))).await;
    assert!(resp.headers().contains_key("retry-after"));
    expect_problem(resp, 429).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceip_label_on_a_zip_that_is_not_what_its_manifest_lists_stores_nothing() {
    let s = Server::start(&[]);
    let c = s.client();
    // A real CEIP bundle with one more file its manifest does not list.
    let good = ceip_bundle(CEIP_ID);
    let mut zip = zip::ZipWriter::new_append(std::io::Cursor::new(good)).unwrap();
    zip.start_file("anything.bin", zip::write::SimpleFileOptions::default()).unwrap();
    std::io::Write::write_all(&mut zip, b"whatever an anonymous sender wants kept").unwrap();
    let smuggled = zip.finish().unwrap().into_inner();
    let detail = expect_problem(anonymous(&s, &c, "ceip", &[], smuggled.clone()).await, 422).await;
    assert!(detail.contains("anything.bin") && detail.contains("not listed"), "{detail}");
    assert!(files_under(&s.store.join("ceip")).is_empty() && files_under(&s.store.join("receipts")).is_empty());
    // The bundle as its manifest lists it is taken.
    assert_eq!(anonymous(&s, &c, "ceip", &[], ceip_bundle(CEIP_ID)).await.status(), 201);
}
