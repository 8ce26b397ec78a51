//! Reading a batch of records sent by a proxy: JSON Lines, one
//! [`AuditRecord`] per line, all or nothing.

use catalog::audit::AuditRecord;

/// The longest record id accepted (the proxy sends 32 hex digits).
const MAX_ID_LEN: usize = 128;

/// Why a batch was refused: the first bad line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the body.
    pub line: usize,
    /// The field, as a path (`decision`, `client.name`), or empty for the line itself.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            write!(f, "line {}: {}: {}", self.line, self.path, self.message)
        }
    }
}

/// Parses a JSON Lines body (blank lines ignored). Any invalid line refuses
/// the whole batch, so a batch is stored entirely or not at all.
pub fn parse_jsonl(body: &[u8]) -> Result<Vec<AuditRecord>, LineError> {
    let mut records = Vec::new();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut de = serde_json::Deserializer::from_slice(line);
        let record: AuditRecord = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            LineError {
                line: line_no,
                path: if path == "." { String::new() } else { path },
                message: without_position(e.into_inner()),
            }
        })?;
        // One record per line: anything after it is an error, not ignored.
        de.end().map_err(|e| LineError {
            line: line_no,
            path: String::new(),
            message: without_position(e),
        })?;
        check(&record).map_err(|(path, message)| LineError {
            line: line_no,
            path: path.to_string(),
            message,
        })?;
        records.push(record);
    }
    Ok(records)
}

/// serde_json's message without its "at line 1 column N" (always line 1
/// here: the line number that matters is the body's), keeping the column.
fn without_position(e: serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) if e.column() > 0 => format!("{message} (column {})", e.column()),
        Some(message) => message.to_string(),
        None => text,
    }
}

fn check(r: &AuditRecord) -> Result<(), (&'static str, String)> {
    if r.id.is_empty() || r.id.len() > MAX_ID_LEN || !r.id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err((
            "id",
            format!("must be 1 to {MAX_ID_LEN} printable ASCII characters (the proxy sends 32 hex digits)"),
        ));
    }
    Ok(())
}
