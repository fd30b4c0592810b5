//! The core loop end to end: the real `callhome` and `callhome-receiver` binaries, real TLS with
//! a generated CA, real signed receipts.

mod common;

use std::time::Duration;

use common::*;

const FAST: &str = "first_upload_delay = \"1s\"\nretry_base = \"1s\"\nretry_max = \"5s\"\n";

fn sent_rows(s: &Setup) -> Vec<serde_json::Value> {
    s.ledger().into_iter().filter(|r| r["event"] == "sent").collect()
}

#[test]
fn bundles_reach_the_receiver_with_signed_receipts_then_a_stopped_receiver_is_reported() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    s.configure_for(&r, "first_upload_delay = \"2s\"");
    let agent = s.start_agent();

    wait_until(Duration::from_secs(30), "the first upload to empty the spool", || {
        s.result_file("compliance").contains("CTX_UPLOADER_SUCCESS") && s.all_pending() == 0
    });
    let held = r.bundles();
    assert!(held.len() >= 2, "the receiver holds the compliance and Call Home bundles: {held:?}");
    let st = s.status();
    assert_eq!(st["compliance"]["days_since_last_upload"], 0);
    assert_eq!(st["compliance"]["state"], "ok");
    assert_eq!(st["compliance"]["days_remaining"], 90);
    assert_eq!(st["spool"]["pending"], 0);
    assert_eq!(st["agent"]["running"], true);
    assert_eq!(st["last_result"]["compliance"]["code"], "CTX_UPLOADER_SUCCESS");
    let names: Vec<_> =
        st["programs"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["telemetry", "call_home", "ceip", "events"]);
    assert_eq!(st["programs"][0]["mandatory"], true);
    assert_eq!(st["programs"][0]["mode"], "automatic");

    let verify = s.cli(&["ledger", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(stdout(&verify).contains("signatures verified"), "{}", stdout(&verify));
    // Every sent bundle is at the receiver under its SHA-256, once.
    for row in sent_rows(&s) {
        assert!(held.contains(&format!("{}.zip", row["sha256"].as_str().unwrap())), "{row}");
    }

    // The receiver stops; the next upload is reported and loses nothing.
    let addr = r.addr();
    r.stop();
    let out = s.cli(&["upload"]);
    assert_eq!(out.status.code(), Some(4), "upload exits 4 when it failed: {}", stdout(&out));
    let xml = s.result_file("compliance");
    assert!(xml.contains("<Code>CTX_UPLOADER_ERROR_NETWORK_OPEN</Code>"), "{xml}");
    assert!(xml.contains(&format!("<Arg>{addr}</Arg>")), "{xml}");
    assert_eq!(s.spool("compliance").len(), 1, "the new compliance bundle stays in the spool");
    drop(agent);
}

#[test]
fn a_503_with_retry_after_is_retried_after_the_wait() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &["status=503,retry-after=2,times=1"]);
    s.configure_for(&r, FAST);
    let _agent = s.start_agent();
    wait_until(Duration::from_secs(30), "the retry to succeed", || {
        s.result_file("compliance").contains("CTX_UPLOADER_SUCCESS") && s.spool("compliance").is_empty()
    });
    let h = s.history();
    let failed = h.iter().find(|a| a["http_status"] == 503).expect("the 503 attempt is recorded");
    assert_eq!(failed["code"], "CTX_UPLOADER_ERROR_HTTP_STATUS");
    let ok = h.iter().find(|a| a["program"] == "telemetry" && a["code"] == "CTX_UPLOADER_SUCCESS").unwrap();
    let t = |a: &serde_json::Value| humantime::parse_rfc3339(a["at"].as_str().unwrap()).unwrap();
    assert!(t(ok).duration_since(t(failed)).unwrap() >= Duration::from_secs(2), "Retry-After: 2 was honoured");
}

#[test]
fn a_failed_upload_now_is_retried_within_retry_max_once_the_receiver_returns() {
    let s = Setup::new();
    // The receiver fails the first upload, then is back; the daily slot is an hour away.
    let r = Receiver::start(s.path(), &["status=503,times=1"]);
    s.configure_for(&r, "first_upload_delay = \"1h\"\nretry_base = \"1s\"\nretry_max = \"5s\"\n");
    let _agent = s.start_agent();
    AgentApi::wait_for(&s);
    let out = s.cli(&["upload", "--program", "telemetry"]);
    assert_eq!(out.status.code(), Some(4), "the on-demand upload failed: {}{}", stdout(&out), stderr(&out));
    assert_eq!(s.spool("compliance").len(), 1, "the bundle is kept");
    wait_until(Duration::from_secs(30), "the failed Upload now to be retried", || {
        s.spool("compliance").is_empty() && s.result_file("compliance").contains("CTX_UPLOADER_SUCCESS")
    });
    let h = s.history();
    let t = |a: &serde_json::Value| humantime::parse_rfc3339(a["at"].as_str().unwrap()).unwrap();
    let failed = h.iter().find(|a| a["http_status"] == 503).expect("the 503 attempt is recorded");
    let ok = h.iter().find(|a| a["program"] == "telemetry" && a["code"] == "CTX_UPLOADER_SUCCESS").unwrap();
    let waited = t(ok).duration_since(t(failed)).unwrap();
    // retry_max is 5 s; the rest is slack for a loaded machine (the daily slot was an hour away).
    assert!(waited <= Duration::from_secs(15), "retried after {waited:?}, not within retry_max");
}

#[test]
fn a_rejected_bundle_is_quarantined_with_its_reason() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &["status=400,times=1"]);
    s.configure_for(&r, "");
    let out = s.cli(&["upload", "--program", "telemetry"]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    assert!(s.result_file("compliance").contains("CTX_UPLOADER_ERROR_REJECTED"));
    assert!(s.spool("compliance").is_empty());
    let q = list(&s.data.join("quarantine"), ".zip");
    assert_eq!(q.len(), 1, "{q:?}");
    let reason = std::fs::read_to_string(s.data.join("quarantine").join(format!("{}.reason", q[0]))).unwrap();
    assert!(reason.contains("400"), "{reason}");
    assert_eq!(s.ledger().iter().filter(|r| r["event"] == "quarantined").count(), 1);
    assert_eq!(s.status()["spool"]["quarantined"], 1);
    // The next upload sends a new bundle normally; the quarantined one is not retried.
    let out = s.cli(&["upload", "--program", "telemetry"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(r.bundles().len(), 1);
}

#[test]
fn quarantine_lists_retries_and_purges_from_the_cli_and_the_api() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &["status=413,times=3"]);
    s.configure_for(&r, "first_upload_delay = \"1h\"\n");
    for _ in 0..3 {
        // Each upload collects a bundle (none is pending) that the receiver refuses for good.
        assert_eq!(s.cli(&["upload", "--program", "telemetry"]).status.code(), Some(4));
    }
    // A damaged file that looks like a bundle.
    let qdir = s.data.join("quarantine");
    let damaged = "upload_compliance_20260101T000000Z_dead.zip";
    std::fs::write(qdir.join(damaged), b"not a zip").unwrap();
    std::fs::write(qdir.join(format!("{damaged}.reason")), "found damaged\n").unwrap();

    let listed = s.cli(&["quarantine", "list", "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let items: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(items.len(), 4, "{items:?}");
    let refused: Vec<String> = items
        .iter()
        .filter(|q| q["reason"].as_str().unwrap().contains("413"))
        .map(|q| q["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(refused.len(), 3, "each says why: {items:?}");
    assert!(stdout(&s.cli(&["quarantine", "list"])).contains(damaged));

    // The CLI: a retry re-checks and re-queues, and the next upload sends it.
    let out = s.cli(&["quarantine", "retry", &refused[0]]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.spool("compliance"), [refused[0].clone()]);
    assert!(s.cli(&["upload", "--program", "telemetry"]).status.success());
    assert_eq!(r.bundles().len(), 1, "the retried bundle reached the receiver");
    // A damaged one fails the re-check and stays.
    let out = s.cli(&["quarantine", "retry", damaged]);
    assert_eq!(out.status.code(), Some(7), "{}", stdout(&out));
    assert!(stderr(&out).contains("stays in quarantine"), "{}", stderr(&out));
    assert!(qdir.join(damaged).exists());
    // A purge is a ledger row.
    let out = s.cli(&["quarantine", "purge", &refused[1]]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!qdir.join(&refused[1]).exists() && !qdir.join(format!("{}.reason", refused[1])).exists());
    let out = s.cli(&["quarantine", "retry", "nothing-like-it.zip"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("quarantine list"), "{}", stderr(&out));

    // The API, through the running agent.
    let _agent = s.start_agent();
    let api = AgentApi::wait_for(&s);
    let list = api.get("/api/v1/quarantine").json();
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|q| q["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(ids.contains(&damaged) && ids.contains(&refused[2].as_str()), "{list}");
    assert_eq!(api.call("POST", "/api/v1/quarantine/nothing-like-it.zip/retry", Some("{}")).status, 404);
    let a = api.call("POST", &format!("/api/v1/quarantine/{damaged}/retry"), Some("{}"));
    assert_eq!(a.status, 409, "{}", a.text());
    let a = api.call("DELETE", &format!("/api/v1/quarantine/{damaged}"), None);
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["action"], "purged");
    let a = api.call("POST", &format!("/api/v1/quarantine/{}/retry", refused[2]), Some("{}"));
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!((a.json()["action"].as_str(), a.json()["program"].as_str()), (Some("requeued"), Some("telemetry")));
    assert_eq!(api.call("DELETE", &format!("/api/v1/quarantine/{}", refused[2]), None).status, 404);
    assert!(api.get("/api/v1/quarantine").json().as_array().unwrap().is_empty());
    assert_eq!(api.get("/api/v1/status").json()["spool"]["quarantined"], 0);
    drop(_agent);

    let purged: Vec<serde_json::Value> = s.ledger().into_iter().filter(|r| r["event"] == "purged").collect();
    assert_eq!(purged.len(), 2, "{purged:?}");
    let verify = s.cli(&["ledger", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
}

#[test]
fn receipts_that_do_not_verify_keep_the_bundle() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &["garbage,times=1", "bad-signature,times=1"]);
    s.configure_for(&r, "");
    for expected in ["not a receipt", "signature does not verify"] {
        let out = s.cli(&["upload", "--program", "telemetry"]);
        assert_eq!(out.status.code(), Some(4));
        let xml = s.result_file("compliance");
        assert!(xml.contains("CTX_UPLOADER_ERROR_RECEIPT") && xml.contains(expected), "{xml}");
        assert_eq!(s.spool("compliance").len(), 1, "the bundle is kept");
    }
    let out = s.cli(&["upload", "--program", "telemetry"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(s.spool("compliance").is_empty());
    assert_eq!(sent_rows(&s).len(), 1);
}

#[test]
fn an_agent_killed_mid_upload_gets_the_bundle_acknowledged_once() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &["delay=60s"]);
    s.configure_for(&r, FAST);
    let agent = s.start_agent();
    wait_until(Duration::from_secs(30), "the receiver to store the first bundle", || !r.bundles().is_empty());
    let pending_before = s.all_pending();
    assert!(pending_before >= 1, "the bundle in flight is still in the spool");
    agent.kill9();
    r.stop();

    let r = Receiver::start(s.path(), &[]); // same store and key, no fault
    s.configure_for(&r, FAST);
    let _agent = s.start_agent();
    wait_until(Duration::from_secs(30), "the restarted agent to empty the spool", || {
        s.all_pending() == 0 && s.result_file("compliance").contains("CTX_UPLOADER_SUCCESS")
    });
    let sent = sent_rows(&s);
    let mut shas: Vec<_> = sent.iter().map(|r| r["sha256"].as_str().unwrap().to_string()).collect();
    shas.sort();
    let before = shas.len();
    shas.dedup();
    assert_eq!(before, shas.len(), "no bundle is in the ledger twice");
    let mut held = r.bundles();
    held.sort();
    assert_eq!(held, shas.iter().map(|s| format!("{s}.zip")).collect::<Vec<_>>(), "receiver and ledger agree");
    // The bundle that was in flight got the receipt the receiver gave the first time (CEIP rows
    // keep no receipt: CEIP is sent anonymously).
    for row in sent.iter().filter(|r| r["program"] != "ceip") {
        let sha = row["sha256"].as_str().unwrap();
        let stored: serde_json::Value =
            serde_json::from_slice(&std::fs::read(r.store.join(format!("receipts/{sha}.json"))).unwrap()).unwrap();
        let ours: serde_json::Value = serde_json::from_str(row["detail"].as_str().unwrap()).unwrap();
        assert_eq!(stored["receipt_id"], ours["receipt_id"]);
    }
    assert!(s.cli(&["ledger", "verify"]).status.success());
}

#[test]
fn turning_an_optional_program_off_withdraws_its_bundles() {
    let s = Setup::new();
    s.configure_offline("");
    let out = s.cli(&["collect", "--program", "call_home"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no agent runs") && stderr(&out).contains("callhome run"),
        "says how to start the agent: {}",
        stderr(&out)
    );
    assert_eq!(s.spool("callhome").len(), 1);

    let out = s.cli(&["programs", "set", "call_home", "off"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("withdrew 1"), "{}", stdout(&out));
    assert!(s.spool("callhome").is_empty());
    let rows = s.ledger();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["event"], "withdrawn");
    assert_eq!(rows[0]["program"], "call_home");

    let st = s.status();
    assert_eq!(st["programs"][1]["enabled"], false);
    let out = s.cli(&["collect", "--program", "call_home"]);
    assert!(stdout(&out).contains("skipped (the program is off)"), "{}", stdout(&out));
    assert!(s.spool("callhome").is_empty());

    // Telemetry is mandatory: it can only switch to manual.
    let out = s.cli(&["programs", "set", "telemetry", "off"]);
    assert_eq!(out.status.code(), Some(7));
    assert!(stderr(&out).contains("mandatory"), "{}", stderr(&out));
    assert!(s.cli(&["programs", "set", "telemetry", "manual"]).status.success());
    let out = s.cli(&["upload"]);
    assert!(stdout(&out).contains("telemetry: 0 sent, skipped (manual reporting"), "{}", stdout(&out));
    assert_eq!(s.spool("compliance").len(), 1, "manual mode keeps collecting");
    assert_eq!(s.status()["programs"][0]["mode"], "manual");
}

#[test]
fn do_not_track_turns_the_optional_programs_off_by_default() {
    let s = Setup::new();
    std::fs::write(&s.config, "[programs]\nevents = true\n").unwrap();
    let out = s.cli_env(&["status", "--json"], &[("DO_NOT_TRACK", "1")]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for i in 1..4 {
        assert_eq!(st["programs"][i]["enabled"], false, "{}", st["programs"][i]);
    }
    assert_eq!(st["programs"][0]["enabled"], true);
    let out = s.cli_env(&["status", "--json"], &[("CALLHOME_ENDPOINT_TOKEN", "registered")]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["programs"][3]["enabled"], true, "without DO_NOT_TRACK the config default holds");
}

#[test]
fn event_data_needs_registration() {
    let s = Setup::new();
    s.configure_offline("first_upload_delay = \"1h\"\n[programs]\nevents = true\n");
    // Without an endpoint token the program cannot be turned on, and is off whatever the default.
    let out = s.cli(&["programs", "set", "events", "on"]);
    assert_eq!(out.status.code(), Some(7), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("Event data needs registration"), "{}", stderr(&out));
    assert!(stderr(&out).contains("callhome register --token-stdin"), "says what to do: {}", stderr(&out));
    assert_eq!(s.status()["programs"][3]["enabled"], false);
    let out = s.cli(&["collect", "--program", "events"]);
    assert!(stdout(&out).contains("needs registration"), "{}", stdout(&out));
    assert!(s.spool("events").is_empty(), "collects nothing");
    // The same over the API: 409 with the reason.
    let _agent = s.start_agent();
    let api = AgentApi::wait_for(&s);
    let a = api.call("PUT", "/api/v1/programs/events", Some("{\"enabled\": true}"));
    assert_eq!(a.status, 409, "{}", a.text());
    assert!(a.text().contains("needs registration"), "{}", a.text());
    assert_eq!(api.get("/api/v1/status").json()["programs"][3]["enabled"], false);
    drop(_agent);
    // A registered agent may turn it on.
    let token = [("CALLHOME_ENDPOINT_TOKEN", "registered")];
    let out = s.cli_env(&["programs", "set", "events", "on"], &token);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = s.cli_env(&["status", "--json"], &token);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["programs"][3]["enabled"], true);
}

#[test]
fn config_errors_name_every_key_and_line() {
    let s = Setup::new();
    let bad = s.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[upload]\ninterval = \"daily\"\nendpont = \"https://x\"\n\n[compliance]\nmax_days = 90\nwarn_days = [120]\n",
    )
    .unwrap();
    let out = std::process::Command::new(&*AGENT).args(["config", "check"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    let file = bad.display().to_string();
    for want in [
        format!("{file}:2: upload.interval: \"daily\" is not a duration"),
        format!("{file}:3: upload.endpont: unknown key"),
        format!("{file}:7: compliance.warn_days: every threshold must be below compliance.max_days (90)"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    // The agent refuses to start on it, with the same report.
    let out = std::process::Command::new(&*AGENT)
        .args(["run", "--headless", "--config"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(&s.data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("upload.endpont"));
    // A good file passes; the embedded default passes.
    std::fs::write(&s.config, "[upload]\ninterval = \"12h\"\n").unwrap();
    assert!(s.cli(&["config", "check"]).status.success());
    let out = std::process::Command::new(&*AGENT).args(["config", "default"]).output().unwrap();
    assert!(stdout(&out).contains("first_upload_delay = \"5m\""));
}

#[test]
fn a_second_agent_on_the_same_data_directory_refuses_naming_the_first() {
    let s = Setup::new();
    s.configure_offline("");
    let first = s.start_agent();
    wait_until(Duration::from_secs(10), "the first agent to hold the directory", || {
        s.status()["agent"]["running"] == true
    });
    let out = s.cli(&["run", "--headless"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains(&format!("pid {}", first.pid())), "{}", stderr(&out));
    assert!(first.terminate().success(), "SIGTERM stops the agent cleanly");
    assert_eq!(s.status()["agent"]["running"], false);
}

#[test]
fn processes_opening_a_new_data_directory_at_once_all_succeed() {
    // Regression: they shared one write-probe file name, raced to apply the first migration and
    // to switch the new database to WAL ("database is locked"), and could each create a
    // different install id.
    for round in 0..3 {
        let s = Setup::new();
        s.configure_offline("");
        let spawn = |args: &[&str]| {
            std::process::Command::new(&*AGENT)
                .args(args)
                .arg("--config")
                .arg(&s.config)
                .arg("--data-dir")
                .arg(&s.data)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let agent = s.start_agent();
        let children: Vec<_> = (0..12)
            .map(|i| {
                if i % 3 == 0 {
                    (false, spawn(&["collect", "--program", "telemetry"]))
                } else {
                    (true, spawn(&["status", "--json"]))
                }
            })
            .collect();
        let mut ids = Vec::new();
        for (is_status, c) in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", stderr(&out));
            if is_status {
                let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                ids.push(st["install_id"].as_str().unwrap().to_string());
            }
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "every process sees the one install id: {ids:?}");
        assert_eq!(s.spool("compliance").len(), 4);
        assert!(agent.terminate().success(), "the agent started beside them runs and stops cleanly");
    }
}

#[test]
fn an_unusable_data_directory_is_a_clear_error() {
    let s = Setup::new();
    let file = s.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = std::process::Command::new(&*AGENT).args(["status", "--data-dir"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("not-a-dir") && err.contains("--data-dir"), "{err}");
}

#[test]
fn preview_shows_the_exact_bytes_that_will_be_sent() {
    let s = Setup::new();
    s.configure_offline(
        "[[collect.commands]]\nname = \"status\"\nargv = [\"echo\", \"{\\\"licenses\\\": 3}\"]\n[[collect.commands]]\nname = \"broken\"\nargv = [\"false\"]\n",
    );
    assert!(s.cli(&["collect", "--program", "telemetry"]).status.success());
    let out = s.cli(&["preview", "--latest", "--file", "commands/status.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["licenses"], 3);
    let out = s.cli(&["preview", "--latest", "--file", "manifest.json"]);
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["program"], "telemetry");
    assert_eq!(m["errors"][0]["collector"], "command:broken", "a failing command is recorded, not fatal");
    let files: Vec<_> = m["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(files, ["system.json", "deployment.json", "commands/status.json", "licenses.json", "usage.json"]);
    assert!(
        m["files"].as_array().unwrap().iter().all(|f| !f["holds"].as_str().unwrap().is_empty()),
        "the manifest says what each file holds"
    );
    // The whole-bundle preview names the SHA-256 the ledger will record.
    let bundle = &s.spool("compliance")[0];
    let bytes = std::fs::read(s.data.join("spool/compliance").join(bundle)).unwrap();
    let sha = callhome::fsutil::sha256_hex(&bytes);
    let out = s.cli(&["preview", bundle]);
    assert!(stdout(&out).contains(&sha), "{}", stdout(&out));
    let out = s.cli(&["preview", "nope.zip"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("callhome status"));
}

/// One transient failure: the upload exits 4 with `code`, keeps the bundle; the next upload
/// delivers it, once.
fn transient_failure_keeps_the_bundle(fault: &str, upload_extra: &str, code: &str) {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[fault]);
    s.configure_for(&r, upload_extra);
    let out = s.cli(&["upload", "--program", "telemetry"]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    let xml = s.result_file("compliance");
    assert!(xml.contains(&format!("<Code>{code}</Code>")), "{fault}: {xml}");
    assert_eq!(s.spool("compliance").len(), 1, "{fault}: the bundle is kept");
    let out = s.cli(&["upload", "--program", "telemetry"]);
    assert!(out.status.success(), "{fault}: {}", stdout(&out));
    assert!(s.spool("compliance").is_empty());
    assert_eq!(r.bundles().len(), 1, "{fault}: the receiver holds the bundle once");
    assert_eq!(sent_rows(&s).len(), 1, "{fault}: the ledger records it once");
}

#[test]
fn a_dropped_connection_is_a_network_error() {
    transient_failure_keeps_the_bundle("drop,times=1", "", "CTX_UPLOADER_ERROR_NETWORK_OPEN");
}

#[test]
fn a_receiver_too_slow_to_answer_is_a_timeout_and_the_retry_gets_the_same_receipt() {
    transient_failure_keeps_the_bundle("delay=10s,times=1", "read_timeout = \"1s\"", "CTX_UPLOADER_ERROR_TIMEOUT");
}

#[test]
fn unauthorized_is_an_auth_error() {
    transient_failure_keeps_the_bundle("status=401,times=1", "", "CTX_UPLOADER_ERROR_AUTH");
}

#[test]
fn a_server_error_is_an_http_status_error() {
    transient_failure_keeps_the_bundle("status=500,times=1", "", "CTX_UPLOADER_ERROR_HTTP_STATUS");
}

#[test]
fn a_port_with_407_in_it_is_not_taken_for_a_proxy_error() {
    // Regression: the classifier read the whole message, URL included, and took port 40737
    // for an HTTP 407.
    let port = (40700..40800)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port with 407 in it");
    let s = Setup::new();
    let r = Receiver::start_on(s.path(), &format!("127.0.0.1:{port}"), &["drop,times=1"]);
    s.configure_for(&r, "");
    assert_eq!(s.cli(&["upload", "--program", "telemetry"]).status.code(), Some(4));
    let xml = s.result_file("compliance");
    assert!(xml.contains("<Code>CTX_UPLOADER_ERROR_NETWORK_OPEN</Code>"), "{xml}");
}
