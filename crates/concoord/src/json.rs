//! JSON for the shell: object values to and from `serde_json::Value`.
//!
//! Integers stay integers, floats floats; bytes print as a list of numbers; a map
//! with non-string keys prints as a list of `[key, value]` pairs, since JSON object
//! keys are strings.

use concoord_object::Value;
use serde_json::Value as Json;

/// An argument from the command line: JSON if it parses, else the text as a string
/// (so `concoord call put name alice` works without quoting).
pub fn parse_arg(text: &str) -> Value {
    match serde_json::from_str::<Json>(text) {
        Ok(json) => from_json(&json),
        Err(_) => Value::Str(text.to_string()),
    }
}

pub fn from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(items) => Value::List(items.iter().map(from_json).collect()),
        Json::Object(map) => {
            Value::Map(map.iter().map(|(k, v)| (Value::Str(k.clone()), from_json(v))).collect())
        }
    }
}

pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(x) => serde_json::Number::from_f64(*x).map_or(Json::Null, Json::Number),
        Value::Str(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::Array(b.iter().map(|x| Json::from(*x)).collect()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(pairs) => {
            if pairs.iter().all(|(k, _)| matches!(k, Value::Str(_))) {
                let mut map = serde_json::Map::new();
                for (k, v) in pairs {
                    if let Value::Str(k) = k {
                        map.insert(k.clone(), to_json(v));
                    }
                }
                Json::Object(map)
            } else {
                Json::Array(
                    pairs.iter().map(|(k, v)| Json::Array(vec![to_json(k), to_json(v)])).collect(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse_as_json_or_text() {
        assert_eq!(parse_arg("5"), Value::Int(5));
        assert_eq!(parse_arg("2.5"), Value::Float(2.5));
        assert_eq!(parse_arg("\"5\""), Value::Str("5".into()));
        assert_eq!(parse_arg("alice"), Value::Str("alice".into()));
        assert_eq!(parse_arg("[1,null]"), Value::List(vec![Value::Int(1), Value::Nil]));
        assert_eq!(parse_arg("true"), Value::Bool(true));
    }

    #[test]
    fn values_print_as_json() {
        let v = Value::Map(vec![(Value::Str("a".into()), Value::List(vec![Value::Int(1)]))]);
        assert_eq!(to_json(&v).to_string(), r#"{"a":[1]}"#);
        let v = Value::Map(vec![(Value::Int(1), Value::Nil)]);
        assert_eq!(to_json(&v).to_string(), "[[1,null]]");
    }
}
