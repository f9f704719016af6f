//! The same calls as tests/c/bench.c, from Rust (scripts/bench-c.sh): JWT verify and a blocking DiskStore get.
use std::time::Instant;

use fastmcp_auth::blocking::Store;
use fastmcp_auth::store::DiskStoreOptions;
use fastmcp_auth::{IssueOptions, JwtIssuer, TokenUse};

fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let i = JwtIssuer::new(
        "https://mcp.example.com",
        "https://mcp.example.com",
        "bench-signing-key",
    )
    .unwrap();
    let token = i
        .issue_access_token("client-123", &["read", "write"], IssueOptions::default())
        .unwrap();
    let n = 200_000;
    for _ in 0..n / 10 {
        std::hint::black_box(i.verify_json(&token, TokenUse::Access).unwrap());
    }
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(i.verify_json(&token, TokenUse::Access).unwrap());
    }
    let verify = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let s = Store::disk(DiskStoreOptions {
        cleanup_interval: None,
        ..DiskStoreOptions::new(dir)
    })
    .unwrap();
    let v = serde_json::json!({"accessToken": "a".repeat(40), "expiresIn": 3600});
    s.save("mapping:bench", v, None).unwrap();
    let m = 50_000;
    for _ in 0..m / 10 {
        std::hint::black_box(s.get("mapping:bench").unwrap());
    }
    let t = Instant::now();
    for _ in 0..m {
        std::hint::black_box(s.get("mapping:bench").unwrap());
    }
    let get = t.elapsed().as_secs_f64() * 1e6 / m as f64;
    println!("{}", serde_json::json!({"verify_us": verify, "get_us": get}));
}
