//! Manual reporting end to end with no network between agent and receiver: export, ingest,
//! receipt, import; tampered, foreign and replayed receipts; a damaged bundle in an export.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn collect_n(s: &Setup, n: usize) {
    for _ in 0..n {
        let out = s.cli(&["collect", "--program", "telemetry"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

/// `callhome export`; returns the export id.
fn export(s: &Setup, out: &Path) -> String {
    let o = s.cli(&["export", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).split_whitespace().nth(1).unwrap().trim_end_matches(':').to_string()
}

/// `callhome-receiver ingest` with the signing key `key`; returns the receipt's path.
fn ingest(s: &Setup, export: &Path, key: &Path, name: &str) -> PathBuf {
    let receipt = s.path().join(name);
    receiver_ingest(export, &s.path().join("vendor-store"), key, &receipt);
    receipt
}

fn age_install(s: &Setup, days: i64) {
    let path = s.data.join("install.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["created_at"] = Value::from(v["created_at"].as_i64().unwrap() - days * 86_400);
    std::fs::write(&path, v.to_string()).unwrap();
}

#[test]
fn the_air_gapped_round_trip_empties_the_spool_and_resets_the_clock() {
    let s = isolated_manual();
    collect_n(&s, 3);
    age_install(&s, 95);
    assert_eq!(s.status()["compliance"]["state"], "overdue");
    let out = s.cli(&["upload"]);
    assert!(stdout(&out).contains("manual reporting"), "manual mode uploads nothing: {}", stdout(&out));
    let out = s.cli(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("manual report 5 days overdue"), "{}", stdout(&out));
    let out = s.cli(&["status"]);
    assert!(stdout(&out).contains("· 5 days overdue ·"), "not \"-5 of 90 days left\": {}", stdout(&out));
    assert!(!stdout(&out).contains("-5 of"), "{}", stdout(&out));
    assert_eq!(s.spool("compliance").len(), 3);

    let ex = s.path().join("export.zip");
    let id = export(&s, &ex);
    let again = s.cli(&["export", "--out", ex.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("never overwrites"), "{}", stderr(&again));

    let receipt = ingest(&s, &ex, &s.path().join("receiver-signing.pem"), "receipt.json");
    let r: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!((r["export_id"].as_str(), r["accepted"].as_array().unwrap().len()), (Some(id.as_str()), 3));
    assert_eq!(stored_bundles(&s.path().join("vendor-store")).len(), 3, "stored as if uploaded");

    let ledger_before = s.ledger().len();
    let tampered = s.path().join("tampered.json");
    let mut t = r.clone();
    t["received_at"] = Value::from("2030-01-01T00:00:00Z");
    std::fs::write(&tampered, t.to_string()).unwrap();
    let out = s.cli(&["import-receipt", tampered.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6));
    assert!(
        stderr(&out).contains("does not verify") && stderr(&out).contains("nothing was changed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        (s.ledger().len(), s.spool("compliance").len()),
        (ledger_before, 3),
        "a tampered receipt changes nothing"
    );

    let out = s.cli(&["import-receipt", receipt.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("3 bundle(s) acknowledged"), "{}", stdout(&out));
    assert!(s.spool("compliance").is_empty());
    let st = s.status();
    assert_eq!(
        (st["compliance"]["days_since_last_upload"].as_i64(), st["compliance"]["state"].as_str()),
        (Some(0), Some("ok"))
    );
    assert!(stdout(&s.cli(&["status"])).contains("manual report due in 90 days"));
    let verify = s.cli(&["ledger", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(stdout(&verify).contains("3 receipts match"), "{}", stdout(&verify));

    let out = s.cli(&["import-receipt", receipt.to_str().unwrap()]);
    assert!(out.status.success(), "importing twice is harmless: {}", stderr(&out));
    assert!(stdout(&out).contains("earlier import"), "{}", stdout(&out));
    assert_eq!(s.ledger().iter().filter(|r| r["event"] == "sent").count(), 3);
}

#[test]
fn a_receipt_from_another_receiver_key_is_refused() {
    let s = isolated_manual();
    collect_n(&s, 1);
    let ex = s.path().join("export.zip");
    export(&s, &ex);
    let receipt = ingest(&s, &ex, &s.path().join("another-key.pem"), "foreign.json");
    let out = s.cli(&["import-receipt", receipt.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("another receiver"), "{}", stderr(&out));
    assert_eq!(s.spool("compliance").len(), 1);
}

#[test]
fn a_damaged_bundle_in_an_export_is_rejected_alone_and_stays_pending() {
    let s = isolated_manual();
    collect_n(&s, 3);
    let names = s.spool("compliance");
    let damaged = s.data.join("spool/compliance").join(&names[1]);
    let bytes = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let ex = s.path().join("export.zip");
    export(&s, &ex);
    let receipt = ingest(&s, &ex, &s.path().join("receiver-signing.pem"), "receipt.json");
    let r: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(r["accepted"].as_array().unwrap().len(), 2);
    assert_eq!(r["rejected"][0]["name"], names[1].as_str());
    let out = s.cli(&["import-receipt", receipt.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("still pending: {}", names[1])), "{}", stdout(&out));
    assert_eq!(s.spool("compliance"), vec![names[1].clone()]);
}

#[test]
fn an_export_confirmed_without_a_receipt_is_recorded_as_unverified() {
    let s = isolated_manual();
    collect_n(&s, 2);
    let ex = s.path().join("export.zip");
    let id = export(&s, &ex);
    let out = s.cli(&["export", "confirm", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(s.spool("compliance").is_empty());
    assert_eq!(s.ledger().iter().filter(|r| r["event"] == "reported").count(), 2);
    let verify = s.cli(&["ledger", "verify"]);
    assert!(stdout(&verify).contains("2 reported by hand without a receipt (unverified)"), "{}", stdout(&verify));
    let out = s.cli(&["export", "confirm", "0000"]);
    assert_eq!(out.status.code(), Some(6));
}

#[test]
fn a_support_bundle_has_the_case_and_no_secret() {
    const PASSWORD: &str = "Sup3r-S3cret-Proxy-Pw";
    let s = Setup::new();
    s.configure_offline(
        "proxy = \"http://127.0.0.1:1\"\nproxy_user = \"agent\"\n[[collect.commands]]\nname = \"status\"\nargv = [\"echo\", \"{}\"]\n",
    );
    // An agent has run: API tokens exist and the log has lines.
    let agent = s.start_agent();
    let api = AgentApi::wait_for(&s);
    assert!(agent.terminate().success());

    let out_path = s.path().join("support.zip");
    let out = s.cli_env(
        &[
            "support-bundle",
            "--case",
            "4711",
            "--severity",
            "2",
            "--summary",
            "uploads fail",
            "--contact",
            "admin@example.com",
            "--out",
            out_path.to_str().unwrap(),
        ],
        &[("CALLHOME_PROXY_PASSWORD", PASSWORD)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let e = ZipEntries::read(&out_path);
    let names = e.names();
    for want in [
        "case.json",
        "status.json",
        "history.json",
        "system.json",
        "config.toml",
        "logs/agent.log",
        "collectors.json",
        "manifest.json",
    ] {
        assert!(names.contains(&want), "{want} missing: {names:?}");
    }
    let case = e.json("case.json");
    assert_eq!((case["case"].as_str(), case["severity"].as_u64()), (Some("4711"), Some(2)));
    let log = String::from_utf8_lossy(e.get("logs/agent.log"));
    assert!(log.contains("agent running"), "the agent's recent log: {log}");
    let dry = e.json("collectors.json");
    let ran: Vec<&str> =
        dry["collectors"].as_array().unwrap().iter().map(|c| c["collector"].as_str().unwrap()).collect();
    assert_eq!(&ran[..4], ["system", "performance", "command:status", "licenses"]);
    for (name, text) in e.texts() {
        for secret in [api.token.as_str(), &api.read_token, PASSWORD] {
            assert!(!text.contains(secret), "a secret is in {name}");
        }
    }
    let again = s.cli(&["support-bundle", "--case", "4711", "--out", out_path.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1), "never over an existing file");
}

#[test]
fn ceip_bundles_stay_out_of_an_export_which_is_tied_to_the_install() {
    let s = isolated_manual();
    s.configure_offline(&format!(
        "receipt_public_key = \"{}\"\n[programs]\ntelemetry_mode = \"manual\"\ncall_home = false\nceip = true\n\
         [collect]\nerror_logs = [\"product.log\"]\n",
        s.path().join("receiver-public.pem").display()
    ));
    // CEIP has something to send: an error line in the product's log.
    std::fs::write(s.path().join("product.log"), "ERROR once\n").unwrap();
    collect_n(&s, 1);
    assert!(s.cli(&["collect", "--program", "ceip"]).status.success());
    let out_path = s.path().join("export.zip");
    let o = s.cli(&["export", "--out", out_path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 CEIP bundle(s) left out"), "the administrator is told: {}", stdout(&o));
    let e = ZipEntries::read(&out_path);
    let listed = e.json("export.json")["bundles"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0]["name"].as_str().unwrap().starts_with("upload_compliance_"), "{listed:?}");
    assert_eq!(s.spool("usage").len(), 1, "the CEIP bundle stays pending");

    let o = s.cli(&["export", "--out", s.path().join("ceip.zip").to_str().unwrap(), "--program", "ceip"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("CEIP bundles are not exported") && stderr(&o).contains("programs set ceip off"),
        "{}",
        stderr(&o)
    );
    assert!(!s.path().join("ceip.zip").exists());
}

#[test]
fn a_support_bundle_carries_the_redacted_bounded_tails_of_the_product_and_license_logs() {
    const PASSWORD: &str = "Sup3r-S3cret-Proxy-Pw";
    let s = Setup::new();
    let mut log = String::new();
    for i in 0..5000 {
        log.push_str(&format!("2026-11-30 10:00:{:02} INFO request {i} served\n", i % 60));
    }
    log.push_str(&format!(
        "2026-11-30 10:01:00 ERROR login failed for bob@example.com from 10.1.2.3 with {PASSWORD}\n"
    ));
    std::fs::write(s.path().join("product.log"), log).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/licenses/acme-debug.log"),
        s.path().join("acme-debug.log"),
    )
    .unwrap();
    s.configure_offline(
        "[collect]\nerror_logs = [\"product.log\"]\nerror_patterns = [\"ERROR\"]\n[licenses]\ndebug_logs = [\"acme-debug.log\"]\n",
    );
    let out_path = s.path().join("support.zip");
    let out = s.cli_env(
        &["support-bundle", "--case", "9", "--out", out_path.to_str().unwrap()],
        &[("CALLHOME_PROXY_PASSWORD", PASSWORD)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let e = ZipEntries::read(&out_path);
    let product = String::from_utf8_lossy(e.get("logs/product/1-product.log")).into_owned();
    // 5,001 lines of about 45 bytes: under the byte cap, so the line cap (2,000) holds, and the
    // lines kept are the newest.
    assert_eq!(product.lines().count(), 2000, "bounded to the last 2,000 lines");
    let last = product.lines().last().unwrap();
    assert!(last.contains("ERROR login failed for [email] from [ip]"), "the newest line, redacted: {last}");
    assert!(product.lines().next().unwrap().contains("INFO request # served"), "{product:.200}");
    assert!(!product.contains("bob@example.com") && !product.contains("10.1.2.3"));
    let debug = String::from_utf8_lossy(e.get("logs/license-debug/2-acme-debug.log")).into_owned();
    assert!(!debug.is_empty(), "the license debug log's tail");
    for (name, text) in e.texts() {
        assert!(!text.contains(PASSWORD), "the proxy password is in {name}");
    }
    let dry = e.json("collectors.json");
    let errors = dry["collectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["collector"].as_str().unwrap().starts_with("errors:"))
        .unwrap_or_else(|| panic!("the errors collector in {dry}"));
    assert_eq!(errors["ok"], true, "{errors}");
    assert!(errors["detail"].as_str().unwrap().starts_with("1 new error lines"), "{errors}");
}

#[test]
fn a_support_bundle_can_be_sent_as_its_own_upload_type() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    s.configure_for(&r, "");
    let out_path = s.path().join("support.zip");
    let out = s.cli(&["support-bundle", "--case", "99", "--out", out_path.to_str().unwrap(), "--upload"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("sent; receipt"), "{}", stdout(&out));
    let held = r.bundles();
    assert_eq!(held.len(), 1);
    let m =
        ZipEntries::read(&files_under(&r.store.join("bundles")).into_iter().find(|p| p.ends_with(&held[0])).unwrap())
            .json("manifest.json");
    assert_eq!(m["upload_type"], "support");
}

#[test]
fn the_receivers_manual_page_takes_an_export_and_gives_the_receipt() {
    let s = isolated_manual();
    collect_n(&s, 2);
    let ex = s.path().join("export.zip");
    export(&s, &ex);
    let r = Receiver::start(s.path(), &[]); // same key as the agent trusts
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&r.ca).unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = reqwest::Client::builder().tls_certs_only([ca]).no_proxy().build().unwrap();
    let base = r.url.trim_end_matches("/v1/bundles").to_string();
    let page = rt.block_on(async { client.get(format!("{base}/manual")).send().await.unwrap().text().await.unwrap() });
    assert!(page.contains("<form") && page.contains("/v1/exports"), "{page}");
    let receipt = rt.block_on(async {
        let resp = client
            .post(format!("{base}/v1/exports"))
            .header("content-type", "application/zip")
            .body(std::fs::read(&ex).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap()
    });
    let path = s.path().join("from-page.json");
    std::fs::write(&path, &receipt).unwrap();
    let out = s.cli(&["import-receipt", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(s.spool("compliance").is_empty());
    assert_eq!(r.bundles().len(), 2);
}

/// An isolated agent whose Call Home is on too, so the export mixes bundle sizes.
fn isolated_mixed() -> Setup {
    let s = isolated_manual();
    let text = std::fs::read_to_string(&s.config).unwrap().replace("call_home = false", "call_home = true");
    std::fs::write(&s.config, text).unwrap();
    collect_n(&s, 3);
    for _ in 0..2 {
        assert!(s.cli(&["collect", "--program", "call_home"]).status.success());
    }
    s
}

fn pending_sizes(s: &Setup) -> Vec<u64> {
    ["compliance", "callhome"]
        .iter()
        .flat_map(|k| s.spool(k).into_iter().map(move |n| s.data.join("spool").join(k).join(n)))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect()
}

#[test]
fn an_export_split_by_max_size_gives_parts_no_larger_than_the_cap_that_all_ingest_in_any_order() {
    let s = isolated_mixed();
    let sizes = pending_sizes(&s);
    assert!(sizes.iter().min() != sizes.iter().max(), "bundles of mixed sizes: {sizes:?}");
    assert!(*sizes.iter().max().unwrap() < 5_000, "every bundle fits a 6 KB part alone: {sizes:?}");
    age_install(&s, 95);
    let out = s.cli(&["export", "--out", s.path().join("ex.zip").to_str().unwrap(), "--max-size", "6KB"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let parts: Vec<PathBuf> =
        (1..=sizes.len()).map(|i| s.path().join(format!("ex.part{i}.zip"))).filter(|p| p.exists()).collect();
    assert!(parts.len() >= 2, "several parts: {}", stdout(&out));
    for p in &parts {
        let len = std::fs::metadata(p).unwrap().len();
        assert!(len <= 6_000, "{} is {len} bytes, over the 6 KB cap", p.display());
    }
    // Ingested in reverse order, each with its own receipt.
    for (i, p) in parts.iter().rev().enumerate() {
        let receipt = ingest(&s, p, &s.path().join("receiver-signing.pem"), &format!("r{i}.json"));
        let out = s.cli(&["import-receipt", receipt.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(s.all_pending(), 0, "every part was ingested");
    let st = s.status();
    assert_eq!(
        (st["compliance"]["state"].as_str(), st["compliance"]["days_since_last_upload"].as_i64()),
        (Some("ok"), Some(0))
    );
    assert!(s.cli(&["ledger", "verify"]).status.success());
    let bad = s.cli(&["export", "--out", "x.zip", "--max-size", "12parsecs"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn a_bundle_larger_than_the_cap_is_an_error_naming_it_and_writes_nothing() {
    let s = isolated_manual();
    collect_n(&s, 1);
    let name = s.spool("compliance").remove(0);
    let out = s.cli(&["export", "--out", s.path().join("ex.zip").to_str().unwrap(), "--max-size", "1KB"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains(&name), "names the bundle: {}", stderr(&out));
    assert!(stderr(&out).contains("--max-size of at least"), "says what to do: {}", stderr(&out));
    let written: Vec<_> = files_under(s.path())
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("ex.")))
        .collect();
    assert!(written.is_empty(), "nothing written: {written:?}");
    assert_eq!(s.spool("compliance").len(), 1);
}

#[test]
fn the_api_export_takes_a_maximum_size_and_receipted_parts_leave_exports() {
    let s = isolated_mixed();
    age_install(&s, 95);
    let mut agent = RunningAgent::start(s, None);
    assert_eq!(agent.call("POST", "/api/v1/export", Some("{\"max_size\": 0}")).status, 422);
    let job = agent.job(&agent.call("POST", "/api/v1/export", Some("{\"max_size\": 6000}")));
    assert_eq!(job["state"], "succeeded", "{job}");
    let parts = job["result"]["parts"].as_array().unwrap().clone();
    assert!(parts.len() >= 2, "{job}");
    let exports = agent.s.data.join("exports");
    for p in &parts {
        let path = exports.join(p["file"].as_str().unwrap());
        assert!(std::fs::metadata(&path).unwrap().len() <= 6_000, "{p}");
        assert_eq!(agent.get(p["href"].as_str().unwrap()).status, 200);
    }
    assert!(agent.get("/api/v1/status").json()["spool"]["exports_bytes"].as_u64().unwrap() > 0);
    // Too small for one bundle: a clear refusal naming the bundle, nothing written.
    let small = agent.job(&agent.call("POST", "/api/v1/export", Some("{\"max_size\": 500}")));
    assert_eq!(small["state"], "failed", "{small}");
    assert!(small["result"]["error"].as_str().unwrap().contains("upload_"), "{small}");
    assert_eq!(list(&exports, ".zip").len(), parts.len());
    for (i, p) in parts.iter().enumerate() {
        let path = exports.join(p["file"].as_str().unwrap());
        let receipt = ingest(&agent.s, &path, &agent.s.path().join("receiver-signing.pem"), &format!("r{i}.json"));
        let a = agent.call("POST", "/api/v1/import-receipt", Some(&std::fs::read_to_string(receipt).unwrap()));
        assert_eq!(a.status, 200, "{}", a.text());
        assert!(!path.exists(), "a receipted export leaves exports/");
    }
    assert_eq!(agent.get("/api/v1/status").json()["compliance"]["state"], "ok");
    agent.stop();
}

#[test]
fn exports_count_in_the_spool_quota_and_expire() {
    let s = isolated_manual();
    collect_n(&s, 2);
    let exports = s.data.join("exports");
    std::fs::create_dir_all(&exports).unwrap();
    let old = exports.join("old.zip");
    export(&s, &old);
    let newer = exports.join("newer.zip");
    std::fs::copy(&old, &newer).unwrap();
    // Past the age limit: removed at the next collection.
    let out = std::process::Command::new("touch").args(["-d", "40 days ago"]).arg(&old).output().unwrap();
    assert!(out.status.success());
    collect_n(&s, 1);
    assert!(!old.exists(), "an export older than spool.exports_max_age is removed");
    assert!(newer.exists());
    // Over the quota: the export goes before any bundle.
    let pending: u64 = pending_sizes(&s).iter().sum();
    let export_bytes = std::fs::metadata(&newer).unwrap().len();
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, format!("{text}[spool]\nmax_bytes = {}\n", pending + export_bytes / 2)).unwrap();
    collect_n(&s, 1);
    assert!(!newer.exists(), "the export counted against spool.max_bytes and went first");
    assert_eq!(s.spool("compliance").len(), 4, "no bundle was evicted");
}

#[test]
fn a_confirmed_export_writes_the_result_file_with_its_own_code_and_leaves_exports() {
    let s = isolated_manual();
    collect_n(&s, 1);
    let exports = s.data.join("exports");
    std::fs::create_dir_all(&exports).unwrap();
    let ex = exports.join("by-hand.zip");
    let id = export(&s, &ex);
    let out = s.cli(&["export", "confirm", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let xml = s.result_file("compliance");
    assert!(xml.contains("<Code>CTX_UPLOADER_MANUAL_UNVERIFIED</Code>"), "{xml}");
    assert!(xml.contains(&format!("<Arg>{id}</Arg>")), "{xml}");
    assert!(!ex.exists(), "a confirmed export leaves exports/");
}
