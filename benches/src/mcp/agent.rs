//! One simulated MCP agent: its own connection and session (`initialize`,
//! `notifications/initialized`, then `Mcp-Session-Id` on every request), and
//! a deterministic mix of `tools/list` and `tools/call` requests, sent either
//! back to back (closed loop) or on a fixed timetable (open loop).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::conn::{Answer, Conn, Target};
use super::report::{ErrorKind, Kind, Recorder};
use super::wire::{self, Failure};

/// Relative weights of the request kinds an agent sends after set-up.
#[derive(Debug, Clone)]
pub struct Mix {
    weights: Vec<(Kind, u32)>,
    total: u32,
}

impl Mix {
    /// Parses `list=1,call=6,large=1,sse=2` (kinds: list, call, large, sse).
    pub fn parse(spec: &str) -> Result<Mix, String> {
        let mut weights = Vec::new();
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (name, w) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected KIND=WEIGHT"))?;
            let kind = [Kind::List, Kind::Call, Kind::CallLarge, Kind::CallSse]
                .into_iter()
                .find(|k| k.name() == name)
                .ok_or_else(|| format!("unknown kind `{name}` (list, call, large, sse)"))?;
            let w: u32 = w.parse().map_err(|_| format!("`{part}`: bad weight"))?;
            if w > 0 {
                weights.push((kind, w));
            }
        }
        let total = weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Err("the mix has no kind with a weight above 0".into());
        }
        Ok(Mix { weights, total })
    }

    fn pick(&self, r: u64) -> Kind {
        let mut x = (r % u64::from(self.total)) as u32;
        for &(k, w) in &self.weights {
            if x < w {
                return k;
            }
            x -= w;
        }
        unreachable!("x < total")
    }
}

/// What every agent of a run shares.
pub struct Plan {
    /// Where to send.
    pub target: Arc<Target>,
    /// The agent's bearer token.
    pub token: String,
    /// Request kinds after set-up.
    pub mix: Mix,
    /// Arguments of a `large` call (built once).
    pub large_arguments: String,
    /// Requests per session before the agent starts a new one (0: never).
    pub session_length: u64,
    /// A request not answered in this time is a transport error.
    pub timeout: Duration,
    /// When agents start.
    pub start: Instant,
    /// Samples count from here (after the warm-up).
    pub measure_from: Instant,
    /// No request is started (closed loop) or scheduled (open loop) from here.
    pub end: Instant,
    /// Open loop: the interval between one agent's requests; `None`: closed loop.
    pub interval: Option<Duration>,
    /// Open loop: agent `i` starts at `start + i * stagger`.
    pub stagger: Duration,
}

impl Plan {
    /// Open loop: when a late agent gives up on the requests it still owes.
    fn hard_stop(&self) -> Instant {
        self.end + (self.end - self.start).max(Duration::from_secs(4)) / 2
    }
}

/// splitmix64, seeded per agent: the same mix on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

struct Agent {
    plan: Arc<Plan>,
    conn: Conn,
    session: Option<String>,
    in_session: u64,
    next_id: u64,
}

fn failure(f: Failure) -> ErrorKind {
    match f {
        Failure::Status => ErrorKind::Status,
        Failure::JsonRpc => ErrorKind::JsonRpc,
        Failure::Malformed => ErrorKind::Malformed,
    }
}

impl Agent {
    async fn post(&mut self, body: String) -> Result<Answer, ErrorKind> {
        let sent = self.conn.post(self.session.as_deref(), Bytes::from(body));
        match tokio::time::timeout(self.plan.timeout, sent).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(ErrorKind::Transport),
            Err(_) => {
                self.conn.reset();
                Err(ErrorKind::Transport)
            }
        }
    }

    /// `initialize` then `notifications/initialized`.
    async fn open_session(&mut self) -> Result<(), ErrorKind> {
        self.session = None;
        let id = self.take_id();
        let answer = self.post(wire::initialize(id)).await?;
        wire::check_response(answer.status, answer.content_type.as_bytes(), &answer.body)
            .map_err(failure)?;
        self.session = answer.session;
        let answer = self.post(wire::INITIALIZED.to_string()).await?;
        if !(200..300).contains(&answer.status) {
            return Err(ErrorKind::Status);
        }
        self.in_session = 0;
        Ok(())
    }

    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    async fn request(&mut self, kind: Kind) -> Result<(), ErrorKind> {
        let id = self.take_id();
        let body = match kind {
            Kind::Initialize => return self.open_session().await,
            Kind::List => wire::tools_list(id),
            Kind::Call => wire::tools_call(id, wire::TOOL_SMALL, &wire::small_arguments(), false),
            Kind::CallLarge => {
                wire::tools_call(id, wire::TOOL_SMALL, &self.plan.large_arguments, false)
            }
            Kind::CallSse => {
                wire::tools_call(id, wire::TOOL_STREAM, &wire::small_arguments(), true)
            }
        };
        self.in_session += 1;
        let answer = self.post(body).await?;
        if answer.status == 404 {
            // The session is gone (MCP clients re-initialize).
            self.session = None;
        }
        wire::check_response(answer.status, answer.content_type.as_bytes(), &answer.body)
            .map_err(failure)
    }

    fn next_kind(&self, rng: &mut Rng) -> Kind {
        let expired = self.plan.session_length > 0 && self.in_session >= self.plan.session_length;
        if self.session.is_none() || expired {
            Kind::Initialize
        } else {
            self.plan.mix.pick(rng.next())
        }
    }
}

/// Runs agent `index` until the plan's end; returns what it measured.
pub async fn run(plan: Arc<Plan>, index: usize) -> Recorder {
    let mut rec = Recorder::default();
    let conn = match Conn::new(plan.target.clone(), &plan.token) {
        Ok(c) => c,
        Err(_) => return rec,
    };
    let mut agent = Agent {
        plan: plan.clone(),
        conn,
        session: None,
        in_session: 0,
        next_id: 0,
    };
    let mut rng = Rng(index as u64 ^ 0x5eed);
    let first = plan.start + plan.stagger * index as u32;
    let mut slot: u32 = 0;
    loop {
        // When this request is due: now (closed loop) or its slot (open loop).
        let due = match plan.interval {
            None => Instant::now(),
            Some(interval) => {
                let due = first + interval * slot;
                slot += 1;
                if due >= plan.end {
                    break;
                }
                let now = Instant::now();
                if now >= plan.hard_stop() {
                    let owed_from = due.max(plan.measure_from);
                    rec.unsent +=
                        ((plan.end - owed_from).as_nanos() / interval.as_nanos()) as u64 + 1;
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                due
            }
        };
        if due >= plan.end {
            break;
        }
        let kind = agent.next_kind(&mut rng);
        let outcome = agent.request(kind).await;
        let measured = due >= plan.measure_from;
        match outcome {
            Ok(()) if measured => rec.success(kind, due.elapsed().as_micros() as u64),
            Ok(()) => {}
            Err(e) => {
                if measured {
                    rec.error(kind, e);
                }
                if e == ErrorKind::Transport && plan.interval.is_none() {
                    // Do not spin on a refused connection.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    rec
}
