//! The demo: a DiskStore in a local folder under an EncryptedStore, and a JWT round trip.

use std::path::Path;
use std::time::Duration;

use fastmcp_auth::blocking::Store;
use fastmcp_auth::store::DiskStoreOptions;
use fastmcp_auth::{derive_key, IssueOptions, JwtIssuer, TokenUse};
use serde_json::json;

pub fn run(dir: &Path) -> Result<(), String> {
    let e = |e: fastmcp_auth::Error| e.to_string();
    println!("1. derive keys (PBKDF2, as fastmcp TS JWTIssuer.deriveKey)");
    let jwt_key = derive_key("demo-secret:jwt", 100_000).map_err(e)?;
    let enc_key = derive_key("demo-secret:encryption", 100_000).map_err(e)?;
    println!("   signing key and encryption key derived (not printed)");

    println!(
        "2. open DiskStore at {} wrapped in EncryptedStore (AES-256-GCM)",
        dir.display()
    );
    let disk = Store::disk(DiskStoreOptions::new(dir)).map_err(e)?;
    let store = disk.encrypted(&enc_key, &[]).map_err(e)?;
    store
        .save(
            "upstream_tokens:demo",
            json!({"accessToken": "upstream-at", "refreshToken": "upstream-rt"}),
            Some(Duration::from_secs(3600)),
        )
        .map_err(e)?;
    let raw = disk
        .get("upstream_tokens:demo")
        .map_err(e)?
        .ok_or("entry missing")?;
    println!(
        "   on disk: {}…",
        &raw.as_str()
            .unwrap_or_default()
            .chars()
            .take(40)
            .collect::<String>()
    );
    let back = store
        .get("upstream_tokens:demo")
        .map_err(e)?
        .ok_or("entry missing")?;
    println!("   decrypted: accessToken={}", back["accessToken"]);

    println!("3. issue and verify a JWT");
    let issuer = JwtIssuer::new(
        "http://127.0.0.1:8000",
        "http://127.0.0.1:8000",
        jwt_key.as_bytes(),
    )
    .map_err(e)?;
    let token = issuer
        .issue_access_token("demo-client", &["read", "write"], IssueOptions::default())
        .map_err(e)?;
    let claims = issuer.verify(&token, TokenUse::Access).map_err(e)?;
    println!("   claims: {}", serde_json::Value::Object(claims));

    println!("4. single-use code: take twice");
    store
        .save(
            "code:demo",
            json!({"client_id": "demo-client"}),
            Some(Duration::from_secs(300)),
        )
        .map_err(e)?;
    let first = store.take("code:demo").map_err(e)?;
    let second = store.take("code:demo").map_err(e)?;
    if first.is_none() || second.is_some() {
        return Err("take is not single-use".into());
    }
    println!("   first take: value, second take: none");
    println!("demo: all steps passed");
    Ok(())
}
