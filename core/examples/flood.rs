//! What a flood of open dynamic registrations and authorize calls costs the proxy (README "Security model",
//! bounded registration): memory (RSS growth) and disk per registration and per transaction, with the proxy's
//! default limits, on an encrypted DiskStore and on a MemoryStore.
//!
//!   cargo run --release -p fastmcp-auth --example flood [-- COUNT]     (COUNT defaults to 100000)
//!
//! Each registration is the largest the proxy accepts in shape (20 redirect URIs, every metadata field near its
//! limit, under the 16 KiB request limit); each authorize call carries the largest `state` and `scope` accepted.

use std::sync::Arc;
use std::time::Instant;

use fastmcp_auth::blocking::OAuthProxy;
use fastmcp_auth::proxy::{AuthorizeParams, OAuthProxyConfig};
use fastmcp_auth::store::{DiskStore, MemoryStore, Store};
use serde_json::json;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn registration() -> serde_json::Value {
    let uris: Vec<String> = (0..20)
        .map(|i| format!("http://127.0.0.1:{}/{}", 10_000 + i, "p".repeat(150)))
        .collect();
    let field = "m".repeat(900);
    json!({
        "redirect_uris": uris,
        "client_name": "n".repeat(200),
        "client_uri": format!("https://example.com/{field}"),
        "logo_uri": format!("https://example.com/{field}"),
        "policy_uri": format!("https://example.com/{field}"),
        "tos_uri": format!("https://example.com/{field}"),
        "software_id": field,
        "software_version": "1",
        "token_endpoint_auth_method": "none",
    })
}

fn flood(name: &str, store: Arc<dyn Store>, dir: Option<&std::path::Path>, n: usize) {
    let mut c = OAuthProxyConfig::new(
        "http://127.0.0.1:8000",
        "http://127.0.0.1:9/authorize",
        "http://127.0.0.1:9/token",
        "upstream",
        "secret",
    );
    c.token_storage = Some(store);
    c.encryption_key = Some("flood-encryption-key".into());
    c.jwt_signing_key = Some("flood-signing-key".into());
    // What each item costs once it is stored: the rate limits, which keep most of a flood out, are off here.
    c.rate_limits.enabled = false;
    let p = OAuthProxy::new(c).expect("proxy");
    let body = registration();
    println!("{name}: registration request {} bytes", body.to_string().len());
    let rss0 = rss_bytes();
    let t = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let r = p.register_client(&body).expect("register");
        ids.push(r["client_id"].as_str().unwrap_or_default().to_owned());
    }
    let reg_secs = t.elapsed().as_secs_f64();
    let rss1 = rss_bytes();
    let disk1 = dir.map(dir_bytes).unwrap_or(0);
    println!(
        "{name}: {n} registrations in {reg_secs:.1} s: RSS +{:.1} MB ({:.0} B each), disk {:.1} MB ({:.0} B each)",
        (rss1.saturating_sub(rss0)) as f64 / 1e6,
        rss1.saturating_sub(rss0) as f64 / n as f64,
        disk1 as f64 / 1e6,
        disk1 as f64 / n as f64,
    );
    let state = "s".repeat(1024);
    let scope = vec!["x".repeat(40); 99].join(" "); // 4,058 bytes: the largest accepted (4 KiB, 100 scopes)
    let t = Instant::now();
    let mut refused = 0;
    for (i, id) in ids.iter().enumerate() {
        let r = p.authorize(&AuthorizeParams {
            client_id: Some(id.clone()),
            redirect_uri: Some(format!(
                "http://127.0.0.1:{}/{}",
                10_000 + i % 20,
                "p".repeat(150)
            )),
            response_type: Some("code".into()),
            state: Some(state.clone()),
            scope: Some(scope.clone()),
            code_challenge: Some("a".repeat(43)),
            code_challenge_method: Some("S256".into()),
            cookie: None,
            resource: None,
            remote_addr: None,
        });
        if !matches!(r, Ok(ref x) if x.status == 200) {
            refused += 1;
        }
    }
    let tx_secs = t.elapsed().as_secs_f64();
    let rss2 = rss_bytes();
    let disk2 = dir.map(dir_bytes).unwrap_or(0);
    println!(
        "{name}: {n} authorize calls ({refused} refused) in {tx_secs:.1} s: RSS +{:.1} MB ({:.0} B each), disk +{:.1} MB ({:.0} B each)",
        rss2.saturating_sub(rss1) as f64 / 1e6,
        rss2.saturating_sub(rss1) as f64 / n as f64,
        disk2.saturating_sub(disk1) as f64 / 1e6,
        disk2.saturating_sub(disk1) as f64 / n as f64,
    );
    p.close();
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let tmp = std::env::temp_dir().join(format!("fastmcp-auth-flood-{}", std::process::id()));
    let disk = DiskStore::new(&tmp).expect("disk store");
    flood("encrypted DiskStore", Arc::new(disk), Some(&tmp), n);
    let _ = std::fs::remove_dir_all(&tmp);
    flood("encrypted MemoryStore", Arc::new(MemoryStore::new()), None, n);
}
