//! License data end to end, through the real CLI: the inventory of the fixture license files,
//! hourly usage worked out by hand from the fixture debug log, the compliance and CEIP bundles,
//! and license events.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/licenses");
/// Every user and host name in the fixture debug log.
const NAMES: [&str; 14] = [
    "annika",
    "bodhan",
    "cyrille",
    "deandra",
    "evander",
    "fayola",
    "gustavo",
    "ws-annika",
    "ws-bodhan",
    "ws-cyrille",
    "ws-deandra",
    "ws-evander",
    "ws-fayola",
    "ws-gustavo",
];

/// A setup whose configuration reads the fixtures (copied, so logs can grow and rotate).
fn with_fixtures(extra: &str) -> Setup {
    let s = Setup::new();
    for f in ["acme.lic", "globex.lic", "acme-debug.log"] {
        std::fs::copy(Path::new(FIXTURES).join(f), s.path().join(f)).unwrap();
    }
    s.configure_offline(&format!("[licenses]\nfiles = [\"*.lic\"]\ndebug_logs = [\"acme-debug.log\"]\n{extra}"));
    s
}

fn json_of(s: &Setup, args: &[&str]) -> Value {
    let out = s.cli(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {}", stdout(&out)))
}

/// (feature, hour, peak, checkouts, denials, queued, unsupported, users, devices)
type HourRow = (String, String, u64, u64, u64, u64, u64, u64, u64);

fn hours(v: &Value) -> Vec<HourRow> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (
                r["feature"].as_str().unwrap().to_string(),
                r["hour"].as_str().unwrap().to_string(),
                n("peak"),
                n("checkouts"),
                n("denials"),
                n("queued"),
                n("unsupported"),
                n("user_count"),
                n("device_count"),
            )
        })
        .collect()
}

fn row(f: &str, h: &str, v: [u64; 7]) -> HourRow {
    (f.into(), h.into(), v[0], v[1], v[2], v[3], v[4], v[5], v[6])
}

/// The fixture log, worked out by hand.
fn expected_hours() -> Vec<HourRow> {
    vec![
        // 9h: ann 1, bob 2, cyrille +2 = 4, dee denied, bob returns: peak 4.
        row("cad_pro", "2025-11-20T09:00:00Z", [4, 3, 1, 0, 0, 3, 3]),
        // 10h: 3 carried over; ann returns (2), dee takes one (3).
        row("cad_pro", "2025-11-20T10:00:00Z", [3, 1, 0, 0, 0, 1, 1]),
        // After the restart at 7:00 on the 21st nothing is out; ann takes one.
        row("cad_pro", "2025-11-21T07:00:00Z", [1, 1, 0, 0, 0, 1, 1]),
        row("nonexistent", "2025-11-20T10:00:00Z", [0, 0, 0, 0, 1, 0, 0]),
        row("sim_core", "2025-11-20T09:00:00Z", [1, 1, 0, 1, 0, 1, 1]),
        row("viewer", "2025-11-20T23:00:00Z", [1, 1, 0, 0, 0, 1, 1]),
        // Past midnight without a TIMESTAMP: the 21st. One held over, gustavo takes one: 2.
        row("viewer", "2025-11-21T00:00:00Z", [2, 1, 0, 0, 0, 1, 1]),
    ]
}

#[test]
fn licenses_json_lists_every_feature_and_the_malformed_lines() {
    let s = with_fixtures("");
    let v = json_of(&s, &["licenses", "--json"]);
    let lic = v["licenses"].as_array().unwrap();
    let find = |f: &str, kind: &str| {
        lic.iter().find(|l| l["feature"] == f && l["kind"] == kind).unwrap_or_else(|| panic!("no {kind} {f} in {v}"))
    };
    let cad = find("cad_pro", "INCREMENT");
    assert_eq!((cad["expiry"].as_str(), cad["quantity"].as_u64()), (Some("2027-06-30"), Some(25)));
    assert_eq!((cad["license_type"].as_str(), cad["overdraft"].as_u64()), (Some("SUBSCRIPTION"), Some(5)));
    assert_eq!(cad["subscription_end"], "2027-06-30", "a date-shaped version is the subscription date");
    assert_eq!(cad["notice"], "Acme Corp - Engineering");
    let sim = find("sim_core", "FEATURE");
    assert_eq!(
        (sim["expiry"].as_str(), sim["quantity"].as_u64(), sim["license_type"].as_str()),
        (Some("permanent"), Some(10), Some("PERPETUAL"))
    );
    let viewer = find("viewer", "FEATURE");
    assert_eq!((viewer["uncounted"].as_bool(), viewer["quantity"].is_null()), (Some(true), true));
    let legacy = find("cad_legacy", "FEATURE");
    assert_eq!((legacy["expired"].as_bool(), legacy["active"].as_bool()), (Some(true), Some(false)));
    let planner = find("planner", "FEATURE");
    assert_eq!((planner["expiry"].as_str(), planner["quantity"].as_u64()), (Some("2027-01-15"), Some(40)));
    assert_eq!((planner["license_type"].as_str(), planner["grace_period_days"].as_u64()), (Some("floating"), Some(14)));
    assert_eq!(find("planner", "INCREMENT")["notice"], "Globex \"EMEA\" pool");
    let reporter = find("reporter", "FEATURE");
    assert_eq!((reporter["expiry"].as_str(), reporter["uncounted"].as_bool()), (Some("permanent"), Some(true)));
    assert_eq!(lic.len(), 7);
    // Signatures never leave the file; only a short hash does.
    let text = v.to_string();
    for sig in ["0A1B 2C3D", "1122 3344", "A1B2C3D4E5F6", "7A7A7A7A"] {
        assert!(!text.contains(sig), "signature {sig} copied");
    }
    let problems: Vec<(String, u64)> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                Path::new(p["file"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned(),
                p["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(problems, vec![("acme.lic".to_string(), 28), ("globex.lic".to_string(), 9)]);
    let kinds: Vec<_> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["feature"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("expired", "cad_legacy")), "{kinds:?}");
}

#[test]
fn usage_json_gives_the_hand_worked_hourly_peaks_and_a_second_run_counts_nothing_twice() {
    let s = with_fixtures("");
    assert_eq!(hours(&json_of(&s, &["usage", "--json"])), expected_hours());
    assert_eq!(hours(&json_of(&s, &["usage", "--json"])), expected_hours(), "an unchanged log adds nothing");
    let only = hours(&json_of(&s, &["usage", "--json", "--feature", "viewer", "--since", "2025-11-21"]));
    assert_eq!(only, vec![expected_hours()[6].clone()]);
}

#[test]
fn usage_is_read_incrementally_across_appends_rotation_and_truncation() {
    let s = with_fixtures("");
    let log = s.path().join("acme-debug.log");
    json_of(&s, &["usage", "--json"]);
    let append = |text: &str| {
        use std::io::Write;
        std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(text.as_bytes()).unwrap();
    };
    append(" 7:30:00 (acme) OUT: \"cad_pro\" bodhan@ws-bodhan  \n");
    let v = hours(&json_of(&s, &["usage", "--json", "--feature", "cad_pro", "--since", "2025-11-21"]));
    assert_eq!(v, vec![row("cad_pro", "2025-11-21T07:00:00Z", [2, 2, 0, 0, 0, 2, 2])], "the appended line counts once");

    // Rotation: the old file moves away, a new one starts; the checkouts still out carry over.
    std::fs::rename(&log, s.path().join("acme-debug.log.1")).unwrap();
    std::fs::write(
        &log,
        " 8:00:00 (acme) TIMESTAMP 11/21/2025\n 8:10:00 (acme) OUT: \"cad_pro\" cyrille@ws-cyrille  \n",
    )
    .unwrap();
    let v = hours(&json_of(&s, &["usage", "--json", "--feature", "cad_pro", "--since", "2025-11-21T08:00:00Z"]));
    assert_eq!(v, vec![row("cad_pro", "2025-11-21T08:00:00Z", [3, 1, 0, 0, 0, 1, 1])]);

    // Truncation: the file is emptied and written again from the start.
    std::fs::OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    append(
        " 9:00:00 (acme) TIMESTAMP 11/21/2025\n 9:10:00 (acme) DENIED: \"sim_core\" annika@ws-annika  (no licenses)\n",
    );
    let v = hours(&json_of(&s, &["usage", "--json", "--feature", "sim_core", "--since", "2025-11-21"]));
    assert_eq!(
        v,
        vec![row("sim_core", "2025-11-21T09:00:00Z", [0, 0, 1, 0, 0, 0, 0])],
        "the rewritten file is read from its start"
    );
}

fn only_bundle(s: &Setup, folder: &str) -> PathBuf {
    let list = s.spool(folder);
    assert_eq!(list.len(), 1, "{folder}: {list:?}");
    s.data.join("spool").join(folder).join(&list[0])
}

#[test]
fn the_compliance_bundle_holds_inventory_usage_and_the_hardware_id() {
    let s = with_fixtures("");
    let out = s.cli(&["collect", "--program", "telemetry"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let entries = ZipEntries::read(&only_bundle(&s, "compliance"));
    let get = |name: &str| entries.json(name);
    let lic = get("licenses.json");
    assert_eq!(lic["licenses"].as_array().unwrap().len(), 7);
    let usage = get("usage.json");
    let cad = usage["features"].as_array().unwrap().iter().find(|f| f["feature"] == "cad_pro").unwrap();
    assert_eq!((cad["count_used_max"].as_u64(), cad["count_installed"].as_u64()), (Some(4), Some(25)));
    assert_eq!(cad["licensees"]["users"], 4);
    assert!(cad["users"].as_array().unwrap().contains(&Value::from("annika")), "compliance data may name users");
    let viewer = usage["features"].as_array().unwrap().iter().find(|f| f["feature"] == "viewer").unwrap();
    assert_eq!(viewer["uncounted"], true);
    let system = get("system.json");
    if std::path::Path::new("/etc/machine-id").exists() {
        assert_eq!(system["hardware_id"].as_str().map(str::len), Some(64));
    }
    let manifest = get("manifest.json");
    let holds: Vec<_> =
        manifest["files"].as_array().unwrap().iter().map(|f| f["holds"].as_str().unwrap().to_string()).collect();
    assert!(holds.iter().any(|h| h.contains("license inventory")), "{holds:?}");
}

#[test]
fn a_ceip_bundle_holds_no_user_or_host_name() {
    let s = with_fixtures("[programs]\nceip = true\n");
    json_of(&s, &["usage", "--json"]); // reads the log into the state
    let out = s.cli(&["collect", "--program", "ceip"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let entries = ZipEntries::read(&only_bundle(&s, "usage"));
    let v = entries.json("license_usage.json");
    // cad_pro (25 installed), under a name keyed with CEIP's id.
    let cad = v["features"].as_array().unwrap().iter().find(|f| f["count_installed"] == 25).unwrap();
    assert_eq!((cad["count_used_max"].as_u64(), cad["licensees"]["users"].as_u64()), (Some(4), Some(4)));
    assert!(cad["feature"].as_str().unwrap().starts_with("f-"), "{cad}");
    for (name, text) in entries.texts() {
        for n in NAMES {
            assert!(!text.contains(n), "{n:?} appears in {name} of the CEIP bundle");
        }
    }
}

/// Every leaf value of every JSON file (and the manifest) of a bundle, as text; keys are not
/// values. Numbers and booleans are kept apart: they are counts.
fn leaf_strings(entries: &ZipEntries) -> std::collections::BTreeSet<String> {
    fn walk(v: &Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::String(s) => {
                out.insert(s.clone());
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = std::collections::BTreeSet::new();
    for name in entries.names() {
        if name.ends_with(".json") {
            walk(&entries.json(name), &mut out);
        }
    }
    out
}

#[test]
fn no_value_of_a_ceip_bundle_but_versions_os_names_and_counts_appears_in_an_identifiable_bundle() {
    let s = with_fixtures("[programs]\nceip = true\ncall_home = true\n");
    json_of(&s, &["usage", "--json"]); // reads the debug log into the state
    for p in ["telemetry", "call_home", "ceip"] {
        let out = s.cli(&["collect", "--program", p]);
        assert!(out.status.success(), "{p}: {}", stderr(&out));
    }
    let ceip = ZipEntries::read(&only_bundle(&s, "usage"));
    let telemetry = ZipEntries::read(&only_bundle(&s, "compliance"));
    let call_home = ZipEntries::read(&only_bundle(&s, "callhome"));
    let ceip_values = leaf_strings(&ceip);
    let mut identifiable = leaf_strings(&telemetry);
    identifiable.extend(leaf_strings(&call_home));

    // What may be shared: versions, OS names, and the agent's own words (file names and what
    // each holds, the upload type CEIP shares with Call Home).
    let env = ceip.json("environment.json");
    let mut allowed: Vec<String> = ["os", "os_version", "os_long_version", "kernel", "arch"]
        .iter()
        .filter_map(|k| env[*k].as_str().map(str::to_string))
        .collect();
    allowed.push(env!("CARGO_PKG_VERSION").to_string()); // the agent's version
    allowed.extend(["usage".to_string(), "ceip".to_string()]); // the upload type and program name
    for f in ceip.json("manifest.json")["files"].as_array().unwrap() {
        allowed.extend(["name", "holds"].iter().map(|k| f[*k].as_str().unwrap().to_string()));
    }
    // Its time: the day alone, the same in every CEIP bundle of that day (it equals the start of
    // an hour the identifiable bundles count usage in when they are made in the day's first hour).
    let day = ceip.json("manifest.json")["created_at"].as_str().unwrap().to_string();
    assert!(day.ends_with("T00:00:00Z"), "a CEIP bundle's time is its day: {day}");
    allowed.push(day);
    let shared: Vec<&String> =
        ceip_values.iter().filter(|v| identifiable.contains(*v) && !allowed.contains(v)).collect();
    assert!(shared.is_empty(), "CEIP values that also appear in identifiable bundles: {shared:?}");
    // The license usage is there (counts), under names keyed with CEIP's own id.
    let usage = ceip.json("license_usage.json");
    assert!(!usage["features"].as_array().unwrap().is_empty(), "{usage}");

    // The identifiers in particular: no install id anywhere, CEIP's own id instead.
    let manifest = ceip.json("manifest.json");
    let install_id = telemetry.json("manifest.json")["install_id"].as_str().unwrap().to_string();
    let ceip_id = manifest["ceip_id"].as_str().unwrap().to_string();
    assert!(manifest.get("install_id").is_none(), "{manifest}");
    assert!(ceip_id.starts_with("ceip-") && ceip_id.len() == 37, "{ceip_id}");
    assert!(manifest["created_at"].as_str().unwrap().ends_with("T00:00:00Z"), "only the day: {manifest}");
    let system = telemetry.json("system.json");
    for (name, text) in ceip.texts() {
        for id in [install_id.as_str(), system["hostname"].as_str().unwrap(), system["hardware_id"].as_str().unwrap()] {
            assert!(!text.contains(id), "{id:?} is in {name} of the CEIP bundle");
        }
        for signature in ["0A1B 2C3D", "1122 3344", "SIGN="] {
            assert!(!text.contains(signature), "a license signature is in {name}");
        }
    }
    // The preview shows the exact bytes that will be sent, CEIP's id in the manifest.
    let shown = json_of(&s, &["preview", "--latest", "--program", "ceip", "--json"]);
    let bytes = std::fs::read(only_bundle(&s, "usage")).unwrap();
    use sha2::Digest;
    assert_eq!(shown["sha256"].as_str().unwrap(), hex::encode(sha2::Sha256::digest(&bytes)), "{shown}");
    assert_eq!(shown["manifest"]["ceip_id"].as_str(), Some(ceip_id.as_str()), "{shown}");
    assert!(shown["manifest"].get("install_id").is_none(), "{shown}");

    // Nor a time of day in the zip's own entry headers.
    let mut zip = zip::ZipArchive::new(std::fs::File::open(only_bundle(&s, "usage")).unwrap()).unwrap();
    for i in 0..zip.len() {
        let f = zip.by_index(i).unwrap();
        if let Some(t) = f.last_modified() {
            assert_eq!((t.hour(), t.minute(), t.second()), (0, 0, 0), "{:?} carries a time of day", f.name());
        }
    }
}

#[test]
fn ceip_keeps_its_own_id_for_30_days_and_then_takes_a_new_one() {
    let s = with_fixtures("[programs]\nceip = true\n[collect]\nerror_logs = [\"product.log\"]\n");
    let log = s.path().join("product.log");
    let lib = libfaketime().display().to_string();
    let ceip_id_after = |days: u32| {
        // Something new for CEIP each time: one more error line in the product's log.
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        writeln!(f, "ERROR after {days} days").unwrap();
        let faked = format!("+{days}d");
        let env = [("LD_PRELOAD", lib.as_str()), ("FAKETIME", faked.as_str()), ("FAKETIME_NO_CACHE", "1")];
        let out = s.cli_env(&["collect", "--program", "ceip"], &env);
        assert!(out.status.success(), "{}", stderr(&out));
        let b = only_bundle(&s, "usage");
        let id = ZipEntries::read(&b).json("manifest.json")["ceip_id"].as_str().unwrap().to_string();
        std::fs::remove_file(b).unwrap();
        id
    };
    let first = ceip_id_after(0);
    assert_eq!(ceip_id_after(29), first, "the same id within 30 days");
    let next = ceip_id_after(31);
    assert_ne!(next, first, "a new id after 30 days");
    assert!(next.starts_with("ceip-"), "{next}");
}

#[test]
fn a_license_expiring_in_20_days_is_an_event_in_status_and_in_an_event_bundle() {
    let s = with_fixtures("[programs]\nevents = true\n");
    let today =
        callhome::licenses::date::Date::of_timestamp(callhome::clock::Clock::now(&callhome::clock::SystemClock));
    let soon = callhome::licenses::date::Date::from_days(today.days() + 20);
    let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let expiry = format!("{}-{}-{}", soon.day, months[soon.month as usize - 1], soon.year);
    std::fs::write(s.path().join("soon.lic"), format!("FEATURE trial_addon acme 1.0 {expiry} 3 SIGN=\"D00D\"\n"))
        .unwrap();

    let st = s.status();
    let ev = st["license_events"].as_array().unwrap();
    let e = ev.iter().find(|e| e["feature"] == "trial_addon").unwrap_or_else(|| panic!("no event in {ev:?}"));
    assert_eq!((e["kind"].as_str(), e["days"].as_i64()), (Some("expiring"), Some(20)));
    assert!(e["message"].as_str().unwrap().contains("in 20 days"));

    // Event data exists for registered agents only.
    let registered = [("CALLHOME_ENDPOINT_TOKEN", "registered")];
    let out = s.cli_env(&["collect", "--program", "events"], &registered);
    assert!(out.status.success(), "{}", stderr(&out));
    let events = ZipEntries::read(&only_bundle(&s, "events")).json("events.json");
    assert!(events["events"].as_array().unwrap().iter().any(|e| e["feature"] == "trial_addon"));
    let again = s.cli_env(&["collect", "--program", "events"], &registered);
    assert!(stdout(&again).contains("skipped (no new license events)"), "{}", stdout(&again));
}

#[test]
fn product_log_errors_go_to_call_home_with_redacted_samples_and_to_ceip_as_counts() {
    let s = Setup::new();
    let log = s.path().join("product.log");
    std::fs::write(
        &log,
        "10:00:01 INFO started\n10:00:02 ERROR license checkout failed for annika@corp.example from 10.20.30.40 (code 4711)\n10:00:03 FATAL out of memory\n10:00:04 ERROR retry 2 of 5\n",
    )
    .unwrap();
    s.configure_offline("[programs]\nceip = true\n[collect]\nerror_logs = [\"*.log\"]\n");
    assert!(s.cli(&["collect", "--program", "call_home"]).status.success());
    assert!(s.cli(&["collect", "--program", "ceip"]).status.success());
    let ch = ZipEntries::read(&only_bundle(&s, "callhome"));
    let errors = ch.json("errors.json");
    let count = |doc: &Value, pat: &str| {
        doc["counts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["pattern"] == pat)
            .map(|c| c["count"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((count(&errors, "ERROR"), count(&errors, "FATAL")), (2, 1));
    let samples = errors["samples"].to_string();
    assert!(samples.contains("license checkout failed for [email] from [ip] (code #)"), "{samples}");
    let ceip = ZipEntries::read(&only_bundle(&s, "usage"));
    let counts = ceip.json("errors.json");
    // CEIP: a total per pattern, named by its place in collect.error_patterns (ERROR is first),
    // without hours or the patterns' text.
    let at =
        |i: u64| counts["counts"].as_array().unwrap().iter().find(|c| c["pattern"] == i).map(|c| c["count"].clone());
    assert_eq!((at(0), at(1)), (Some(Value::from(2)), Some(Value::from(1))), "{counts}");
    assert_eq!(counts["patterns"], 4, "{counts}");
    assert!(counts.get("samples").is_none(), "CEIP gets counts only");
    assert!(!counts.to_string().contains("hour") && !counts.to_string().contains("ERROR"), "{counts}");
    for (_, bytes) in ch.entries.iter().chain(&ceip.entries) {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("annika") && !text.contains("10.20.30.40"), "the e-mail and the address never leave");
    }
    // New lines only, next time.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"10:05:00 panic: index out of range\n")
        .unwrap();
    std::fs::remove_file(only_bundle(&s, "callhome")).unwrap();
    assert!(s.cli(&["collect", "--program", "call_home"]).status.success());
    let errors = ZipEntries::read(&only_bundle(&s, "callhome")).json("errors.json");
    assert_eq!((count(&errors, "ERROR"), count(&errors, "panic")), (0, 1));
}
