//! The OpenAPI document made exact: what the handlers' annotations cannot say by themselves.
//!
//! utoipa generates the document from the routes; this module completes it, in one place, with
//! what the layers around the handlers answer and with the constraints the handlers enforce:
//! the problem document (RFC 9457) as a schema, every error status an operation can answer
//! (the Host and Origin rule's 403 for all; the credential's 401/403, a token in the URL's 400,
//! the time limit's 503 and an internal 500 for the protected ones; 400/413/415/422 for a body;
//! 400/404 for path parameters; 400 for a query), each with `application/problem+json`, and the
//! value sets the handlers accept (program names, telemetry modes, a non-blank case number).
//! The contract test (`tests/contract.rs`) holds the served document to the API's answers.

use serde_json::{Value, json};

/// Paths served without a credential (`security::public`).
fn public(path: &str) -> bool {
    matches!(path, "/healthz" | "/api/openapi.json" | "/" | "/login") || path.starts_with("/ui/")
}

const PROGRAMS: [&str; 4] = ["telemetry", "call_home", "ceip", "events"];
/// Something other than blanks.
const NOT_BLANK: &str = "\\S";
/// A day, `YYYY-MM-DD`.
const DATE: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";
/// A duration as humantime reads it: numbers with units (`30m`, `1h 30m`, `0s`).
const DURATION: &str = "^([0-9]{1,6} ?(ns|us|ms|s|sec|secs|m|min|mins|h|hr|hrs|d|days|w|weeks) ?)+$";

/// Completes `doc` (the generated OpenAPI document as JSON).
pub fn complete(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    schemas["Problem"] = json!({
        "type": "object",
        "description": "An error (RFC 9457 problem document): what went wrong and what to do.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"}
        }
    });
    constrain(schemas);
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, op) in item.iter_mut() {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            complete_operation(path, op);
        }
    }
}

fn complete_operation(path: &str, op: &mut Value) {
    let mut errors: Vec<(u16, &str)> = vec![(403, "refused: not this agent's address (Host), or a foreign Origin")];
    let params: Vec<String> =
        op["parameters"].as_array().into_iter().flatten().filter_map(|p| p["in"].as_str().map(String::from)).collect();
    if !public(path) {
        errors.extend([
            (400, "a token in the URL, or a malformed request"),
            (401, "no valid credential: Authorization: Bearer <token>, or a dashboard session"),
            (403, "the read-only token cannot change anything, or a session outside the dashboard's pages"),
            (500, "the agent failed; the detail says how"),
            (503, "the request took too long, or a service it needs is unavailable"),
        ]);
    }
    if op.get("requestBody").is_some() {
        errors.push((413, "the body is larger than the limit"));
        if !public(path) {
            errors.extend([
                (400, "the body is not JSON"),
                (415, "send the body as Content-Type: application/json"),
                (422, super::extract::NOT_PER_SCHEMA),
            ]);
        }
    }
    if params.iter().any(|p| p == "path") {
        errors.extend([(400, "a malformed path parameter"), (404, "no such item")]);
    }
    if params.iter().any(|p| p == "query") {
        errors.push((400, "a query parameter of the wrong type or an unknown one"));
    }
    let responses = op["responses"].as_object_mut().expect("every operation has responses");
    for (code, description) in errors {
        responses.entry(code.to_string()).or_insert_with(|| json!({ "description": description }));
    }
    // Every error can be a problem document (the layers around a handler answer with one even
    // where the handler itself answers with a page).
    for (code, resp) in responses.iter_mut() {
        if code.parse::<u16>().is_ok_and(|c| c >= 400) {
            let problem = json!({"schema": {"$ref": "#/components/schemas/Problem"}});
            match resp.get_mut("content").and_then(Value::as_object_mut) {
                Some(content) => {
                    content.entry("application/problem+json").or_insert(problem);
                }
                None => resp["content"] = json!({ "application/problem+json": problem }),
            }
        }
    }
    // A query parameter is left out, never null.
    for p in op["parameters"].as_array_mut().into_iter().flatten() {
        if p["in"] == "query"
            && let Some(types) = p["schema"]["type"].as_array_mut()
        {
            types.retain(|t| t != "null");
            if types.len() == 1 {
                p["schema"]["type"] = types[0].clone();
            }
        }
    }
    // A path parameter that names a program takes only the programs' names.
    if path.contains("/programs/{name}") {
        for p in op["parameters"].as_array_mut().into_iter().flatten() {
            if p["name"] == "name" {
                p["schema"] = json!({"type": "string", "enum": PROGRAMS});
            }
        }
    }
}

/// The value sets and rules the handlers enforce, written into the request schemas.
fn constrain(schemas: &mut Value) {
    let program = json!({"type": ["string", "null"], "enum": [PROGRAMS[0], PROGRAMS[1], PROGRAMS[2], PROGRAMS[3], null],
        "description": "one program; absent or null for every program"});
    for name in ["WorkRequest", "ExportRequest"] {
        if schemas[name].is_object() {
            schemas[name]["properties"]["program"] = program.clone();
        }
    }
    if schemas["ProgramChange"].is_object() {
        schemas["ProgramChange"] = json!({
            "description": "Either turn an optional program on or off, or switch telemetry between automatic and manual reporting.",
            "oneOf": [
                {"type": "object", "required": ["enabled"], "additionalProperties": false,
                 "properties": {"enabled": {"type": "boolean"}}},
                {"type": "object", "required": ["mode"], "additionalProperties": false,
                 "properties": {"mode": {"type": "string", "enum": ["automatic", "manual"]}}}
            ]
        });
    }
    if schemas["SupportRequest"].is_object() {
        schemas["SupportRequest"]["properties"]["case"]["pattern"] = json!(NOT_BLANK);
        schemas["SupportRequest"]["properties"]["severity"] =
            json!({"type": ["integer", "null"], "minimum": 1, "maximum": 4});
    }
    if schemas["ExportRequest"].is_object() {
        schemas["ExportRequest"]["properties"]["max_size"]["minimum"] = json!(1);
    }
    if schemas["AckRequest"].is_object() {
        schemas["AckRequest"]["properties"]["until"]["pattern"] = json!(DATE);
    }
    if schemas["TestAlertRequest"].is_object() {
        schemas["TestAlertRequest"]["properties"]["channel"]["enum"] = json!(["email", "webhook", "journal", null]);
    }
    if schemas["NotificationsRequest"].is_object() {
        schemas["NotificationsRequest"]["properties"]["quiet_period"]["pattern"] = json!(DURATION);
    }
    job_results(schemas);
    if schemas["TokenRequest"].is_object() {
        schemas["TokenRequest"]["properties"]["token"]["pattern"] = json!(NOT_BLANK);
    }
}

/// What a job's `result` is, by its `kind`: null while it runs, `{"error": …}` when it failed,
/// else the kind's document.
fn job_results(schemas: &mut Value) {
    if !schemas["JobDoc"].is_object() {
        return;
    }
    let error = json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}},
        "additionalProperties": false});
    let support = json!({"type": "object", "required": ["file", "href"], "properties": {
        "file": {"type": "string"}, "href": {"type": "string"},
        "receipt_id": {"type": "string", "description": "the receiver's receipt, when it was sent"},
        "error": {"type": "string", "description": "why sending it failed (the file stays in exports/)"}},
        "additionalProperties": false});
    let of = |kind: &str, doc: Value| json!({"properties": {"kind": {"const": kind}, "result": {"anyOf": [{"type": "null"}, error.clone(), doc]}}});
    let job = &mut schemas["JobDoc"];
    job["properties"]["kind"] = json!({"type": "string", "enum": ["collect", "upload", "export", "support-bundle"]});
    job["properties"]["state"] = json!({"type": "string", "enum": ["running", "succeeded", "failed"]});
    job["properties"]["result"] =
        json!({"description": "null while the job runs; then the kind's document, or {\"error\": …}"});
    job["oneOf"] = json!([
        of("collect", json!({"type": "array", "items": {"$ref": "#/components/schemas/CollectedDoc"}})),
        of("upload", json!({"$ref": "#/components/schemas/UploadReportDoc"})),
        of("export", json!({"$ref": "#/components/schemas/ExportDoc"})),
        of("support-bundle", support),
    ]);
}
