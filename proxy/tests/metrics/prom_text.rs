//! A small, strict reader of the Prometheus text format (0.0.4), for tests:
//! `# HELP` / `# TYPE` lines and `name{label="value",...} value` samples,
//! with label-value escapes (`\\`, `\"`, `\n`) decoded. Panics on anything
//! it does not understand, so a malformed exposition fails the test.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// `# HELP` text by metric family.
    pub help: BTreeMap<String, String>,
    /// `# TYPE` by metric family.
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let mut out = Exposition::default();
        for line in text.lines() {
            if line.trim().is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                check_name(name, line);
                out.help.insert(name.to_string(), help.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
                check_name(name, line);
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "unknown type in {line:?}"
                );
                out.types.insert(name.to_string(), kind.to_string());
            } else if line.starts_with('#') {
                continue;
            } else {
                out.samples.push(parse_sample(line));
            }
        }
        for s in &out.samples {
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| s.name.strip_suffix(suffix))
                .filter(|f| out.types.get(*f).map(String::as_str) == Some("histogram"))
                .unwrap_or(&s.name);
            assert!(out.types.contains_key(family), "no TYPE for {}", s.name);
        }
        out
    }

    /// The value of the sample `name` whose labels are exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<_> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .collect();
        assert!(found.len() <= 1, "duplicate series {name}{labels:?}");
        found.first().map(|s| s.value)
    }
}

fn check_name(name: &str, line: &str) {
    let ok = name.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    });
    assert!(!name.is_empty() && ok, "bad metric name in {line:?}");
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let name = &line[..name_end];
    check_name(name, line);
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let end;
        loop {
            let (start, c) = chars
                .next()
                .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
            if c == '}' {
                end = start + 1;
                break;
            }
            if c == ',' {
                continue;
            }
            let mut key = String::from(c);
            loop {
                match chars.next() {
                    Some((_, '=')) => break,
                    Some((_, k)) => key.push(k),
                    None => panic!("label without value in {line:?}"),
                }
            }
            assert_eq!(
                chars.next().map(|(_, c)| c),
                Some('"'),
                "unquoted value in {line:?}"
            );
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        other => panic!("bad escape {other:?} in {line:?}"),
                    },
                    Some((_, v)) => value.push(v),
                    None => panic!("unterminated value in {line:?}"),
                }
            }
            assert!(
                labels.insert(key, value).is_none(),
                "repeated label in {line:?}"
            );
        }
        rest = &after[end..];
    }
    let mut fields = rest.split_whitespace();
    let value = fields
        .next()
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    // An optional timestamp, then nothing.
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .unwrap_or_else(|_| panic!("bad timestamp in {line:?}"));
    }
    assert!(fields.next().is_none(), "trailing data in {line:?}");
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}
