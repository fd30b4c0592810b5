//! The localhost REST API over a real socket, against a real running agent: every endpoint, each
//! security rule as its own test, bad input, concurrency, and the CLI as its client.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::http::*;
use common::*;
use serde_json::Value;

#[test]
fn the_done_when_requests_are_answered_and_refused_as_they_should() {
    let api = RunningAgent::offline("");
    let st = api.get("/api/v1/status");
    assert_eq!(st.status, 200);
    assert_eq!(st.json()["compliance"]["state"], "ok");
    let auth = format!("Bearer {}", api.token);
    let evil_host = api.raw("GET", "/api/v1/status", &[("Host", "evil.test"), ("Authorization", &auth)], b"");
    let evil_origin =
        api.send("GET", "/api/v1/status", &[("Authorization", &auth), ("Origin", "https://evil.test")], None);
    let no_token = api.send("GET", "/api/v1/status", &[], None);
    assert_eq!((evil_host.status, evil_origin.status, no_token.status), (403, 403, 401));
    assert!(is_problem(&evil_host) && is_problem(&evil_origin) && is_problem(&no_token));
    assert_eq!(no_token.header("www-authenticate"), Some("Bearer"));

    for on in [false, true] {
        let r = api.call("PUT", "/api/v1/programs/ceip", Some(&format!("{{\"enabled\": {on}}}")));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(api.s.status()["programs"][2]["enabled"], on, "callhome status --json agrees at once");
        assert_eq!(api.get("/api/v1/status").json()["programs"][2]["enabled"], on);
    }
    let out = api.s.cli(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("CALLHOME OK - "), "{}", stdout(&out));
    let diag = api.call("POST", "/api/v1/diagnostics/connection", Some("{}"));
    assert_eq!(diag.status, 200);
    let last = diag.json().as_array().unwrap().last().cloned().unwrap();
    assert_eq!(
        (last["step"].as_str(), last["ok"].as_bool()),
        (Some("tcp"), Some(false)),
        "nothing listens on port 9: {last}"
    );
    let out = api.s.cli(&["check", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["code"].as_u64(), v["state"].as_str()), (Some(0), Some("ok")));
}

#[test]
fn each_security_rule_holds() {
    let api = RunningAgent::offline("");
    let host = api.host();
    let w = format!("Bearer {}", api.token);
    let cases: Vec<(&str, Answer, u16)> = vec![
        ("bad token", api.call_with("00", "GET", "/api/v1/status", None), 401),
        ("token in the query", api.send("GET", &format!("/api/v1/status?token={}", api.token), &[], None), 400),
        ("basic auth", api.send("GET", "/api/v1/status", &[("Authorization", "Basic YTpi")], None), 401),
        (
            "read token on a mutation",
            api.call_with(&api.read_token, "PUT", "/api/v1/programs/ceip", Some("{\"enabled\":false}")),
            403,
        ),
        ("read token may read", api.call_with(&api.read_token, "GET", "/api/v1/status", None), 200),
        ("empty Host", api.raw("GET", "/api/v1/status", &[("Host", ""), ("Authorization", &w)], b""), 403),
        (
            "Host with another port",
            api.raw("GET", "/api/v1/status", &[("Host", "127.0.0.1:1"), ("Authorization", &w)], b""),
            403,
        ),
        (
            "localhost Host",
            api.raw(
                "GET",
                "/api/v1/status",
                &[("Host", &format!("localhost:{}", api.port)), ("Authorization", &w)],
                b"",
            ),
            200,
        ),
        (
            "foreign Origin on a mutation",
            api.send("POST", "/api/v1/collect", &[("Authorization", &w), ("Origin", "http://evil.test")], Some("{}")),
            403,
        ),
        (
            "own Origin",
            api.send("GET", "/api/v1/status", &[("Authorization", &w), ("Origin", &api.origin())], None),
            200,
        ),
        (
            "text/plain POST",
            api.raw(
                "POST",
                "/api/v1/collect",
                &[("Host", &host), ("Authorization", &w), ("Content-Type", "text/plain")],
                b"{}",
            ),
            415,
        ),
        (
            "form POST",
            api.raw(
                "POST",
                "/api/v1/collect",
                &[("Host", &host), ("Authorization", &w), ("Content-Type", "application/x-www-form-urlencoded")],
                b"a=b",
            ),
            415,
        ),
        ("oversized body", api.call("PUT", "/api/v1/programs/ceip", Some(&" ".repeat(1_200_000))), 413),
        ("healthz needs no token", api.send("GET", "/healthz", &[], None), 200),
        ("healthz still checks Host", api.raw("GET", "/healthz", &[("Host", "evil.test")], b""), 403),
        ("metrics need a token", api.send("GET", "/metrics", &[], None), 401),
        ("an unknown route still checks Host", api.raw("GET", "/nosuch", &[("Host", "evil.test")], b""), 403),
        ("an unknown route needs a token", api.send("GET", "/nosuch", &[], None), 401),
    ];
    for (what, a, want) in &cases {
        assert_eq!(a.status, *want, "{what}: {}", a.text());
        assert!(
            a.headers.iter().all(|(k, _)| !k.to_ascii_lowercase().starts_with("access-control-")),
            "{what}: CORS header sent"
        );
        assert_eq!(a.header("x-frame-options"), Some("DENY"), "{what}");
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"), "{what}");
        assert!(a.header("content-security-policy").is_some_and(|c| c.contains("frame-ancestors 'none'")), "{what}");
        if a.status >= 400 && a.status != 413 {
            assert!(is_problem(a), "{what}: not a problem document");
        }
    }
    let meta = std::fs::metadata(api.s.data.join("api-token")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
    assert_ne!(api.token, api.read_token);
    assert_eq!(api.token.len(), 64, "256 bits, hex");
}

#[test]
fn bad_input_gets_4xx_never_5xx() {
    let api = RunningAgent::offline("");
    for (method, path, body, want) in [
        ("PUT", "/api/v1/programs/ceip", "{\"enabled\": ", 400),
        ("PUT", "/api/v1/programs/ceip", "{\"enabled\": \"yes\"}", 422),
        ("PUT", "/api/v1/programs/ceip", "{\"enabled\": true, \"extra\": 1}", 422),
        ("PUT", "/api/v1/programs/ceip", "{}", 422),
        ("PUT", "/api/v1/programs/ceip", "{\"mode\": \"manual\"}", 409),
        ("PUT", "/api/v1/programs/telemetry", "{\"enabled\": false}", 409),
        ("PUT", "/api/v1/programs/telemetry", "{\"mode\": \"sometimes\"}", 422),
        ("PUT", "/api/v1/programs/nosuch", "{\"enabled\": true}", 404),
        ("POST", "/api/v1/upload", "[]", 422),
        ("POST", "/api/v1/collect", "{\"program\": \"nosuch\"}", 422),
        ("GET", "/api/v1/history?limit=many", "", 400),
        ("GET", "/api/v1/history?sort=up", "", 400),
        ("GET", "/api/v1/jobs/notanumber", "", 400),
        ("GET", "/api/v1/jobs/999", "", 404),
        ("GET", "/api/v1/bundles/nope.zip", "", 404),
        ("GET", "/api/v1/bundles/..%2F..%2Fstate.sqlite/raw", "", 404),
        ("GET", "/api/v1/usage?since=yesterday", "", 400),
        ("GET", "/api/v1/nosuch", "", 404),
        ("DELETE", "/api/v1/status", "", 405),
    ] {
        let a = api.call(method, path, (!body.is_empty()).then_some(body));
        assert_eq!(a.status, want, "{method} {path} {body}: {}", a.text());
        assert!(is_problem(&a), "{method} {path}: {}", a.text());
    }
    let a = api.call("PUT", "/api/v1/programs/telemetry", Some("{\"enabled\": false}"));
    assert!(a.json()["detail"].as_str().unwrap().contains("mandatory"));
}

#[test]
fn every_endpoint_answers_and_the_openapi_document_lists_them_all() {
    let api = RunningAgent::with_receiver("");
    // Collect, then upload, as jobs.
    let done = api.job(&api.call("POST", "/api/v1/collect", Some("{\"program\": \"telemetry\"}")));
    assert_eq!(done["state"], "succeeded", "{done}");
    let bundles = api.get("/api/v1/bundles").json();
    let id = bundles.as_array().unwrap().iter().find(|b| b["program"] == "telemetry").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = api.get(&format!("/api/v1/bundles/{id}")).json();
    assert_eq!(manifest["program"], "telemetry");
    let file = api.get(&format!("/api/v1/bundles/{id}/files/deployment.json"));
    let sha = manifest["files"].as_array().unwrap().iter().find(|f| f["name"] == "deployment.json").unwrap()["sha256"]
        .clone();
    assert_eq!(Value::from(callhome::fsutil::sha256_hex(&file.body)), sha, "the exact bytes of the file");
    let raw = api.get(&format!("/api/v1/bundles/{id}/raw"));
    assert_eq!(raw.header("content-type"), Some("application/zip"));
    assert_eq!(raw.header("x-bundle-sha256"), Some(callhome::fsutil::sha256_hex(&raw.body).as_str()));

    let up = api.job(&api.call("POST", "/api/v1/upload", Some("{}")));
    assert_eq!(up["state"], "succeeded", "{up}");
    assert_eq!(up["result"]["ok"], true);
    let ledger = api.get("/api/v1/ledger").json();
    assert!(ledger.as_array().unwrap().iter().any(|r| r["bundle"] == id.as_str() && r["event"] == "sent"), "{ledger}");
    let page = api.get("/api/v1/history?limit=1").json();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_offset"], 1);
    assert_eq!(api.get("/api/v1/programs").json().as_array().unwrap().len(), 4);
    assert!(api.get("/api/v1/licenses").json()["licenses"].is_array());
    assert!(api.get("/api/v1/usage").json().is_array());
    let metrics = String::from_utf8(api.get("/metrics").body).unwrap();
    for m in [
        "callhome_compliance_days_remaining 90",
        "callhome_spool_pending_bundles",
        "callhome_uploads_total{program=\"telemetry\",code=\"CTX_UPLOADER_SUCCESS\"}",
        "callhome_last_success_timestamp_seconds{program=\"telemetry\"}",
    ] {
        assert!(metrics.contains(m), "{m} missing in\n{metrics}");
    }
    assert_eq!(api.get("/healthz").body, b"ok\n");
    // The proxy: chosen without a password (no keyring needed), shown, forgotten.
    let set = api.call("PUT", "/api/v1/proxy", Some(r#"{"url": "http://proxy.example:3128", "username": "agent"}"#));
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(set.json()["origin"], "settings");
    assert_eq!(api.get("/api/v1/proxy").json()["url"], "http://proxy.example:3128");
    let bad = api.call("PUT", "/api/v1/proxy", Some(r#"{"url": "http://u:p@proxy.example:3128"}"#));
    assert_eq!(bad.status, 409, "credentials in the URL are refused");
    let cleared = api.call("DELETE", "/api/v1/proxy", None);
    assert_eq!((cleared.status, cleared.json()["url"].clone()), (200, Value::Null));
    assert_eq!(api.call("PUT", "/api/v1/registration", Some(r#"{"token": "  "}"#)).status, 422);
    let unregistered = api.call("DELETE", "/api/v1/registration", None);
    assert_eq!((unregistered.status, unregistered.json()["token_set"].clone()), (200, Value::Bool(false)));

    let doc = api.send("GET", "/api/openapi.json", &[], None).json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "put", "post", "delete"].contains(&m.as_str()))
                .map(move |m| format!("{} {p}", m.to_uppercase()))
        })
        .collect();
    documented.sort();
    let mut served = vec![
        "GET /healthz",
        "GET /metrics",
        "GET /api/openapi.json",
        "GET /api/v1/status",
        "GET /api/v1/programs",
        "PUT /api/v1/programs/{name}",
        "POST /api/v1/collect",
        "POST /api/v1/upload",
        "GET /api/v1/jobs/{id}",
        "GET /api/v1/bundles",
        "GET /api/v1/bundles/{id}",
        "GET /api/v1/bundles/{id}/files/{name}",
        "GET /api/v1/bundles/{id}/raw",
        "GET /api/v1/history",
        "GET /api/v1/ledger",
        "GET /api/v1/licenses",
        "GET /api/v1/usage",
        "GET /api/v1/events",
        "POST /api/v1/export",
        "GET /api/v1/exports/{file}",
        "POST /api/v1/import-receipt",
        "POST /api/v1/support-bundle",
        "POST /api/v1/diagnostics/connection",
        "GET /api/v1/proxy",
        "PUT /api/v1/proxy",
        "DELETE /api/v1/proxy",
        "PUT /api/v1/registration",
        "DELETE /api/v1/registration",
        "DELETE /api/v1/bundles/{id}",
        "GET /api/v1/quarantine",
        "POST /api/v1/quarantine/{id}/retry",
        "DELETE /api/v1/quarantine/{id}",
        "GET /api/v1/ledger/verify",
        "POST /api/v1/dashboard/link",
        "GET /api/v1/alerts",
        "POST /api/v1/alerts/{id}/ack",
        "DELETE /api/v1/alerts/{id}/ack",
        "POST /api/v1/alerts/test",
        "GET /api/v1/notifications",
        "PUT /api/v1/notifications",
        "GET /",
        "GET /login",
        "POST /login",
        "POST /logout",
        "GET /ui/{file}",
    ];
    served.sort();
    assert_eq!(documented, served, "the OpenAPI document and the routes this test exercised differ");
    // And every documented GET without parameters really answers (`/login` needs a code).
    for p in documented
        .iter()
        .filter_map(|r| r.strip_prefix("GET "))
        .filter(|p| !p.contains('{') && !["/api/v1/events", "/login"].contains(p))
    {
        assert_eq!(api.get(p).status, 200, "{p}");
    }
}

#[test]
fn the_event_stream_reports_a_change() {
    let api = RunningAgent::offline("");
    let mut stream = TcpStream::connect(("127.0.0.1", api.port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        stream,
        "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        api.host(),
        api.token
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("200"), "{line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    assert_eq!(api.call("PUT", "/api/v1/programs/ceip", Some("{\"enabled\": false}")).status, 200);
    let mut seen = String::new();
    while !seen.contains("event: state") || !seen.contains("program ceip off") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended: {seen}");
        seen.push_str(&line);
    }
}

#[test]
fn a_hundred_concurrent_toggles_leave_a_consistent_state() {
    let api = RunningAgent::offline("");
    std::thread::scope(|scope| {
        for i in 0..100 {
            let api = &api;
            scope.spawn(move || {
                let r = api.call(
                    "PUT",
                    "/api/v1/programs/call_home",
                    Some(if i % 2 == 0 { "{\"enabled\": false}" } else { "{\"enabled\": true}" }),
                );
                assert_eq!(r.status, 200, "{}", r.text());
            });
        }
    });
    let via_api = api.get("/api/v1/programs").json()[1]["enabled"].clone();
    let via_cli = api.s.status()["programs"][1]["enabled"].clone();
    assert_eq!(via_api, via_cli);
    let snapshot = api.get("/api/v1/status").json()["programs"][1]["enabled"].clone();
    assert_eq!(snapshot, via_api, "the status snapshot agrees with the state");
    // Every withdrawal is in a well-formed ledger.
    assert!(api.s.cli(&["ledger", "verify"]).status.success());
}

#[test]
fn the_cli_works_through_the_running_agent() {
    let api = RunningAgent::with_receiver("");
    let out = api.s.cli(&["programs", "disable", "ceip"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(api.get("/api/v1/programs").json()[2]["enabled"], false);
    let out = api.s.cli(&["collect", "--program", "telemetry"]);
    assert!(stdout(&out).contains("telemetry: collected upload_compliance_"), "{}", stdout(&out));
    let out = api.s.cli(&["preview", "--latest", "--program", "telemetry", "--file", "manifest.json"]);
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["program"], "telemetry");
    let out = api.s.cli(&["preview", "--latest", "--program", "telemetry", "--json"]);
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["manifest"]["program"], "telemetry");
    assert_eq!(p["sha256"].as_str().map(str::len), Some(64));
    let out = api.s.cli(&["upload"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("telemetry: 1 sent"), "{}", stdout(&out));
    let h: Value = serde_json::from_slice(&api.s.cli(&["history", "--json"]).stdout).unwrap();
    assert_eq!(h[0]["code"], "CTX_UPLOADER_SUCCESS");
    let out = api.s.cli(&["programs", "set", "telemetry", "off"]);
    assert_eq!(out.status.code(), Some(7), "refused through the API too: {}", stderr(&out));
}

#[test]
fn check_is_critical_when_the_compliance_clock_is_past_its_limit() {
    let s = Setup::new();
    s.configure_offline("first_upload_delay = \"1h\"\n");
    // An install that has never uploaded, made 100 days ago.
    assert!(s.cli(&["status"]).status.success());
    let path = s.data.join("install.json");
    let mut install: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    install["created_at"] = Value::from(install["created_at"].as_i64().unwrap() - 100 * 86_400);
    std::fs::write(&path, install.to_string()).unwrap();
    let _agent = s.start_agent();
    AgentApi::wait_for(&s);
    let out = s.cli(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("CALLHOME CRITICAL - compliance overdue: 100 days"), "{}", stdout(&out));
    assert!(stdout(&out).contains("10 days overdue"), "{}", stdout(&out));
    // The alert says what happened: nothing was ever reported.
    let log = s.data.join("logs").join("agent.log");
    wait_until(Duration::from_secs(15), "the overdue alert in the agent's log", || {
        std::fs::read_to_string(&log)
            .is_ok_and(|l| l.contains("never reported (installed 100 days ago), 10 days overdue"))
    });
    assert!(!std::fs::read_to_string(&log).unwrap().contains("last reported"));
}

#[test]
fn ipv6_loopback_when_asked_and_api_json_removed_at_shutdown() {
    let s = Setup::new();
    s.configure_offline("[api]\nipv6 = true\n");
    let agent = s.start_agent();
    let AgentApi { port, token, .. } = AgentApi::wait_for(&s);
    let mut stream = TcpStream::connect(("::1", port)).expect("the API listens on [::1]");
    write!(stream, "GET /api/v1/status HTTP/1.1\r\nHost: [::1]:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).unwrap();
    assert_eq!(parse_answer(&buf).status, 200);
    // The IPv4 listener is bound to 127.0.0.1 and nothing else (0A: listening).
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let hex_port = format!(":{port:04X}");
    let listening: Vec<&str> = tcp
        .lines()
        .filter(|l| l.split_whitespace().nth(3) == Some("0A"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|a| a.ends_with(&hex_port))
        .collect();
    assert_eq!(listening, vec![format!("0100007F{hex_port}")]);
    assert!(agent.terminate().success());
    assert!(!s.data.join("api.json").exists(), "api.json goes away with the agent");
}

#[test]
fn manual_reporting_and_support_bundles_through_the_api() {
    let api = RunningAgent::with_receiver("[programs]\ntelemetry_mode = \"manual\"\ncall_home = false\nceip = false\n");
    // The agent trusts the receiver started beside it; its key signs the manual receipt too.
    assert_eq!(
        api.job(&api.call("POST", "/api/v1/collect", Some("{\"program\": \"telemetry\"}")))["state"],
        "succeeded"
    );
    let done = api.job(&api.call("POST", "/api/v1/export", Some("{}")));
    assert_eq!(done["state"], "succeeded", "{done}");
    let href = done["result"]["href"].as_str().unwrap().to_string();
    let zip = api.get(&href);
    assert_eq!((zip.status, zip.header("content-type")), (200, Some("application/zip")));
    let export = api.s.path().join("export.zip");
    std::fs::write(&export, &zip.body).unwrap();
    let receipt = api.s.path().join("receipt.json");
    receiver_ingest(&export, &api.s.path().join("vendor-store"), &api.s.path().join("receiver-signing.pem"), &receipt);
    let text = std::fs::read_to_string(&receipt).unwrap();
    let tampered = text.replacen("\"received_at\": \"", "\"received_at\": \"1", 1);
    assert_ne!(tampered, text);
    let refused = api.call("POST", "/api/v1/import-receipt", Some(&tampered));
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert!(refused.json()["detail"].as_str().unwrap().contains("nothing was changed"));
    assert_eq!(api.s.spool("compliance").len(), 1);
    let ok = api.call("POST", "/api/v1/import-receipt", Some(&text));
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["acknowledged"].as_array().unwrap().len(), 1);
    assert!(api.s.spool("compliance").is_empty());
    assert_eq!(api.get("/api/v1/status").json()["compliance"]["days_since_last_upload"], 0);

    let sb = api.job(&api.call(
        "POST",
        "/api/v1/support-bundle",
        Some("{\"case\": \"77\", \"severity\": 3, \"upload\": true}"),
    ));
    assert_eq!(sb["state"], "succeeded", "{sb}");
    assert!(sb["result"]["receipt_id"].is_string());
    assert_eq!(api.get(sb["result"]["href"].as_str().unwrap()).status, 200);
    assert_eq!(api.call("POST", "/api/v1/support-bundle", Some("{\"case\": \"77\", \"severity\": 9}")).status, 422);
    assert_eq!(api.get("/api/v1/exports/..%2Fstate.sqlite").status, 404);
}

#[test]
fn a_csp_license_locks_call_home_on() {
    let s = Setup::new();
    std::fs::write(
        s.path().join("csp.lic"),
        "FEATURE csp_seat acme 1.0 permanent 5 VENDOR_STRING=\"LT=CSP;TYPE=SUBSCRIPTION\" SIGN=\"AB12\"\n",
    )
    .unwrap();
    s.configure_offline(
        "[programs]\ncall_home = false\n[programs.ceip]\nlocked = true\n[licenses]\nfiles = [\"*.lic\"]\n[[policy.rules]]\nvendor_string = \"LT=CSP\"\nrequire = \"call_home\"\nreason = \"CSP licenses require Call Home\"\nupload_interval = \"24h\"\n",
    );
    let st = s.status();
    assert_eq!(
        (st["programs"][1]["enabled"].as_bool(), st["programs"][1]["locked"].as_bool()),
        (Some(true), Some(true)),
        "{}",
        st["programs"][1]
    );
    assert_eq!(st["programs"][1]["locked_reason"], "CSP licenses require Call Home");
    assert_eq!(st["programs"][1]["upload_interval"], "1day", "the rule makes Call Home upload daily (7d otherwise)");
    assert_eq!(st["programs"][2]["locked"], true, "[programs.ceip] locked = true");
    let out = s.cli(&["programs", "disable", "call_home"]);
    assert_eq!(out.status.code(), Some(7));
    assert!(stderr(&out).contains("CSP licenses require Call Home"), "{}", stderr(&out));

    let agent = s.start_agent();
    let a = AgentApi::wait_for(&s).call("PUT", "/api/v1/programs/call_home", Some("{\"enabled\": false}"));
    assert_eq!(a.status, 409);
    assert!(a.json()["detail"].as_str().unwrap().contains("CSP licenses require Call Home"));
    assert!(agent.terminate().success());
    // Without the license, the rule does not apply.
    std::fs::remove_file(s.path().join("csp.lic")).unwrap();
    let st = s.status();
    assert_eq!(
        (st["programs"][1]["locked"].as_bool(), st["programs"][1]["upload_interval"].as_str()),
        (Some(false), Some("7days"))
    );
}
