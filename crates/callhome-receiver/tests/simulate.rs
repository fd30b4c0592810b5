//! The fleet simulator (`callhome-receiver simulate`) against the real receiver over TLS:
//! installs enrolled through the receiver's index, real bundles, every receipt held matching
//! one stored object and one index row, backdated installs overdue in the fleet view.

mod support;

use std::collections::{HashMap, HashSet};
use std::process::Command;

use callhome_protocol::receipt::Receipt;
use callhome_protocol::time::{now, parse_rfc3339};
use support::*;

fn simulate(s: &Server, args: &[&str]) -> (std::process::Output, serde_json::Value) {
    let out_file = s.dir.path().join("receipts.json");
    let out = Command::new(BIN)
        .args(["simulate", "--url", &s.base, "--ca"])
        .arg(&s.ca)
        .arg("--public-key")
        .arg(s.dir.path().join("public.pem"))
        .arg("--receipts-out")
        .arg(&out_file)
        .args(args)
        .output()
        .unwrap();
    let report = std::fs::read(&out_file).map(|b| serde_json::from_slice(&b).unwrap()).unwrap_or_default();
    (out, report)
}

#[test]
fn every_receipt_a_simulated_install_holds_has_one_object_and_one_index_row() {
    let s = Server::start(&["--allow-backdating"]);
    let (out, report) = simulate(
        &s,
        &[
            "--store",
            s.store.to_str().unwrap(),
            "--installs",
            "60",
            "--uploads-per-install",
            "2",
            "--customers",
            "4",
            "--concurrency",
            "16",
            "--backdate-fraction",
            "0.25",
            "--id-prefix",
            "simtest",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), s.log_text());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((summary["uploads"].as_u64(), summary["receipts"].as_u64()), (Some(120), Some(120)), "{summary}");
    assert!(summary["uploads_per_s"].as_f64().unwrap() > 0.0 && summary["p99_ms"].as_f64().unwrap() > 0.0);

    let installs = report["installs"].as_array().unwrap();
    assert_eq!(installs.len(), 60);
    let index = rusqlite::Connection::open(s.store.join("index.sqlite")).unwrap();
    let rows: HashMap<String, (String, String, i64, String)> = index
        .prepare("SELECT sha256, install_id, receipt_id, received_at, receipt FROM bundles")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 120, "one index row per bundle");
    let mut customers = HashSet::new();
    let mut customer_of = HashMap::new();
    let mut overdue = HashSet::new();
    for i in installs {
        let id = i["install_id"].as_str().unwrap();
        customers.insert(i["customer"].as_str().unwrap().to_string());
        customer_of.insert(id.to_string(), i["customer"].as_str().unwrap().to_string());
        assert_eq!(i["receipts"].as_array().unwrap().len(), 2, "{i}");
        for r in i["receipts"].as_array().unwrap() {
            let sha = r["bundle_sha256"].as_str().unwrap();
            assert_eq!(s.stored(sha).len(), 1, "one stored object for {sha}");
            assert!(s.stored(sha)[0].parent().unwrap().ends_with(id), "{:?}", s.stored(sha));
            let (row_install, row_receipt, row_at, row_json) = &rows[sha];
            assert_eq!((row_install.as_str(), row_receipt.as_str()), (id, r["receipt_id"].as_str().unwrap()));
            let stored: Receipt =
                serde_json::from_slice(&std::fs::read(s.store.join(format!("receipts/{sha}.json"))).unwrap()).unwrap();
            assert_eq!(stored.receipt_id, r["receipt_id"].as_str().unwrap());
            assert_eq!(parse_rfc3339(&stored.received_at), Some(*row_at));
            let kept: Receipt = serde_json::from_str(row_json).unwrap();
            assert_eq!(kept, stored, "the index keeps the receipt the store holds and the install got");
        }
        if i["backdated_days"].is_u64() {
            overdue.insert(id.to_string());
        }
    }
    assert_eq!(customers.len(), 4, "the installs are spread over the customers' tokens");
    assert_eq!(overdue.len(), 15, "a quarter of 60");
    // The fleet view: every install under its token's customer, its last success the newest
    // (backdated) upload; the overdue ones (more than 90 days) are exactly the backdated ones.
    let fleet = fleet_json(&s, None, &[]);
    let fleet = fleet.as_array().unwrap();
    assert_eq!(fleet.len(), 60, "{fleet:?}");
    for e in fleet {
        let id = e["install_id"].as_str().unwrap();
        assert_eq!(e["customer"].as_str(), customer_of.get(id).map(String::as_str), "{e}");
        let last = parse_rfc3339(e["last_success"].as_str().unwrap()).unwrap();
        assert_eq!(overdue.contains(id), now() - last > 90 * 86_400, "{e}");
        assert_eq!((e["agent_version"].as_str(), e["product_version"].as_str()), (Some("0.1.0"), Some("4.2.0")), "{e}");
    }
    let listed: HashSet<String> = fleet_json(&s, None, &["--overdue"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["install_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, overdue, "fleet --overdue lists exactly the backdated installs");
}

#[test]
fn backdating_is_refused_unless_the_receiver_allows_it() {
    let s = Server::start(&["--open-enrolment"]);
    let (out, report) =
        simulate(&s, &["--open-enrolment", "--installs", "4", "--backdate-fraction", "0.5", "--attempts", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 upload(s) got no receipt") && err.contains("--allow-backdating"), "{err}");
    assert_eq!(report["summary"]["receipts"], 2, "{report}");
    assert_eq!(report["summary"]["errors_by_status"]["400"], 2, "{report}");
    assert_eq!(files_under(&s.store.join("bundles")).len(), 2, "only the current uploads were stored");
}

#[test]
fn a_simulated_fleet_fails_over_to_the_replica_that_answers() {
    let s = Server::start(&["--open-enrolment"]);
    // A port nothing listens on, beside the receiver: half the installs start there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (out, report) =
        simulate(&s, &["--open-enrolment", "--installs", "6", "--url", &format!("https://{dead}"), "--attempts", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(report["summary"]["receipts"], 6, "{report}");
    assert!(report["summary"]["errors_by_status"]["connect"].as_u64().unwrap() >= 1, "{report}");
}
