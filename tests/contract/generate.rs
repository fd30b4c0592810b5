//! Inputs generated from the document's schemas (proptest): valid cases, and invalid ones made by breaking one thing of a valid one.

use super::*;

/// Strategies for values of a schema.
pub(crate) fn strategy(c: &Contract, schema: &Value, depth: u32) -> BoxedStrategy<Value> {
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

pub(crate) fn of_type(c: &Contract, s: &Value, t: &str, depth: u32) -> BoxedStrategy<Value> {
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
pub(crate) fn wrong_in_url(c: &Contract, schema: &Value) -> Option<Value> {
    ["not-a-valid-value", "1.5", "true", "-1", ""]
        .into_iter()
        .map(Value::from)
        .find(|v| !c.violations(schema, &text_or_number(schema, v)).is_empty())
}

/// A value of the wrong type for `schema` (or one outside its enum or pattern), if there is one.
pub(crate) fn wrong_for(c: &Contract, schema: &Value) -> Option<Value> {
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

/// What a generated case is: valid against the document, or not (and how).
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Valid,
    Invalid(String),
}

/// Values seen in the agent's answers (ids, file names), by the parameter name they fit; path
/// parameters draw on them as well as on their schemas, so item routes are reached with items
/// that exist, not only with ones that do not.
#[derive(Default)]
pub(crate) struct Seen(pub(crate) BTreeMap<String, Vec<Value>>);

impl Seen {
    pub(crate) fn learn(&mut self, v: &Value) {
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
pub(crate) fn param_schema(c: &Contract, p: &Value) -> Value {
    let mut schema = c.resolve(&p["schema"]).clone();
    if p["in"] == "path" && schema["type"] == "string" && schema.get("minLength").is_none() {
        schema["minLength"] = json!(1);
    }
    schema
}

/// The cases for one operation: valid ones generated from its schemas, then invalid ones, each
/// made by breaking one thing of a valid one (a parameter or a body field of the wrong type, a
/// required field left out, an unknown field, a body of the wrong type).
pub(crate) fn cases(
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
pub(crate) fn generate(c: &Contract, schema: &Value, st: &BoxedStrategy<Value>, runner: &mut TestRunner) -> Value {
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
pub(crate) fn text_or_number(schema: &Value, v: &Value) -> Value {
    match (v, schema["type"].as_str()) {
        (Value::String(s), Some("integer")) => s.parse::<i64>().map(Value::from).unwrap_or_else(|_| v.clone()),
        (Value::String(s), Some("number")) => s.parse::<f64>().map(Value::from).unwrap_or_else(|_| v.clone()),
        (Value::Number(n), Some("string")) => Value::from(n.to_string()),
        _ => v.clone(),
    }
}
