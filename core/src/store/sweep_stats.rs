//! Figures of the stores' expiry sweeps (the production checklist's "monitor storage cleanup"), process-wide: every
//! MemoryStore and DiskStore sweep — background or an explicit `cleanup()` — is counted here, and each proxy's
//! metrics expose them (`fastmcp_auth_store_sweeps_total` and friends, label `store`: `memory`, `disk`).
//! RedisStore has no sweep: Redis expires keys itself.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

type Label = [(&'static str, &'static str); 1];

/// The sweep families; cloning shares the counts (prometheus-client metrics are shared handles).
#[derive(Clone)]
pub(crate) struct SweepStats {
    pub runs: Family<Label, Counter>,
    pub scanned: Family<Label, Counter>,
    pub removed: Family<Label, Counter>,
    pub seconds: Family<Label, Histogram, fn() -> Histogram>,
}

fn histogram() -> Histogram {
    // 0.1 ms … ~6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

pub(crate) fn stats() -> &'static SweepStats {
    static STATS: OnceLock<SweepStats> = OnceLock::new();
    STATS.get_or_init(|| SweepStats {
        runs: Family::default(),
        scanned: Family::default(),
        removed: Family::default(),
        seconds: Family::new_with_constructor(histogram as fn() -> Histogram),
    })
}

/// Records one sweep of a `store` (`memory`, `disk`): entries looked at, entries removed, time taken.
pub(crate) fn record(store: &'static str, scanned: u64, removed: u64, took: Duration) {
    let s = stats();
    let l = [("store", store)];
    s.runs.get_or_create(&l).inc();
    s.scanned.get_or_create(&l).inc_by(scanned);
    s.removed.get_or_create(&l).inc_by(removed);
    s.seconds.get_or_create(&l).observe(took.as_secs_f64());
}
