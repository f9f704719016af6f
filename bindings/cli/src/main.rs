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
            // The CLI is short-lived: no background sweep.
            let options = DiskStoreOptions {
                cleanup_interval: None,
                file_extension: args.file_extension,
                ..DiskStoreOptions::new(dir)
            };
            Store::disk(options)?
        }
        (None, None) => return Err(usage("--dir or --redis is required")),
    };
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FASTMCP_AUTH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
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
