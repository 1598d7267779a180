//! A small checker for the JSON-Schema subset the contract fixtures use: `type`
//! (one name), `required`, `properties`, `items`, `enum`, `oneOf`.

use serde_json::Value;

/// The named schema from a contract fixture.
pub fn contract(fixture: &str, name: &str) -> Value {
    let text = match fixture {
        "prisme" => include_str!("contracts/prisme.json"),
        "mudbase" => include_str!("contracts/mudbase.json"),
        "lerian" => include_str!("contracts/lerian.json"),
        "flashback" => include_str!("contracts/flashback.json"),
        other => panic!("no contract fixture {other}"),
    };
    let all: Value = serde_json::from_str(text).unwrap();
    all.get(name).cloned().unwrap_or_else(|| panic!("no schema {name} in {fixture}"))
}

/// Panics with every violation of `schema` by `value`.
pub fn assert_matches(fixture: &str, name: &str, value: &Value) {
    let mut problems = Vec::new();
    check(&contract(fixture, name), value, "$", &mut problems);
    assert!(problems.is_empty(), "{fixture}.{name}: {problems:?} in {value}");
}

fn check(schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let passing = options
            .iter()
            .filter(|option| {
                let mut inner = Vec::new();
                check(option, value, at, &mut inner);
                inner.is_empty()
            })
            .count();
        if passing != 1 {
            problems.push(format!("{at}: matches {passing} of the oneOf schemas"));
        }
    }
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let ok = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "null" => value.is_null(),
            _ => false,
        };
        if !ok {
            problems.push(format!("{at}: expected {kind}, got {value}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for field in required.iter().filter_map(Value::as_str) {
            if value.get(field).is_none() {
                problems.push(format!("{at}: missing required {field}"));
            }
        }
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            if let Some(inner) = value.get(name) {
                check(property, inner, &format!("{at}.{name}"), problems);
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            check(items, item, &format!("{at}[{i}]"), problems);
        }
    }
}

#[test]
fn the_checker_catches_what_it_should() {
    let mut problems = Vec::new();
    let schema = contract("mudbase", "login200");
    check(&schema, &serde_json::json!({ "message": "x", "token": 1 }), "$", &mut problems);
    assert!(problems.iter().any(|p| p.contains("expected string")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("missing required user")), "{problems:?}");
    let mut problems = Vec::new();
    check(&contract("prisme", "setupMfa200"), &serde_json::json!({ "other": 1 }), "$", &mut problems);
    assert_eq!(problems.len(), 1, "{problems:?}");
}
