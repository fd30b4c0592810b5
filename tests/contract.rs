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

mod common;

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

/// The served document and what the checks need from it.
struct Contract {
    doc: Value,
}

/// One request to send.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    body: Option<String>,
    content_type: &'static str,
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// How the agent's problem detail starts when a body is well-formed JSON of the wrong shape
/// (the words of the document's generic 422).
const NOT_PER_SCHEMA: &str = "the body does not fit the schema";

impl Contract {
    fn fetch(api: &AgentApi) -> Contract {
        let a = api.send("GET", "/api/openapi.json", &[], None);
        assert_eq!(a.status, 200);
        Contract { doc: a.json() }
    }

    /// `#/components/schemas/X` followed (once; schemas here refer to components only).
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap();
                self.resolve(&self.doc["components"]["schemas"][name])
            }
            None => schema,
        }
    }

    /// Every (path, method, operation) of the document.
    fn operations(&self) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for m in METHODS {
                if let Some(op) = item.get(m) {
                    out.push((path.clone(), m.to_string(), op.clone()));
                }
            }
        }
        out
    }

    /// Checks a JSON value against a schema of this document (2020-12, `$ref`s into it).
    fn violations(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut root = schema.clone();
        if let Some(o) = root.as_object_mut() {
            o.insert("components".into(), self.doc["components"].clone());
            o.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
        } else {
            return Vec::new(); // `true`/`false` schemas: nothing to check here
        }
        let v = jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("a schema of the document does not compile: {e}: {root}"));
        v.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect()
    }
}

/// Strategies for values of a schema.
fn strategy(c: &Contract, schema: &Value, depth: u32) -> BoxedStrategy<Value> {
    let s = c.resolve(schema).clone();
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return proptest::sample::select(e.clone()).boxed();
    }
    if let Some(v) = s.get("const") {
        return Just(v.clone()).boxed();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let alts: Vec<BoxedStrategy<Value>> = alts.iter().map(|a| strategy(c, a, depth)).collect();
            return proptest::strategy::Union::new(alts).boxed();
        }
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        return strategy(c, &all[0], depth);
    }
    let types: Vec<String> = match s.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => vec![if s.get("properties").is_some() { "object".into() } else { "any".into() }],
    };
    let alts: Vec<BoxedStrategy<Value>> = types.iter().map(|t| of_type(c, &s, t, depth)).collect();
    proptest::strategy::Union::new(alts).boxed()
}

fn of_type(c: &Contract, s: &Value, t: &str, depth: u32) -> BoxedStrategy<Value> {
    match t {
        "null" => Just(Value::Null).boxed(),
        "boolean" => any::<bool>().prop_map(Value::from).boxed(),
        "integer" => {
            let lo = s.get("minimum").and_then(Value::as_i64).unwrap_or(-1000);
            let hi = s.get("maximum").and_then(Value::as_i64).unwrap_or(lo.max(0) + 100_000);
            (lo..=hi).prop_map(Value::from).boxed()
        }
        "number" => (-1000.0f64..1000.0).prop_map(Value::from).boxed(),
        "string" => {
            let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            let pattern = match s.get("pattern").and_then(Value::as_str) {
                Some(p) => p.trim_start_matches('^').trim_end_matches('$').to_string(),
                None => format!("[a-zA-Z0-9 _.:/%-]{{{min},16}}"),
            };
            proptest::string::string_regex(&pattern).unwrap().prop_map(Value::from).boxed()
        }
        "array" if depth < 3 => {
            let item = s.get("items").cloned().unwrap_or(json!({}));
            proptest::collection::vec(strategy(c, &item, depth + 1), 0..3).prop_map(Value::from).boxed()
        }
        "object" if depth < 3 => {
            let props = s.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
            let required: Vec<String> = s
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                .unwrap_or_default();
            let mut fields: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
            for (name, ps) in props {
                let value = strategy(c, &ps, depth + 1);
                let n = name.clone();
                if required.contains(&name) {
                    fields.push(value.prop_map(move |v| Some((n.clone(), v))).boxed());
                } else {
                    fields.push(proptest::option::of(value.prop_map(move |v| (n.clone(), v))).boxed());
                }
            }
            fields.prop_map(|fs| Value::Object(fs.into_iter().flatten().collect())).boxed()
        }
        _ => Just(json!({})).boxed(),
    }
}

/// A value a URL parameter of `schema` must refuse (not a number where one is wanted, outside
/// its enum or pattern), if there is one: in a URL everything is text, so only what the text
/// itself breaks counts.
fn wrong_in_url(c: &Contract, schema: &Value) -> Option<Value> {
    ["not-a-valid-value", "1.5", "true", "-1", ""]
        .into_iter()
        .map(Value::from)
        .find(|v| !c.violations(schema, &text_or_number(schema, v)).is_empty())
}

/// A value of the wrong type for `schema` (or one outside its enum or pattern), if there is one.
fn wrong_for(c: &Contract, schema: &Value) -> Option<Value> {
    let s = c.resolve(schema);
    let types: Vec<&str> = match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    let candidates = [json!("not-a-valid-value"), json!(12345), json!(true), json!([1]), json!({"x": 1}), json!(1.5)];
    candidates.into_iter().find(|v| {
        // A free-form string schema takes any string: no string candidate can violate it.
        let any_string =
            types.contains(&"string") && s.get("enum").is_none() && s.get("pattern").is_none() && v.is_string();
        if any_string {
            return false;
        }
        !c.violations(schema, v).is_empty()
    })
}

/// A query or path value as text.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a generated case is: valid against the document, or not (and how).
#[derive(Debug, Clone)]
enum Kind {
    Valid,
    Invalid(String),
}

/// Builds a call for `op` from generated parameter values and body.
fn build(path: &str, method: &str, op: &Value, params: &BTreeMap<String, Value>, body: Option<&Value>) -> Call {
    let mut p = path.to_string();
    let mut query = Vec::new();
    for prm in op["parameters"].as_array().into_iter().flatten() {
        let name = prm["name"].as_str().unwrap();
        let Some(v) = params.get(name) else { continue };
        match prm["in"].as_str() {
            Some("path") => p = p.replace(&format!("{{{name}}}"), &encode(&text(v))),
            Some("query") => query.push(format!("{name}={}", encode(&text(v)))),
            _ => {}
        }
    }
    if !query.is_empty() {
        p = format!("{p}?{}", query.join("&"));
    }
    let form = op["requestBody"]["content"].get("application/x-www-form-urlencoded").is_some();
    let (body, content_type) = match body {
        Some(b) if form => (
            Some(
                b.as_object()
                    .map(|o| o.iter().map(|(k, v)| format!("{k}={}", encode(&text(v)))).collect::<Vec<_>>().join("&"))
                    .unwrap_or_default(),
            ),
            "application/x-www-form-urlencoded",
        ),
        Some(b) => (Some(b.to_string()), "application/json"),
        None => (None, "application/json"),
    };
    Call { method: method.to_uppercase(), path: p, body, content_type }
}

/// Sends a call with the write token; an event stream is read up to its head only. `Err` when
/// the connection ends without an answer.
fn send(api: &AgentApi, call: &Call, streaming: bool) -> Result<Answer, String> {
    send_as(api, Some(&api.token), call, streaming)
}

fn send_as(api: &AgentApi, token: Option<&str>, call: &Call, streaming: bool) -> Result<Answer, String> {
    let what = format!("{} {}", call.method, call.path);
    let mut s = TcpStream::connect(("127.0.0.1", api.port)).map_err(|e| format!("{what}: connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = call.body.clone().unwrap_or_default();
    let mut req = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        call.method,
        call.path,
        api.host(),
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if call.body.is_some() {
        req.push_str(&format!("Content-Type: {}\r\n", call.content_type));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("{what}: write: {e}"))?;
    // The server may answer (413) before taking the whole body.
    let _ = s.write_all(body.as_bytes());
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if streaming && buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A reset after the answer (the body was not all read) ends it too.
            Err(_) if buf.windows(4).any(|w| w == b"\r\n\r\n") => break,
            Err(e) => return Err(format!("no answer to {what}: {e}")),
        }
    }
    if !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(format!("no answer to {what} (the connection closed)"));
    }
    let mut a = parse_answer(&buf);
    if streaming {
        a.body.clear();
    }
    Ok(a)
}

/// The mismatches one answer shows (empty when it keeps the contract).
fn check(c: &Contract, op: &Value, call: &Call, kind: &Kind, a: &Answer) -> Vec<String> {
    let mut out = Vec::new();
    let what = format!("{} {} ({kind:?})", call.method, call.path);
    let code = a.status.to_string();
    let Some(resp) = op["responses"].get(&code).or_else(|| op["responses"].get("default")) else {
        out.push(format!("undeclared status {code}: {what}: {}", a.text()));
        return out;
    };
    let detail = serde_json::from_slice::<Value>(&a.body).ok().and_then(|v| v["detail"].as_str().map(String::from));
    let not_per_schema = a.status == 422 && detail.is_some_and(|d| d.starts_with(NOT_PER_SCHEMA));
    if a.status >= 500 && a.status != 503 {
        out.push(format!("server error {code}: {what}: {}", a.text()));
    }
    match kind {
        Kind::Valid if matches!(a.status, 400 | 415) || not_per_schema => {
            out.push(format!("schema-valid request rejected with {code}: {what}: {}", a.text()));
        }
        Kind::Invalid(how) if (200..300).contains(&a.status) => {
            out.push(format!("schema-violating request accepted ({how}) with {code}: {what}"));
        }
        _ => {}
    }
    let ctype = a.header("content-type").unwrap_or("").split(';').next().unwrap_or("").trim().to_string();
    let content = &resp["content"];
    if content.is_object() && !a.body.is_empty() {
        match content.get(&ctype) {
            None => out.push(format!(
                "answered {ctype:?}, declared {:?}: {what}",
                content.as_object().unwrap().keys().collect::<Vec<_>>()
            )),
            Some(media) if ctype.ends_with("json") => {
                if let Some(schema) = media.get("schema") {
                    let body: Value = match serde_json::from_slice(&a.body) {
                        Ok(v) => v,
                        Err(e) => {
                            out.push(format!("{ctype} that is not JSON ({e}): {what}"));
                            return out;
                        }
                    };
                    for v in c.violations(schema, &body) {
                        out.push(format!("response {code} violates its schema: {v}: {what}: {body}"));
                    }
                }
            }
            Some(_) => {}
        }
    } else if !content.is_object() && a.status >= 400 {
        out.push(format!("error {code} without a declared problem document: {what}"));
    }
    out
}

/// Values seen in the agent's answers (ids, file names), by the parameter name they fit; path
/// parameters draw on them as well as on their schemas, so item routes are reached with items
/// that exist, not only with ones that do not.
#[derive(Default)]
struct Seen(BTreeMap<String, Vec<Value>>);

impl Seen {
    fn learn(&mut self, v: &Value) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    let key = match k.as_str() {
                        "id" | "bundle" => "id",
                        "file" => "file",
                        "name" => "name",
                        _ => "",
                    };
                    if !key.is_empty() && (x.is_string() || x.is_u64()) {
                        let known = self.0.entry(key.to_string()).or_default();
                        if !known.contains(x) && known.len() < 50 {
                            known.push(x.clone());
                        }
                    }
                    self.learn(x);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| self.learn(x)),
            _ => {}
        }
    }
}

/// A parameter's schema as the generator reads it: a path parameter is never empty.
fn param_schema(c: &Contract, p: &Value) -> Value {
    let mut schema = c.resolve(&p["schema"]).clone();
    if p["in"] == "path" && schema["type"] == "string" && schema.get("minLength").is_none() {
        schema["minLength"] = json!(1);
    }
    schema
}

/// The cases for one operation: valid ones generated from its schemas, then invalid ones, each
/// made by breaking one thing of a valid one (a parameter or a body field of the wrong type, a
/// required field left out, an unknown field, a body of the wrong type).
fn cases(
    c: &Contract,
    path: &str,
    method: &str,
    op: &Value,
    seen: &Seen,
    runner: &mut TestRunner,
    n: usize,
) -> Vec<(Call, Kind)> {
    let params: Vec<Value> = op["parameters"].as_array().cloned().unwrap_or_default();
    let body_schema =
        op["requestBody"]["content"].as_object().and_then(|m| m.values().next()).and_then(|m| m.get("schema")).cloned();
    let mut out = Vec::new();
    for _ in 0..n {
        let mut values = BTreeMap::new();
        for p in &params {
            let name = p["name"].as_str().unwrap().to_string();
            let required = p["required"].as_bool().unwrap_or(false);
            let schema = param_schema(c, p);
            let mut st = strategy(c, &schema, 0);
            let known: Vec<Value> = seen
                .0
                .get(&name)
                .into_iter()
                .flatten()
                .filter(|v| p["in"] == "path" && c.violations(&schema, &text_or_number(&schema, v)).is_empty())
                .cloned()
                .collect();
            if !known.is_empty() {
                st = prop_oneof![st, proptest::sample::select(known)].boxed();
            }
            let v = generate(c, &schema, &st, runner);
            if required || any::<bool>().new_tree(runner).unwrap().current() {
                values.insert(name, v);
            }
        }
        let body = body_schema.as_ref().map(|s| generate(c, s, &strategy(c, s, 0), runner));
        out.push((build(path, method, op, &values, body.as_ref()), Kind::Valid));
        // Invalid: a parameter of the wrong type.
        for p in &params {
            let name = p["name"].as_str().unwrap();
            if let Some(bad) = wrong_in_url(c, &param_schema(c, p)) {
                if p["in"] == "path" && text(&bad).is_empty() {
                    continue;
                }
                let mut vs = values.clone();
                vs.insert(name.to_string(), bad.clone());
                out.push((build(path, method, op, &vs, body.as_ref()), Kind::Invalid(format!("{name}={bad}"))));
            }
        }
        let (Some(schema), Some(b)) = (&body_schema, &body) else { continue };
        if op["requestBody"]["content"].get("application/json").is_none() {
            continue;
        }
        // Invalid: the body of the wrong type.
        if let Some(bad) = wrong_for(c, schema) {
            out.push((build(path, method, op, &values, Some(&bad)), Kind::Invalid(format!("body {bad}"))));
        }
        let resolved = c.resolve(schema);
        let Some(obj) = b.as_object() else { continue };
        let mut broken: Vec<(Value, String)> = Vec::new();
        // One field of the wrong type.
        for (k, ps) in resolved.get("properties").and_then(Value::as_object).into_iter().flatten() {
            if let Some(bad) = wrong_for(c, ps) {
                let mut o = obj.clone();
                o.insert(k.clone(), bad.clone());
                broken.push((Value::Object(o), format!("{k}: {bad}")));
            }
        }
        // A required field left out.
        for k in resolved.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            let mut o = obj.clone();
            o.remove(k);
            broken.push((Value::Object(o), format!("without {k}")));
        }
        // A field the schema does not know.
        let mut o = obj.clone();
        o.insert("unknown_field".into(), json!(1));
        broken.push((Value::Object(o), "an unknown field".into()));
        for (o, how) in broken {
            // Only what the schema really refuses counts as invalid.
            if !c.violations(schema, &o).is_empty() {
                out.push((build(path, method, op, &values, Some(&o)), Kind::Invalid(how)));
            }
        }
    }
    out
}

/// A value of `schema` from `st`: the strategies read regular expressions the way Rust does, the
/// document the way JSON Schema does (ECMA-262: `\\s` takes a few more characters), so a value
/// is drawn again until the schema takes it.
fn generate(c: &Contract, schema: &Value, st: &BoxedStrategy<Value>, runner: &mut TestRunner) -> Value {
    let mut last = Vec::new();
    for _ in 0..50 {
        let v = st.new_tree(runner).unwrap().current();
        let typed = text_or_number(schema, &v);
        last = c.violations(schema, &typed);
        if last.is_empty() {
            return v;
        }
    }
    panic!("no value of {schema} in 50 tries: {last:?}");
}

/// A value as a URL carries it, typed the way `schema` reads it (a number stays a number).
fn text_or_number(schema: &Value, v: &Value) -> Value {
    match (v, schema["type"].as_str()) {
        (Value::String(s), Some("integer")) => s.parse::<i64>().map(Value::from).unwrap_or_else(|_| v.clone()),
        (Value::String(s), Some("number")) => s.parse::<f64>().map(Value::from).unwrap_or_else(|_| v.clone()),
        (Value::Number(n), Some("string")) => Value::from(n.to_string()),
        _ => v.clone(),
    }
}

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
        let call = Call { method: "GET".into(), path: href.clone(), body: None, content_type: "" };
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
            let call = Call {
                method: m.clone(),
                path: concrete.clone(),
                body: Some("{}".into()),
                content_type: "application/json",
            };
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
    let call = Call {
        method: "POST".into(),
        path: "/api/v1/collect".into(),
        body: Some(r#"{"program": "nope"}"#.into()),
        content_type: "application/json",
    };
    let answer = send(&a, &call, false).unwrap();
    assert_eq!(
        check(&c, op(&c, "/api/v1/collect", "post"), &call, &Kind::Invalid("program".into()), &answer),
        Vec::<String>::new()
    );
    let started = a.call("POST", "/api/v1/collect", Some("{}"));
    let done = a.job(&started);
    let call = Call { method: "GET".into(), path: done["href"].as_str().unwrap().into(), body: None, content_type: "" };
    let answer = send(&a, &call, false).unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(check(&c, op(&c, "/api/v1/jobs/{id}", "get"), &call, &Kind::Valid, &answer), Vec::<String>::new());
}

#[test]
fn put_on_a_get_only_route_answers_405_with_allow() {
    let a = RunningAgent::offline("");
    let call = Call {
        method: "PUT".into(),
        path: "/api/v1/status".into(),
        body: Some("{}".into()),
        content_type: "application/json",
    };
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
    let call = Call {
        method: "POST".into(),
        path: "/api/v1/quarantine/no-such-bundle/retry".into(),
        body: None,
        content_type: "",
    };
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
        let call = Call {
            method: method.to_uppercase(),
            path: path.replace("{name}", "ceip"),
            body: Some(body.into()),
            content_type: "application/json",
        };
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
        let call = Call { method: "GET".into(), path: format!("/api/v1/history?{q}"), body: None, content_type: "" };
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
    let call = Call {
        method: "POST".into(),
        path: "/api/v1/import-receipt".into(),
        body: Some(big),
        content_type: "application/json",
    };
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
    let get = |path: &str| Call { method: "GET".into(), path: path.into(), body: None, content_type: "" };
    let status = op(&c, "/api/v1/status", "get");
    let collect = op(&c, "/api/v1/collect", "post");
    let post = Call {
        method: "POST".into(),
        path: "/api/v1/collect".into(),
        body: Some("{}".into()),
        content_type: "application/json",
    };
    let seen = |v: Vec<String>, what: &str| {
        assert!(v.iter().any(|m| m.contains(what)), "{what:?} not seen in {v:?}");
    };
    // 1: a status the operation does not declare.
    seen(check(&c, status, &get("/api/v1/status"), &Kind::Valid, &problem(418, "teapot")), "undeclared status 418");
    // 2: an undeclared method answered otherwise than 405 with Allow.
    let put = Call { method: "PUT".into(), path: "/api/v1/status".into(), body: None, content_type: "" };
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
