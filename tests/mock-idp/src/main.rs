//! `mock-idp`: serves the mock identity provider on 127.0.0.1 for benchmark scripts and the Node tests (prints its
//! base URL, runs until standard input closes). `MOCK_IDP_ACCESS_TOKEN_CLAIMS` / `MOCK_IDP_ID_TOKEN_CLAIMS` (JSON
//! objects) make it issue JWT-shaped access tokens / ID tokens with those claims.

fn main() {
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
    let mut sink = String::new();
    while std::io::stdin()
        .read_line(&mut sink)
        .map(|n| n > 0)
        .unwrap_or(false)
    {}
}
