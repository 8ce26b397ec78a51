//! Turning what the gateway saw of a request into audit records: one per
//! audited JSON-RPC message. Runs on the audit writer task, off the request
//! path. An admitted body's messages are taken from what admission read
//! (see [`crate::admit::CheckedBody`]); any other body is parsed again here,
//! not while the agent waits.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use catalog::audit::{ArgumentsMode, AuditRecord, ClientInfo, Decision, Outcome};
use serde_json::Value;

use super::answers::{event_data, read_answers, Answer};
use super::arguments::Arguments;
use super::message::Message;
use super::AuditEvent;
use crate::error::Refusal;

/// The messages admission read, when the record is of exactly the body it
/// checked and admitted, and none is an `initialize` (whose `clientInfo`
/// admission does not keep). `None`: the body is parsed again.
fn admitted_messages(ev: &AuditEvent) -> Option<Vec<Message<'_>>> {
    let checked = ev.route.as_ref()?.checked.as_ref()?;
    let body = ev.body.as_ref()?;
    let same_body = body.as_ptr() == checked.bytes.as_ptr() && body.len() == checked.bytes.len();
    let messages = checked.parsed.messages();
    if ev.refusal.is_some()
        || !same_body
        || messages.iter().any(|m| m.method() == Some("initialize"))
    {
        return None;
    }
    Some(
        messages
            .iter()
            .map(|m| Message::admitted(m, &checked.bytes))
            .collect(),
    )
}

/// Sessions whose `clientInfo` is remembered (oldest forgotten first).
const MAX_CLIENTS: usize = 100_000;

/// One record, and its arguments still as the agent sent them: they are
/// written into the record's line with the server's policy applied (see
/// [`super::arguments`]), and `record.arguments` is `None`.
pub struct Record<'a> {
    /// The record.
    pub record: AuditRecord,
    /// The call's arguments, when the policy keeps anything of them.
    pub arguments: Option<Arguments<'a>>,
}

/// Builds records; remembers each session's `clientInfo` from `initialize`.
pub struct RecordBuilder {
    gateway: String,
    id_prefix: u64,
    next_id: AtomicU64,
    clients: HashMap<String, ClientInfo>,
    client_order: VecDeque<String>,
}

impl RecordBuilder {
    /// Records from gateway instance `gateway`.
    pub fn new(gateway: String) -> Self {
        let seed = (std::time::SystemTime::now(), std::process::id());
        RecordBuilder {
            gateway,
            id_prefix: std::collections::hash_map::RandomState::new().hash_one(seed),
            next_id: AtomicU64::new(0),
            clients: HashMap::new(),
            client_order: VecDeque::new(),
        }
    }

    fn new_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        crate::trace::hex16(&[self.id_prefix, n])
    }

    /// The records for one request (none when nothing in it is audited).
    pub fn build<'a>(&mut self, ev: &'a AuditEvent) -> Vec<Record<'a>> {
        if matches!(ev.refusal, Some(Refusal::Document(_))) {
            // Discovery metadata served to anyone: no access decision to record.
            return Vec::new();
        }
        let messages = match admitted_messages(ev) {
            Some(messages) => messages,
            None => ev
                .body
                .as_ref()
                .map(|b| Message::all_in(b))
                .unwrap_or_default(),
        };
        self.learn_client(ev, &messages);
        let all_methods = ev
            .route
            .as_ref()
            .is_some_and(|r| r.settings().audit.all_methods);
        let refused = ev.refusal.is_some();
        if messages.is_empty() {
            // GET / DELETE streams, or refused before the body was understood.
            if refused || all_methods {
                return vec![self.record(ev, None, messages.len())];
            }
            return Vec::new();
        }
        let count = messages.len();
        messages
            .into_iter()
            .filter(|m| refused || all_methods || m.method() == Some("tools/call"))
            .map(|m| self.record(ev, Some(m), count))
            .collect()
    }

    fn learn_client(&mut self, ev: &AuditEvent, messages: &[Message]) {
        if ev.http_method == http::Method::DELETE {
            if let Some(sid) = &ev.session_id {
                self.clients.remove(sid);
            }
        }
        let (Some(sid), Some(init)) = (
            &ev.issued_session,
            messages.iter().find(|m| m.method() == Some("initialize")),
        ) else {
            return;
        };
        let info = init.client_info().unwrap_or_default();
        let Some(name) = info.get("name").and_then(Value::as_str) else {
            return;
        };
        let client = ClientInfo {
            name: truncate(name, 200),
            version: info
                .get("version")
                .and_then(Value::as_str)
                .map(|v| truncate(v, 100)),
        };
        if self.clients.insert(sid.clone(), client).is_none() {
            self.client_order.push_back(sid.clone());
        }
        while self.clients.len() > MAX_CLIENTS {
            match self.client_order.pop_front() {
                Some(old) => {
                    self.clients.remove(&old);
                }
                None => break,
            }
        }
    }

    fn record<'a>(
        &mut self,
        ev: &'a AuditEvent,
        mut msg: Option<Message<'a>>,
        count: usize,
    ) -> Record<'a> {
        let route = ev.route.as_ref();
        let principal = route.map(|r| r.principal());
        let session_id = ev.issued_session.clone().or_else(|| ev.session_id.clone());
        let client = session_id
            .as_ref()
            .and_then(|s| self.clients.get(s))
            .cloned();
        let method = msg.as_ref().and_then(Message::method).map(str::to_string);
        let tool = (method.as_deref() == Some("tools/call"))
            .then(|| msg.as_ref().and_then(Message::name))
            .flatten()
            .map(str::to_string);
        let request_id = msg.as_ref().and_then(Message::id);
        let policy = route.map(|r| &r.upstream().audit);
        let mode = policy.map_or(ArgumentsMode::Drop, |p| p.arguments);
        let arguments = match (mode, msg.as_mut().and_then(Message::take_arguments)) {
            (ArgumentsMode::Drop, _) | (_, None) => None,
            (mode, Some(text)) => {
                let keys = route.map_or(&[][..], |r| &r.upstream().redact_fragments);
                Some(Arguments::new(text, mode, keys))
            }
        };
        let mut rec = AuditRecord {
            id: self.new_id(),
            ts_ms: ev.ts_ms,
            gateway: self.gateway.clone(),
            principal: principal.map(|p| p.name.to_string()),
            principal_kind: principal.map(|p| {
                match p.kind {
                    catalog::model::PrincipalKind::User => "user",
                    catalog::model::PrincipalKind::Agent => "agent",
                }
                .to_string()
            }),
            agent: route.map(|r| r.agent_name().to_string()),
            client,
            teams: principal.map_or_else(Vec::new, |p| {
                p.teams.iter().map(|t| t.to_string()).collect()
            }),
            endpoint: ev.path.clone(),
            server: route.map(|r| r.server_name().to_string()),
            method,
            tool,
            request_id,
            arguments: None,
            arguments_mode: mode,
            decision: Decision::Allow,
            reason: None,
            outcome: Outcome::Unknown,
            http_status: ev.http_status,
            error_code: None,
            latency_us: ev.latency_us,
            request_bytes: ev.body.as_ref().map_or(0, |b| b.len() as u64),
            response_bytes: ev.response.total,
            session_id,
            trace_id: ev.trace_id.clone(),
            response_excerpt: None,
        };
        match &ev.refusal {
            Some(refusal) => {
                rec.decision = Decision::Deny;
                rec.outcome = Outcome::Refused;
                rec.reason = Some(reason(refusal, rec.tool.as_deref()));
                let body: Value =
                    serde_json::from_slice(&refusal.to_response().body).unwrap_or(Value::Null);
                rec.error_code = first_error_code(&body);
            }
            None => self.outcome(ev, msg.as_ref(), count, &mut rec),
        }
        Record {
            record: rec,
            arguments,
        }
    }

    fn outcome(&self, ev: &AuditEvent, msg: Option<&Message>, count: usize, rec: &mut AuditRecord) {
        if ev.upstream_failed || ev.http_status >= 500 {
            rec.outcome = Outcome::UpstreamError;
            return;
        }
        if ev.http_status == 0 {
            return; // the agent went away: unknown
        }
        let Some(msg) = msg else {
            return;
        };
        let Some(id) = msg.id() else {
            // A notification or a reply to the server: no response expected.
            rec.outcome = if (200..300).contains(&ev.http_status) {
                Outcome::Success
            } else {
                Outcome::Error
            };
            return;
        };
        let excerpt_chars = ev
            .route
            .as_ref()
            .map_or(0, |r| r.upstream().audit.response_excerpt);
        let tap = &ev.response;
        let kept = tap.bytes();
        let events = if tap.sse {
            event_data(&kept)
        } else {
            Vec::new()
        };
        // Without an excerpt, `content` is skipped: a large result is not
        // even checked as text.
        let answers = read_answers(tap, &kept, &events, excerpt_chars > 0);
        judge(&answers, &id, count, rec, excerpt_chars);
    }
}

/// The outcome of the call with `id` (one of `count` messages), from the
/// answers to it, and an excerpt of its result's text when one is asked for.
fn judge(
    answers: &[Answer],
    id: &Value,
    count: usize,
    rec: &mut AuditRecord,
    excerpt_chars: usize,
) {
    let answer = answers
        .iter()
        .find(|a| a.id.as_ref() == Some(id))
        .or_else(|| (count == 1 && answers.len() == 1).then(|| &answers[0]));
    let Some(answer) = answer else {
        return;
    };
    if let Some(err) = &answer.error {
        rec.outcome = Outcome::Error;
        rec.error_code = err.get("code").and_then(Value::as_i64);
        return;
    }
    let Some(result) = &answer.result else {
        return;
    };
    rec.outcome = if result.is_error.as_ref().and_then(Value::as_bool) == Some(true) {
        Outcome::ToolError
    } else {
        Outcome::Success
    };
    if excerpt_chars > 0 {
        // The first text of `content`, read only when an excerpt is asked for.
        let content = result
            .content
            .and_then(|c| serde_json::from_str::<Value>(c).ok());
        rec.response_excerpt = content
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|items| items.iter().find_map(|c| c.get("text")?.as_str()))
            .map(|t| truncate(t, excerpt_chars));
    }
}

fn reason(refusal: &Refusal, tool: Option<&str>) -> String {
    match refusal {
        Refusal::Denied(calls) => {
            let denied = tool.is_some_and(|t| calls.iter().any(|c| c.tool.as_deref() == Some(t)));
            if denied {
                "tool not allowed for this principal".to_string()
            } else {
                "batch refused: it contains a denied tool call".to_string()
            }
        }
        other => other.to_string(),
    }
}

fn first_error_code(body: &Value) -> Option<i64> {
    let first = match body {
        Value::Array(items) => items.first()?,
        one => one,
    };
    first["error"]["code"].as_i64()
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}
