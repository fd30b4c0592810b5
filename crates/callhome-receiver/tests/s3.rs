//! The receiver on an S3-compatible store: the real binary with `--store s3://BUCKET/PREFIX`
//! against a real Garage node started by the test (tests/support/garage.rs), agents' uploads
//! over TLS. The bucket is read back with an S3 client and with Garage's own CLI.

mod support;

use callhome_protocol::fs::sha256_hex;
use callhome_protocol::receipt::{Receipt, load_public_key};
use callhome_protocol::time::{now, rfc3339};
use support::garage::Garage;
use support::*;

/// The key the store documents: `PREFIX/bundles/YYYY/MM/DD/<install>/<sha256>.zip`.
fn expected_key(prefix: &str, install: &str, sha: &str) -> String {
    let day = &rfc3339(now())[..10];
    format!("{prefix}/bundles/{}/{}/{}/{install}/{sha}.zip", &day[..4], &day[5..7], &day[8..10])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_lands_in_the_bucket_under_its_documented_key_once() {
    let g = Garage::start();
    let mut s = Server::start_s3(&g, "fleet/eu", &[]);
    let token = s.token("Acme", &["--multi-install"]);
    let c = s.client();
    let body = bundle("install-a", b"{\"features\":[]}");
    let sha = sha256_hex(&body);
    let first = upload(&s, &c, Some(&token), Some("install-a"), body.clone()).await;
    assert_eq!(first.status(), 201, "{}", s.log_text());
    let r1: Receipt = json(first).await;
    r1.check(&sha, Some(&load_public_key(&s.dir.path().join("public.pem")).unwrap())).unwrap();
    let key = expected_key("fleet/eu", "install-a", &sha);
    // One object: the index, asked first, had no row for the bundle, so its row alone keeps
    // the receipt (no `receipts/` object).
    assert_eq!(g.keys().await, vec![key.clone()]);
    assert_eq!(g.get(&key).await, body, "the stored object is the bundle, byte for byte");

    // The same bundle again: the same receipt, from the index; nothing stored twice.
    let again = upload(&s, &c, Some(&token), Some("install-a"), body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(json::<Receipt>(again).await, r1);
    assert_eq!(g.keys().await.len(), 1);
    assert_eq!(g.object_count(), 1, "Garage's own count");
    // The fleet view learnt the install from the checked copy before it went up: the bucket is
    // never read back, and only the bundle is in it.
    let out = s.cli(&["fleet", "--json"]);
    assert!(out.status.success(), "fleet: {}", String::from_utf8_lossy(&out.stderr));
    let fleet: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fleet.as_array().unwrap().len(), 1, "{fleet}");
    assert_eq!(
        (&fleet[0]["install_id"], &fleet[0]["customer"], &fleet[0]["agent_version"], &fleet[0]["state"]),
        (
            &serde_json::json!("install-a"),
            &serde_json::json!("Acme"),
            &serde_json::json!("0.1.0"),
            &serde_json::json!("ok")
        ),
        "{fleet}"
    );
    assert_eq!(fleet[0]["last_success"].as_str(), Some(r1.received_at.as_str()), "{fleet}");
    // Garage 2.5 overwrites despite If-None-Match: the receiver found that out at start and said
    // what it means for replicas.
    assert!(s.log_text().contains("does not honour create-only writes"), "{}", s.log_text());
    s.assert_alive_and_unpanicked();
}

/// An attempt that crashed after it wrote the receipt (no index row, so no agent ever got it):
/// the retry, which the index answers "never receipted", neither reads nor writes `receipts/`.
/// The receipt left there is not answered: the answer and the index row are the same new
/// receipt, with the bundle under the key that receipt names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_a_crashed_attempt_left_in_the_bucket_is_not_answered() {
    use object_store::ObjectStoreExt;
    let g = Garage::start();
    let mut s = Server::start_s3(&g, "fleet", &[]);
    let token = s.token("Acme", &["--multi-install"]);
    let body = bundle("install-a", b"{\"features\":[1]}");
    let sha = sha256_hex(&body);
    let left = serde_json::json!({"receipt_id": "left-by-a-crash", "bundle_sha256": sha,
        "received_at": "2026-01-02T03:04:05Z", "signature": "unchecked"});
    let receipt_key = format!("fleet/receipts/{sha}.json");
    g.client()
        .put(&object_store::path::Path::from(receipt_key.as_str()), serde_json::to_vec(&left).unwrap().into())
        .await
        .unwrap();

    let answer = upload(&s, &s.client(), Some(&token), Some("install-a"), body.clone()).await;
    assert_eq!(answer.status(), 201, "{}", s.log_text());
    let r: Receipt = json(answer).await;
    r.check(&sha, Some(&load_public_key(&s.dir.path().join("public.pem")).unwrap())).unwrap();
    assert_ne!(r.receipt_id, "left-by-a-crash");
    let left_there: serde_json::Value = serde_json::from_slice(&g.get(&receipt_key).await).unwrap();
    assert_eq!(left_there, left, "the upload wrote nothing to receipts/");
    let key = expected_key("fleet", "install-a", &sha);
    assert_eq!(g.keys().await, vec![key.clone(), receipt_key]);
    assert_eq!(g.get(&key).await, body);
    // The index holds the same receipt: the same bundle again is answered it.
    let again = upload(&s, &s.client(), Some(&token), Some("install-a"), body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(json::<Receipt>(again).await, r);
    s.assert_alive_and_unpanicked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_bundle_goes_up_as_a_multipart_upload_and_reads_back_whole() {
    let g = Garage::start();
    let s = Server::start_s3(&g, "big", &[]);
    let token = s.token("Acme", &[]);
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("big.zip");
    // Over 8 MiB: three 5 MiB parts and a tail.
    let sha = big_bundle(&path, "install-b", 17 << 20, 7);
    let body = std::fs::read(&path).unwrap();
    let resp = upload(&s, &s.client(), Some(&token), Some("install-b"), body.clone()).await;
    assert_eq!(resp.status(), 201, "{}", s.log_text());
    let key = expected_key("big", "install-b", &sha);
    assert!(g.keys().await.contains(&key), "{:?}", g.keys().await);
    assert_eq!(sha256_hex(&g.get(&key).await), sha);
    assert_eq!(g.object_count(), 1, "the bundle alone: the index keeps its receipt");
}

/// An export's bundles are looked up in the index as uploads are: new ones go up as one PUT
/// each (the index keeps their receipts), and one uploaded before is accepted with its receipt
/// and not stored again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_is_ingested_into_the_bucket() {
    let g = Garage::start();
    let s = Server::start_s3(&g, "exports", &[]);
    let token = s.token("Acme", &["--multi-install"]);
    let (a, b) = (bundle("install-x", b"{\"n\":1}"), bundle("install-x", b"{\"n\":2}"));
    // The customer's token may export for an install of theirs: enrol it first.
    let uploaded = bundle("install-x", b"{}");
    let first = upload(&s, &s.client(), Some(&token), Some("install-x"), uploaded.clone()).await;
    assert_eq!(first.status(), 201);
    let r0: Receipt = json(first).await;
    let export =
        export_of("exp-1", "install-x", &[("upload_a.zip", &a), ("upload_b.zip", &b), ("upload_0.zip", &uploaded)]);
    let resp = post_export(&s, &s.client(), Some(&token), export).await;
    assert_eq!(resp.status(), 200, "{}", s.log_text());
    let receipt: serde_json::Value = json(resp).await;
    assert_eq!(receipt["accepted"].as_array().unwrap().len(), 3, "{receipt}");
    let mut expected: Vec<String> =
        [&a, &b, &uploaded].iter().map(|body| expected_key("exports", "install-x", &sha256_hex(body))).collect();
    expected.sort();
    assert_eq!(g.keys().await, expected, "each bundle once, and no receipt object");
    // The uploaded bundle keeps the receipt it was answered.
    let again = upload(&s, &s.client(), Some(&token), Some("install-x"), uploaded).await;
    assert_eq!(again.status(), 200);
    assert_eq!(json::<Receipt>(again).await, r0);
}

#[test]
fn an_s3_store_without_an_index_is_refused_with_what_to_give() {
    // No bucket is reached: the index is asked for before the store is opened.
    let dir = tempfile::tempdir().unwrap();
    let serve = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-self-signed", "--store", "s3://fleet-bundles/eu"])
        .arg("--signing-key")
        .arg(dir.path().join("key.pem"))
        .output()
        .unwrap();
    let tokens =
        std::process::Command::new(BIN).args(["tokens", "list", "--store", "s3://fleet-bundles/eu"]).output().unwrap();
    for out in [serve, tokens] {
        assert!(!out.status.success());
        assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--store s3://fleet-bundles/eu: the index is not kept in a bucket"), "{err}");
        assert!(err.contains("--index sqlite:PATH") && err.contains("postgres://"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Starts the receiver on `store` with `env` and expects it to stop at once with a message.
fn refused_start(store: &str, env: &[(String, String)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-self-signed", "--store", store, "--index"])
        .arg(format!("sqlite:{}", dir.path().join("index.sqlite").display()))
        .arg("--signing-key")
        .arg(dir.path().join("key.pem"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(!out.status.success(), "it started on {store}");
    assert!(out.stdout.is_empty(), "it never listened: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_wrong_bucket_or_key_stops_the_start_with_what_to_do() {
    let g = Garage::start();
    let err = refused_start("s3://no-such-bucket/x", &g.env());
    assert!(err.contains("--store s3://no-such-bucket/x"), "{err}");
    assert!(err.contains("cannot list the bucket"), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID") && err.contains("AWS_ENDPOINT_URL"), "{err}");

    let mut wrong = g.env();
    wrong.iter_mut().find(|(k, _)| k == "AWS_SECRET_ACCESS_KEY").unwrap().1 = "0".repeat(64);
    let err = refused_start(&format!("s3://{}/x", g.bucket), &wrong);
    assert!(err.contains(&format!("--store s3://{}/x", g.bucket)), "{err}");
    assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    assert!(!err.contains(&"0".repeat(64)), "the secret is never printed: {err}");

    // A key that may read but not write.
    g.cli(&["key", "create", "reader"]);
    g.cli(&["bucket", "allow", "--read", &g.bucket, "--key", "reader"]);
    let info = String::from_utf8_lossy(&g.cli(&["key", "info", "--show-secret", "reader"]).stdout).into_owned();
    let field =
        |name: &str| info.lines().find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string())).unwrap();
    let mut reader = g.env();
    reader.iter_mut().find(|(k, _)| k == "AWS_ACCESS_KEY_ID").unwrap().1 = field("Key ID:");
    reader.iter_mut().find(|(k, _)| k == "AWS_SECRET_ACCESS_KEY").unwrap().1 = field("Secret key:");
    let err = refused_start(&format!("s3://{}/x", g.bucket), &reader);
    assert!(err.contains("cannot write to the bucket"), "{err}");
    assert!(g.keys().await_blocking().is_empty(), "the failed probe left nothing behind");
}

/// Blocking on a future from a plain test.
trait AwaitBlocking: std::future::Future + Sized {
    fn await_blocking(self) -> Self::Output {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(self)
    }
}
impl<F: std::future::Future> AwaitBlocking for F {}
