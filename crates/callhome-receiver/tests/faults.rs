//! The receiver under faults, as a fleet runs it: two replicas sharing one PostgreSQL index and
//! one Garage bucket take the simulator's 2,000 installs; mid-load one replica is SIGKILLed and
//! PostgreSQL is restarted. Afterwards (the killed replica started again, which reconciles the
//! store with the index at start) every receipt an install holds has exactly one stored object
//! and one index row, and no stored object lacks a row.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callhome_protocol::receipt::Receipt;
use support::garage::Garage;
use support::postgres::Postgres;
use support::*;

const INSTALLS: usize = 2_000;
const UPLOADS_PER_INSTALL: usize = 2;
const PREFIX: &str = "fleet";

/// A replica on the bucket and the index; it signs with `key` when given (a replica of the
/// first), else makes the key.
fn replica(g: &Garage, url: &str, key: Option<&Path>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let store_args = ["--store", &format!("s3://{}/{PREFIX}", g.bucket), "--index", url].map(String::from).to_vec();
    let shared = key.map(|k| Shared { store: dir.path().join("store"), key: k.to_path_buf() });
    let how = Start { store_args: Some(store_args), env: g.env(), shared, ..Default::default() };
    Server::start_with(dir, &["--spool", spool.to_str().unwrap()], how)
}

/// The index's bundle rows: SHA-256 → (receipt id, receipt).
async fn rows(url: &str) -> HashMap<String, (String, Receipt)> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    let conn = tokio::spawn(conn);
    let rows = client.query("SELECT sha256, receipt_id, receipt FROM bundles", &[]).await.unwrap();
    drop(client);
    let _ = conn.await;
    rows.iter()
        .map(|r| {
            let receipt: String = r.get(2);
            (r.get(0), (r.get(1), serde_json::from_str(&receipt).unwrap()))
        })
        .collect()
}

/// Polls the index's bundle count until it reaches `n` (or the simulator ends), within a deadline.
async fn wait_for_rows(url: &str, n: i64, sim: &mut Child) -> i64 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    let conn = tokio::spawn(conn);
    let end = Instant::now() + Duration::from_secs(300);
    let got = loop {
        let got: i64 = client.query_one("SELECT COUNT(*) FROM bundles", &[]).await.unwrap().get(0);
        if got >= n || sim.try_wait().unwrap().is_some() {
            break got;
        }
        assert!(Instant::now() < end, "timed out waiting for {n} bundles in the index (at {got})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop(client);
    let _ = conn.await;
    got
}

/// Waits for the simulator to end, within a deadline.
async fn wait_for_exit(sim: &mut Child) -> std::process::ExitStatus {
    let end = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(status) = sim.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > end {
            let _ = sim.kill();
            panic!("the simulator did not finish within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stored bundles by SHA-256 (keys `PREFIX/bundles/YYYY/MM/DD/<install>/<sha>.zip`), and the
/// SHA-256s of the receipts kept under `PREFIX/receipts/`.
fn stored(keys: &[String]) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut bundles: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut receipts = Vec::new();
    for k in keys {
        if let Some(rest) = k.strip_prefix(&format!("{PREFIX}/bundles/")) {
            let sha = rest.rsplit('/').next().unwrap().strip_suffix(".zip").unwrap_or_else(|| panic!("{k}"));
            bundles.entry(sha.to_string()).or_default().push(k.clone());
        } else if let Some(rest) = k.strip_prefix(&format!("{PREFIX}/receipts/")) {
            receipts.push(rest.strip_suffix(".json").unwrap_or_else(|| panic!("{k}")).to_string());
        } else {
            panic!("an object outside the store's layout: {k}");
        }
    }
    (bundles, receipts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_receipt_held_has_one_object_and_one_row_after_a_replica_is_killed_and_postgresql_restarts() {
    let g = Garage::start();
    let pg = Postgres::start();
    let url = pg.url();
    let mut a = replica(&g, &url, None);
    let key: PathBuf = a.dir.path().join("key.pem");
    let b = replica(&g, &url, Some(&key));
    let work = tempfile::tempdir().unwrap();
    let receipts_out = work.path().join("receipts.json");
    let mut sim = Command::new(BIN)
        .args(["simulate", "--url", &a.base, "--url", &b.base, "--ca"])
        .arg(&a.ca)
        .arg("--ca")
        .arg(&b.ca)
        .arg("--public-key")
        .arg(a.dir.path().join("public.pem"))
        .args(["--store", &format!("s3://{}/{PREFIX}", g.bucket), "--index", &url])
        .args(["--installs", &INSTALLS.to_string(), "--uploads-per-install", &UPLOADS_PER_INSTALL.to_string()])
        .args(["--customers", "10", "--concurrency", "32", "--attempts", "40", "--id-prefix", "fault", "--json"])
        .arg("--receipts-out")
        .arg(&receipts_out)
        .envs(g.env())
        .stdout(std::fs::File::create(work.path().join("summary.json")).unwrap())
        .stderr(std::fs::File::create(work.path().join("simulate.log")).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let total = (INSTALLS * UPLOADS_PER_INSTALL) as i64;

    // A fifth in: replica A dies without any shutdown.
    let at_kill = wait_for_rows(&url, total / 5, &mut sim).await;
    assert!(sim.try_wait().unwrap().is_none(), "the load still runs when the replica is killed");
    a.kill();
    // Half in: PostgreSQL restarts under the surviving replica.
    let at_restart = wait_for_rows(&url, total / 2, &mut sim).await;
    assert!(sim.try_wait().unwrap().is_none(), "the load still runs when PostgreSQL restarts");
    // Stopped until the surviving replica has met it away (a restart alone can be quicker than
    // any request: then no fault would be felt), then started again.
    let index_errors = || b.log_text().matches("index on PostgreSQL (").count();
    let before = index_errors();
    pg.ctl("stop");
    wait_until(Duration::from_secs(60), "the surviving replica to meet PostgreSQL away", || index_errors() > before);
    pg.ctl("start");
    let status = wait_for_exit(&mut sim).await;
    let log = std::fs::read_to_string(work.path().join("simulate.log")).unwrap_or_default();
    assert!(status.success(), "simulate: {log}\nreplica B:\n{}", b.log_text());
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("summary.json")).unwrap()).unwrap();
    eprintln!("killed at {at_kill} rows, PostgreSQL restarted at {at_restart} rows; summary: {summary}");
    assert_eq!((summary["receipts"].as_i64(), summary["failed"].as_i64()), (Some(total), Some(0)), "{summary}");
    // The faults were felt: uploads failed over from the dead replica, and met the index away.
    let errors = &summary["errors_by_status"];
    assert!(errors["connect"].as_u64().unwrap_or(0) >= 1, "the killed replica was failed over: {summary}");
    assert!(errors["503"].as_u64().unwrap_or(0) >= 1, "PostgreSQL's restart answered 503: {summary}");

    // The killed replica starts again and reconciles the store with the index.
    let a2 = replica(&g, &url, Some(&key));
    wait_until(Duration::from_secs(120), "the restarted replica to reconcile", || {
        a2.log_text().contains("reconciled the store with the index")
    });
    let line = a2.log_text().lines().find(|l| l.contains("reconciled the store")).unwrap().to_string();
    eprintln!("restarted replica: {line}");
    // Nothing is left for the operator's reconcile to do.
    let out = a2.cli(&["reconcile", "--signing-key", key.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "reconcile: {}", String::from_utf8_lossy(&out.stderr));
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["bundles"].as_i64(), Some(total), "{done}");
    assert_eq!(
        (done["indexed"].as_i64(), done["removed"].as_i64(), done["foreign"].as_i64(), done["recent"].as_i64()),
        (Some(0), Some(0), Some(0), Some(0)),
        "{done}"
    );

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&receipts_out).unwrap()).unwrap();
    let rows = rows(&url).await;
    let (objects, kept) = stored(&g.keys().await);
    let mut held = 0;
    for install in report["installs"].as_array().unwrap() {
        let id = install["install_id"].as_str().unwrap();
        for r in install["receipts"].as_array().unwrap() {
            held += 1;
            let sha = r["bundle_sha256"].as_str().unwrap();
            let copies = objects.get(sha).map(Vec::as_slice).unwrap_or_default();
            assert_eq!(copies.len(), 1, "one stored object for the receipt {r}: {copies:?}");
            let (receipt_id, receipt) = rows.get(sha).unwrap_or_else(|| panic!("no index row for the receipt {r}"));
            assert_eq!(receipt_id, r["receipt_id"].as_str().unwrap(), "the row holds the receipt the install holds");
            assert_eq!(receipt.receipt_id, *receipt_id);
            let key = callhome_receiver::store::bundle_key_of(receipt, Some(id)).unwrap();
            assert_eq!(copies[0], format!("{PREFIX}/{key}"), "stored under the key its receipt names");
        }
    }
    assert_eq!(held, total, "every upload holds a receipt");
    for (sha, keys) in &objects {
        assert!(rows.contains_key(sha), "a stored object without an index row: {keys:?}");
    }
    assert_eq!((objects.len(), rows.len()), (total as usize, total as usize), "one object and one row per bundle");
    // Receipts kept in the bucket (a replica that lost a race to record a bundle writes the
    // index's there) are the index's.
    for sha in &kept {
        let (_, receipt) =
            rows.get(sha).unwrap_or_else(|| panic!("a receipt kept for a bundle the index does not know: {sha}"));
        let object: Receipt = serde_json::from_slice(&g.get(&format!("{PREFIX}/receipts/{sha}.json")).await).unwrap();
        assert_eq!(object, *receipt, "the receipt kept in the bucket is the index's");
    }
}
