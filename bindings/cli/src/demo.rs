//! `fastmcp-auth demo`: the whole token swap flow against a loopback mock identity provider, with a DiskStore in a
//! local folder, then a restart on the same folder.

use std::path::Path;
use std::sync::Arc;

use fastmcp_auth::blocking::OAuthProxy;
use fastmcp_auth::proxy::{AuthorizeParams, CallbackParams, ConsentParams, OAuthProxyConfig, TokenRequest};
use fastmcp_auth::store::{DiskStore, DiskStoreOptions};
use fastmcp_auth::{dangerous, derive_key, ChallengeMethod, CodeVerifier};
use fastmcp_auth_mock_idp::MockIdp;
use serde_json::{json, Value};

const BASE: &str = "http://127.0.0.1:8000";
const CLIENT_REDIRECT: &str = "http://127.0.0.1:33418/callback";

fn short(s: &str) -> String {
    if s.len() > 24 {
        format!("{}…", &s[..24])
    } else {
        s.to_owned()
    }
}

fn param(location: &str, name: &str) -> Result<String, String> {
    let u = url::Url::parse(location).map_err(|e| e.to_string())?;
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .ok_or(format!("no {name} in redirect"))
}

fn proxy(idp: &MockIdp, dir: &Path, jwt_key: &str, enc_key: &str) -> Result<OAuthProxy, String> {
    let s = idp.settings();
    let mut c = OAuthProxyConfig::new(
        BASE,
        idp.authorize_url(),
        idp.token_url(),
        s.client_id,
        s.client_secret,
    );
    c.token_storage = Some(Arc::new(
        DiskStore::open(DiskStoreOptions::new(dir)).map_err(|e| e.to_string())?,
    ));
    c.jwt_signing_key = Some(jwt_key.to_owned());
    c.encryption_key = Some(enc_key.to_owned());
    c.scopes = vec!["openid".into(), "email".into()];
    OAuthProxy::new(c).map_err(|e| e.to_string())
}

pub fn run(dir: &Path) -> Result<(), String> {
    let e = |e: fastmcp_auth::proxy::OAuthError| e.to_string();
    let idp = MockIdp::start();
    println!(
        "0. mock identity provider on {} ; DiskStore in {}",
        idp.base_url(),
        dir.display()
    );
    // Stable keys, so the restart below can read what the first instance wrote.
    let jwt_key = derive_key("demo-secret:jwt", 100_000).map_err(|e| e.to_string())?;
    let enc_key = derive_key("demo-secret:encryption", 100_000).map_err(|e| e.to_string())?;
    let p = proxy(&idp, dir, &jwt_key, &enc_key)?;

    let reg = p
        .register_client(&json!({"redirect_uris": [CLIENT_REDIRECT], "client_name": "Demo MCP client"}))
        .map_err(e)?;
    let client_id = reg["client_id"].as_str().unwrap_or_default().to_owned();
    let secret = reg["client_secret"].as_str().map(str::to_owned);
    println!(
        "1. registered client {client_id} (secret issued: {})",
        secret.is_some()
    );

    let verifier = CodeVerifier::generate(64).map_err(|e| e.to_string())?;
    let page = p
        .authorize(&AuthorizeParams {
            client_id: Some(client_id.clone()),
            redirect_uri: Some(CLIENT_REDIRECT.into()),
            response_type: Some("code".into()),
            state: Some("demo-state".into()),
            code_challenge: Some(verifier.challenge(ChallengeMethod::S256)),
            code_challenge_method: Some("S256".into()),
            scope: None,
            cookie: None,
            resource: None,
            remote_addr: Some("127.0.0.1".into()),
        })
        .map_err(e)?;
    // The demo plays one browser: it keeps the cookie jar the proxy binds the authorization to.
    let jar = page.cookie_header();
    let body = page.body.unwrap_or_default();
    let hidden = |name: &str| {
        body.split(&format!("name=\"{name}\" value=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .map(str::to_owned)
            .ok_or("no consent form")
    };
    let tx = hidden("transaction_id")?;
    println!(
        "2. authorize → HTTP {} consent page (transaction {}; browser-binding cookie set: {})",
        page.status,
        short(&tx),
        jar.is_some()
    );

    let up = p
        .handle_consent(&ConsentParams {
            transaction_id: Some(tx),
            action: Some("approve".into()),
            csrf_token: Some(hidden("csrf_token")?),
            cookie: jar.clone(),
            remote_addr: Some("127.0.0.1".into()),
        })
        .map_err(e)?;
    let upstream_url = up.location().ok_or("no redirect to upstream")?.to_owned();
    println!(
        "3. consent approved → HTTP {} to upstream {}",
        up.status,
        short(&upstream_url)
    );

    let callback = idp.login(&upstream_url)?;
    let query = url::Url::parse(&callback)
        .map_err(|e| e.to_string())?
        .query()
        .unwrap_or_default()
        .to_owned();
    let back = p
        .handle_callback(
            &CallbackParams::from_query(&query)
                .map_err(e)?
                .with_cookie(jar.as_deref()),
        )
        .map_err(e)?;
    let to_client = back.location().ok_or("no redirect to client")?.to_owned();
    let code = param(&to_client, "code")?;
    println!(
        "4. callback: upstream code exchanged → HTTP {} to the client with code {}",
        back.status,
        short(&code)
    );

    let req = TokenRequest {
        grant_type: Some("authorization_code".into()),
        code: Some(code),
        redirect_uri: Some(CLIENT_REDIRECT.into()),
        code_verifier: Some(verifier.as_str().into()),
        client_id: Some(client_id.clone()),
        client_secret: secret.clone(),
        ..Default::default()
    };
    let tokens = p.token(&req).map_err(e)?;
    println!(
        "5. code exchange → access token {} (expires in {} s)",
        short(&tokens.access_token),
        tokens.expires_in
    );
    let claims = dangerous::insecure_decode_claims(&tokens.access_token).map_err(|e| e.to_string())?;
    println!("6. JWT claims: {}", Value::Object(claims));

    let upstream = p
        .load_upstream_tokens(&tokens.access_token)
        .map_err(e)?
        .ok_or("upstream tokens not found")?;
    println!(
        "7. load_upstream_tokens → upstream access token {}",
        short(&upstream.access_token)
    );

    let old_refresh = tokens.refresh_token.ok_or("no refresh token")?;
    let refresh = |p: &OAuthProxy, rt: &str| {
        p.token(&TokenRequest {
            grant_type: Some("refresh_token".into()),
            refresh_token: Some(rt.into()),
            client_id: Some(client_id.clone()),
            client_secret: secret.clone(),
            ..Default::default()
        })
    };
    let refreshed = refresh(&p, &old_refresh).map_err(e)?;
    let new_refresh = refreshed
        .refresh_token
        .clone()
        .ok_or("no rotated refresh token")?;
    if new_refresh == old_refresh {
        return Err("refresh token was not rotated".into());
    }
    println!(
        "8. refresh → new access token {}, refresh token rotated",
        short(&refreshed.access_token)
    );

    p.close();
    drop(p);
    let p2 = proxy(&idp, dir, &jwt_key, &enc_key)?;
    let again = p2
        .load_upstream_tokens(&refreshed.access_token)
        .map_err(e)?
        .ok_or("restart lost the upstream tokens")?;
    println!(
        "9. restart (new proxy, same folder) → load_upstream_tokens still works: {}",
        short(&again.access_token)
    );
    let after = refresh(&p2, &new_refresh).map_err(e)?;
    println!(
        "10. refresh after restart → access token {}",
        short(&after.access_token)
    );
    p2.close();
    println!("demo: all steps passed");
    Ok(())
}
