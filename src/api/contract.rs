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
                (422, "the body does not fit the schema"),
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
    for (code, resp) in responses.iter_mut() {
        if code.parse::<u16>().is_ok_and(|c| c >= 400) && resp.get("content").is_none() {
            resp["content"] = json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
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
    if schemas["TokenRequest"].is_object() {
        schemas["TokenRequest"]["properties"]["token"]["pattern"] = json!(NOT_BLANK);
    }
}
