//! The Rust face in the cross-language conformance suite (`tests/conformance/run.py`): reads a JSON array of
//! operations on stdin and prints a JSON array of results, one per operation. The protocol is the same for every
//! face (see `tests/conformance/README.md`); errors are `{"error": "<code>"}`.

use std::io::Read;
use std::time::Duration;

use fastmcp_auth::keys::{derive_jwt_key, key_material};
use fastmcp_auth::pkce::{generate_challenge, ChallengeMethod};
use fastmcp_auth::store::{DiskStore, DiskStoreOptions, Keyring, SyncStore};
use fastmcp_auth::{ClaimLayout, Error, IssueOptions, JwtIssuer, TokenUse};
use serde_json::{json, Value};

fn s<'a>(op: &'a Value, k: &str) -> &'a str {
    op.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn issuer(op: &Value) -> Result<JwtIssuer, Error> {
    let mut i = JwtIssuer::new(s(op, "issuer"), s(op, "audience"), s(op, "key").as_bytes())?.with_layout(
        ClaimLayout::parse(op.get("layout").and_then(Value::as_str).unwrap_or("ts"))?,
    );
    if let Some(t) = op.get("now").and_then(Value::as_u64) {
        i = i.with_fixed_time(Some(t));
    }
    Ok(i)
}

fn disk(op: &Value) -> Result<DiskStore, Error> {
    DiskStore::open(DiskStoreOptions {
        cleanup_interval: None,
        ..DiskStoreOptions::new(s(op, "dir"))
    })
}

fn run(op: &Value) -> Result<Value, Error> {
    Ok(match s(op, "op") {
        "issue" => {
            let i = issuer(op)?;
            let scopes: Vec<String> = serde_json::from_value(op["scopes"].clone()).unwrap_or_default();
            let opts = IssueOptions {
                jti: op.get("jti").and_then(Value::as_str).map(str::to_owned),
                expires_in: op.get("expiresIn").and_then(Value::as_u64),
                extra_claims: op.get("claims").and_then(Value::as_object).cloned(),
                ..Default::default()
            };
            let t = if op.get("refresh").and_then(Value::as_bool) == Some(true) {
                i.issue_refresh_token(s(op, "clientId"), &scopes, opts)?
            } else {
                i.issue_access_token(s(op, "clientId"), &scopes, opts)?
            };
            Value::String(t)
        }
        "verify" => {
            let i = issuer(op)?;
            let expected = TokenUse::parse(op.get("expected").and_then(Value::as_str).unwrap_or("access"))?;
            let v = i.verify_detailed(s(op, "token"), expected);
            json!({"valid": v.valid, "reason": v.error.map(|e| e.as_str()), "claims": v.claims})
        }
        "deriveKey" => Value::String(fastmcp_auth::derive_key(
            s(op, "secret"),
            op["iterations"].as_u64().unwrap_or(100_000) as u32,
        )?),
        "deriveJwtKey" => {
            let m = s(op, "material");
            let material = if s(op, "mode") == "high_entropy_material" {
                key_material(Some(m), None)?
            } else {
                key_material(None, Some(m))?
            };
            Value::String(derive_jwt_key(material, s(op, "salt"))?)
        }
        "challenge" => Value::String(generate_challenge(
            s(op, "verifier"),
            ChallengeMethod::parse(op.get("method").and_then(Value::as_str).unwrap_or("S256"))?,
        )),
        "encrypt" => Value::String(Keyring::new(s(op, "key"), &[])?.encrypt(&op["value"])?),
        "decrypt" => Keyring::new(s(op, "key"), &[])?.decrypt(s(op, "stored"))?,
        "diskWrite" => {
            let d = disk(op)?;
            for e in op["entries"].as_array().into_iter().flatten() {
                let ttl = e.get("ttl").and_then(Value::as_f64).map(Duration::from_secs_f64);
                d.save_sync(s(e, "key"), e["value"].clone(), ttl)?;
            }
            Value::Bool(true)
        }
        "diskRead" => {
            let d = disk(op)?;
            let mut out = Vec::new();
            for k in op["keys"].as_array().into_iter().flatten() {
                out.push(d.get_sync(k.as_str().unwrap_or_default())?.unwrap_or(Value::Null));
            }
            Value::Array(out)
        }
        "proxyAuthorize" => {
            let config = fastmcp_auth::proxy::OAuthProxyConfig::from_json(&op["config"])?;
            let p = fastmcp_auth::blocking::OAuthProxy::new(config)?;
            let params = fastmcp_auth::proxy::AuthorizeParams::from_query(s(op, "query"))
                .map_err(|e| Error::InvalidArgument(e.code))?;
            match p.authorize(&params) {
                Ok(r) => json!({"status": r.status}),
                Err(e) => json!({"error": e.code, "error_description": e.description, "status": e.status}),
            }
        }
        other => return Err(Error::InvalidArgument(format!("unknown op {other}"))),
    })
}

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("stdin");
    let ops: Vec<Value> = serde_json::from_str(&input).expect("a JSON array of operations");
    let out: Vec<Value> = ops
        .iter()
        .map(|op| run(op).unwrap_or_else(|e| json!({"error": e.code().as_str()})))
        .collect();
    println!("{}", Value::Array(out));
}
