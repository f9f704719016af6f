//! Gives the shared library its SONAME, `libfastmcp_auth.so.<major>`: programs record that name, so a later
//! compatible library (same major) replaces it in place and an incompatible one never loads by accident.
//! `scripts/install-c.sh` installs `libfastmcp_auth.so.<version>` with the `.so.<major>` and `.so` links.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if matches!(
        os.as_str(),
        "linux" | "freebsd" | "netbsd" | "openbsd" | "android"
    ) {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libfastmcp_auth.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
