//! The audit trail, proxy side.
//!
//! The request path only hands an [`AuditEvent`] (shared body bytes, the
//! admitted route, the kept response tail) to a bounded queue. A writer task
//! turns events into [`AuditRecord`](catalog::audit::AuditRecord)s (parsing,
//! redaction, outcome) and writes them to the on-disk [`Spool`] in batches; a
//! shipper task sends spooled segments to the control plane (or a local
//! file) oldest first and deletes each only once it is acknowledged.
//! Delivery is at-least-once; record ids make the store keep each once.
//!
//! When the spool is full, each server's `audit.when_spool_full` decides:
//! `reject` refuses its new calls, `drop` serves them and counts the lost
//! records. Nothing is lost without a count and a log line.

mod answers;
mod arguments;
mod line;
mod message;
mod record;
pub mod redact;
mod ship;
pub mod spool;
pub mod tap;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admit::Route;
use crate::error::Refusal;
pub use record::RecordBuilder;
pub use ship::Sink;
pub use spool::Spool;
pub use tap::ResponseTap;

/// Events waiting for the writer; beyond this the request path counts drops.
const QUEUE_CAPACITY: usize = 65_536;
/// Largest batch written as one segment.
const MAX_BATCH: usize = 2_048;
/// The default for [`AuditOptions::flush_interval`].
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// What the gateway saw of one request.
#[derive(Debug)]
pub struct AuditEvent {
    /// Arrival, Unix milliseconds.
    pub ts_ms: i64,
    /// Arrival to end of response.
    pub latency_us: u64,
    /// The agent's path.
    pub path: String,
    /// The HTTP method.
    pub http_method: http::Method,
    /// Who and which server, once known.
    pub route: Option<Route>,
    /// The checked request body.
    pub body: Option<Bytes>,
    /// Why the gateway refused the request, if it did.
    pub refusal: Option<Refusal>,
    /// Status sent to the agent (0: none).
    pub http_status: u16,
    /// The upstream failed before answering.
    pub upstream_failed: bool,
    /// The response's size and tail.
    pub response: ResponseTap,
    /// The session id the agent presented.
    pub session_id: Option<String>,
    /// The session id the gateway issued in this response (sealed).
    pub issued_session: Option<String>,
    /// W3C trace id.
    pub trace_id: Option<String>,
}

/// Where and how the auditor keeps records.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The spool directory.
    pub spool_dir: PathBuf,
    /// The spool's cap in bytes.
    pub max_spool_bytes: u64,
    /// Where records are delivered.
    pub sink: Sink,
    /// This gateway instance's name, in every record.
    pub gateway: String,
    /// Longest a record waits in memory before its batch is written and
    /// fsynced as one segment: a crash loses at most this much. Longer means
    /// fewer, larger segments (fewer disk syncs) and more events held in memory.
    pub flush_interval: Duration,
}

/// The default spool cap: 1 GiB.
pub const DEFAULT_MAX_SPOOL_BYTES: u64 = 1024 * 1024 * 1024;

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Records written to the spool.
    pub spooled: AtomicU64,
    /// Records delivered.
    pub shipped: AtomicU64,
    /// Records lost (queue or spool full for a `drop` server, disk failure).
    pub dropped: AtomicU64,
    /// Calls refused because their records could not be kept.
    pub rejected: AtomicU64,
}

/// The request path's handle: cheap to clone.
#[derive(Clone, Debug)]
pub struct Auditor {
    // Boxed: an event is about a kilobyte, moved through the queue and
    // into a batch; a box moves as a pointer.
    tx: mpsc::Sender<Box<AuditEvent>>,
    spool: Arc<Spool>,
    stats: Arc<AuditStats>,
}

/// The background tasks; [`AuditTasks::shutdown`] writes what is queued.
pub struct AuditTasks {
    stop: CancellationToken,
    writer: JoinHandle<()>,
    shipper: JoinHandle<()>,
}

impl Auditor {
    /// Opens the spool and starts the writer and shipper tasks.
    pub fn start(options: AuditOptions) -> std::io::Result<(Auditor, AuditTasks)> {
        let spool = Arc::new(Spool::open(&options.spool_dir, options.max_spool_bytes)?);
        if spool.records() > 0 {
            tracing::info!(
                records = spool.records(),
                "audit: records from an earlier run are waiting in the spool; sending them"
            );
        }
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(AuditStats::default());
        let wake = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let writer = tokio::spawn(write_loop(
            rx,
            options.gateway,
            options.flush_interval,
            spool.clone(),
            wake.clone(),
            stop.clone(),
            stats.clone(),
        ));
        let shipper = tokio::spawn(ship::ship_loop(
            spool.clone(),
            options.sink,
            wake,
            stop.clone(),
            stats.clone(),
        ));
        let auditor = Auditor { tx, spool, stats };
        Ok((
            auditor,
            AuditTasks {
                stop,
                writer,
                shipper,
            },
        ))
    }

    /// Queues an event; never waits. A full queue loses the event, counted.
    pub fn submit(&self, event: AuditEvent) {
        if let Err(e) = self.tx.try_send(Box::new(event)) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(reason = %e, "audit: record lost (writer queue full or stopped)");
        }
    }

    /// Can records be kept right now? (The spool is under its cap.)
    pub fn accepting(&self) -> bool {
        !self.spool.is_full()
    }

    /// Counts a call refused because its record could not be kept.
    pub fn note_rejected(&self) {
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a served call whose record is not kept (`when_spool_full: drop`).
    pub fn note_dropped(&self) {
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Events waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The spool.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Counters.
    pub fn stats(&self) -> &AuditStats {
        &self.stats
    }
}

impl AuditTasks {
    /// Writes every queued event to the spool, then stops both tasks.
    /// Undelivered segments stay on disk for the next start.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if tokio::time::timeout(Duration::from_secs(10), self.writer)
            .await
            .is_err()
        {
            tracing::error!("audit: writer did not finish within 10 s");
        }
        self.shipper.abort();
        let _ = self.shipper.await;
    }
}

/// Events built between two yields of the writer's thread.
const YIELD_EVERY: usize = 16;

async fn write_loop(
    mut rx: mpsc::Receiver<Box<AuditEvent>>,
    gateway: String,
    flush_interval: Duration,
    spool: Arc<Spool>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    stats: Arc<AuditStats>,
) {
    let mut writer = Some(Writer::new(&gateway));
    loop {
        let first = tokio::select! {
            ev = rx.recv() => ev,
            _ = stop.cancelled() => None,
        };
        // A batch gathers for `flush_interval` and is then taken whole: the
        // task is not woken once per event (the worker threads that serve
        // requests run it too).
        let stopping = match &first {
            None => true,
            Some(_) => tokio::select! {
                _ = tokio::time::sleep(flush_interval) => false,
                _ = stop.cancelled() => true,
            },
        };
        let mut events = Vec::with_capacity((rx.len() + 1).min(MAX_BATCH));
        events.extend(first);
        loop {
            while events.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(ev) => events.push(ev),
                    Err(_) => break,
                }
            }
            let more = events.len() == MAX_BATCH;
            flush(&mut writer, &gateway, events, &spool, &stats, &wake).await;
            if !more {
                break;
            }
            events = Vec::new();
        }
        if stopping {
            // Everything queued before the stop is written.
            return;
        }
    }
}

/// The writer's state, moved to a blocking thread for each batch and back.
struct Writer {
    builder: RecordBuilder,
    /// The batch's JSON lines; its allocation is kept for the next batch.
    lines: Vec<u8>,
}

/// Largest line buffer kept between batches: a batch of large records does
/// not pin its memory.
const KEPT_LINES_CAPACITY: usize = 4 * 1024 * 1024;

impl Writer {
    fn new(gateway: &str) -> Writer {
        Writer {
            builder: RecordBuilder::new(gateway.to_string()),
            lines: Vec::new(),
        }
    }

    /// Builds the records of `events` as JSON lines; returns how many.
    fn build(&mut self, events: &[Box<AuditEvent>]) -> u64 {
        self.lines.clear();
        if self.lines.capacity() > KEPT_LINES_CAPACITY {
            self.lines = Vec::new();
        }
        let mut count = 0u64;
        for (n, ev) in events.iter().enumerate() {
            if n % YIELD_EVERY == YIELD_EVERY - 1 {
                // A batch is milliseconds of CPU: let the request workers
                // (which wait on the same cores) in between.
                std::thread::yield_now();
            }
            for rec in self.builder.build(ev) {
                if line::write(&rec.record, rec.arguments.as_ref(), &mut self.lines).is_ok() {
                    self.lines.push(b'\n');
                    count += 1;
                }
            }
        }
        count
    }
}

/// Builds the records and appends them to the spool on a blocking thread:
/// parsing and serializing stay off the request path's worker threads.
// The events stay in the boxes they were queued in: a batch moves pointers.
#[allow(clippy::vec_box)]
async fn flush(
    writer: &mut Option<Writer>,
    gateway: &str,
    events: Vec<Box<AuditEvent>>,
    spool: &Arc<Spool>,
    stats: &AuditStats,
    wake: &Notify,
) {
    let Some(mut w) = writer.take() else {
        return;
    };
    let spool = spool.clone();
    let done = tokio::task::spawn_blocking(move || {
        let count = w.build(&events);
        drop(events);
        let written = if count == 0 {
            Ok(())
        } else {
            spool.append(&w.lines, count)
        };
        (w, count, written)
    })
    .await;
    match done {
        Ok((w, count, written)) => {
            *writer = Some(w);
            match written {
                Ok(()) if count > 0 => {
                    stats.spooled.fetch_add(count, Ordering::Relaxed);
                    wake.notify_one();
                }
                Ok(()) => {}
                Err(e) => {
                    stats.dropped.fetch_add(count, Ordering::Relaxed);
                    tracing::error!(error = %e, records = count, "audit: cannot write the spool; records lost");
                }
            }
        }
        Err(e) => {
            // The builder panicked: start a fresh one (only `clientInfo` memory is lost).
            tracing::error!(error = %e, "audit: record writer failed; a batch of records was lost");
            *writer = Some(Writer::new(gateway));
        }
    }
}

/// The name of this gateway instance: `TOOLGATE_INSTANCE`, else the host name.
pub fn instance_name() -> String {
    std::env::var("TOOLGATE_INSTANCE")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "toolgate".to_string())
}
