//! `mock-idp`: serves the mock identity provider on 127.0.0.1 for benchmark scripts (prints its base URL, runs
//! until standard input closes).

fn main() {
    let idp = fastmcp_auth_mock_idp::MockIdp::start();
    println!("{}", idp.base_url());
    let mut sink = String::new();
    while std::io::stdin()
        .read_line(&mut sink)
        .map(|n| n > 0)
        .unwrap_or(false)
    {}
}
