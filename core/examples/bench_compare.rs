//! Times the same operations as scripts/bench/ts_bench.mjs, for scripts/bench-vs-fastmcp.sh.
//! Usage: bench_compare <work dir> <sweep dataset dir>  → one JSON object of microseconds / milliseconds.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fastmcp_auth::store::{DiskStore, DiskStoreOptions, SyncStore};
use fastmcp_auth::{IssueOptions, JwtIssuer, TokenUse};
use serde_json::json;

fn per_op(n: u32, mut f: impl FnMut(u32)) -> f64 {
    for i in 0..n / 10 {
        f(i); // warm-up
    }
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let (work, sweep_dir) = (&args[0], &args[1]);
    let i = JwtIssuer::new(
        "https://mcp.example.com",
        "https://mcp.example.com",
        "bench-signing-key",
    )
    .unwrap();
    let issue = per_op(200_000, |_| {
        i.issue_access_token("client-123", &["read", "write"], IssueOptions::default())
            .unwrap();
    });
    let t = i
        .issue_access_token("client-123", &["read", "write"], IssueOptions::default())
        .unwrap();
    let verify = per_op(200_000, |_| {
        i.verify(&t, TokenUse::Access).unwrap();
    });
    let s = DiskStore::open(DiskStoreOptions {
        cleanup_interval: None,
        ..DiskStoreOptions::new(work)
    })
    .unwrap();
    let v = json!({"accessToken": "a".repeat(200), "refreshToken": "r".repeat(200), "expiresIn": 3600});
    let n = 5_000;
    let save = per_op(n, |k| {
        s.save_sync(
            &format!("mapping-{k}"),
            v.clone(),
            Some(Duration::from_secs(3600)),
        )
        .unwrap()
    });
    let get = per_op(n, |k| {
        s.get_sync(&format!("mapping-{}", k % n)).unwrap().unwrap();
    });
    let take = per_op(n, |k| {
        s.take_sync(&format!("mapping-{k}")).unwrap();
    });
    // Sweep: a running store sweeps through its expiry index; a freshly opened store does one full scan.
    let t0 = Instant::now();
    let fresh = DiskStore::open(DiskStoreOptions {
        cleanup_interval: None,
        full_scan_interval: Duration::from_secs(1 << 30),
        ..DiskStoreOptions::new(sweep_dir)
    })
    .unwrap();
    let full_scan_ms = t0.elapsed().as_secs_f64() * 1e3;
    let total = fresh.size_sync().unwrap();
    let dead = total / 100;
    for k in 0..dead {
        fresh
            .save_sync(
                &format!("again-{k}"),
                json!({"upstreamTokenKey": "u"}),
                Some(Duration::from_millis(1)),
            )
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
    let t1 = Instant::now();
    let removed = fresh.cleanup_sync().unwrap();
    let sweep_ms = t1.elapsed().as_secs_f64() * 1e3;
    assert_eq!(removed, dead);
    println!(
        "{}",
        json!({"issue_us": issue, "verify_us": verify, "save_us": save, "get_us": get, "take_us": take,
               "sweep_running_ms": sweep_ms, "sweep_fresh_ms": full_scan_ms, "entries": total})
    );
}
