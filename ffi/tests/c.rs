//! Builds tests/c/test_ffi.c with `gcc -std=c11 -Wall -Wextra -Werror` against include/fastmcp_auth.h, links it
//! once to libfastmcp_auth.so and once to libfastmcp_auth.a, runs both against the loopback mock identity
//! provider and a real redis-server, and runs the shared build under valgrind (leaks and memory errors fail).

use std::path::{Path, PathBuf};
use std::process::Command;

use fastmcp_auth_mock_idp::doc_host::{DocHost, HOSTILE};
use fastmcp_auth_mock_idp::redis_server::RedisServer;
use fastmcp_auth_mock_idp::MockIdp;

fn lib_dir() -> PathBuf {
    // target/<profile>/deps/c-<hash> → target/<profile>
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn compile(out: &Path, link: &[&str]) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new("gcc");
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread", "-g"])
        .arg(format!("-I{}", root.join("include").display()))
        .arg(root.join("tests/c/test_ffi.c"))
        .args(link)
        .arg("-o")
        .arg(out);
    let o = cmd.output().expect("gcc");
    assert!(
        o.status.success(),
        "gcc failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn run(cmd: &mut Command, what: &str, idp: &MockIdp, redis: &RedisServer, docs: &DocHost) -> String {
    let hostile: String = HOSTILE
        .iter()
        .map(|(name, error)| format!("{name}\t{error}\n"))
        .collect();
    let o = cmd
        .env("IDP_URL", idp.base_url())
        .env("DOC_HOST_URL", docs.base_url())
        .env("DOC_HOST_CA", docs.ca_pem())
        .env("DOC_HOST_HOSTILE", hostile)
        .env("REDIS_URL", redis.url())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    for line in stdout
        .lines()
        .filter(|l| l.starts_with("FAIL") || l.ends_with("failed"))
    {
        println!("{what}: {line}");
    }
    assert!(
        o.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let summary = stdout.lines().last().unwrap_or_default().to_owned();
    assert!(summary.ends_with(" passed, 0 failed"), "{what}: {summary}");
    summary
}

#[test]
fn c_programs() {
    let lib = lib_dir();
    let (so, a) = (lib.join("libfastmcp_auth.so"), lib.join("libfastmcp_auth.a"));
    assert!(
        so.exists() && a.exists(),
        "build the libraries first: cargo build -p fastmcp-auth-ffi ({})",
        lib.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("test_ffi_shared");
    let static_ = dir.path().join("test_ffi_static");
    // The program records the SONAME (libfastmcp_auth.so.0) and the loader looks for that name: the link an install
    // makes, made here next to the program.
    let soname = format!("libfastmcp_auth.so.{}", env!("CARGO_PKG_VERSION_MAJOR"));
    std::os::unix::fs::symlink(&so, dir.path().join(&soname)).unwrap();
    compile(
        &shared,
        &[
            &format!("-L{}", lib.display()),
            "-lfastmcp_auth",
            &format!("-Wl,-rpath,{}", dir.path().display()),
        ],
    );
    compile(&static_, &[a.to_str().unwrap(), "-lpthread", "-ldl", "-lm"]);
    let idp = MockIdp::start();
    let redis = RedisServer::start();
    let docs = DocHost::start();
    let s1 = run(&mut Command::new(&shared), "shared", &idp, &redis, &docs);
    let s2 = run(&mut Command::new(&static_), "static", &idp, &redis, &docs);
    let s3 = run(
        Command::new("valgrind")
            .args([
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--show-leak-kinds=definite",
                "--error-exitcode=1",
                "-q",
            ])
            .arg(format!(
                "--suppressions={}",
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../tests/c/valgrind.supp")
                    .display()
            ))
            .arg(&shared),
        "valgrind",
        &idp,
        &redis,
        &docs,
    );
    println!("C (shared): {s1}\nC (static): {s2}\nC (valgrind): {s3}");
}

/// The documented install step and the README's build command for the example program.
#[test]
fn install_and_pkg_config_example() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let prefix = tempfile::tempdir().unwrap();
    let st = Command::new("bash")
        .arg(root.join("scripts/install-c.sh"))
        .arg(format!("PREFIX={}", prefix.path().display()))
        .arg("PROFILE=debug")
        .arg("BUILD=0")
        .env("CARGO_TARGET_DIR", lib_dir().parent().unwrap())
        .status()
        .unwrap();
    assert!(st.success(), "install-c.sh failed");
    // The SONAME and the usual links: libfastmcp_auth.so -> .so.0 -> .so.<version>.
    let libdir = prefix.path().join("lib");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let real = format!("libfastmcp_auth.so.{}", env!("CARGO_PKG_VERSION"));
    assert!(libdir.join(&real).is_file());
    assert_eq!(
        std::fs::read_link(libdir.join(format!("libfastmcp_auth.so.{major}"))).unwrap(),
        PathBuf::from(&real)
    );
    assert_eq!(
        std::fs::read_link(libdir.join("libfastmcp_auth.so")).unwrap(),
        PathBuf::from(format!("libfastmcp_auth.so.{major}"))
    );
    let dynamic = Command::new("readelf")
        .arg("-d")
        .arg(libdir.join(&real))
        .output()
        .unwrap();
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(
        dynamic.contains(&format!("Library soname: [libfastmcp_auth.so.{major}]")),
        "{dynamic}"
    );
    // PREFIX as an environment variable (the usual `PREFIX=… make install` habit) works the same.
    let env_prefix = tempfile::tempdir().unwrap();
    let st = Command::new("bash")
        .arg(root.join("scripts/install-c.sh"))
        .args(["PROFILE=debug", "BUILD=0"])
        .env("PREFIX", env_prefix.path())
        .env("CARGO_TARGET_DIR", lib_dir().parent().unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    assert!(env_prefix.path().join("include/fastmcp_auth.h").is_file());
    // An unknown argument is refused, not ignored.
    let st = Command::new("bash")
        .arg(root.join("scripts/install-c.sh"))
        .args(["--prefix=/nowhere", "BUILD=0"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2));
    let pc = Command::new("pkg-config")
        .args(["--cflags", "--libs", "fastmcp_auth"])
        .env("PKG_CONFIG_PATH", prefix.path().join("lib/pkgconfig"))
        .output()
        .expect("pkg-config");
    assert!(pc.status.success());
    let flags = String::from_utf8(pc.stdout).unwrap().trim().to_owned();
    let exe = prefix.path().join("example");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cc -std=c11 -Wall -Wextra -Werror {} {flags} -o {}",
            root.join("examples/c/example.c").display(),
            exe.display()
        ))
        .status()
        .unwrap();
    assert!(st.success(), "cc with pkg-config flags failed");
    let out = Command::new(&exe).current_dir(prefix.path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("second take: (nothing: single use)") && text.contains(": ok"),
        "{text}"
    );
}
