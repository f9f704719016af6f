//! include/fastmcp_auth.h must equal a fresh cbindgen generation (pinned version); UPDATE_HEADER=1 rewrites it.

use std::path::PathBuf;

#[test]
fn header_is_up_to_date() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed")
        .write(&mut generated);
    let path = crate_dir.join("../include/fastmcp_auth.h");
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/fastmcp_auth.h is stale: run `UPDATE_HEADER=1 cargo test -p fastmcp-auth-ffi --test header` and commit it"
    );
}

#[test]
fn header_version_matches_the_crate() {
    let v = unsafe { std::ffi::CStr::from_ptr(fastmcp_auth::fastmcp_auth_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn version_macros_match_cargo_toml() {
    let parts: Vec<u32> = env!("CARGO_PKG_VERSION")
        .split(['.', '-'])
        .take(3)
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(
        [
            fastmcp_auth::FASTMCP_AUTH_VERSION_MAJOR,
            fastmcp_auth::FASTMCP_AUTH_VERSION_MINOR,
            fastmcp_auth::FASTMCP_AUTH_VERSION_PATCH
        ],
        [parts[0], parts[1], parts[2]],
        "bump the FASTMCP_AUTH_VERSION_* constants in ffi/src/lib.rs with the workspace version"
    );
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../include/fastmcp_auth.h")).unwrap();
    for (name, v) in ["MAJOR", "MINOR", "PATCH"].iter().zip(&parts) {
        assert!(
            header.contains(&format!("#define FASTMCP_AUTH_VERSION_{name} {v}")),
            "header lacks FASTMCP_AUTH_VERSION_{name} {v}"
        );
    }
}
