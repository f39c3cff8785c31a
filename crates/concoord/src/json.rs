//! JSON for the shell: object values to and from `serde_json::Value`.
//!
//! Integers stay integers, floats floats; bytes print as a list of numbers; a map
//! with non-string keys prints as a list of `[key, value]` pairs, since JSON object
//! keys are strings.

use concoord_object::Value;
use serde_json::Value as Json;

/// An argument from the command line, by one rule: text that starts like JSON (a digit,
/// `-`, `+`, `.`, `"`, `[` or `{`) or is `true`, `false` or `null` must be valid JSON;
/// any other text is a string as it stands (so `concoord call put name alice` works
/// without quoting). Integers must fit in 64 signed bits and numbers must be finite
/// (`NaN`, `Infinity` and `1e400` are refused): a value is never silently changed.
pub fn parse_arg(text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    let bare = trimmed.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if matches!(bare.as_str(), "nan" | "inf" | "infinity") {
        return Err(format!("{text:?} is not a finite number: arguments must be finite"));
    }
    let starts_like_json =
        trimmed.starts_with(|c: char| c.is_ascii_digit() || "-+.\"[{".contains(c));
    if !starts_like_json && !matches!(trimmed, "true" | "false" | "null") {
        return Ok(Value::Str(text.to_string()));
    }
    if let Some(big) = integer_beyond_i64(trimmed) {
        return Err(format!(
            "{big} is beyond the 64-bit integer range ({}..{}); pass it as a string: '\"{big}\"'",
            i64::MIN,
            i64::MAX
        ));
    }
    match serde_json::from_str::<Json>(trimmed) {
        Ok(json) => Ok(from_json(&json)),
        Err(e) if e.to_string().contains("out of range") => {
            Err(format!("{text:?} is not a finite number: arguments must be finite"))
        }
        Err(e) => Err(format!(
            "{text:?} is not valid JSON ({e}); a string that starts like JSON needs JSON \
             quotes: '\"...\"'"
        )),
    }
}

/// The first integer literal (outside JSON strings) that does not fit in an i64.
fn integer_beyond_i64(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || b".eE+-".contains(&bytes[i])) {
                i += 1;
            }
            let token = &text[start..i];
            let integer = token.bytes().skip(1).all(|c| c.is_ascii_digit());
            if integer && token != "-" && token.parse::<i64>().is_err() {
                return Some(token);
            }
            continue;
        }
        i += 1;
    }
    None
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
        let ok = |t: &str| parse_arg(t).unwrap();
        assert_eq!(ok("5"), Value::Int(5));
        assert_eq!(ok("-5"), Value::Int(-5));
        assert_eq!(ok("2.5"), Value::Float(2.5));
        assert_eq!(ok("\"5\""), Value::Str("5".into()));
        assert_eq!(ok("alice"), Value::Str("alice".into()));
        assert_eq!(ok("hello world"), Value::Str("hello world".into()));
        assert_eq!(ok(""), Value::Str("".into()));
        assert_eq!(ok("[1,null]"), Value::List(vec![Value::Int(1), Value::Nil]));
        assert_eq!(ok("true"), Value::Bool(true));
        assert_eq!(ok("9223372036854775807"), Value::Int(i64::MAX));
        assert_eq!(ok("-9223372036854775808"), Value::Int(i64::MIN));
        assert_eq!(
            ok(r#"["99999999999999999999"]"#),
            Value::List(vec![Value::Str("99999999999999999999".into())])
        );
    }

    #[test]
    fn arguments_that_would_change_silently_are_refused() {
        let err = |t: &str| parse_arg(t).unwrap_err();
        assert!(err("{bad").contains("not valid JSON"), "{}", err("{bad"));
        assert!(err("[1,").contains("not valid JSON"));
        assert!(err("12abc").contains("not valid JSON"));
        assert!(err("9223372036854775808").contains("beyond the 64-bit integer range"));
        assert!(err("-9223372036854775809").contains("beyond the 64-bit integer range"));
        assert!(err("[1, 18446744073709551616]").contains("18446744073709551616"));
        assert!(err("{\"a\": 99999999999999999999}").contains("beyond"));
        for text in ["NaN", "Infinity", "-Infinity", "inf", "1e400", "-1e400"] {
            assert!(err(text).contains("not a finite number"), "{text}: {}", err(text));
        }
    }

    #[test]
    fn values_print_as_json() {
        let v = Value::Map(vec![(Value::Str("a".into()), Value::List(vec![Value::Int(1)]))]);
        assert_eq!(to_json(&v).to_string(), r#"{"a":[1]}"#);
        let v = Value::Map(vec![(Value::Int(1), Value::Nil)]);
        assert_eq!(to_json(&v).to_string(), "[[1,null]]");
    }
}
