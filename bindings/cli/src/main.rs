//! `fastmcp-auth`: a shell-facing binding over the core crate, for operators and scripts.
//!
//! Exit status: 0 success, 1 rejected input (reason on stderr), 2 usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fastmcp_auth::blocking::Store;
use fastmcp_auth::keys::{derive_jwt_key_with_iterations, key_material, JWT_KEY_PBKDF2_ITERATIONS};
use fastmcp_auth::store::{DiskStoreOptions, RedisStoreOptions};
use fastmcp_auth::{derive_key, ClaimLayout, Claims, Error, IssueOptions, JwtIssuer, TokenUse};
use serde_json::Value;

mod demo;

#[derive(Parser)]
#[command(
    name = "fastmcp-auth",
    version,
    about = "Keys, JWTs and token stores of fastmcp-auth"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// PBKDF2-HMAC-SHA256 key, as fastmcp TS `JWTIssuer.deriveKey` (standard base64).
    DeriveKey {
        /// The secret (or set FASTMCP_AUTH_SECRET, which keeps it out of `ps`).
        #[arg(long, env = "FASTMCP_AUTH_SECRET", hide_env_values = true)]
        secret: String,
        #[arg(long, default_value_t = 100_000)]
        iterations: u32,
    },
    /// HKDF or PBKDF2 key, as fastmcp Python `derive_jwt_key` (urlsafe base64).
    DeriveJwtKey {
        #[arg(long, conflicts_with = "low_entropy", required_unless_present = "low_entropy")]
        high_entropy: Option<String>,
        #[arg(long)]
        low_entropy: Option<String>,
        #[arg(long)]
        salt: String,
        /// PBKDF2 iterations for --low-entropy (fastmcp Python: 1,000,000).
        #[arg(long, default_value_t = JWT_KEY_PBKDF2_ITERATIONS)]
        iterations: u32,
    },
    /// Issue or verify HS256 JWTs.
    Jwt {
        #[command(subcommand)]
        command: JwtCommand,
    },
    /// Inspect and edit a DiskStore directory (optionally encrypted).
    Store(StoreArgs),
    /// Run the end-to-end demo in a local folder.
    Demo {
        /// Folder for the demo's DiskStore.
        #[arg(long, default_value = "demo-data")]
        dir: PathBuf,
    },
}

#[derive(Args)]
struct IssuerArgs {
    /// Signing key as text; its UTF-8 bytes are the HMAC key (or set FASTMCP_AUTH_JWT_KEY).
    #[arg(long, env = "FASTMCP_AUTH_JWT_KEY", hide_env_values = true)]
    key: String,
    #[arg(long)]
    issuer: String,
    #[arg(long)]
    audience: String,
    /// Claim layout: ts (fastmcp TypeScript) or py (fastmcp Python).
    #[arg(long, default_value = "ts")]
    layout: String,
    /// A refresh token rather than an access token.
    #[arg(long)]
    refresh: bool,
}

#[derive(Subcommand)]
enum JwtCommand {
    /// Print a new token.
    Issue {
        #[command(flatten)]
        issuer: IssuerArgs,
        #[arg(long)]
        client_id: String,
        /// A scope (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Lifetime in seconds (default: 3600 access, 2592000 refresh).
        #[arg(long)]
        ttl: Option<u64>,
        #[arg(long)]
        jti: Option<String>,
        /// Extra claims as a JSON object (reserved claims are never overridden).
        #[arg(long)]
        claims: Option<String>,
    },
    /// The state of a signing key set (current key and previous keys): for each, its role, a fingerprint that
    /// tells keys apart without revealing them (8 hex digits of an HMAC), its length, and any weakness. Keys come
    /// from the environment (FASTMCP_AUTH_JWT_SIGNING_KEY; FASTMCP_AUTH_PREVIOUS_JWT_SIGNING_KEYS, comma-separated)
    /// or the options. Exit 3 when a key is weak.
    Keys {
        /// The current signing key (`jwt_signing_key`).
        #[arg(long, env = "FASTMCP_AUTH_JWT_SIGNING_KEY", hide_env_values = true)]
        key: String,
        /// A previous key (`previous_jwt_signing_keys`), newest first; repeat the option for several.
        #[arg(
            long = "previous-key",
            env = "FASTMCP_AUTH_PREVIOUS_JWT_SIGNING_KEYS",
            hide_env_values = true,
            value_delimiter = ','
        )]
        previous: Vec<String>,
    },
    /// Verify a token and print its claims as JSON.
    Verify {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// Verify as of this time (seconds since the epoch).
        #[arg(long)]
        now: Option<u64>,
        token: String,
    },
}

#[derive(Args)]
struct StoreArgs {
    /// DiskStore directory.
    #[arg(long, required_unless_present = "redis")]
    dir: Option<PathBuf>,
    /// Redis URL (redis://host:port[/db] or rediss://…) instead of a directory.
    #[arg(
        long,
        conflicts_with = "dir",
        env = "FASTMCP_AUTH_REDIS_URL",
        hide_env_values = true
    )]
    redis: Option<String>,
    /// Key prefix in Redis.
    #[arg(long, default_value = "fastmcp:")]
    redis_prefix: String,
    /// Encryption key of an EncryptedStore over the directory (or FASTMCP_AUTH_ENCRYPTION_KEY).
    #[arg(long, env = "FASTMCP_AUTH_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: Option<String>,
    #[arg(long, default_value = ".json")]
    file_extension: String,
    /// DiskStore file names: `fastmcp` (fastmcp's, the default) or `safe` (percent-encoded) — as the servers use.
    #[arg(long, default_value = "fastmcp", value_parser = ["fastmcp", "safe"])]
    file_names: String,
    #[command(subcommand)]
    op: StoreOp,
}

#[derive(Subcommand)]
enum StoreOp {
    /// Store a JSON value.
    Put {
        key: String,
        json: String,
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Print the value; exit 1 when absent.
    Get { key: String },
    /// Print and remove the value atomically; exit 1 when absent.
    Take { key: String },
    /// Remove the value; exit 1 when absent.
    Delete { key: String },
    /// One key per line.
    Ls,
    /// Remove expired entries; prints how many.
    Cleanup,
    /// Number of entries.
    Size,
    /// Re-encrypt every entry still under an old encryption key with the new one, while servers keep running (they
    /// must already run with the new key as `encryption_key` and the old in `previous_encryption_keys`). Each
    /// entry is swapped atomically, keeping its expiry; a value a server writes meanwhile is never overwritten.
    /// Interrupted, run it again: it resumes. Prints a summary; exit 3 when entries are left unreadable or
    /// contended (or, with --check, when entries are still under an old key).
    Rekey {
        /// The old key (FASTMCP_AUTH_OLD_ENCRYPTION_KEY; comma-separated there, or repeat the option).
        #[arg(
            long = "old-key",
            env = "FASTMCP_AUTH_OLD_ENCRYPTION_KEY",
            hide_env_values = true,
            value_delimiter = ',',
            required = true
        )]
        old_keys: Vec<String>,
        /// The new key (FASTMCP_AUTH_NEW_ENCRYPTION_KEY).
        #[arg(
            long = "new-key",
            env = "FASTMCP_AUTH_NEW_ENCRYPTION_KEY",
            hide_env_values = true
        )]
        new_key: String,
        /// Write nothing: count the entries still under an old key (exit 3 if any), e.g. before removing it.
        #[arg(long)]
        check: bool,
    },
    /// The store's figures: entries by kind of record (the part of the key before `:`: client, transaction,
    /// mapping, code, cimd, ratelimit, …), one `kind count` per line, then `total N`.
    Stats,
}

/// A failure with its exit status.
struct Failure(u8, String);

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure(1, format!("{} ({})", e, e.code()))
    }
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure(2, msg.into())
}

fn issuer(a: &IssuerArgs) -> Result<(JwtIssuer, TokenUse), Failure> {
    let layout = ClaimLayout::parse(&a.layout).map_err(|e| usage(e.to_string()))?;
    let i = JwtIssuer::new(&a.issuer, &a.audience, a.key.as_bytes())?.with_layout(layout);
    Ok((
        i,
        if a.refresh {
            TokenUse::Refresh
        } else {
            TokenUse::Access
        },
    ))
}

fn parse_json(text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| Failure(1, format!("not valid JSON: {e}")))
}

fn print_json(v: &Value) -> Result<(), Failure> {
    println!(
        "{}",
        serde_json::to_string(v).map_err(|e| Failure(1, e.to_string()))?
    );
    Ok(())
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::DeriveKey { secret, iterations } => println!("{}", derive_key(&secret, iterations)?),
        Command::DeriveJwtKey {
            high_entropy,
            low_entropy,
            salt,
            iterations,
        } => {
            let m = key_material(high_entropy.as_deref(), low_entropy.as_deref())
                .map_err(|e| usage(e.to_string()))?;
            println!("{}", derive_jwt_key_with_iterations(m, &salt, iterations)?);
        }
        Command::Jwt {
            command:
                JwtCommand::Issue {
                    issuer: a,
                    client_id,
                    scopes,
                    ttl,
                    jti,
                    claims,
                },
        } => {
            let (i, kind) = issuer(&a)?;
            let extra: Option<Claims> = match claims {
                Some(text) => match parse_json(&text)? {
                    Value::Object(m) => Some(m),
                    _ => return Err(Failure(1, "--claims must be a JSON object".into())),
                },
                None => None,
            };
            let opts = IssueOptions {
                jti,
                expires_in: ttl,
                extra_claims: extra,
                ..Default::default()
            };
            let token = match kind {
                TokenUse::Access => i.issue_access_token(&client_id, &scopes, opts)?,
                TokenUse::Refresh => i.issue_refresh_token(&client_id, &scopes, opts)?,
            };
            println!("{token}");
        }
        Command::Jwt {
            command:
                JwtCommand::Verify {
                    issuer: a,
                    now,
                    token,
                },
        } => {
            let (i, kind) = issuer(&a)?;
            let claims = match now {
                Some(n) => i.verify_at(&token, kind, n)?,
                None => i.verify(&token, kind)?,
            };
            print_json(&Value::Object(claims))?;
        }
        Command::Jwt {
            command: JwtCommand::Keys { key, previous },
        } => jwt_keys(&key, &previous)?,
        Command::Store(args) => store(args)?,
        Command::Demo { dir } => demo::run(&dir).map_err(|e| Failure(1, e))?,
    }
    Ok(())
}

fn store(args: StoreArgs) -> Result<(), Failure> {
    let mut s = match (args.redis, args.dir) {
        (Some(url), _) => {
            let mut o = RedisStoreOptions::new(url);
            o.prefix = args.redis_prefix;
            Store::redis(o)?
        }
        (None, Some(dir)) => {
            if matches!(args.op, StoreOp::Rekey { .. }) && !dir.is_dir() {
                // A mistyped directory would be created empty and "rekeyed" — a false all-clear.
                return Err(usage(format!("rekey: {} is not a directory", dir.display())));
            }
            // The CLI is short-lived: no background sweep.
            let options = DiskStoreOptions {
                cleanup_interval: None,
                file_extension: args.file_extension,
                naming: if args.file_names == "safe" {
                    fastmcp_auth::store::FileNaming::Safe
                } else {
                    fastmcp_auth::store::FileNaming::Fastmcp
                },
                ..DiskStoreOptions::new(dir)
            };
            Store::disk(options)?
        }
        (None, None) => return Err(usage("--dir or --redis is required")),
    };
    if let StoreOp::Rekey {
        old_keys,
        new_key,
        check,
    } = &args.op
    {
        // The raw store: the rekey reads and swaps the sealed strings themselves.
        return rekey(&s, new_key, old_keys, *check);
    }
    if let Some(k) = args.encryption_key.as_deref() {
        s = s.encrypted(k, &[])?;
    }
    let absent = |key: &str| Failure(1, format!("no value for key {key:?}"));
    match args.op {
        StoreOp::Put { key, json, ttl } => s.save(&key, parse_json(&json)?, ttl.map(Duration::from_secs))?,
        StoreOp::Get { key } => print_json(&s.get(&key)?.ok_or_else(|| absent(&key))?)?,
        StoreOp::Take { key } => print_json(&s.take(&key)?.ok_or_else(|| absent(&key))?)?,
        StoreOp::Delete { key } => {
            if !s.delete(&key)? {
                return Err(absent(&key));
            }
        }
        StoreOp::Ls => {
            let mut keys = s.keys()?;
            keys.sort();
            for k in keys {
                println!("{}", k.escape_debug());
            }
        }
        StoreOp::Rekey { .. } => unreachable!("handled above"),
        StoreOp::Cleanup => println!("{}", s.cleanup()?),
        StoreOp::Size => println!("{}", s.size()?),
        StoreOp::Stats => {
            let mut kinds = std::collections::BTreeMap::<String, u64>::new();
            let keys = s.keys()?;
            for k in &keys {
                let kind = match k.split_once(':') {
                    Some((kind, _)) if !kind.is_empty() && kind.len() <= 32 => {
                        kind.escape_debug().to_string()
                    }
                    _ => "(other)".to_owned(),
                };
                *kinds.entry(kind).or_default() += 1;
            }
            for (kind, n) in kinds {
                println!("{kind} {n}");
            }
            println!("total {}", keys.len());
        }
    }
    Ok(())
}

fn rekey(store: &Store, new_key: &str, old_keys: &[String], check: bool) -> Result<(), Failure> {
    let old: Vec<&str> = old_keys.iter().map(String::as_str).collect();
    // A bar on a terminal only (indicatif draws nothing when stderr is not one).
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} entries ({eta} left)")
            .map_err(|e| Failure(1, e.to_string()))?,
    );
    let raw = store.as_async().clone();
    let summary = fastmcp_auth::runtime::block_on(async {
        fastmcp_auth::store::rekey(raw.as_ref(), new_key, &old, check, &|done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await
    })??;
    bar.finish_and_clear();
    let s = summary;
    let verb = if check { "under_old_key" } else { "rewritten" };
    println!("{verb} {}", s.rewritten);
    println!("already_new {}", s.already_new);
    println!("not_encrypted {}", s.not_encrypted);
    println!("unreadable {}", s.unreadable);
    println!("gone {}", s.gone);
    println!("contended {}", s.contended);
    println!("total {}", s.total);
    if check && s.rewritten > 0 {
        return Err(Failure(
            3,
            format!(
                "{} entries are still under an old key: run `store rekey` without --check",
                s.rewritten
            ),
        ));
    }
    if !s.complete() {
        return Err(Failure(
            3,
            format!(
                "{} entries no given key opens, {} kept changing: run again, or check the keys",
                s.unreadable, s.contended
            ),
        ));
    }
    Ok(())
}

fn jwt_keys(key: &str, previous: &[String]) -> Result<(), Failure> {
    use fastmcp_auth::keys::key_fingerprint;
    use fastmcp_auth::proxy::secret_policy::key_weakness;
    let mut weak = 0;
    let roles =
        std::iter::once("current".to_owned()).chain((1..=previous.len()).map(|i| format!("previous#{i}")));
    let mut seen = std::collections::HashSet::new();
    for (role, k) in roles.zip(std::iter::once(key).chain(previous.iter().map(String::as_str))) {
        if k.is_empty() {
            return Err(usage(format!("the {role} key is empty")));
        }
        let fp = key_fingerprint(k.as_bytes());
        let mut state = match key_weakness(k) {
            Some(w) => {
                weak += 1;
                format!("weak: {w}")
            }
            None => "ok".to_owned(),
        };
        if !seen.insert(fp.clone()) {
            state.push_str(" (same key as above)");
        }
        println!("{role} {fp} {} bytes {state}", k.len());
    }
    println!(
        "tokens are signed with {}; {}",
        key_fingerprint(key.as_bytes()),
        if previous.is_empty() {
            "only it verifies".to_owned()
        } else {
            format!("all {} verify", previous.len() + 1)
        }
    );
    if weak > 0 {
        return Err(Failure(
            3,
            format!("{weak} weak key(s): replace them (see README, Key rotation runbook)"),
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FASTMCP_AUTH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            eprintln!("fastmcp-auth: {msg}");
            ExitCode::from(code)
        }
    }
}
