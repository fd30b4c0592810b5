//! An agent enrolled with the vendor's token against a receiver that asks for one: the real
//! `callhome` sends `Authorization: Bearer` with its `X-Callhome-Install-Id`, the receiver binds
//! the install to the token's customer; no token, or a second install on a single-install
//! token, is refused and the bundle stays in the spool.

mod common;

use common::*;

fn collect_and_upload(s: &Setup, token: Option<&str>) -> std::process::Output {
    assert!(s.cli(&["collect", "--program", "telemetry"]).status.success());
    let env: Vec<(&str, &str)> = token.map(|t| ("CALLHOME_ENDPOINT_TOKEN", t)).into_iter().collect();
    s.cli_env(&["upload", "--program", "telemetry"], &env)
}

#[test]
fn an_enrolled_agent_uploads_and_an_unenrolled_one_is_refused() {
    let s = Setup::new();
    let r = Receiver::start_enrolling(s.path());
    s.configure_for(&r, "first_upload_delay = \"1h\"");
    let token = r.token("Acme");

    let out = collect_and_upload(&s, None);
    assert_eq!(out.status.code(), Some(4), "no token: the upload fails: {}", stdout(&out));
    assert!(s.result_file("compliance").contains("CTX_UPLOADER_ERROR_AUTH"), "{}", s.result_file("compliance"));
    assert_eq!(s.spool("compliance").len(), 1, "the refused bundle stays");
    assert!(r.bundles().is_empty());

    let out = s.cli_env(&["upload", "--program", "telemetry"], &[("CALLHOME_ENDPOINT_TOKEN", &token)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(s.result_file("compliance").contains("CTX_UPLOADER_SUCCESS"));
    assert!(s.spool("compliance").is_empty());
    assert_eq!(r.bundles().len(), 1);
    let verify = s.cli(&["ledger", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));

    // Another install with the same single-install token is refused (403) and keeps its bundle.
    let other = Setup::new();
    other.configure_for(&r, "first_upload_delay = \"1h\"");
    let out = collect_and_upload(&other, Some(&token));
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    assert!(other.result_file("compliance").contains("CTX_UPLOADER_ERROR_AUTH"), "{}", other.result_file("compliance"));
    assert_eq!(other.spool("compliance").len(), 1);
    assert_eq!(r.bundles().len(), 1);
}

/// The receiver's index row of the bundle `sha256`: (install id, program), read from its SQLite.
fn indexed(r: &Receiver, sha256: &str) -> Option<(Option<String>, String)> {
    let db =
        rusqlite::Connection::open_with_flags(r.store.join("index.sqlite"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    db.query_row("SELECT install_id, program FROM bundles WHERE sha256 = ?1", [sha256], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })
    .ok()
}

/// SHA-256 of a file, hex.
fn sha256_of(path: &std::path::Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn ceip_goes_anonymously_and_is_stored_under_no_install_while_anonymous_telemetry_is_refused() {
    let s = Setup::new();
    let r = Receiver::start_enrolling(s.path());
    // CEIP has something to send: an error line in the product's log.
    let log = s.path().join("product.log");
    std::fs::write(&log, "2026-11-30 10:00:00 ERROR first\n").unwrap();
    s.configure_for(
        &r,
        "first_upload_delay = \"1h\"\n[programs]\nceip = true\n[collect]\nerror_logs = [\"product.log\"]\nerror_patterns = [\"ERROR\"]\n",
    );
    let token = r.token("Acme");
    let with_token = [("CALLHOME_ENDPOINT_TOKEN", token.as_str())];
    for p in ["telemetry", "ceip"] {
        let out = s.cli(&["collect", "--program", p]);
        assert!(out.status.success(), "{p}: {}", stderr(&out));
    }
    let ceip_sha = sha256_of(&s.data.join("spool/usage").join(&s.spool("usage")[0]));
    let telemetry_sha = sha256_of(&s.data.join("spool/compliance").join(&s.spool("compliance")[0]));

    // Without a token: the telemetry bundle is refused (401) and stays; CEIP needs none.
    let out = s.cli(&["upload"]);
    assert_eq!(out.status.code(), Some(4), "{}{}", stdout(&out), stderr(&out));
    assert!(s.result_file("compliance").contains("CTX_UPLOADER_ERROR_AUTH"), "{}", s.result_file("compliance"));
    assert_eq!(s.spool("compliance").len(), 1, "the refused telemetry bundle stays");
    assert!(s.spool("usage").is_empty(), "the CEIP bundle went anonymously: {}", stdout(&out));
    assert!(indexed(&r, &telemetry_sha).is_none());

    // With the token, the telemetry goes under the install; a new CEIP bundle still goes without it
    // (the receiver refuses a token-bearing upload whose bundle names no install: 403).
    std::fs::write(&log, "2026-11-30 10:00:00 ERROR first\n2026-11-30 11:00:00 ERROR second\n").unwrap();
    assert!(s.cli(&["collect", "--program", "ceip"]).status.success());
    let second_ceip = sha256_of(&s.data.join("spool/usage").join(&s.spool("usage")[0]));
    assert_ne!(second_ceip, ceip_sha, "two CEIP bundles of one day with the same counts are two bundles");
    let out = s.cli_env(&["upload"], &with_token);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(s.spool("usage").is_empty() && s.spool("compliance").is_empty());

    let install_id = s.status()["install_id"].as_str().unwrap().to_string();
    assert_eq!(indexed(&r, &telemetry_sha), Some((Some(install_id.clone()), "telemetry".into())));
    for sha in [&ceip_sha, &second_ceip] {
        assert_eq!(indexed(&r, sha), Some((None, "ceip".into())), "CEIP {sha} is indexed under no install");
        let stored: Vec<_> = files_under(&r.store).into_iter().filter(|p| p.ends_with(format!("{sha}.zip"))).collect();
        assert_eq!(stored.len(), 1, "{stored:?}");
        let key = stored[0].strip_prefix(&r.store).unwrap().to_string_lossy().into_owned();
        assert!(key.starts_with("ceip/") && !key.contains(&install_id), "stored under no install: {key}");
        let receipt: serde_json::Value =
            serde_json::from_slice(&std::fs::read(r.store.join(format!("receipts/{sha}.json"))).unwrap()).unwrap();
        assert!(receipt.get("ledger_head").is_none_or(|h| h.is_null()), "no ledger head came with it: {receipt}");
    }
    // Nothing of the install is under ceip/, and nothing of CEIP under the install.
    let under_installs: Vec<_> = files_under(&r.store.join("bundles"))
        .into_iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(under_installs, vec![format!("{telemetry_sha}.zip")]);

    // The ledger records every CEIP upload (each upload cycle also packs one) without its
    // receipt, and still verifies.
    let ledger = s.ledger();
    let ceip_rows: Vec<_> = ledger.iter().filter(|row| row["program"] == "ceip").collect();
    assert!(ceip_rows.len() >= 2, "{ledger:?}");
    for row in &ceip_rows {
        assert_eq!(row["event"], "sent", "{row}");
        let detail = row["detail"].as_str().unwrap();
        assert!(detail.contains("callhome-ceip-anonymous-1") && !detail.contains("receipt_id"), "{detail}");
    }
    let history = s.history();
    for a in history.iter().filter(|a| a["program"] == "ceip") {
        assert!(a["sha256"].is_null(), "no CEIP SHA-256 in the attempts: {a}");
    }
    let verify = s.cli(&["ledger", "verify"]);
    assert!(verify.status.success(), "{}{}", stdout(&verify), stderr(&verify));
    let anonymous = format!("{} CEIP bundle(s) sent anonymously", ceip_rows.len());
    assert!(stdout(&verify).contains(&anonymous), "{}", stdout(&verify));

    // A support bundle of this install names no CEIP receipt and lists no CEIP attempt: either
    // would join the anonymous uploads to the install.
    let support = s.path().join("support.zip");
    let out = s.cli(&["support-bundle", "--case", "1", "--out", support.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = ZipEntries::read(&support);
    let attempts: serde_json::Value = serde_json::from_slice(e.get("history.json")).unwrap();
    assert!(!attempts.as_array().unwrap().is_empty(), "the telemetry attempts are there");
    assert!(attempts.as_array().unwrap().iter().all(|a| a["program"] != "ceip"), "{attempts}");
    for sha in [&ceip_sha, &second_ceip] {
        let receipt: serde_json::Value =
            serde_json::from_slice(&std::fs::read(r.store.join(format!("receipts/{sha}.json"))).unwrap()).unwrap();
        let id = receipt["receipt_id"].as_str().unwrap();
        for name in e.names() {
            let text = String::from_utf8_lossy(e.get(name)).into_owned();
            assert!(!text.contains(id) && !text.contains(sha.as_str()), "{name} names CEIP bundle {sha}");
        }
    }
}
