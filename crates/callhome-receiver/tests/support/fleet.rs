//! The fleet view scenario both index back ends must pass: installs with known upload times
//! (one uploading now over HTTPS, three taken in by the operator's `ingest --received-at` days
//! ago), listed by the CLI and the operator API in the same JSON, filtered by state, and counted
//! in `/metrics`.

use std::collections::BTreeMap;

use super::*;

/// The operator's token the scenario's receivers are started with.
pub const ADMIN_TOKEN: &str = "operator-token-0123456789abcdef";

/// Writes the operator's token file; returns the serve options that use it and the releases
/// installs are measured against (agent 0.2.0 and product 2.0, both out since 2026-01-01).
pub fn serve_options(dir: &Path) -> Vec<String> {
    let file = dir.join("admin-token");
    std::fs::write(&file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let mut opts = vec!["--admin-token-file".to_string(), file.display().to_string()];
    opts.extend(RELEASES.map(String::from));
    opts
}

/// The newest releases, for `serve` and `fleet` alike.
pub const RELEASES: [&str; 8] = [
    "--latest-version",
    "0.2.0",
    "--latest-released",
    "2026-01-01",
    "--latest-product-version",
    "2.0",
    "--latest-product-released",
    "2026-01-01",
];

/// `fleet ARGS --json` measured against [`RELEASES`].
fn fleet(s: &Server, index: Option<&str>, args: &[&str]) -> serde_json::Value {
    fleet_json(s, index, &[args, &RELEASES[..]].concat())
}

fn by_id(list: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    list.as_array().unwrap().iter().map(|e| (e["install_id"].as_str().unwrap().to_string(), e.clone())).collect()
}

fn ids(list: &serde_json::Value) -> Vec<String> {
    by_id(list).into_keys().collect()
}

/// Runs the scenario against `s` (started with [`serve_options`]) and `index` (for the CLI).
pub async fn known_upload_times(s: &Server, index: Option<&str>) {
    let c = s.client();
    let token = s_token(s, index);
    // Current agent and product, uploading now.
    let fresh = telemetry_bundle("fresh", "0.2.0", "2.0", 7);
    assert_eq!(upload(s, &c, Some(&token), Some("fresh"), fresh).await.status(), 201);
    // Three enrolled installs whose license telemetry reached the vendor days ago, on paper.
    let mut times = BTreeMap::new();
    for (id, days) in [("warn", 70), ("crit", 85), ("late", 100)] {
        enrol(s, &c, &token, id).await;
        let at = days_ago(days);
        let b = telemetry_bundle(id, "0.1.0", "1.5", 3);
        operator_ingest(s, &export_of(&format!("x-{id}"), id, &[("upload_compliance_1.zip", &b)]), index, &at);
        times.insert(id, at);
    }
    // A call-home bundle is no license telemetry: it moves no compliance clock.
    let ch = call_home_bundle("late");
    assert_eq!(upload(s, &c, Some(&token), Some("late"), ch.clone()).await.status(), 201, "a call-home bundle");

    let all = fleet(s, index, &[]);
    let all = by_id(&all);
    assert_eq!(all.keys().map(String::as_str).collect::<Vec<_>>(), ["crit", "fresh", "late", "warn"]);
    let row = |id: &str| all[id].as_object().unwrap().clone();
    let fresh_row = row("fresh");
    let keys: Vec<&str> = fresh_row.keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 8, "exactly the contract's fields: {keys:?}");
    for k in [
        "install_id",
        "customer",
        "last_success",
        "days_since",
        "state",
        "agent_version",
        "product_version",
        "outdated",
    ] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }
    assert_eq!(row("fresh")["state"], "ok");
    assert_eq!(row("fresh")["days_since"], 0);
    assert_eq!(row("fresh")["outdated"], false);
    assert_eq!(row("fresh")["agent_version"], "0.2.0");
    assert_eq!(row("fresh")["product_version"], "2.0");
    assert_eq!(row("fresh")["customer"], "Acme");
    for (id, days, state) in [("warn", 70, "warning"), ("crit", 85, "critical"), ("late", 100, "overdue")] {
        let r = row(id);
        assert_eq!((r["state"].as_str(), r["days_since"].as_i64()), (Some(state), Some(days)), "{id}: {r:?}");
        assert_eq!(r["last_success"].as_str(), Some(times[id].as_str()), "{id}");
        assert_eq!((r["agent_version"].as_str(), r["product_version"].as_str()), (Some("0.1.0"), Some("1.5")));
        assert_eq!(r["outdated"], true, "0.1.0 is more than six months behind 0.2.0: {r:?}");
        assert_eq!(r["customer"], "Acme");
    }
    assert_eq!(ids(&fleet(s, index, &["--overdue"])), ["late"]);
    assert_eq!(ids(&fleet(s, index, &["--state", "warning"])), ["warn"]);
    assert_eq!(ids(&fleet(s, index, &["--state", "critical"])), ["crit"]);

    // The operator API answers the same, behind the operator's token.
    let d = expect_problem(get(s, &c, "/admin/v1/installs", None).await, 401).await;
    assert!(d.contains("operator"), "{d}");
    expect_problem(get(s, &c, "/admin/v1/installs", Some("not-the-operator-token")).await, 401).await;
    expect_problem(get(s, &c, "/admin/v1/installs", Some(&token)).await, 401).await;
    let api: serde_json::Value = json(get(s, &c, "/admin/v1/installs", Some(ADMIN_TOKEN)).await).await;
    let api = by_id(&api);
    for (id, r) in &all {
        for k in ["state", "days_since", "last_success", "outdated", "customer"] {
            assert_eq!(api[id][k], r[k], "{id} {k}");
        }
    }
    let over: serde_json::Value = json(get(s, &c, "/admin/v1/installs?state=overdue", Some(ADMIN_TOKEN)).await).await;
    assert_eq!(ids(&over), ["late"]);
    expect_problem(get(s, &c, "/admin/v1/installs?state=late", Some(ADMIN_TOKEN)).await, 400).await;
    let one: serde_json::Value = json(get(s, &c, "/admin/v1/installs/fresh", Some(ADMIN_TOKEN)).await).await;
    assert_eq!(one["usage"]["features"][0]["feature"], "CAD_PRO", "{one}");
    assert_eq!(one["usage"]["features"][0]["count_used_max"], 7, "{one}");
    assert_eq!((one["agent_outdated"].as_bool(), one["product_outdated"].as_bool()), (Some(false), Some(false)));
    expect_problem(get(s, &c, "/admin/v1/installs/nobody", Some(ADMIN_TOKEN)).await, 404).await;
    expect_problem(get(s, &c, "/admin/v1/installs/fresh", None).await, 401).await;

    // Metrics: uploads by result, bytes, latency, installs by state.
    expect_problem(get(s, &c, "/metrics", None).await, 401).await;
    assert_eq!(upload(s, &c, Some(&token), Some("late"), ch).await.status(), 200, "the same bundle again");
    let m = get(s, &c, "/metrics", Some(ADMIN_TOKEN)).await;
    assert_eq!(m.status(), 200);
    assert!(m.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = m.text().await.unwrap();
    for line in [
        "callhome_receiver_uploads_total{result=\"accepted\"} 2",
        "callhome_receiver_uploads_total{result=\"duplicate\"} 1",
        "callhome_receiver_upload_duration_seconds_count 3",
        "callhome_receiver_installs{state=\"ok\"} 1",
        "callhome_receiver_installs{state=\"warning\"} 1",
        "callhome_receiver_installs{state=\"critical\"} 1",
        "callhome_receiver_installs{state=\"overdue\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    let bytes: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("callhome_receiver_upload_bytes_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(bytes > 500, "{bytes} bytes counted");
}

/// A multi-install token for Acme, through the CLI against `index`.
fn s_token(s: &Server, index: Option<&str>) -> String {
    let mut args = vec!["tokens", "create", "--customer", "Acme", "--multi-install"];
    if let Some(i) = index {
        args.extend(["--index", i]);
    }
    let out = s.cli(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
