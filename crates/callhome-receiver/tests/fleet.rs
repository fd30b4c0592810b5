//! The fleet view on the embedded SQLite index, against the real binary: the CLI and the
//! operator API over installs with known upload times, the operator API's authentication, and
//! `/metrics` (the same scenario runs on PostgreSQL in tests/postgres.rs).

mod support;

use support::fleet::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_view_on_sqlite_lists_known_upload_times_by_state() {
    let dir = tempfile::tempdir().unwrap();
    let opts = serve_options(dir.path());
    let s = Server::start(&opts.iter().map(String::as_str).collect::<Vec<_>>());
    known_upload_times(&s, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_api_and_metrics_are_off_without_an_operator_token() {
    let s = Server::start(&[]);
    let c = s.client();
    for path in ["/admin/v1/installs", "/admin/v1/installs/x", "/metrics"] {
        let d = expect_problem(get(&s, &c, path, Some("anything-at-all-here")).await, 403).await;
        assert!(d.contains("--admin-token-file"), "{d}");
    }
}

#[test]
fn fleet_refuses_an_unknown_state_and_bad_thresholds_clearly() {
    let s = Server::start(&[]);
    let out = s.cli(&["fleet", "--state", "late"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ok, warning, critical or overdue"));
    let out = s.cli(&["fleet", "--max-days", "10", "--warn-days", "30"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--warn-days"));
    let out = s.cli(&["fleet"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no installs"));
}

#[test]
fn a_seeded_fleet_is_listed_by_state_through_the_clock_index() {
    let s = Server::start(&[]);
    let out = s.cli(&["fleet", "seed", "--customer", "Bench", "--installs", "1200", "--spread-days", "120"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let overdue = fleet_json(&s, None, &["--overdue"]);
    let overdue = overdue.as_array().unwrap();
    // Spread evenly over 120 days: those past 90 days are about 29 in 120.
    assert!((285..=295).contains(&overdue.len()), "{}", overdue.len());
    assert!(overdue.iter().all(|e| e["state"] == "overdue" && e["days_since"].as_i64().unwrap() > 90));
    let plan = s.cli(&["fleet", "explain"]);
    let plan = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.contains("install_reports_by_clock"), "the overdue query scans the clock index: {plan}");
}

#[test]
fn reading_commands_on_a_store_that_does_not_exist_say_so_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-store");
    let store = missing.to_str().unwrap();
    for args in [
        vec!["fleet", "--store", store],
        vec!["fleet", "explain", "--store", store],
        vec!["tokens", "list", "--store", store],
        vec!["tokens", "revoke", "0123456789abcdef", "--store", store],
        vec!["exemptions", "list", "--store", store],
    ] {
        let out = std::process::Command::new(BIN).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("no receiver index at") && err.contains("no-such-store"), "{args:?}: {err}");
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_an_endpoint_does_not_take_is_a_problem_document_with_allow() {
    let s = Server::start(&[]);
    let c = s.client();
    for (method, path, allow) in [
        (reqwest::Method::PUT, "/admin/v1/installs", "GET"),
        (reqwest::Method::DELETE, "/admin/v1/installs/x", "GET"),
        (reqwest::Method::POST, "/metrics", "GET"),
        (reqwest::Method::GET, "/v1/exports", "POST"),
        (reqwest::Method::GET, "/v1/bundles", "POST"),
    ] {
        let resp = c.request(method.clone(), format!("{}{path}", s.base)).send().await.unwrap();
        let allowed = resp.headers().get("allow").map(|v| v.to_str().unwrap().to_string());
        assert!(
            allowed.as_deref().is_some_and(|a| a.contains(allow)),
            "{method} {path}: Allow {allowed:?}: {} {:?}",
            resp.status(),
            resp.headers()
        );
        let detail = expect_problem(resp, 405).await;
        assert!(detail.contains(allow), "{method} {path}: {detail}");
    }
}
