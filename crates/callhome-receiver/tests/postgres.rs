//! The index on a real PostgreSQL: a throwaway cluster made by the test (initdb and pg_ctl in a
//! temporary folder, run as an unprivileged user when the test runs as root), two receivers
//! sharing it as replicas, and a restart of the database under a running receiver.

mod support;

use std::future::Future;
use std::time::Duration;

use callhome_protocol::fs::sha256_hex;
use callhome_protocol::receipt::{Receipt, load_public_key};
use support::postgres::Postgres;
use support::*;

fn token(s: &Server, url: &str, customer: &str, extra: &[&str]) -> String {
    let out = s.cli(&[&["tokens", "create", "--customer", customer, "--index", url], extra].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn tokens_json(s: &Server, url: &str) -> serde_json::Value {
    let out = s.cli(&["tokens", "list", "--json", "--index", url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgresql_index_enrol_as_one_receiver() {
    let pg = Postgres::start();
    let url = pg.url();
    let a = Server::start(&["--index", &url]);
    let b = Server::start(&["--index", &url]);
    assert!(!a.store.join("index.sqlite").exists(), "no SQLite index beside PostgreSQL");
    let acme = token(&a, &url, "Acme", &[]);
    let globex = token(&b, &url, "Globex", &["--multi-install"]);
    let (ca, cb) = (a.client(), b.client());
    // A token made through one replica works on the other; the binding made by one holds on both.
    assert_eq!(upload(&b, &cb, Some(&acme), Some("install-a"), bundle("install-a", b"1")).await.status(), 201);
    let d =
        expect_problem(upload(&a, &ca, Some(&globex), Some("install-a"), bundle("install-a", b"2")).await, 403).await;
    assert!(d.contains("another customer"), "{d}");
    let d = expect_problem(upload(&a, &ca, Some(&acme), Some("install-b"), bundle("install-b", b"3")).await, 403).await;
    assert!(d.contains("install-a"), "{d}");
    assert_eq!(upload(&a, &ca, Some(&globex), Some("install-g"), bundle("install-g", b"4")).await.status(), 201);
    // Installs enrolling with one token for many, each through both replicas at the same moment:
    // each is bound once, to the token's customer, and counted by the fleet view from then.
    for n in 0..10 {
        let id = format!("install-m{n}");
        let (x, y) = tokio::join!(
            upload(&a, &ca, Some(&globex), Some(&id), bundle(&id, b"a")),
            upload(&b, &cb, Some(&globex), Some(&id), bundle(&id, b"b")),
        );
        assert_eq!((x.status().as_u16(), y.status().as_u16()), (201, 201), "{id}");
    }
    let listed = tokens_json(&a, &url);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!((listed[0]["customer"].as_str(), listed[0]["installs"].as_u64()), (Some("Acme"), Some(1)));
    assert_eq!((listed[1]["customer"].as_str(), listed[1]["installs"].as_u64()), (Some("Globex"), Some(11)));
    let out = a.cli(&["fleet", "--json", "--index", &url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fleet: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let globex_installs = fleet.as_array().unwrap().iter().filter(|i| i["customer"] == "Globex").count();
    assert_eq!(globex_installs, 11, "{fleet}");
    // Revoked through one, refused by both.
    let id = listed[0]["id"].as_str().unwrap().to_string();
    assert!(a.cli(&["tokens", "revoke", &id, "--index", &url]).status.success());
    for (s, c) in [(&a, &ca), (&b, &cb)] {
        let d =
            expect_problem(upload(s, c, Some(&acme), Some("install-a"), bundle("install-a", b"5")).await, 401).await;
        assert!(d.contains("revoked"), "{d}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_carries_on_after_postgresql_restarts() {
    let pg = Postgres::start();
    let url = pg.url();
    let mut s = Server::start(&["--index", &url]);
    let token = token(&s, &url, "Acme", &["--multi-install"]);
    let c = s.client();
    assert_eq!(upload(&s, &c, Some(&token), Some("install-a"), bundle("install-a", b"1")).await.status(), 201);
    pg.ctl("restart");
    // The first call after the restart may find the old connection gone (503, try again); the
    // receiver connects again and takes the upload.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0u8;
    loop {
        n += 1;
        let status = upload(&s, &c, Some(&token), Some("install-a"), bundle("install-a", &[b'x', n])).await.status();
        if status == 201 {
            break;
        }
        assert_eq!(status, 503, "only a passing 503 while the connection is made again");
        assert!(std::time::Instant::now() < deadline, "the receiver never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.assert_alive_and_unpanicked();
}

/// Rows of `sql` (one BIGINT or TEXT column each) in the test's cluster.
async fn pg_rows(url: &str, sql: &str, sha: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.query(sql, &[&sha]).await.unwrap().iter().map(|r| r.get::<_, String>(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bundle_sent_to_two_replicas_is_stored_once_with_one_receipt() {
    let pg = Postgres::start();
    let url = pg.url();
    let a = Server::start(&["--index", &url]);
    let b = Server::start_replica(&a, &["--index", &url]);
    let token = token(&a, &url, "Acme", &["--multi-install"]);
    let (ca, cb) = (a.client(), b.client());
    for n in 0..8u8 {
        let body = bundle("install-a", &[b'r', n]);
        let sha = sha256_hex(&body);
        // Both replicas at once, then each again: one receipt from all four answers.
        let (ra, rb) = tokio::join!(
            upload(&a, &ca, Some(&token), Some("install-a"), body.clone()),
            upload(&b, &cb, Some(&token), Some("install-a"), body.clone())
        );
        let mut statuses = vec![ra.status().as_u16(), rb.status().as_u16()];
        statuses.sort();
        let (ra, rb): (Receipt, Receipt) = (json(ra).await, json(rb).await);
        assert_eq!(ra, rb, "both replicas answer the same receipt");
        assert!(statuses == [200, 201] || statuses == [201, 201], "{statuses:?}");
        for (s, c) in [(&a, &ca), (&b, &cb)] {
            let again = upload(s, c, Some(&token), Some("install-a"), body.clone()).await;
            assert_eq!(again.status(), 200);
            assert_eq!(json::<Receipt>(again).await, ra);
        }
        ra.check(&sha, Some(&load_public_key(&a.dir.path().join("public.pem")).unwrap())).unwrap();
        let rows = pg_rows(&url, "SELECT receipt FROM bundles WHERE sha256 = $1", &sha).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(serde_json::from_str::<Receipt>(&rows[0]).unwrap(), ra, "the index holds the receipt answered");
        let kept: Receipt =
            serde_json::from_slice(&std::fs::read(a.store.join(format!("receipts/{sha}.json"))).unwrap()).unwrap();
        assert_eq!(kept, ra, "the store keeps the receipt the index holds");
    }
    let zips = files_under(&a.store.join("bundles")).into_iter().filter(|p| p.extension().is_some_and(|x| x == "zip"));
    assert_eq!(zips.count(), 8, "one stored object per bundle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_view_on_postgresql_lists_known_upload_times_by_state() {
    let pg = Postgres::start();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = support::fleet::serve_options(dir.path());
    opts.extend(["--index".to_string(), url.clone()]);
    let s = Server::start(&opts.iter().map(String::as_str).collect::<Vec<_>>());
    support::fleet::known_upload_times(&s, Some(&url)).await;
}

#[test]
fn a_hundred_thousand_installs_are_seeded_in_bulk_and_overdue_is_an_index_scan() {
    let pg = Postgres::start();
    let url = pg.url();
    let s = Server::start(&["--index", &url]);
    let out = s.cli(&[
        "fleet",
        "seed",
        "--customer",
        "Bench",
        "--installs",
        "100000",
        "--spread-days",
        "120",
        "--index",
        &url,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("100000 installs"));
    let overdue = fleet_json(&s, Some(&url), &["--overdue"]);
    let overdue = overdue.as_array().unwrap();
    // Spread evenly over 120 days: those past 90 days are 29 in 120 of them.
    assert!((24_150..=24_180).contains(&overdue.len()), "{}", overdue.len());
    assert!(overdue.iter().all(|e| e["state"] == "overdue" && e["days_since"].as_i64().unwrap() > 90));
    let plan = s.cli(&["fleet", "explain", "--index", &url]);
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.contains("install_reports_by_clock"), "the overdue query scans the clock index: {plan}");
}

/// A request cancelled while its bundle was being recorded (its agent hung up) leaves no
/// transaction open: it is rolled back at once, not when the connection is next used, so no
/// later call waits on the keys it held, runs inside it or sees its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_cut_off_halfway_leaves_no_transaction_open() {
    use callhome_receiver::index::{BundleRow, Index, IndexSpec, InstallFacts};
    let pg = Postgres::start();
    let index = std::sync::Arc::new(Index::open(&IndexSpec::Postgres(pg.url())).await.unwrap());
    let row = |n: u32| BundleRow {
        sha256: format!("{n:064x}"),
        install_id: Some("inst-x".into()),
        program: "telemetry".into(),
        size: 1,
        receipt_id: format!("r{n}"),
        received_at: 1,
        receipt: format!("{{\"n\":{n}}}"),
    };
    let facts = || InstallFacts {
        install_id: "inst-x".into(),
        at: 1,
        success: true,
        agent_version: None,
        product_version: None,
        usage: None,
    };
    assert!(index.record_bundle(row(1), Some(facts())).await.unwrap().inserted);
    // Another connection holds the install's row, so the next record stops halfway: its BEGIN,
    // its bundle row and its seed sent, waiting on the install's row lock.
    let connect = || async {
        let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    };
    let (watch, holder) = (connect().await, connect().await);
    holder.batch_execute("BEGIN; SELECT 1 FROM install_reports WHERE install_id = 'inst-x' FOR UPDATE").await.unwrap();
    let count = |sql: &'static str| {
        let watch = &watch;
        async move { watch.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'";
    let in_transaction = "SELECT count(*) FROM pg_stat_activity WHERE state <> 'idle' AND pid <> pg_backend_pid() \
         AND backend_type = 'client backend' AND query NOT LIKE 'SELECT 1 FROM install_reports%'";
    let cut = row(2);
    let (i, r) = (index.clone(), cut.clone());
    let call = tokio::spawn(async move { i.record_bundle(r, Some(facts())).await });
    until("the record to wait on the install's row", || async { count(waiting).await == 1 }).await;
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled(), "the record was cut off before it answered");
    // The lock is let go: the statement that waited on it ends, then the cut record's ROLLBACK,
    // with no other call made on its connection.
    holder.batch_execute("ROLLBACK").await.unwrap();
    until("the cut record's transaction to be rolled back", || async { count(in_transaction).await == 0 }).await;
    // On every connection, the cut one among them: the bundle is not there.
    for _ in 0..16 {
        assert_eq!(index.receipt(&cut.sha256).await.unwrap(), None);
    }
    // And its retry records it.
    let again = tokio::time::timeout(Duration::from_secs(10), index.record_bundle(cut, Some(facts())))
        .await
        .expect("the retry is not held up by a transaction left open")
        .unwrap();
    assert!(again.inserted);
}

/// Polls `holds` until it is true; fails after 10 s with `what`.
async fn until<F: Future<Output = bool>>(what: &str, holds: impl Fn() -> F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !holds().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What an upload asks the index first — whether its bundle has a row and the receipt kept
/// there, and the exemption covering its install — comes in one query, each part as the
/// separate lookups answer it; asked beside the upload's token (one round trip), the same,
/// and only for a token the index accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receipt_and_exemption_an_upload_looks_up_come_in_one_query() {
    use callhome_protocol::exemption::Exemption;
    use callhome_protocol::time::parse_rfc3339;
    use callhome_receiver::index::{BundleRow, Index, IndexSpec, TokenRefusal, UploadLookup};
    let pg = Postgres::start();
    let index = Index::open(&IndexSpec::Postgres(pg.url())).await.unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
    let grant = |id: &str, until: &str, at: &str| {
        Exemption::grant(&key, id.into(), "inst-1", until, "audit", at.into()).unwrap()
    };
    let (sha, other, old) = (format!("{:064x}", 1), format!("{:064x}", 2), format!("{:064x}", 3));
    let now = parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
    let (token_id, token) = index.create_token("Acme", None, false, now).await.unwrap();
    let looked = |sha: String, install: Option<&'static str>, at| {
        let (index, token) = (&index, &token);
        async move {
            let l = index.upload_lookup(&sha, install, at).await.unwrap();
            let (t, beside) = index.authenticate_upload(token, at, &sha, install).await.unwrap().unwrap();
            assert_eq!((t.customer.as_str(), &beside), ("Acme", &l), "asked beside the token, the same");
            (l.recorded, l.receipt, l.exemption.map(|e| e.exemption_id))
        }
    };
    assert_eq!(index.upload_lookup(&sha, Some("inst-1"), now).await.unwrap(), UploadLookup::default());
    let row = BundleRow {
        sha256: sha.clone(),
        install_id: Some("inst-1".into()),
        program: "telemetry".into(),
        size: 1,
        receipt_id: "r1".into(),
        received_at: now,
        receipt: "{\"r\":1}".into(),
    };
    index.record_bundle(row, None).await.unwrap();
    index.record_exemption(&grant("a", "2027-06-30", "2026-11-01T00:00:00Z")).await.unwrap();
    let r1 = Some("{\"r\":1}".to_string());
    assert_eq!(looked(sha.clone(), Some("inst-1"), now).await, (true, r1.clone(), Some("a".into())));
    assert_eq!(looked(sha.clone(), Some("inst-2"), now).await, (true, r1.clone(), None));
    assert_eq!(looked(other.clone(), None, now).await, (false, None, None));
    assert_eq!(looked(other.clone(), Some("inst-1"), now).await, (false, None, Some("a".into())));
    // A row kept from before the index held receipts: recorded, without one.
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "INSERT INTO bundles (sha256, install_id, program, size, receipt_id, received_at) VALUES ($1, 'inst-1', 'telemetry', 1, 'r0', 0)",
            &[&old],
        )
        .await
        .unwrap();
    assert_eq!(looked(old, None, now).await, (true, None, None));
    // A newer grant replaces the older one, and one that has ended covers nothing.
    index.record_exemption(&grant("b", "2026-12-31", "2026-11-20T00:00:00Z")).await.unwrap();
    assert_eq!(looked(sha.clone(), Some("inst-1"), now).await, (true, r1.clone(), Some("b".into())));
    let january = parse_rfc3339("2027-01-01T00:00:00Z").unwrap();
    assert_eq!(looked(sha.clone(), Some("inst-1"), january).await, (true, r1, None), "ended with its day");
    // A token the index does not accept gets no lookup.
    let forged = format!("{}{}", &token[..token.len() - 1], if token.ends_with('0') { '1' } else { '0' });
    let refused = |presented: String| {
        let (index, sha) = (&index, &sha);
        async move { index.authenticate_upload(&presented, now, sha, Some("inst-1")).await.unwrap().map(|_| ()) }
    };
    assert_eq!(refused(forged).await, Err(TokenRefusal::Unknown));
    assert_eq!(refused("not-a-token".into()).await, Err(TokenRefusal::Malformed));
    assert!(index.revoke(&token_id, now).await.unwrap());
    assert_eq!(refused(token.clone()).await, Err(TokenRefusal::Revoked));
}
