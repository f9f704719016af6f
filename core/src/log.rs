//! The core's `tracing` events, forwarded to the host's logging: Python `logging` (logger `fastmcp_auth.*`), a
//! Node logger (`console.warn` by default), a C callback.
//!
//! A host calls [`set_sink`]: the first call installs a process-wide subscriber that hands each event at or above
//! the level to the current sink as a [`Record`]. A program that already installed its own `tracing` subscriber
//! (a Rust application) keeps it: `set_sink` then answers [`SinkInstall::HostSubscriber`] and forwards nothing.
//!
//! What a record holds is what the event was written with: the core logs fingerprints (`key=1a2b3c4d`), counts,
//! error kinds and option names — never a token, a secret, a key or upstream response text (each face has a test
//! that runs the flows, failures included, and greps every record for them).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// One event, formatted: `message` is the event's message followed by its fields as `name=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: Level,
    /// Where it comes from: the module path, e.g. `fastmcp_auth::proxy::refresh`.
    pub target: String,
    /// The message, then ` name=value` per field.
    pub message: String,
}

/// Receives records; called on the thread that emitted the event, so it must be quick and must not call back into
/// this library (hosts queue the record and log it from their own thread).
pub type Sink = Arc<dyn Fn(&Record) + Send + Sync>;

/// What [`set_sink`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkInstall {
    /// Records now go to the sink.
    Forwarding,
    /// The process already has another `tracing` subscriber; nothing is forwarded.
    HostSubscriber,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
/// The most verbose level forwarded (0 = nothing, 1 = ERROR … 5 = TRACE).
static MAX_LEVEL: AtomicU8 = AtomicU8::new(2);
static INSTALLED: OnceLock<SinkInstall> = OnceLock::new();

/// A level as a number: 1 `ERROR` … 5 `TRACE` (the C face's `FASTMCP_AUTH_LOG_LEVEL_*`).
pub fn rank(level: Level) -> u8 {
    match level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// The level of a number 1 (`ERROR`) … 5 (`TRACE`); `None` outside.
pub fn level_of_rank(rank: u32) -> Option<Level> {
    match rank {
        1 => Some(Level::ERROR),
        2 => Some(Level::WARN),
        3 => Some(Level::INFO),
        4 => Some(Level::DEBUG),
        5 => Some(Level::TRACE),
        _ => None,
    }
}

/// Sends records at `max_level` and above (`Level::WARN`: warnings and errors) to `sink`, replacing the previous
/// sink; `None` stops forwarding.
pub fn set_sink(sink: Option<Sink>, max_level: Level) -> SinkInstall {
    set_level(max_level);
    *SINK.write().unwrap_or_else(|p| p.into_inner()) = sink;
    *INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Forward);
        match tracing::subscriber::set_global_default(subscriber) {
            Ok(()) => SinkInstall::Forwarding,
            Err(_) => SinkInstall::HostSubscriber,
        }
    })
}

/// Changes the most verbose level forwarded.
pub fn set_level(max_level: Level) {
    MAX_LEVEL.store(rank(max_level), Ordering::Relaxed);
    // Callsites cache whether they are enabled: make them ask again.
    tracing::callsite::rebuild_interest_cache();
}

/// The most verbose level forwarded now.
pub fn max_level() -> Level {
    level_of_rank(u32::from(MAX_LEVEL.load(Ordering::Relaxed)).clamp(1, 5)).unwrap_or(Level::WARN)
}

/// Parses a level name as hosts spell them: `error`, `warn`/`warning`, `info`, `debug`, `trace` (any case).
pub fn parse_level(name: &str) -> Option<Level> {
    match name.to_ascii_lowercase().as_str() {
        "error" => Some(Level::ERROR),
        "warn" | "warning" => Some(Level::WARN),
        "info" => Some(Level::INFO),
        "debug" => Some(Level::DEBUG),
        "trace" => Some(Level::TRACE),
        _ => None,
    }
}

struct Forward;

impl<S: Subscriber> Layer<S> for Forward {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        // Our own events only: the dependencies' (hyper, rustls, redis) are theirs to report, and chatty.
        rank(*metadata.level()) <= MAX_LEVEL.load(Ordering::Relaxed)
            && metadata.target().starts_with("fastmcp_auth")
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let sink = SINK.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(sink) = sink else { return };
        let mut v = Fields::default();
        event.record(&mut v);
        let mut message = v.message;
        if !v.fields.is_empty() {
            if !message.is_empty() {
                message.push(' ');
            }
            message.push_str(&v.fields);
        }
        let record = Record {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            message,
        };
        // A sink that panics must not take the emitting thread (a request) with it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(&record)));
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &format_args!("{value}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn forwards_formatted_records_at_the_level() {
        let got: Arc<Mutex<Vec<Record>>> = Arc::default();
        let g = got.clone();
        let install = set_sink(
            Some(Arc::new(move |r: &Record| g.lock().unwrap().push(r.clone()))),
            Level::WARN,
        );
        assert_eq!(install, SinkInstall::Forwarding);
        tracing::warn!(key = %"1a2b", count = 3, "DiskStore: entry skipped");
        tracing::info!("not forwarded at WARN");
        set_level(Level::INFO);
        tracing::info!("now forwarded");
        set_sink(None, Level::WARN);
        tracing::error!("no sink: dropped");
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].level, Level::WARN);
        assert_eq!(got[0].message, "DiskStore: entry skipped key=1a2b count=3");
        assert_eq!(got[0].target, module_path!());
        assert_eq!(got[1].message, "now forwarded");
        assert_eq!(parse_level("Warning"), Some(Level::WARN));
        assert_eq!(parse_level("loud"), None);
    }
}
