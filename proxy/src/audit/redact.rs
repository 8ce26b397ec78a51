//! What a record keeps of a call's arguments, per the server's policy.

use catalog::audit::ArgumentsMode;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The value that replaces a redacted one.
pub const REDACTED: &str = "[REDACTED]";

/// Applies `mode` to `arguments`. `keys` are lower-case fragments: an object
/// key containing one (case-insensitive) has its value replaced, at any depth.
pub fn apply(mode: ArgumentsMode, arguments: Value, keys: &[String]) -> Option<Value> {
    match mode {
        ArgumentsMode::Keep => Some(arguments),
        ArgumentsMode::Redact => Some(redact(arguments, keys)),
        ArgumentsMode::Hash => {
            let canonical = serde_json::to_vec(&arguments).unwrap_or_default();
            let digest = hex::encode(Sha256::digest(&canonical));
            let mut m = Map::new();
            m.insert("sha256".into(), Value::String(digest));
            Some(Value::Object(m))
        }
        ArgumentsMode::Drop => None,
    }
}

fn redact(mut value: Value, keys: &[String]) -> Value {
    redact_in_place(&mut value, keys);
    value
}

fn redact_in_place(value: &mut Value, keys: &[String]) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if sensitive(k, keys) {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact_in_place(v, keys);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_in_place(v, keys)),
        _ => {}
    }
}

/// Does `key` contain one of the lower-case `fragments`, ignoring case?
pub(super) fn sensitive(key: &str, fragments: &[String]) -> bool {
    if !key.is_ascii() {
        let lower = key.to_lowercase();
        return fragments.iter().any(|f| lower.contains(f.as_str()));
    }
    // An ASCII key lower-cases to ASCII: no need to allocate its lower case.
    let key = key.as_bytes();
    fragments.iter().any(|f| {
        let f = f.as_bytes();
        !f.is_empty()
            && key
                .windows(f.len())
                .any(|w| w.iter().zip(f).all(|(a, b)| a.to_ascii_lowercase() == *b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_sensitive_keys_at_any_depth() {
        let mut keys = catalog::model::default_redact_keys();
        keys.push("ssn".into());
        let args = json!({
            "query": "open bugs",
            "Password": "hunter2",
            "nested": {"api_key": "k", "list": [{"GitHub_Token": "t", "n": 1}]},
            "customer_ssn": "123",
        });
        let out = apply(ArgumentsMode::Redact, args, &keys).unwrap();
        assert_eq!(
            out,
            json!({
                "query": "open bugs",
                "Password": REDACTED,
                "nested": {"api_key": REDACTED, "list": [{"GitHub_Token": REDACTED, "n": 1}]},
                "customer_ssn": REDACTED,
            })
        );
        let text = out.to_string();
        assert!(!text.contains("hunter2") && !text.contains("\"t\""));
    }

    #[test]
    fn keys_are_compared_in_any_case_and_script() {
        let keys = ["token".to_string(), "pass".to_string()];
        assert!(sensitive("X-ACCESS-TOKEN", &keys));
        assert!(sensitive("my_passphrase", &keys));
        // The Kelvin sign lower-cases to `k`: "to\u{212A}en" is "token".
        assert!(sensitive("to\u{212A}en", &keys));
        assert!(!sensitive("query", &keys) && !sensitive("tok", &keys));
        assert!(!sensitive("p\u{e4}ss", &keys));
    }

    #[test]
    fn keep_hash_and_drop() {
        let args = json!({"token": "abc"});
        assert_eq!(
            apply(ArgumentsMode::Keep, args.clone(), &[]),
            Some(args.clone())
        );
        let hashed = apply(ArgumentsMode::Hash, args.clone(), &[]).unwrap();
        assert_eq!(hashed["sha256"].as_str().unwrap().len(), 64);
        assert!(!hashed.to_string().contains("abc"));
        assert_eq!(apply(ArgumentsMode::Drop, args, &[]), None);
    }
}
