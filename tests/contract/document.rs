//! The served OpenAPI document as the contract test reads it, and the check of one answer against it.

use super::*;

/// The served document and what the checks need from it.
pub(crate) struct Contract {
    pub(crate) doc: Value,
}

pub(crate) const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// How the agent's problem detail starts when a body is well-formed JSON of the wrong shape
/// (the words of the document's generic 422).
pub(crate) const NOT_PER_SCHEMA: &str = "the body does not fit the schema";

impl Contract {
    pub(crate) fn fetch(api: &AgentApi) -> Contract {
        let a = api.send("GET", "/api/openapi.json", &[], None);
        assert_eq!(a.status, 200);
        Contract { doc: a.json() }
    }

    /// `#/components/schemas/X` followed (once; schemas here refer to components only).
    pub(crate) fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap();
                self.resolve(&self.doc["components"]["schemas"][name])
            }
            None => schema,
        }
    }

    /// Every (path, method, operation) of the document.
    pub(crate) fn operations(&self) -> Vec<(String, String, Value)> {
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
    pub(crate) fn violations(&self, schema: &Value, value: &Value) -> Vec<String> {
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

/// The mismatches one answer shows (empty when it keeps the contract).
pub(crate) fn check(c: &Contract, op: &Value, call: &Call, kind: &Kind, a: &Answer) -> Vec<String> {
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
