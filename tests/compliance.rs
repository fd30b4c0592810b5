//! Compliance you can prove, through the real binaries: receipts anchor the ledger (cutting its
//! tail fails `ledger verify` with exit 6 naming the receipt), exemptions granted by the
//! receiver's operator (online beside a receipt, and as a file) turn an overdue agent's `check`
//! to OK with the reason until they end, a forged or foreign exemption changes nothing, and a
//! receiver advertising a product release older than six months makes `check` WARNING. The
//! wall clock of `check` is moved with libfaketime (as in `alert_objects.rs`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use callhome::licenses::date::Date;
use common::*;
use serde_json::Value;

/// Only license telemetry runs.
const TELEMETRY_ONLY: &str = "[programs]\ncall_home = false\nceip = false\n";

fn today() -> Date {
    Date::of_timestamp(callhome::clock::Clock::now(&callhome::clock::SystemClock))
}

fn iso_in(days: i64) -> String {
    let d = Date::from_days(today().days() + days);
    format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
}

fn ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}{}", stdout(out), stderr(out));
}

fn upload_telemetry(s: &Setup) {
    ok(&s.cli(&["upload", "--program", "telemetry"]), "upload");
}

/// `callhome-receiver exemptions grant` against the store in `dir` with the signing key `key`.
fn grant(dir: &Path, key: &Path, install: &str, until: &str, reason: &str, out: Option<&Path>) -> Output {
    let mut cmd = Command::new(&*RECEIVER);
    cmd.args(["exemptions", "grant", "--install", install, "--until", until, "--reason", reason, "--store"])
        .arg(dir.join("receiver-store"))
        .arg("--signing-key")
        .arg(key);
    if let Some(out) = out {
        cmd.arg("--out").arg(out);
    }
    cmd.output().expect("the receiver's CLI runs")
}

fn sqlite(s: &Setup) -> rusqlite::Connection {
    rusqlite::Connection::open(s.data.join("state.sqlite")).unwrap()
}

/// The receipt id the newest `sent` row holds.
fn newest_receipt_id(s: &Setup) -> String {
    let row = s.ledger().into_iter().rev().find(|r| r["event"] == "sent").expect("a sent row");
    let receipt: Value = serde_json::from_str(row["detail"].as_str().unwrap()).unwrap();
    receipt["receipt_id"].as_str().unwrap().to_string()
}

#[test]
fn cutting_the_ledgers_tail_after_a_receipted_upload_fails_verify_naming_the_receipt() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    s.configure_for(&r, TELEMETRY_ONLY);
    upload_telemetry(&s);
    upload_telemetry(&s);
    let rows = s.ledger();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let second: Value = serde_json::from_str(rows[1]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(second["ledger_head"]["rows"], 1, "the receipt signs the head the upload declared: {second}");
    assert_eq!(second["ledger_head"]["hash"], rows[0]["hash"]);
    let verify = s.cli(&["ledger", "verify"]);
    ok(&verify, "verify");
    assert!(stdout(&verify).contains("2 receipt(s) anchor its head, ledger.head agrees"), "{}", stdout(&verify));
    let head: Value = serde_json::from_slice(&std::fs::read(s.data.join("ledger.head")).unwrap()).unwrap();
    assert_eq!((head["rows"].as_u64(), head["hash"].as_str()), (Some(2), rows[1]["hash"].as_str()));

    // Cut the newest row and the head file: the receipt kept beside the chain proves it.
    let receipt_id = newest_receipt_id(&s);
    let head_text = std::fs::read(s.data.join("ledger.head")).unwrap();
    sqlite(&s).execute("DELETE FROM ledger WHERE seq = (SELECT MAX(seq) FROM ledger)", []).unwrap();
    std::fs::remove_file(s.data.join("ledger.head")).unwrap();
    let verify = s.cli(&["ledger", "verify"]);
    assert_eq!(verify.status.code(), Some(6), "{}{}", stdout(&verify), stderr(&verify));
    let err = stderr(&verify);
    assert!(err.contains("it ends at row 1") && err.contains(&format!("receipt {receipt_id}")), "{err}");
    assert!(err.contains("was in row 2"), "{err}");

    // Without the kept receipt, the head file alone still tells.
    sqlite(&s).execute("DELETE FROM ledger_receipts WHERE seq = 2", []).unwrap();
    std::fs::write(s.data.join("ledger.head"), &head_text).unwrap();
    let verify = s.cli(&["ledger", "verify"]);
    assert_eq!(verify.status.code(), Some(6), "{}", stderr(&verify));
    assert!(stderr(&verify).contains("it has 1 row, but ledger.head says 2 rows"), "{}", stderr(&verify));
}

#[test]
fn a_manual_receipt_signs_the_exports_ledger_head() {
    let s = isolated_manual();
    ok(&s.cli(&["collect", "--program", "telemetry"]), "collect");
    let ex = s.path().join("export.zip");
    ok(&s.cli(&["export", "--out", ex.to_str().unwrap()]), "export");
    let receipt = s.path().join("receipt.json");
    receiver_ingest(&ex, &s.path().join("vendor-store"), &s.path().join("receiver-signing.pem"), &receipt);
    let m: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(m["ledger_head"]["rows"], 0, "the head when the export was written: {m}");
    ok(&s.cli(&["import-receipt", receipt.to_str().unwrap()]), "import-receipt");
    let verify = s.cli(&["ledger", "verify"]);
    ok(&verify, "verify");
    assert!(stdout(&verify).contains("1 receipt(s) anchor"), "{}", stdout(&verify));
    sqlite(&s).execute("DELETE FROM ledger", []).unwrap();
    let verify = s.cli(&["ledger", "verify"]);
    assert_eq!(verify.status.code(), Some(6));
    let id = m["receipt_id"].as_str().unwrap();
    assert!(stderr(&verify).contains(&format!("receipt {id} (manual report of export")), "{}", stderr(&verify));
}

#[test]
fn an_exemption_delivered_with_the_next_receipt_turns_an_overdue_check_to_ok_until_it_ends() {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    s.configure_for(&r, TELEMETRY_ONLY);
    upload_telemetry(&s);
    let (code, line) = check_at(&s, "+100d");
    assert_eq!(code, 2, "100 days after the upload, without an exemption: {line}");

    let install = s.status()["install_id"].as_str().unwrap().to_string();
    let until = iso_in(120);
    let key = s.path().join("receiver-signing.pem");
    let g = grant(s.path(), &key, &install, &until, "site migration approved by the vendor", None);
    ok(&g, "grant");
    let exemption_id = stdout(&g).trim().to_string();
    assert_eq!(s.status()["compliance"]["state"], "ok", "nothing changes before the next receipt");

    upload_telemetry(&s);
    let st = s.status();
    assert_eq!(st["compliance"]["state"], "exempt", "{st}");
    assert_eq!(st["compliance"]["exemption"]["id"], exemption_id.as_str());
    assert_eq!(st["compliance"]["exemption"]["until"], until.as_str());
    let (code, line) = check_at(&s, "+100d");
    assert_eq!(code, 0, "{line}");
    assert!(line.contains(&format!("exempt until {until} (site migration approved by the vendor)")), "{line}");
    assert!(stdout(&s.cli(&["status"])).contains("exemption: exempt from reporting until"));

    // Past its day: the clock is back, overdue.
    let (code, line) = check_at(&s, "+125d");
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("overdue"), "{line}");
}

/// An offline agent whose receipts come from the receiver key in its folder.
fn isolated() -> (Setup, PathBuf) {
    let s = Setup::new();
    let r = Receiver::start(s.path(), &[]);
    let (ca, key) = (r.ca.clone(), r.public_key.clone());
    r.stop();
    s.configure("https://127.0.0.1:9/v1/bundles", &ca, &key, TELEMETRY_ONLY);
    let signing = s.path().join("receiver-signing.pem");
    (s, signing)
}

fn import(s: &Setup, file: &Path) -> Output {
    s.cli(&["exemption", "import", file.to_str().unwrap()])
}

#[test]
fn an_exemption_file_turns_an_overdue_check_to_ok_and_a_forged_or_foreign_one_changes_nothing() {
    let (s, signing) = isolated();
    let install = s.status()["install_id"].as_str().unwrap().to_string();
    let (code, line) = check_at(&s, "+100d");
    assert_eq!(code, 2, "overdue: {line}");
    let until = iso_in(150);
    let file = s.path().join("exemption.json");
    ok(&grant(s.path(), &signing, &install, &until, "isolated site, yearly audit", Some(&file)), "grant");

    // Changed after signing, signed by another key, or for another install: exit 6, no change.
    let text: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let mut later = text.clone();
    later["until"] = Value::from(iso_in(400));
    let changed = s.path().join("changed.json");
    std::fs::write(&changed, later.to_string()).unwrap();
    let forged = s.path().join("forged.json");
    ok(&grant(s.path(), &s.path().join("other-key.pem"), &install, &until, "forged", Some(&forged)), "grant");
    let foreign = s.path().join("foreign.json");
    ok(&grant(s.path(), &signing, "another-install", &until, "someone else's", Some(&foreign)), "grant");
    for (f, says) in [(&changed, "does not verify"), (&forged, "does not verify"), (&foreign, "not this one")] {
        let out = import(&s, f);
        assert_eq!(out.status.code(), Some(6), "{}: {}", f.display(), stderr(&out));
        assert!(stderr(&out).contains(says) && stderr(&out).contains("nothing was changed"), "{}", stderr(&out));
        assert_eq!(s.status()["compliance"]["state"], "ok");
        assert_eq!(check_at(&s, "+100d").0, 2, "{} changed nothing", f.display());
    }
    let garbage = s.path().join("garbage.json");
    std::fs::write(&garbage, "{\"hello\": 1}").unwrap();
    assert_eq!(import(&s, &garbage).status.code(), Some(6));

    let out = import(&s, &file);
    ok(&out, "import");
    assert!(stdout(&out).contains(&format!("exempt from reporting until {until}")), "{}", stdout(&out));
    let (code, line) = check_at(&s, "+100d");
    assert_eq!(code, 0, "{line}");
    assert!(line.contains("isolated site, yearly audit"), "{line}");
    let again = import(&s, &file);
    ok(&again, "import again");
    assert!(stdout(&again).contains("already held"), "{}", stdout(&again));
    assert_eq!(check_at(&s, "+155d").0, 2, "the exemption ended with its day");

    // An exemption written into the state database by hand is checked like an imported one.
    let conn = sqlite(&s);
    conn.execute("UPDATE settings SET value = ?1 WHERE key = 'compliance.exemption'", [later.to_string()]).unwrap();
    assert_eq!(check_at(&s, "+100d").0, 2, "a changed exemption in the state counts for nothing");
}

#[test]
fn a_product_release_older_than_six_months_makes_check_warn() {
    let s = Setup::new();
    let old = iso_in(-200);
    let r = Receiver::start_with(
        s.path(),
        "127.0.0.1:0",
        &[],
        &["--latest-product-version", "2026.2", "--latest-product-released", &old],
    );
    s.configure_for(&r, &format!("{TELEMETRY_ONLY}[product]\nname = \"License Server\"\nversion = \"2025.1\"\n"));
    let (code, line) = check_at(&s, "+0");
    assert_eq!(code, 0, "nothing advertised yet: {line}");
    upload_telemetry(&s);
    let st = s.status();
    assert_eq!(st["product"]["outdated"], true, "{st}");
    assert_eq!(
        (st["product"]["latest"].as_str(), st["product"]["latest_released"].as_str()),
        (Some("2026.2"), Some(old.as_str()))
    );
    let (code, line) = check_at(&s, "+0");
    assert_eq!(code, 1, "{line}");
    assert!(line.starts_with("CALLHOME WARNING") && line.contains("License Server 2025.1 is out of date"), "{line}");
    let alerts: Value = serde_json::from_slice(&s.cli(&["alerts", "list", "--json"]).stdout).unwrap();
    assert!(alerts.as_array().unwrap().iter().any(|a| a["kind"] == "product-outdated"), "{alerts}");
    assert!(s.cli(&["ledger", "verify"]).status.success(), "the advertised release is signed with the receipt");

    // A newer release that is younger than six months: nothing to warn about yet.
    let t = Setup::new();
    let recent = iso_in(-30);
    let r2 = Receiver::start_with(
        t.path(),
        "127.0.0.1:0",
        &[],
        &["--latest-product-version", "2026.2", "--latest-product-released", &recent],
    );
    t.configure_for(&r2, &format!("{TELEMETRY_ONLY}[product]\nversion = \"2025.1\"\n"));
    upload_telemetry(&t);
    assert_eq!(t.status()["product"]["outdated"], false);
    assert_eq!(check_at(&t, "+0").0, 0);
}
