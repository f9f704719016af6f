//! `cargo bench -p fastmcp-auth`: JWT issue/verify, DiskStore save/get/take, EncryptedStore save/get, sweeps.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use fastmcp_auth::store::{DiskStore, DiskStoreOptions, EncryptedStore, SyncStore};
use fastmcp_auth::{IssueOptions, JwtIssuer, TokenUse};
use serde_json::json;

fn jwt(c: &mut Criterion) {
    let i = JwtIssuer::new(
        "https://mcp.example.com",
        "https://mcp.example.com",
        "bench-signing-key-32-bytes-long!",
    )
    .unwrap();
    c.bench_function("jwt/issue_access_token", |b| {
        b.iter(|| {
            i.issue_access_token("client-123", &["read", "write"], IssueOptions::default())
                .unwrap()
        })
    });
    let t = i
        .issue_access_token("client-123", &["read", "write"], IssueOptions::default())
        .unwrap();
    c.bench_function("jwt/verify", |b| {
        b.iter(|| i.verify(&t, TokenUse::Access).unwrap())
    });
}

fn value() -> serde_json::Value {
    json!({"accessToken": "a".repeat(200), "refreshToken": "r".repeat(200), "expiresIn": 3600, "scope": ["read", "write"]})
}

fn disk(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStore::open(DiskStoreOptions {
        cleanup_interval: None,
        ..DiskStoreOptions::new(dir.path())
    })
    .unwrap();
    let v = value();
    let mut fresh = 0u64;
    c.bench_function("disk/save_new_key", |b| {
        b.iter(|| {
            fresh += 1;
            s.save_sync(
                &format!("mapping:{fresh}"),
                v.clone(),
                Some(Duration::from_secs(3600)),
            )
            .unwrap()
        })
    });
    c.bench_function("disk/save_overwrite", |b| {
        b.iter(|| {
            s.save_sync("mapping:bench", v.clone(), Some(Duration::from_secs(3600)))
                .unwrap()
        })
    });
    c.bench_function("disk/get", |b| {
        b.iter(|| s.get_sync("mapping:bench").unwrap().unwrap())
    });
    let mut n = 0u64;
    c.bench_function("disk/take", |b| {
        b.iter_batched(
            || {
                n += 1;
                let k = format!("code:{n}");
                s.save_sync(&k, v.clone(), None).unwrap();
                k
            },
            |k| s.take_sync(&k).unwrap().unwrap(),
            BatchSize::SmallInput,
        )
    });
    let enc = EncryptedStore::new(
        Arc::new(DiskStore::new(dir.path().join("enc")).unwrap()),
        "bench-key",
        &[],
    )
    .unwrap();
    c.bench_function("encrypted_disk/save_new_key", |b| {
        b.iter(|| {
            fresh += 1;
            enc.save_sync(&format!("upstream:{fresh}"), v.clone(), None)
                .unwrap()
        })
    });
    enc.save_sync("upstream:bench", v.clone(), None).unwrap();
    c.bench_function("encrypted_disk/get", |b| {
        b.iter(|| enc.get_sync("upstream:bench").unwrap().unwrap())
    });
}

fn sweep(c: &mut Criterion) {
    let mut g = c.benchmark_group("disk/sweep_1pct_expired");
    g.sample_size(10);
    for total in [10_000usize, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskStore::open(DiskStoreOptions {
            cleanup_interval: None,
            full_scan_interval: Duration::from_secs(1 << 30),
            ..DiskStoreOptions::new(dir.path())
        })
        .unwrap();
        let v = json!({"upstreamTokenKey": "u"});
        for i in 0..total {
            s.save_sync(&format!("live:{i}"), v.clone(), Some(Duration::from_secs(3600)))
                .unwrap();
        }
        let expired = total / 100;
        g.bench_function(format!("{total}"), |b| {
            b.iter_batched(
                || {
                    for i in 0..expired {
                        s.save_sync(&format!("dead:{i}"), v.clone(), Some(Duration::from_millis(1)))
                            .unwrap();
                    }
                    std::thread::sleep(Duration::from_millis(2));
                },
                |_| assert_eq!(s.cleanup_sync().unwrap(), expired as u64),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// The rate limiter's cost per request in memory (governor, per-process): an allowed request counted against an
/// address and a client id among 1,000 of each, and a refused one.
fn rate_limit(c: &mut Criterion) {
    use fastmcp_auth::proxy::{Caller, Endpoint, Limit, Limiter, RateLimits};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = fastmcp_auth::store::MemoryStore::new();
    let roomy = Limiter::new(&RateLimits {
        token: Some(Limit {
            per_minute: 6_000_000,
            burst: 1_000_000,
        }),
        ..Default::default()
    });
    let addrs: Vec<String> = (0..1000)
        .map(|i| format!("198.51.{}.{}", i / 256, i % 256))
        .collect();
    let clients: Vec<String> = (0..1000).map(|i| format!("client-{i:04}")).collect();
    let mut i = 0usize;
    c.bench_function("rate_limit/allowed (address + client id)", |b| {
        b.iter(|| {
            i = (i + 1) % 1000;
            let caller = Caller {
                remote_addr: Some(&addrs[i]),
                client_id: Some(&clients[i]),
                url_client: false,
            };
            rt.block_on(roomy.check(&store, Endpoint::Token, &caller, false))
                .unwrap();
        })
    });
    let tight = Limiter::new(&RateLimits {
        token: Some(Limit {
            per_minute: 1,
            burst: 1,
        }),
        ..Default::default()
    });
    let caller = Caller {
        remote_addr: Some("203.0.113.9"),
        client_id: Some("client"),
        url_client: false,
    };
    let _ = rt.block_on(tight.check(&store, Endpoint::Token, &caller, false));
    c.bench_function("rate_limit/refused (429)", |b| {
        b.iter(|| {
            rt.block_on(tight.check(&store, Endpoint::Token, &caller, false))
                .unwrap_err()
        })
    });
}

criterion_group!(benches, jwt, disk, sweep, rate_limit);
criterion_main!(benches);
