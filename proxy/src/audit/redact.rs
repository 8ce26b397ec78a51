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

fn redact(value: Value, keys: &[String]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let lower = k.to_lowercase();
                    if keys.iter().any(|f| lower.contains(f.as_str())) {
                        (k, Value::String(REDACTED.into()))
                    } else {
                        (k, redact(v, keys))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| redact(v, keys)).collect()),
        other => other,
    }
}

/// The redaction fragments for a server: the gateway's and the server's, lower-cased.
pub fn fragments(gateway: &[String], server: &[String]) -> Vec<String> {
    gateway
        .iter()
        .chain(server)
        .map(|k| k.to_lowercase())
        .filter(|k| !k.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_sensitive_keys_at_any_depth() {
        let keys = fragments(&catalog::model::default_redact_keys(), &["ssn".into()]);
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
