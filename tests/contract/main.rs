//! The API against its own OpenAPI document, as a script author relies on it: every operation
//! of the document the agent serves (`/api/openapi.json`, so routes added later are covered
//! without touching this file) is driven with inputs generated from its schemas (proptest),
//! valid and invalid, and every answer is checked for the five kinds of mismatch a contract
//! fuzzer found before:
//!
//! 1. a status code the operation does not declare;
//! 2. a method the path does not declare answered with anything but 405 and `Allow`;
//! 3. a schema-valid request rejected as malformed (400, 415);
//! 4. a response that violates its declared schema (problem documents included);
//! 5. a schema-violating request accepted (2xx).
//!
//! Each kind also has a regression case of its own below, named after what broke.

#[path = "../common/mod.rs"]
mod common;
mod document;
mod generate;
mod wire;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

use common::http::{Answer, parse_answer};
use common::*;
use document::*;
use generate::*;
use wire::*;

fn streaming(op: &Value) -> bool {
    op["responses"]["200"]["content"].get("text/event-stream").is_some()
}

/// The order a script would go in: reading first (which teaches the ids), then changing,
/// deleting last.
fn order(method: &str) -> u8 {
    match method {
        "get" => 0,
        "post" => 1,
        "put" | "patch" => 2,
        _ => 3,
    }
}

/// The generator's seed: `CONTRACT_SEED` (hex) to replay a run, else a fresh one, printed with
/// any failure.
fn seeded_runner() -> (TestRunner, String) {
    let seed: [u8; 32] = match std::env::var("CONTRACT_SEED") {
        Ok(hex) => {
            let bytes: Vec<u8> =
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
            bytes.try_into().expect("CONTRACT_SEED is 64 hexadecimal digits")
        }
        Err(_) => std::array::from_fn(|_| fastrand::u8(..)),
    };
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
    (TestRunner::new_with_rng(Config::default(), rng), hex)
}

/// Valid cases generated per operation (and the invalid ones made from each): enough to reach
/// every branch the schemas describe, few enough for CI (the whole test takes about a minute).
const CASES_PER_OPERATION: usize = 6;

#[test]
fn every_operation_of_the_served_document_keeps_its_contract() {
    let a = RunningAgent::offline("");
    // Something to point at: pending bundles of every program, a job.
    let job = a.call("POST", "/api/v1/collect", Some("{}"));
    a.job(&job);
    let c = Contract::fetch(&a);
    let (mut runner, seed) = seeded_runner();
    let mut problems = Vec::new();
    let mut seen = Seen::default();
    let mut jobs = Vec::new();
    let mut sent = 0;
    let mut operations = c.operations();
    operations.sort_by_key(|(path, method, _)| (order(method), path.clone()));
    for (path, method, op) in &operations {
        for (call, kind) in cases(&c, path, method, op, &seen, &mut runner, CASES_PER_OPERATION) {
            sent += 1;
            let began = std::time::Instant::now();
            let answer = send(&a, &call, streaming(op));
            if began.elapsed() > Duration::from_secs(2) {
                eprintln!("slow ({:?}): {} {}", began.elapsed(), call.method, call.path);
            }
            let answer = match answer {
                Ok(answer) => answer,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            problems.extend(check(&c, op, &call, &kind, &answer));
            if (200..300).contains(&answer.status) && answer.header("content-type") == Some("application/json") {
                let doc = answer.json();
                if answer.status == 202 {
                    jobs.push(doc["href"].as_str().unwrap_or_default().to_string());
                }
                seen.learn(&doc);
            }
        }
    }
    // Every job started, followed to its end: its document as the document says.
    let job_op = op(&c, "/api/v1/jobs/{id}", "get");
    for href in &jobs {
        let mut last = None;
        wait_until(Duration::from_secs(120), "the jobs to finish", || {
            let answer = a.get(href);
            let running = answer.status == 200 && answer.json()["state"] == "running";
            last = Some(answer);
            !running
        });
        let call = Call::bare("GET", href.clone());
        problems.extend(check(&c, job_op, &call, &Kind::Valid, &last.unwrap()));
    }
    // Methods the document does not declare for a path, with the token and without.
    for (path, item) in c.doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "x").replace("{name}", "ceip").replace("{file}", "x.zip");
        let declared: Vec<String> =
            METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| m.to_uppercase()).collect();
        for m in METHODS.iter().map(|m| m.to_uppercase()).chain(["OPTIONS".to_string()]) {
            if declared.contains(&m) {
                continue;
            }
            let call = Call::json(&m, concrete.clone(), "{}");
            for token in [Some(a.token.as_str()), None] {
                sent += 1;
                match send_as(&a, token, &call, false) {
                    Ok(answer) => problems.extend(undeclared_method(&declared, &call, &answer)),
                    Err(e) => problems.push(e),
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    eprintln!("{sent} requests, {} jobs followed (CONTRACT_SEED={seed})", jobs.len());
    assert!(sent > 300, "only {sent} requests");
    assert!(!jobs.is_empty(), "no job was started");
    assert!(
        problems.is_empty(),
        "{} mismatches in {sent} requests (replay with CONTRACT_SEED={seed}):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Class 2: an undeclared method answers 405 with `Allow` naming exactly the declared ones.
fn undeclared_method(declared: &[String], call: &Call, a: &Answer) -> Vec<String> {
    let what = format!("{} {}", call.method, call.path);
    if a.status != 405 {
        return vec![format!("undeclared method answered {}: {what}: {}", a.status, a.text())];
    }
    let allow: Vec<String> =
        a.header("allow").unwrap_or("").split(',').map(|m| m.trim().to_uppercase()).filter(|m| !m.is_empty()).collect();
    let missing: Vec<&String> = declared.iter().filter(|m| !allow.contains(m)).collect();
    let extra: Vec<&String> = allow.iter().filter(|m| !declared.contains(m) && *m != "HEAD").collect();
    if !missing.is_empty() || !extra.is_empty() {
        return vec![format!("405 with Allow {allow:?}, declared {declared:?}: {what}")];
    }
    Vec::new()
}

// Regression cases, one per class, named after what broke.

fn op<'a>(c: &'a Contract, path: &str, method: &str) -> &'a Value {
    &c.doc["paths"][path][method]
}

#[test]
fn a_job_document_and_the_4xx_of_collect_are_what_the_document_says() {
    let a = RunningAgent::offline("");
    let c = Contract::fetch(&a);
    // Class 1 (an undeclared status) and 4 (a response off its schema): collect refusing a
    // program, and the job it starts, followed to its end.
    let call = Call::json("POST", "/api/v1/collect", r#"{"program": "nope"}"#);
    let answer = send(&a, &call, false).unwrap();
    assert_eq!(
        check(&c, op(&c, "/api/v1/collect", "post"), &call, &Kind::Invalid("program".into()), &answer),
        Vec::<String>::new()
    );
    let started = a.call("POST", "/api/v1/collect", Some("{}"));
    let done = a.job(&started);
    let call = Call::bare("GET", done["href"].as_str().unwrap());
    let answer = send(&a, &call, false).unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(check(&c, op(&c, "/api/v1/jobs/{id}", "get"), &call, &Kind::Valid, &answer), Vec::<String>::new());
}

#[test]
fn put_on_a_get_only_route_answers_405_with_allow() {
    let a = RunningAgent::offline("");
    let call = Call::json("PUT", "/api/v1/status", "{}");
    let answer = send(&a, &call, false).unwrap();
    assert_eq!(undeclared_method(&["GET".into()], &call, &answer), Vec::<String>::new());
    assert!(http::is_problem(&answer), "{}", answer.text());
    // Without a credential too: the method is refused before a token is asked for (it was 401).
    let anonymous = send_as(&a, None, &call, false).unwrap();
    assert_eq!(undeclared_method(&["GET".into()], &call, &anonymous), Vec::<String>::new());
}

#[test]
fn a_post_without_a_body_is_not_asked_for_a_content_type() {
    // quarantine retry takes no body: it answered 415 (undocumented) for want of a
    // Content-Type; an unknown id is the 404 the document lists.
    let a = RunningAgent::offline("");
    let c = Contract::fetch(&a);
    let call = Call::bare("POST", "/api/v1/quarantine/no-such-bundle/retry");
    let answer = send(&a, &call, false).unwrap();
    assert_eq!(answer.status, 404, "{}", answer.text());
    let o = op(&c, "/api/v1/quarantine/{id}/retry", "post");
    assert!(o["responses"]["404"].is_object(), "the document lists the 404");
}

#[test]
fn a_schema_valid_support_bundle_and_registration_are_not_refused_as_malformed() {
    let a = RunningAgent::offline("");
    let c = Contract::fetch(&a);
    for (path, method, body) in [
        ("/api/v1/support-bundle", "post", r#"{"case": "1"}"#),
        ("/api/v1/programs/{name}", "put", r#"{"enabled": true}"#),
        ("/api/v1/registration", "put", r#"{"token": "t"}"#),
    ] {
        let call = Call::json(&method.to_uppercase(), path.replace("{name}", "ceip"), body);
        let o = op(&c, path, method);
        assert!(
            c.violations(
                &o["requestBody"]["content"]["application/json"]["schema"],
                &serde_json::from_str(body).unwrap()
            )
            .is_empty()
        );
        let answer = send(&a, &call, false).unwrap();
        assert_eq!(check(&c, o, &call, &Kind::Valid, &answer), Vec::<String>::new());
    }
}

#[test]
fn history_refuses_a_limit_or_offset_of_the_wrong_type() {
    let a = RunningAgent::offline("");
    let c = Contract::fetch(&a);
    for q in ["limit=abc", "offset=-1", "limit=1.5", "limit=%2B5", "limit=", "offset=1e3"] {
        let call = Call::bare("GET", format!("/api/v1/history?{q}"));
        let answer = send(&a, &call, false).unwrap();
        assert_eq!(answer.status, 400, "{q}: {}", answer.text());
        assert_eq!(
            check(&c, op(&c, "/api/v1/history", "get"), &call, &Kind::Invalid(q.into()), &answer),
            Vec::<String>::new()
        );
    }
}

#[test]
fn an_import_receipt_too_large_is_a_problem_document() {
    let a = RunningAgent::offline("");
    let c = Contract::fetch(&a);
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(2 << 20));
    let call = Call::json("POST", "/api/v1/import-receipt", big);
    let answer = send(&a, &call, false).unwrap();
    assert_eq!(answer.status, 413);
    assert!(http::is_problem(&answer), "{}", answer.text());
    assert_eq!(
        check(&c, op(&c, "/api/v1/import-receipt", "post"), &call, &Kind::Invalid("too large".into()), &answer),
        Vec::<String>::new()
    );
}

#[test]
fn error_bodies_name_no_local_path() {
    let a = RunningAgent::offline("");
    let data = a.s.data.display().to_string();
    let tmp = a.s.path().display().to_string();
    for (m, p, b) in [
        ("GET", "/api/v1/exports/nope.zip", None),
        ("GET", "/api/v1/bundles/nope.zip", None),
        ("GET", "/api/v1/bundles/nope.zip/raw", None),
        ("GET", "/api/v1/bundles/nope.zip/files/x", None),
        ("POST", "/api/v1/import-receipt", Some("{}")),
        ("DELETE", "/api/v1/bundles/nope.zip", None),
    ] {
        let answer = a.call(m, p, b);
        assert!(answer.status >= 400, "{m} {p}");
        let t = answer.text();
        assert!(!t.contains(&data) && !t.contains(&tmp) && !t.contains("/tmp/"), "{m} {p}: {t}");
    }
}

/// The checks themselves, on answers made up to show each class: a contract test that cannot
/// see a mismatch would pass against anything.
#[test]
fn each_class_of_mismatch_is_seen() {
    let a = RunningAgent::offline("");
    let c = Contract::fetch(&a);
    let answer = |status: u16, ctype: &str, body: &str| Answer {
        status,
        headers: vec![("Content-Type".into(), ctype.into())],
        body: body.as_bytes().to_vec(),
    };
    let problem = |status: u16, detail: &str| {
        answer(
            status,
            "application/problem+json",
            &json!({"type": "about:blank", "title": "x", "status": status, "detail": detail}).to_string(),
        )
    };
    let get = |path: &str| Call::bare("GET", path);
    let status = op(&c, "/api/v1/status", "get");
    let collect = op(&c, "/api/v1/collect", "post");
    let post = Call::json("POST", "/api/v1/collect", "{}");
    let seen = |v: Vec<String>, what: &str| {
        assert!(v.iter().any(|m| m.contains(what)), "{what:?} not seen in {v:?}");
    };
    // 1: a status the operation does not declare.
    seen(check(&c, status, &get("/api/v1/status"), &Kind::Valid, &problem(418, "teapot")), "undeclared status 418");
    // 2: an undeclared method answered otherwise than 405 with Allow.
    let put = Call::bare("PUT", "/api/v1/status");
    seen(undeclared_method(&["GET".into()], &put, &problem(401, "no token")), "undeclared method answered 401");
    let mut no_allow = problem(405, "no");
    assert!(!undeclared_method(&["GET".into()], &put, &no_allow).is_empty());
    no_allow.headers.push(("Allow".into(), "GET,HEAD".into()));
    assert_eq!(undeclared_method(&["GET".into()], &put, &no_allow), Vec::<String>::new());
    // 3: a schema-valid request refused as malformed.
    seen(check(&c, collect, &post, &Kind::Valid, &problem(400, "bad")), "schema-valid request rejected");
    seen(
        check(&c, collect, &post, &Kind::Valid, &problem(422, &format!("{NOT_PER_SCHEMA}: program"))),
        "schema-valid request rejected",
    );
    // 4: a response off its schema (the job's id a string; a problem without its detail).
    let job = json!({"id": "1", "kind": "collect", "state": "running", "started_at": "x", "result": null,
        "href": "/api/v1/jobs/1", "finished_at": null, "ok": null});
    seen(
        check(&c, collect, &post, &Kind::Valid, &answer(202, "application/json", &job.to_string())),
        "violates its schema",
    );
    seen(
        check(&c, status, &get("/api/v1/status"), &Kind::Valid, &answer(401, "application/problem+json", "{}")),
        "violates its schema",
    );
    // 5: a schema-violating request accepted.
    let good_job = json!({"id": 1, "kind": "collect", "state": "running", "started_at": "x", "result": null,
        "href": "/api/v1/jobs/1", "finished_at": null, "ok": null});
    let accepted = answer(202, "application/json", &good_job.to_string());
    assert_eq!(check(&c, collect, &post, &Kind::Valid, &accepted), Vec::<String>::new());
    seen(
        check(&c, collect, &post, &Kind::Invalid("program: 1".into()), &accepted),
        "schema-violating request accepted",
    );
}

/// Found by the contract test: jobs started back to back queued on the work lock in the
/// runtime's few blocking threads, took them all, and the job holding the lock waited for one
/// for ever (every later change answered 503 after a minute, and the agent could not stop).
#[test]
fn jobs_started_at_once_do_not_hang_the_agent() {
    let a = RunningAgent::offline("");
    let started: Vec<Answer> = (0..6)
        .flat_map(|_| {
            [
                a.call("POST", "/api/v1/support-bundle", Some(r#"{"case": "1", "upload": true}"#)),
                a.call("POST", "/api/v1/upload", Some("{}")),
                a.call("POST", "/api/v1/export", Some("{}")),
                a.call("POST", "/api/v1/collect", Some("{}")),
            ]
        })
        .collect();
    let began = std::time::Instant::now();
    let changed = a.call("PUT", "/api/v1/programs/ceip", Some(r#"{"enabled": true}"#));
    assert_eq!(changed.status, 200, "{}", changed.text());
    assert!(began.elapsed() < Duration::from_secs(20), "a change waited {:?} behind the jobs", began.elapsed());
    for s in &started {
        let done = a.job(s);
        assert_ne!(done["state"], "running");
    }
}
