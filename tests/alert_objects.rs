//! Alerts as objects, end to end through the real binaries: an expired license's alert
//! acknowledged with `callhome alerts ack` turns `callhome check` from CRITICAL to OK until its
//! date, and back once the date passed (the wall clock moved with libfaketime); an expired line a
//! newer one supersedes raises nothing; the API's alert and notification routes; a test alert on
//! a real webhook server; a supplemental grace period from the license data and the debug log.

mod common;
#[path = "common/alerts.rs"]
mod servers;

use callhome::licenses::date::Date;
use common::*;
use serde_json::Value;
use servers::{WebhookServer, write_license_expiring_in};

fn today() -> Date {
    Date::of_timestamp(callhome::clock::Clock::now(&callhome::clock::SystemClock))
}

fn iso(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
}

fn alerts(s: &Setup) -> Vec<Value> {
    let out = s.cli(&["alerts", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

#[test]
fn acknowledging_an_expired_licenses_alert_turns_check_from_critical_to_ok_until_its_date() {
    let s = Setup::new();
    write_license_expiring_in(s.path(), -3);
    s.configure_offline("[licenses]\nfiles = [\"soon.lic\"]\n");
    let (code, line) = check_at(&s, "+0");
    assert_eq!(code, 2, "{line}");

    let list = alerts(&s);
    assert_eq!(list.len(), 1, "{list:?}");
    let a = &list[0];
    for key in ["id", "kind", "severity", "title", "first_seen", "last_seen", "acked_until"] {
        assert!(a.get(key).is_some(), "{key} in {a}");
    }
    assert_eq!((a["kind"].as_str(), a["severity"].as_str()), (Some("license-expired"), Some("critical")));
    assert_eq!(a["title"], "License trial_addon has expired");
    assert!(a["acked_until"].is_null());
    let id = a["id"].as_str().unwrap();
    assert_eq!(alerts(&s)[0]["id"], id, "the id stays while the condition is open");

    // Bad requests say what is wrong and change nothing.
    let past = s.cli(&["alerts", "ack", id, "--until", "2020-01-01"]);
    assert!(!past.status.success() && stderr(&past).contains("that day is over"), "{}", stderr(&past));
    let shape = s.cli(&["alerts", "ack", id, "--until", "next week"]);
    assert!(!shape.status.success() && stderr(&shape).contains("YYYY-MM-DD"), "{}", stderr(&shape));
    let unknown = s.cli(&["alerts", "ack", "000000000000"]);
    assert!(!unknown.status.success() && stderr(&unknown).contains("no open alert"), "{}", stderr(&unknown));
    assert_eq!(check_at(&s, "+0").0, 2);

    let until = iso(Date::from_days(today().days() + 2));
    let out = s.cli(&["alerts", "ack", id, "--until", &until, "--reason", "renewal ordered"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, line) = check_at(&s, "+0");
    assert_eq!(code, 0, "acknowledged: {line}");
    assert!(line.contains("1 alert(s) acknowledged"), "{line}");
    let a = &alerts(&s)[0];
    assert_eq!((a["acknowledged"].as_bool(), a["ack_reason"].as_str()), (Some(true), Some("renewal ordered")));
    assert_eq!(
        a["acked_until"].as_str(),
        Some(format!("{}T00:00:00Z", iso(Date::from_days(today().days() + 3))).as_str())
    );
    assert_eq!(check_at(&s, "+1d").0, 0, "still within --until a day later");

    // Past --until: CRITICAL again, and the acknowledgement is gone for good.
    let (code, line) = check_at(&s, "+4d");
    assert_eq!(code, 2, "{line}");
    assert_eq!(check_at(&s, "+0").0, 2);
    assert!(alerts(&s)[0]["acked_until"].is_null());

    // Without --until: until it clears; `unack` takes it back.
    assert!(s.cli(&["alerts", "ack", id]).status.success());
    assert_eq!(check_at(&s, "+30d").0, 0);
    let out = s.cli(&["alerts", "unack", id]);
    assert!(out.status.success() && stdout(&out).contains("no longer acknowledged"), "{}", stdout(&out));
    assert_eq!(check_at(&s, "+0").0, 2);
}

#[test]
fn an_expired_line_that_a_newer_line_supersedes_raises_no_alert() {
    let s = Setup::new();
    let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let flex = |d: Date| format!("{}-{}-{}", d.day, months[d.month as usize - 1], d.year);
    let (old, new) = (Date::from_days(today().days() - 200), Date::from_days(today().days() + 300));
    std::fs::write(
        s.path().join("cad.lic"),
        format!(
            "FEATURE cad acme 1.0 {} 5 SIGN=\"A1\"\nINCREMENT cad acme 2.0 {} 5 SIGN=\"A2\"\n",
            flex(old),
            flex(new)
        ),
    )
    .unwrap();
    s.configure_offline("[licenses]\nfiles = [\"cad.lic\"]\n");
    let (code, line) = check_at(&s, "+0");
    assert_eq!(code, 0, "{line}");
    assert!(alerts(&s).is_empty());
}

#[test]
fn alerts_and_notification_settings_over_the_api() {
    let s = Setup::new();
    write_license_expiring_in(s.path(), -3);
    s.configure_offline("[licenses]\nfiles = [\"soon.lic\"]\n[notifications]\nquiet_period = \"12h\"\n");
    let api = RunningAgent::start(s, None);
    let list = api.get("/api/v1/alerts").json();
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert_eq!(list[0]["kind"], "license-expired");

    let bad = api.call("POST", &format!("/api/v1/alerts/{id}/ack"), Some("{\"until\": \"soon\"}"));
    assert_eq!((bad.status, bad.header("content-type")), (422, Some("application/problem+json")), "{}", bad.text());
    assert!(bad.json()["detail"].as_str().unwrap().contains("YYYY-MM-DD"));
    let missing = api.call("POST", "/api/v1/alerts/000000000000/ack", Some("{}"));
    assert_eq!((missing.status, missing.header("content-type")), (404, Some("application/problem+json")));
    let read_only = api.call_with(&api.read_token, "POST", &format!("/api/v1/alerts/{id}/ack"), Some("{}"));
    assert_eq!(read_only.status, 403, "{}", read_only.text());

    let acked = api.call("POST", &format!("/api/v1/alerts/{id}/ack"), Some("{\"reason\": \"known\"}"));
    assert_eq!(acked.status, 200, "{}", acked.text());
    assert_eq!((acked.json()["acknowledged"].as_bool(), acked.json()["acked_until"].is_null()), (Some(true), true));
    let out = api.s.cli(&["check"]);
    assert_eq!(out.status.code(), Some(0), "through the running agent: {}", stdout(&out));
    assert_eq!(api.get("/api/v1/status").json()["alerts"][0]["acknowledged"], true);
    let metrics = api.get("/metrics").text();
    assert!(metrics.contains("callhome_alerts{severity=\"critical\"} 0"), "{metrics}");
    assert!(metrics.contains("callhome_license_events{kind=\"expired\"} 0"), "{metrics}");
    let back = api.call("DELETE", &format!("/api/v1/alerts/{id}/ack"), None);
    assert_eq!((back.status, back.json()["acknowledged"].as_bool()), (200, Some(false)));
    assert_eq!(api.s.cli(&["check"]).status.code(), Some(2));
    assert!(api.get("/metrics").text().contains("callhome_alerts{severity=\"critical\"} 1"));

    let n = api.get("/api/v1/notifications").json();
    assert_eq!((n["enabled"].as_bool(), n["quiet_period"].as_str()), (Some(true), Some("12h")), "{n}");
    assert!(n["channels"].as_array().unwrap().is_empty());
    let off = api.call("PUT", "/api/v1/notifications", Some("{\"enabled\": false, \"quiet_period\": \"30m\"}"));
    assert_eq!(off.status, 200, "{}", off.text());
    let n = api.get("/api/v1/notifications").json();
    assert_eq!((n["enabled"].as_bool(), n["quiet_period_seconds"].as_u64()), (Some(false), Some(1800)));
    let bad = api.call("PUT", "/api/v1/notifications", Some("{\"quiet_period\": \"a while\"}"));
    assert_eq!(bad.status, 422, "{}", bad.text());
    let wrong = api.call("PUT", "/api/v1/notifications", Some("{\"enabled\": \"yes\"}"));
    assert_eq!(wrong.status, 422, "{}", wrong.text());
    assert_eq!(api.get("/api/v1/notifications").json()["enabled"], false, "refusals changed nothing");

    let doc = api.get("/api/openapi.json").json();
    let paths = &doc["paths"];
    for (path, method, codes) in [
        ("/api/v1/alerts", "get", &["200", "401", "500"][..]),
        ("/api/v1/alerts/{id}/ack", "post", &["200", "400", "401", "403", "404", "415", "422", "500"][..]),
        ("/api/v1/alerts/{id}/ack", "delete", &["200", "401", "403", "404", "500"][..]),
        ("/api/v1/alerts/test", "post", &["200", "422"][..]),
        ("/api/v1/notifications", "get", &["200"][..]),
        ("/api/v1/notifications", "put", &["200", "422"][..]),
    ] {
        for code in codes {
            assert!(paths[path][method]["responses"][code].is_object(), "{method} {path} declares {code}");
        }
    }
}

#[test]
fn a_test_alert_reaches_the_webhook_and_is_recorded_and_an_unconfigured_channel_is_refused() {
    let s = Setup::new();
    let hook = WebhookServer::start("Test-Secret-4411");
    s.configure_offline(&format!("[alerts.webhook]\nurl = \"{}\"\nformat = \"json\"\n", hook.url));
    let out =
        s.cli_env(&["alerts", "test", "--channel", "webhook"], &[("CALLHOME_WEBHOOK_SECRET", "Test-Secret-4411")]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("test alert delivered on webhook"), "{}", stdout(&out));
    let hits = hook.hits();
    assert_eq!(hits.len(), 1);
    assert!(hits[0].signature_ok);
    assert_eq!(hits[0].body["kind"], "test", "{}", hits[0].body);
    let c = s.status()["alert_channels"][0].clone();
    assert_eq!((c["name"].as_str(), c["delivered"].as_u64()), (Some("webhook"), Some(1)), "{c}");

    let out = s.cli(&["alerts", "test", "--channel", "email"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("the email channel is not configured: add [alerts.email]"), "{}", stderr(&out));
}

#[test]
fn a_grace_period_starts_with_use_above_capacity_and_counts_down_to_its_end() {
    let s = Setup::new();
    std::fs::write(
        s.path().join("planner.lic"),
        "FEATURE planner globex 3.2 permanent 2 VENDOR_STRING=\"LICENSE_TYPE=floating GRACE=14\" SIGN=\"C0DE\"\n",
    )
    .unwrap();
    let day = Date::from_days(today().days() - 1);
    let mdy = format!("{}/{}/{}", day.month, day.day, day.year);
    std::fs::write(
        s.path().join("globex-debug.log"),
        format!(
            " 9:00:00 (globex) TIMESTAMP {mdy}\n 9:05:00 (globex) OUT: \"planner\" ana@h1\n 9:06:00 (globex) OUT: \"planner\" ben@h2\n 9:07:00 (globex) OUT: \"planner\" cy@h3\n"
        ),
    )
    .unwrap();
    s.configure_offline("[licenses]\nfiles = [\"planner.lic\"]\ndebug_logs = [\"globex-debug.log\"]\n");
    assert!(s.cli(&["usage"]).status.success(), "the debug log is read");

    let out = s.cli(&["licenses", "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let g = &doc["grace_periods"][0];
    let start = format!("{}T09:00:00Z", iso(day));
    let end = format!("{}T09:00:00Z", iso(Date::from_days(day.days() + 14)));
    assert_eq!((g["feature"].as_str(), g["days"].as_u64()), (Some("planner"), Some(14)), "{doc}");
    assert_eq!((g["start"].as_str(), g["end"].as_str()), (Some(start.as_str()), Some(end.as_str())));
    let text = stdout(&s.cli(&["licenses"]));
    assert!(text.contains(&format!("grace period: planner: 14-day grace period from {start} to {end}")), "{text}");

    let st = s.status();
    assert_eq!(st["grace_periods"][0]["start"], start);
    let a = st["alerts"].as_array().unwrap().iter().find(|a| a["kind"] == "license-grace-period").cloned();
    let a = a.unwrap_or_else(|| panic!("a grace-period alert in {}", st["alerts"]));
    assert_eq!(
        (a["severity"].as_str(), a["title"].as_str()),
        (Some("warning"), Some("License planner is in its 14-day grace period"))
    );
    assert!(stdout(&s.cli(&["status"])).contains("grace period: planner"));

    // 7 and 1 days before the end, the alert says so (and the last day is critical).
    let lib = libfaketime().display().to_string();
    let end_ts = callhome::clock::parse_rfc3339(&end).unwrap();
    let now = callhome::clock::Clock::now(&callhome::clock::SystemClock);
    let at = |left_secs: i64| {
        let offset = format!("+{}", end_ts - now - left_secs);
        let env = [("LD_PRELOAD", lib.as_str()), ("FAKETIME", offset.as_str())];
        let out = s.cli_env(&["alerts", "list", "--json"], &env);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        list.as_array().unwrap().iter().find(|a| a["kind"] == "license-grace-period").cloned().unwrap()
    };
    let week = at(6 * 86_400 + 43_200);
    assert_eq!(
        (week["title"].as_str(), week["severity"].as_str()),
        (Some("The grace period for planner ends in 7 days"), Some("warning"))
    );
    let last = at(43_200);
    assert_eq!(
        (last["title"].as_str(), last["severity"].as_str()),
        (Some("The grace period for planner ends tomorrow"), Some("critical"))
    );
}
