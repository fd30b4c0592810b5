//! What a receipt signs beyond the bundle, and what goes beside it, against the real binary: the
//! sender's ledger head (only when the agent declares one; a malformed head is refused), the
//! newest product release (to agents that declare a head), and an exemption granted with
//! `exemptions grant` beside every receipt to that install until it ends.

mod support;

use callhome_protocol::exemption::Exemption;
use callhome_protocol::receipt::{LedgerHead, Receipt, load_public_key};
use callhome_protocol::time::{now, rfc3339};
use support::*;

fn days_from_now(days: i64) -> String {
    rfc3339(now() + days * 86_400)[..10].to_string()
}

async fn upload_with_head(
    s: &Server,
    c: &reqwest::Client,
    install: &str,
    head: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = c
        .post(&s.url)
        .header("content-type", "application/zip")
        .header("idempotency-key", callhome_protocol::fs::sha256_hex(&body))
        .header("x-callhome-program", "telemetry")
        .header("x-callhome-install-id", install);
    if let Some(h) = head {
        req = req.header("x-callhome-ledger-head", h);
    }
    req.body(body).send().await.unwrap()
}

#[tokio::test]
async fn a_receipt_signs_the_declared_ledger_head_and_the_product_release_only_for_agents_that_declare_one() {
    let s = Server::start(&[
        "--open-enrolment",
        "--latest-product-version",
        "2026.2",
        "--latest-product-released",
        "2026-01-15",
    ]);
    let c = s.client();
    let key = load_public_key(&s.dir.path().join("public.pem")).unwrap();
    let head = LedgerHead { rows: 7, hash: "ab".repeat(32) };

    let resp = upload_with_head(&s, &c, "inst-1", Some(&head.to_header()), bundle("inst-1", b"one")).await;
    assert_eq!(resp.status(), 201);
    let r: Receipt = json(resp).await;
    r.verify(&key).unwrap();
    assert_eq!(r.ledger_head, Some(head));
    assert_eq!(
        r.latest_product.as_ref().map(|l| (l.version.as_str(), l.released.as_str())),
        Some(("2026.2", "2026-01-15"))
    );

    // An agent that declares no head gets the receipt it always got.
    let r: Receipt = json(upload_with_head(&s, &c, "inst-1", None, bundle("inst-1", b"two")).await).await;
    r.verify(&key).unwrap();
    assert_eq!((r.ledger_head, r.latest_product), (None, None));

    for bad in ["7", "seven abc", &format!("7 {}", "zz".repeat(32))] {
        let resp = upload_with_head(&s, &c, "inst-1", Some(bad), bundle("inst-1", b"three")).await;
        let detail = expect_problem(resp, 400).await;
        assert!(detail.contains("X-Callhome-Ledger-Head"), "{detail}");
    }
}

#[tokio::test]
async fn an_exemption_granted_goes_beside_every_receipt_to_its_install_until_it_ends() {
    let s = Server::start(&["--open-enrolment"]);
    let c = s.client();
    let key = load_public_key(&s.dir.path().join("public.pem")).unwrap();
    let signing = s.dir.path().join("key.pem");
    let grant = |install: &str, until: &str, reason: &str| {
        s.cli(&[
            "exemptions",
            "grant",
            "--install",
            install,
            "--until",
            until,
            "--reason",
            reason,
            "--signing-key",
            signing.to_str().unwrap(),
        ])
    };
    let past = grant("inst-1", &days_from_now(-1), "late");
    assert!(!past.status.success() && String::from_utf8_lossy(&past.stderr).contains("that day is over"));
    let bad = grant("inst 1", &days_from_now(30), "x");
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("install id"));
    let until = days_from_now(30);
    let out = grant("inst-1", &until, "site audit pending");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let answer: serde_json::Value = json(upload_with_head(&s, &c, "inst-1", None, bundle("inst-1", b"a")).await).await;
    let e: Exemption = serde_json::from_value(answer["exemption"].clone()).unwrap();
    e.verify(&key, "inst-1").unwrap();
    assert_eq!(
        (e.exemption_id.as_str(), e.until.as_str(), e.reason.as_str()),
        (id.as_str(), until.as_str(), "site audit pending")
    );
    let receipt: Receipt = serde_json::from_value(answer.clone()).unwrap();
    receipt.verify(&key).unwrap();

    let other: serde_json::Value = json(upload_with_head(&s, &c, "inst-2", None, bundle("inst-2", b"b")).await).await;
    assert!(other.get("exemption").is_none(), "another install gets none: {other}");

    let list = s.cli(&["exemptions", "list", "--json"]);
    let list: Vec<Exemption> = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].exemption_id, id);
}
