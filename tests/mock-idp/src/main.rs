//! `mock-idp`: serves the mock identity provider on 127.0.0.1 for benchmark scripts and the Node tests (prints its
//! base URL, runs until standard input closes). `MOCK_IDP_ACCESS_TOKEN_CLAIMS` / `MOCK_IDP_ID_TOKEN_CLAIMS` (JSON
//! objects) make it issue JWT-shaped access tokens / ID tokens with those claims.
//!
//! `mock-idp doc-host` serves the HTTPS Client ID Metadata Document host instead (`doc_host.rs`) and prints one
//! JSON line: `{"base_url": "https://localhost:PORT", "ca_pem": "...", "good": [...], "hostile": [[name, error]]}`.

fn wait_for_stdin_to_close() {
    let mut sink = String::new();
    while std::io::stdin()
        .read_line(&mut sink)
        .map(|n| n > 0)
        .unwrap_or(false)
    {}
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("doc-host") {
        use fastmcp_auth_mock_idp::doc_host::{DocHost, GOOD, HOSTILE};
        let host = DocHost::start();
        println!(
            "{}",
            serde_json::json!({
                "base_url": host.base_url(),
                "ca_pem": host.ca_pem(),
                "good": GOOD,
                "hostile": HOSTILE,
            })
        );
        wait_for_stdin_to_close();
        return;
    }
    let claims = |var: &str| {
        std::env::var(var)
            .ok()
            .map(|v| serde_json::from_str(&v).unwrap_or_else(|e| panic!("{var} is not JSON: {e}")))
    };
    let idp = fastmcp_auth_mock_idp::MockIdp::start_with(fastmcp_auth_mock_idp::Settings {
        access_token_claims: claims("MOCK_IDP_ACCESS_TOKEN_CLAIMS"),
        id_token_claims: claims("MOCK_IDP_ID_TOKEN_CLAIMS"),
        ..Default::default()
    });
    println!("{}", idp.base_url());
    wait_for_stdin_to_close();
}
