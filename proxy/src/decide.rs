//! Policy decisions and header/body agreement for a parsed request body.
//! Pure functions over the snapshot: unit-tested without a server.

use base64::Engine;
use catalog::{ClassId, ServerId, Snapshot};

use crate::error::{DeniedCall, Refusal};
use crate::filter::ListIds;
use crate::jsonrpc::{Body, Kind};

/// Decides a body: every `tools/call` must be allowed for the caller's class
/// (a batch with any denied call is refused whole). Returns which responses
/// must be filtered: when the body holds a `tools/list`, every tool list in
/// the response is (ids are not compared: `2`, `2.0` and `2e0` are one id to
/// some servers and three to others).
pub fn decide(
    body: &Body,
    snapshot: &Snapshot,
    class: ClassId,
    server: ServerId,
) -> Result<ListIds, Refusal> {
    let messages = body.messages();
    let denied = messages.iter().any(|m| {
        m.tool()
            .is_some_and(|t| !snapshot.can_call(class, server, t))
    });
    if denied {
        let calls = messages
            .iter()
            .filter(|m| matches!(m.kind, Kind::Call { .. }))
            .map(|m| DeniedCall {
                id: m.id.clone(),
                tool: m
                    .tool()
                    .filter(|t| !snapshot.can_call(class, server, t))
                    .map(str::to_string),
            })
            .collect();
        return Err(Refusal::Denied(calls));
    }
    let lists = messages.iter().any(|m| m.method() == Some("tools/list"));
    Ok(if lists { ListIds::Any } else { ListIds::None })
}

/// The `Mcp-*` request headers that name what the body does (2026-07-28).
#[derive(Debug, Default)]
pub struct McpHeaders<'a> {
    /// Every `Mcp-Method` value.
    pub method: Vec<&'a [u8]>,
    /// Every `Mcp-Name` value.
    pub name: Vec<&'a [u8]>,
}

impl<'a> McpHeaders<'a> {
    /// The `Mcp-Method` and `Mcp-Name` values of a request.
    pub fn of(head: &'a impl crate::fields::Fields) -> Self {
        use crate::http_headers::{MCP_METHOD, MCP_NAME};
        let all = |name| head.values(name).collect();
        McpHeaders {
            method: all(&MCP_METHOD),
            name: all(&MCP_NAME),
        }
    }
}

/// Refuses a body whose `Mcp-Method` / `Mcp-Name` headers disagree with it, so
/// a server routing on headers and one reading the body run the same tool.
pub fn check_headers(body: &Body, headers: &McpHeaders) -> Result<(), Refusal> {
    if headers.method.is_empty() && headers.name.is_empty() {
        return Ok(());
    }
    let mismatch = |id, detail: String| Refusal::HeaderMismatch { id, detail };
    let Body::Single(msg) = body else {
        return Err(mismatch(
            None,
            "Mcp-Method / Mcp-Name cannot describe a batch".into(),
        ));
    };
    if headers.method.len() > 1 || headers.name.len() > 1 {
        return Err(mismatch(
            msg.id.clone(),
            "Mcp-Method / Mcp-Name given more than once".into(),
        ));
    }
    let (method, target) = match &msg.kind {
        Kind::Call { method, target } => (Some(method.as_str()), target.as_deref()),
        Kind::Response => (None, None),
    };
    if let Some(h) = headers.method.first() {
        let h = decode_header_value(h);
        if h.as_deref() != method {
            return Err(mismatch(
                msg.id.clone(),
                format!("Mcp-Method {h:?} but the body's method is {method:?}"),
            ));
        }
    }
    if let Some(h) = headers.name.first() {
        let h = decode_header_value(h);
        if h.as_deref() != target || target.is_none() {
            return Err(mismatch(
                msg.id.clone(),
                format!("Mcp-Name {h:?} but the body names {target:?}"),
            ));
        }
    }
    Ok(())
}

/// Decodes a header value: plain ASCII, or `=?base64?...?=` for non-ASCII text.
/// `None` when the value cannot be decoded (never equal to a body value).
fn decode_header_value(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    match text
        .strip_prefix("=?base64?")
        .and_then(|t| t.strip_suffix("?="))
    {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::parse;

    fn body(text: &str) -> Body {
        parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn headers_must_agree_with_the_body() {
        let b =
            body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}"#);
        let ok = McpHeaders {
            method: vec![b"tools/call"],
            name: vec![b"search"],
        };
        assert!(check_headers(&b, &ok).is_ok());
        let encoded = McpHeaders {
            method: vec![b"tools/call"],
            name: vec![b"=?base64?c2VhcmNo?="],
        };
        assert!(check_headers(&b, &encoded).is_ok());
        for bad in [
            McpHeaders {
                method: vec![b"tools/list"],
                name: vec![],
            },
            McpHeaders {
                method: vec![b"tools/call"],
                name: vec![b"delete"],
            },
            McpHeaders {
                method: vec![b"tools/call"],
                name: vec![b"search", b"search"],
            },
            McpHeaders {
                method: vec![],
                name: vec![b"=?base64?!!?="],
            },
        ] {
            let err = check_headers(&b, &bad).unwrap_err();
            assert!(
                matches!(err, Refusal::HeaderMismatch { id: Some(_), .. }),
                "{bad:?}"
            );
        }
        let list = body(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
        let stray_name = McpHeaders {
            method: vec![b"tools/list"],
            name: vec![b"x"],
        };
        assert!(check_headers(&list, &stray_name).is_err());
    }
}
