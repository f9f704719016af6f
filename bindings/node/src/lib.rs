//! The native half of the npm package `fastmcp-auth`: thin napi-rs classes over the core. `index.js` gives them
//! fastmcp's names and signatures. Values cross as JSON text (JS parses and stringifies; no per-field
//! conversions); every storage and proxy operation returns a Promise and runs off the JS thread:
//!
//! - stores that never wait on the network (memory, disk) run each operation once on a libuv worker (`AsyncTask`);
//! - network work (Redis, the proxy's upstream calls) runs on the core's tokio runtime, and the Promise is settled
//!   from there: a slow identity provider never holds a libuv worker, so `fs` and `crypto` keep their threads.
//!
//! Errors reach JS as `Error`s whose message is a JSON object: `{"code", "message"}` for library errors,
//! `{"oauth": true, "code", "description", "status"}` for OAuth errors; `index.js` turns them into classes.

use futures_util::FutureExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fastmcp_auth::blocking::{OAuthProxy as CoreProxy, Store as CoreStore};
use fastmcp_auth::pkce::{self, ChallengeMethod, CodeVerifier};
use fastmcp_auth::proxy::{
    AuthorizeParams, CallbackParams, ConsentParams, HttpResponse, OAuthError, OAuthProxyConfig, OAuthResult,
    RevocationRequest, TokenRequest, TokenResponse,
};
use fastmcp_auth::store::{DiskStoreOptions, FileNaming, Keyring, MemoryStore, RedisStoreOptions, SyncStore};
use fastmcp_auth::{ClaimLayout, Error, IssueOptions, JwtIssuer, Store, TokenUse};
use napi::bindgen_prelude::{
    Either, External, FnArgs, FromNapiValue, Function, Object, Promise, PromiseRaw, ToNapiValue, TypeName,
    ValidateNapiValue, ValueType,
};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{sys, Env, JsString, JsValue, Task};
use napi_derive::napi;
use serde_json::Value;

// ---- errors ---------------------------------------------------------------------------------------------------

/// A library error as a JS `Error` carrying `{"code", "message"}` (never a secret: core messages name fields).
fn core_err(e: Error) -> napi::Error {
    let body = serde_json::json!({"code": e.code().as_str(), "message": e.to_string()});
    napi::Error::from_reason(body.to_string())
}

fn oauth_err(e: OAuthError) -> napi::Error {
    let body = serde_json::json!({
        "oauth": true, "code": e.code, "description": e.description, "status": e.status,
        "retry_after": e.retry_after,
    });
    napi::Error::from_reason(body.to_string())
}

fn arg_err(message: impl Into<String>) -> napi::Error {
    core_err(Error::InvalidArgument(message.into()))
}

fn parse_json(text: &str, what: &str) -> napi::Result<Value> {
    serde_json::from_str(text).map_err(|e| arg_err(format!("{what} is not JSON: {e}")))
}

/// Seconds (JS number) to a TTL; fastmcp treats absent and 0 as "never expires".
fn ttl_of(seconds: Option<f64>) -> napi::Result<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(t) if (0.0..1e12).contains(&t) => Ok((t > 0.0).then(|| Duration::from_secs_f64(t))),
        Some(_) => Err(arg_err("ttl must be a non-negative number of seconds")),
    }
}

fn millis(ms: f64, what: &str) -> napi::Result<Option<Duration>> {
    if !ms.is_finite() || !(0.0..1e15).contains(&ms) {
        return Err(arg_err(format!(
            "{what} must be a non-negative number of milliseconds"
        )));
    }
    Ok((ms > 0.0).then(|| Duration::from_secs_f64(ms / 1000.0)))
}

// ---- running work off the JS thread ---------------------------------------------------------------------------

/// Runs `fut` on the core's runtime and settles the returned Promise from there.
fn spawn_on_runtime<'e, T, F>(env: &'e Env, fut: F) -> napi::Result<Object<'e>>
where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = napi::Result<T>> + Send + 'static,
{
    let rt = fastmcp_auth::runtime::runtime().map_err(core_err)?;
    let (deferred, promise) = env.create_deferred()?;
    // One task: the work, with a panic inside it (a bug) caught so that it still settles the Promise — with a
    // rejection, never a request that hangs. (A task per call, not two: each spawn wakes a runtime thread.)
    rt.spawn(async move {
        match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
            Ok(Ok(v)) => deferred.resolve(move |_| Ok(v)),
            Ok(Err(e)) => deferred.reject(e),
            Err(_) => deferred.reject(core_err(Error::Task("the operation failed unexpectedly".into()))),
        }
    });
    Ok(promise)
}

/// The result of a store operation, converted to its JS value on the JS thread.
pub enum Out {
    Unit,
    Text(Option<String>),
    Bool(bool),
    Count(f64),
    Keys(Vec<String>),
    Store(NativeStore),
}

impl TypeName for Out {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ToNapiValue for Out {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        // SAFETY: called by napi on the JS thread with a live env, as every ToNapiValue impl is.
        unsafe {
            match val {
                Out::Unit => <()>::to_napi_value(env, ()),
                Out::Text(t) => Option::<Text>::to_napi_value(env, t.map(Text)),
                Out::Bool(b) => bool::to_napi_value(env, b),
                Out::Count(n) => f64::to_napi_value(env, n),
                Out::Keys(k) => Vec::<String>::to_napi_value(env, k),
                Out::Store(s) => NativeStore::to_napi_value(env, s),
            }
        }
    }
}

enum Op {
    Save(String, Value, Option<Duration>),
    Get(String),
    Take(String),
    Delete(String),
    Cleanup,
    Size,
    Keys,
}

fn run_sync(s: &dyn SyncStore, op: Op) -> fastmcp_auth::Result<Out> {
    Ok(match op {
        Op::Save(k, v, ttl) => {
            s.save_sync(&k, v, ttl)?;
            Out::Unit
        }
        Op::Get(k) => Out::Text(s.get_json_text(&k)?),
        Op::Take(k) => Out::Text(s.take_sync(&k)?.map(|v| v.to_string())),
        Op::Delete(k) => Out::Bool(s.delete_sync(&k)?),
        Op::Cleanup => Out::Count(s.cleanup_sync()? as f64),
        Op::Size => Out::Count(s.size_sync()? as f64),
        Op::Keys => Out::Keys(s.keys_sync()?),
    })
}

async fn run_async(s: &dyn Store, op: Op) -> fastmcp_auth::Result<Out> {
    Ok(match op {
        Op::Save(k, v, ttl) => {
            s.save(&k, v, ttl).await?;
            Out::Unit
        }
        Op::Get(k) => Out::Text(s.get(&k).await?.map(|v| v.to_string())),
        Op::Take(k) => Out::Text(s.take(&k).await?.map(|v| v.to_string())),
        Op::Delete(k) => Out::Bool(s.delete(&k).await?),
        Op::Cleanup => Out::Count(s.cleanup().await? as f64),
        Op::Size => Out::Count(s.size().await? as f64),
        Op::Keys => Out::Keys(s.keys().await?),
    })
}

/// One blocking job on a libuv worker.
pub struct Blocking(Option<Box<dyn FnOnce() -> fastmcp_auth::Result<Out> + Send>>);

impl Task for Blocking {
    type Output = Out;
    type JsValue = Out;

    fn compute(&mut self) -> napi::Result<Out> {
        match self.0.take() {
            // A panic (a bug) becomes a rejected Promise, never an unsettled one or a dead worker.
            Some(f) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(r) => r.map_err(core_err),
                Err(_) => Err(core_err(Error::Task("the operation failed unexpectedly".into()))),
            },
            None => Err(arg_err("task ran twice")),
        }
    }

    fn resolve(&mut self, _env: Env, output: Out) -> napi::Result<Out> {
        Ok(output)
    }
}

fn spawn_blocking<'e>(
    env: &'e Env,
    f: impl FnOnce() -> fastmcp_auth::Result<Out> + Send + 'static,
) -> napi::Result<Object<'e>> {
    let p: PromiseRaw<'e, Out> = env.spawn(Blocking(Some(Box::new(f))))?.promise_object();
    Ok(Object::from_raw(env.raw(), p.raw()))
}

// ---- stores ---------------------------------------------------------------------------------------------------

/// A store handle (memory, disk, Redis, or any of them encrypted). Methods return Promises; values are JSON text.
#[napi]
#[derive(Clone)]
pub struct NativeStore {
    inner: CoreStore,
}

impl FromNapiValue for NativeStore {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        // SAFETY: delegated to napi's class unwrapping, which checks the wrapped type.
        let r = unsafe { <&NativeStore>::from_napi_value(env, value) }?;
        Ok(r.clone())
    }
}

impl ValidateNapiValue for NativeStore {}

impl NativeStore {
    fn run<'e>(&self, env: &'e Env, op: Op) -> napi::Result<Object<'e>> {
        let store = self.inner.as_async().clone();
        if store.as_sync().is_some() {
            return spawn_blocking(env, move || match store.as_sync() {
                Some(s) => run_sync(s, op),
                None => Err(Error::Closed),
            });
        }
        spawn_on_runtime(env, async move {
            run_async(store.as_ref(), op).await.map_err(core_err)
        })
    }
}

#[napi]
impl NativeStore {
    /// Stores the JSON text `json` under `key`; `ttl` in seconds (absent or 0: never expires).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn save<'e>(
        &self,
        env: &'e Env,
        key: String,
        json: String,
        ttl: Option<f64>,
    ) -> napi::Result<Object<'e>> {
        let v = parse_json(&json, "the value")?;
        self.run(env, Op::Save(key, v, ttl_of(ttl)?))
    }

    /// The value's JSON text, or null.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn get<'e>(&self, env: &'e Env, key: String) -> napi::Result<Object<'e>> {
        self.run(env, Op::Get(key))
    }

    /// Atomic get-and-delete (JSON text or null): at most one caller, in any process, gets the value.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn take<'e>(&self, env: &'e Env, key: String) -> napi::Result<Object<'e>> {
        self.run(env, Op::Take(key))
    }

    /// Removes `key`; whether something was removed.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn delete<'e>(&self, env: &'e Env, key: String) -> napi::Result<Object<'e>> {
        self.run(env, Op::Delete(key))
    }

    /// Removes expired entries; how many.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn cleanup<'e>(&self, env: &'e Env) -> napi::Result<Object<'e>> {
        self.run(env, Op::Cleanup)
    }

    /// Number of entries.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn size<'e>(&self, env: &'e Env) -> napi::Result<Object<'e>> {
        self.run(env, Op::Size)
    }

    /// Number of entries, now (memory stores: no I/O).
    #[napi]
    pub fn size_now(&self) -> napi::Result<f64> {
        self.inner.size().map(|n| n as f64).map_err(core_err)
    }

    /// The keys, in no particular order.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn keys<'e>(&self, env: &'e Env) -> napi::Result<Object<'e>> {
        self.run(env, Op::Keys)
    }

    /// This store wrapped in AES-256-GCM (fastmcp's EncryptedTokenStorage format); `previousKeys` still decrypt.
    /// Derives the keys (scrypt) now, as fastmcp's constructor does.
    #[napi]
    pub fn encrypted(&self, key: String, previous_keys: Option<Vec<String>>) -> napi::Result<NativeStore> {
        let prev = previous_keys.unwrap_or_default();
        let prev: Vec<&str> = prev.iter().map(String::as_str).collect();
        let inner = self.inner.encrypted(&key, &prev).map_err(core_err)?;
        Ok(NativeStore { inner })
    }

    /// Stops background work (sweeps, connections); later operations fail with code `closed`.
    #[napi]
    pub fn close(&self) {
        self.inner.close()
    }
}

/// A memory store swept every `cleanupIntervalMs` (0: no background sweep).
#[napi]
pub fn open_memory(cleanup_interval_ms: f64) -> napi::Result<NativeStore> {
    let i = millis(cleanup_interval_ms, "cleanupIntervalMs")?.unwrap_or(Duration::ZERO);
    Ok(NativeStore {
        inner: CoreStore::from_async(Arc::new(MemoryStore::with_cleanup_interval(i))),
    })
}

/// Opens (creating) a DiskStore directory on a worker: the first scan of a large directory never blocks JS.
#[napi(ts_return_type = "Promise<NativeStore>")]
pub fn open_disk<'e>(
    env: &'e Env,
    directory: String,
    cleanup_interval_ms: f64,
    file_extension: String,
    fsync: bool,
    file_names: String,
    strict_permissions: Option<bool>,
) -> napi::Result<Object<'e>> {
    let mut o = DiskStoreOptions::new(directory);
    o.strict_permissions = strict_permissions.unwrap_or(false);
    o.naming = match file_names.as_str() {
        "fastmcp" => FileNaming::Fastmcp,
        "safe" => FileNaming::Safe,
        _ => return Err(arg_err("fileNames must be 'fastmcp' or 'safe'")),
    };
    o.cleanup_interval = millis(cleanup_interval_ms, "cleanupIntervalMs")?;
    o.file_extension = file_extension;
    o.fsync = fsync;
    spawn_blocking(env, move || {
        Ok(Out::Store(NativeStore {
            inner: CoreStore::disk(o)?,
        }))
    })
}

/// Connects a RedisStore (Redis ≥ 6.2) on the runtime.
#[napi(ts_return_type = "Promise<NativeStore>")]
pub fn open_redis<'e>(
    env: &'e Env,
    url: String,
    prefix: String,
    timeout_ms: f64,
) -> napi::Result<Object<'e>> {
    let mut o = RedisStoreOptions::new(url);
    o.prefix = prefix;
    let t = millis(timeout_ms, "timeoutMs")?.unwrap_or(Duration::from_secs(5));
    o.connection_timeout = t;
    o.response_timeout = t;
    spawn_on_runtime(env, async move {
        let s = fastmcp_auth::RedisStore::open(o).await.map_err(core_err)?;
        Ok(Out::Store(NativeStore {
            inner: CoreStore::from_async(Arc::new(s)),
        }))
    })
}

/// A storage written in JS (fastmcp's `TokenStorage` interface) as a core store, so the core's proxy (and the
/// encryption layer) can use it. `dispatch(op, key, valueJson, ttlSeconds)` runs on the JS thread and returns a
/// Promise of JSON text (or null); `index.js` builds it around the storage object. Calls come from the core's
/// runtime through a thread-safe function, so the JS thread is never blocked waiting for them.
#[napi]
pub fn open_js_store(
    dispatch: Function<'_, FnArgs<JsStoreArgs>, Promise<Option<String>>>,
) -> napi::Result<NativeStore> {
    let tsfn = dispatch
        .build_threadsafe_function::<FnArgs<JsStoreArgs>>()
        .callee_handled::<false>()
        .weak::<true>()
        .build()?;
    Ok(NativeStore {
        inner: CoreStore::from_async(Arc::new(JsStore { dispatch: tsfn })),
    })
}

// ---- logging ---------------------------------------------------------------------------------------------------

type LogArgs = (String, String, String);

/// Sends the core's log records at `level` and above (`error`, `warn`, `info`, `debug`, `trace`) to `callback`
/// `(level, target, message)` on the JS thread, queued without blocking the thread that logged (a full queue drops
/// the record rather than slowing a request); `null` stops forwarding. The callback does not keep the process
/// alive. Returns false when the process already has another Rust `tracing` subscriber.
#[napi]
pub fn set_log_sink(
    callback: Option<Function<'_, FnArgs<LogArgs>, ()>>,
    level: String,
) -> napi::Result<bool> {
    let level = fastmcp_auth::log::parse_level(&level)
        .ok_or_else(|| arg_err("level must be error, warn, info, debug or trace"))?;
    let sink = match callback {
        None => None,
        Some(f) => {
            let tsfn = f
                .build_threadsafe_function::<FnArgs<LogArgs>>()
                .callee_handled::<false>()
                .weak::<true>()
                .max_queue_size::<4096>()
                .build()?;
            Some(Arc::new(move |r: &fastmcp_auth::log::Record| {
                let level = r.level.as_str().to_ascii_lowercase();
                let _ = tsfn.call(
                    FnArgs::from((level, r.target.clone(), r.message.clone())),
                    napi::threadsafe_function::ThreadsafeFunctionCallMode::NonBlocking,
                );
            }) as fastmcp_auth::log::Sink)
        }
    };
    Ok(fastmcp_auth::log::set_sink(sink, level) == fastmcp_auth::log::SinkInstall::Forwarding)
}

type JsStoreArgs = (String, String, Option<String>, Option<f64>);

struct JsStore {
    dispatch: ThreadsafeFunction<
        FnArgs<JsStoreArgs>,
        Promise<Option<String>>,
        FnArgs<JsStoreArgs>,
        napi::Status,
        false,
        true,
    >,
}

impl JsStore {
    /// One call into the JS storage; its JSON answer (None: null/undefined).
    async fn call(
        &self,
        op: &str,
        key: &str,
        value: Option<String>,
        ttl: Option<f64>,
    ) -> fastmcp_auth::Result<Option<String>> {
        // The storage's own error text can name keys, values or credentials: it is neither logged nor returned.
        let failed = |_: napi::Error| {
            tracing::warn!(op, "JS token storage call failed");
            Error::Io {
                op: "JS token storage",
                source: std::io::Error::other(format!("the storage's {op}() failed")),
            }
        };
        let pending = self
            .dispatch
            .call_async(FnArgs::from((op.to_owned(), key.to_owned(), value, ttl)))
            .await
            .map_err(failed)?;
        pending.await.map_err(failed)
    }

    /// [`call`](Self::call) for an operation on one key, which is validated first as every store does.
    async fn keyed(
        &self,
        op: &str,
        key: &str,
        value: Option<String>,
        ttl: Option<f64>,
    ) -> fastmcp_auth::Result<Option<Value>> {
        fastmcp_auth::store::validate_key(key)?;
        Self::json(self.call(op, key, value, ttl).await?)
    }

    fn json(text: Option<String>) -> fastmcp_auth::Result<Option<Value>> {
        text.map(|t| serde_json::from_str(&t).map_err(Error::from))
            .transpose()
    }
}

#[async_trait::async_trait]
impl Store for JsStore {
    async fn save(&self, key: &str, value: Value, ttl: Option<Duration>) -> fastmcp_auth::Result<()> {
        let ttl = ttl.map(|t| t.as_secs_f64());
        self.keyed("save", key, Some(value.to_string()), ttl)
            .await
            .map(drop)
    }
    async fn get(&self, key: &str) -> fastmcp_auth::Result<Option<Value>> {
        self.keyed("get", key, None, None).await
    }
    async fn delete(&self, key: &str) -> fastmcp_auth::Result<bool> {
        Ok(self.keyed("delete", key, None, None).await? != Some(Value::Bool(false)))
    }
    async fn take(&self, key: &str) -> fastmcp_auth::Result<Option<Value>> {
        self.keyed("take", key, None, None).await
    }
    async fn cleanup(&self) -> fastmcp_auth::Result<u64> {
        Ok(Self::json(self.call("cleanup", "", None, None).await?)?
            .and_then(|v| v.as_u64())
            .unwrap_or(0))
    }
    async fn size(&self) -> fastmcp_auth::Result<u64> {
        Self::json(self.call("size", "", None, None).await?)?
            .and_then(|v| v.as_u64())
            .ok_or_else(|| Error::InvalidArgument("this token storage has no size()".into()))
    }
    async fn keys(&self) -> fastmcp_auth::Result<Vec<String>> {
        match Self::json(self.call("keys", "", None, None).await?)? {
            Some(v) => serde_json::from_value(v).map_err(Error::from),
            None => Err(Error::InvalidArgument("this token storage has no keys()".into())),
        }
    }
}

/// fastmcp's EncryptedTokenStorage cipher on its own, for wrapping a store written in JS.
#[napi]
pub struct NativeKeyring {
    inner: Keyring,
}

#[napi]
impl NativeKeyring {
    #[napi(constructor)]
    pub fn new(key: String, previous_keys: Option<Vec<String>>) -> napi::Result<Self> {
        let prev = previous_keys.unwrap_or_default();
        let prev: Vec<&str> = prev.iter().map(String::as_str).collect();
        Ok(NativeKeyring {
            inner: Keyring::new(&key, &prev).map_err(core_err)?,
        })
    }

    /// `<iv>:<tag>:<ciphertext>` (hex) of the JSON text.
    #[napi]
    pub fn encrypt(&self, json: String) -> napi::Result<String> {
        let v = parse_json(&json, "the value")?;
        self.inner.encrypt(&v).map_err(core_err)
    }

    /// The JSON text inside a stored envelope; errors with code `decrypt_failed`.
    #[napi]
    pub fn decrypt(&self, stored: String) -> napi::Result<String> {
        self.inner
            .decrypt(&stored)
            .map(|v| v.to_string())
            .map_err(core_err)
    }
}

// ---- JWT ------------------------------------------------------------------------------------------------------

/// What `verify` found: the payload's JSON text whenever the signature was good, and why it was rejected.
#[napi(object)]
pub struct NativeVerification {
    pub valid: bool,
    pub payload: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
}

/// HS256 issuer (fastmcp TS layout by default) for `index.js`'s JWTIssuer, held as an opaque handle: the verify and
/// issue calls are free functions taking it, because a class method's receiver check (napi-rs looks the wrapped
/// pointer up in a locked registry) costs more than the rest of a verify's crossing. `options` is JSON for
/// `JwtIssuer::configure_from_json`.
#[napi(ts_return_type = "ExternalObject<'JwtIssuer'>")]
pub fn jwt_issuer_new(
    issuer: String,
    audience: String,
    signing_key: String,
    options: Option<String>,
) -> napi::Result<External<JwtIssuer>> {
    let mut inner = JwtIssuer::new(&issuer, &audience, signing_key.as_bytes())
        .map_err(core_err)?
        .with_layout(ClaimLayout::FastmcpTs);
    if let Some(o) = options {
        inner = inner
            .configure_from_json(&parse_json(&o, "issuer options")?)
            .map_err(core_err)?;
    }
    Ok(External::new(inner))
}

/// Issues a token; `claims` is the JSON text of additional claims, `expiresIn` seconds.
#[napi]
pub fn jwt_issue(
    issuer: &External<JwtIssuer>,
    refresh: bool,
    client_id: String,
    scope: Vec<String>,
    claims: Option<String>,
    expires_in: Option<f64>,
) -> napi::Result<Text> {
    let extra = match claims {
        None => None,
        Some(text) => match parse_json(&text, "additional claims")? {
            Value::Object(m) => Some(m),
            Value::Null => None,
            _ => return Err(arg_err("additional claims must be an object")),
        },
    };
    let expires_in = match expires_in {
        None => None,
        Some(s) if (0.0..1e12).contains(&s) => Some(s as u64),
        Some(_) => return Err(arg_err("expiresIn must be a non-negative number of seconds")),
    };
    let opts = IssueOptions {
        expires_in,
        extra_claims: extra,
        ..Default::default()
    };
    let r = if refresh {
        issuer.issue_refresh_token(&client_id, &scope, opts)
    } else {
        issuer.issue_access_token(&client_id, &scope, opts)
    };
    r.map(Text).map_err(core_err)
}

/// Verifies signature, expiry, issuer and audience (and token use in the Python layout); never throws on a bad
/// token. An accepted token gives its payload's JSON text (one string: the hot path builds no object here); a
/// rejected one gives the verdict.
#[napi]
pub fn jwt_verify(
    env: &Env,
    issuer: &External<JwtIssuer>,
    token: JsString<'_>,
    expected: Option<String>,
) -> napi::Result<Either<Text, NativeVerification>> {
    let use_ = match expected.as_deref() {
        None => TokenUse::Access,
        Some(u) => TokenUse::parse(u).map_err(core_err)?,
    };
    let verdict = with_js_str(env, token, |t| issuer.verify_payload(t, use_))?;
    Ok(match verdict {
        (Some(payload), None) => Either::A(Text(payload)),
        (payload, err) => Either::B(NativeVerification {
            valid: false,
            payload,
            code: Some(err.map_or("malformed_token", |e| e.as_str()).to_owned()),
            error: Some(err.map_or("Invalid token format", |e| e.message()).to_owned()),
        }),
    })
}

/// Runs `f` on a JS string's UTF-8 text. Short strings (every real token) are copied once into a stack buffer;
/// napi-rs's `String` asks V8 for the length first and copies on a second pass into a zeroed heap buffer.
fn with_js_str<R>(env: &Env, s: JsString<'_>, f: impl FnOnce(&str) -> R) -> napi::Result<R> {
    const CAP: usize = 2048;
    let mut buf = std::mem::MaybeUninit::<[u8; CAP]>::uninit();
    let mut written = 0usize;
    // SAFETY: V8 writes at most CAP - 1 bytes and a NUL into the buffer and reports the count written, excluding the NUL.
    let status = unsafe {
        sys::napi_get_value_string_utf8(env.raw(), s.raw(), buf.as_mut_ptr().cast(), CAP, &mut written)
    };
    if status != sys::Status::napi_ok {
        return Err(arg_err("expected a string"));
    }
    // V8 stops before a character that does not fit, so the text is known complete only when at least 4 bytes (the
    // longest UTF-8 sequence) were left over; otherwise read it the long way.
    if written + 4 < CAP {
        // SAFETY: `written` bytes were initialised above.
        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), written) };
        let text = std::str::from_utf8(bytes).map_err(|_| arg_err("string is not UTF-8"))?;
        return Ok(f(text));
    }
    // SAFETY: `s` is a live string value of this env.
    let owned = unsafe { String::from_napi_value(env.raw(), s.raw()) }?;
    Ok(f(&owned))
}

/// Text for JS that crosses as Latin-1 when it is ASCII (tokens, JWT payloads, most JSON): V8 then copies the
/// bytes instead of decoding UTF-8.
pub struct Text(pub String);

impl TypeName for Text {
    fn type_name() -> &'static str {
        "String"
    }
    fn value_type() -> ValueType {
        ValueType::String
    }
}

impl ToNapiValue for Text {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        if !val.0.is_ascii() {
            // SAFETY: forwarded as is.
            return unsafe { String::to_napi_value(env, val.0) };
        }
        let mut out = std::ptr::null_mut();
        // SAFETY: ASCII bytes are valid Latin-1; the length is passed, no NUL needed.
        let status = unsafe {
            sys::napi_create_string_latin1(env, val.0.as_ptr().cast(), val.0.len() as isize, &mut out)
        };
        if status != sys::Status::napi_ok {
            return Err(napi::Error::from_reason("could not create a JS string"));
        }
        Ok(out)
    }
}

/// fastmcp TS `JWTIssuer.deriveKey`: PBKDF2-SHA256 over the salt "fastmcp-oauth-proxy", base64; on a worker.
#[napi(ts_return_type = "Promise<string>")]
pub fn derive_key<'e>(env: &'e Env, secret: String, iterations: u32) -> napi::Result<Object<'e>> {
    spawn_blocking(env, move || {
        fastmcp_auth::derive_key(&secret, iterations).map(|k| Out::Text(Some(k)))
    })
}

/// fastmcp Python `derive_jwt_key` (exactly one material), urlsafe base64 text; on a worker.
#[napi(ts_return_type = "Promise<string>")]
pub fn derive_jwt_key<'e>(
    env: &'e Env,
    high_entropy_material: Option<String>,
    low_entropy_material: Option<String>,
    salt: String,
) -> napi::Result<Object<'e>> {
    spawn_blocking(env, move || {
        let m = fastmcp_auth::keys::key_material(
            high_entropy_material.as_deref(),
            low_entropy_material.as_deref(),
        )?;
        fastmcp_auth::derive_jwt_key(m, &salt).map(|k| Out::Text(Some(k)))
    })
}

// ---- PKCE -----------------------------------------------------------------------------------------------------

/// A random verifier of `length` (43-128) characters.
#[napi]
pub fn pkce_generate_verifier(length: u32) -> napi::Result<String> {
    Ok(CodeVerifier::generate(length as usize)
        .map_err(core_err)?
        .as_str()
        .to_owned())
}

/// The challenge of `verifier` for "S256" or "plain".
#[napi]
pub fn pkce_generate_challenge(verifier: String, method: String) -> napi::Result<String> {
    let m = ChallengeMethod::parse(&method).map_err(core_err)?;
    Ok(pkce::generate_challenge(&verifier, m))
}

/// Constant-time check; false for unknown methods and empty inputs (as fastmcp).
#[napi]
pub fn pkce_validate_challenge(verifier: String, challenge: String, method: String) -> bool {
    match ChallengeMethod::parse(&method) {
        Ok(m) if !verifier.is_empty() && !challenge.is_empty() => {
            pkce::validate_challenge(&verifier, &challenge, m)
        }
        _ => false,
    }
}

// ---- the proxy ------------------------------------------------------------------------------------------------

/// For tests: a Promise whose work panics, on the core's runtime (`on_worker` false) or a libuv worker (true). It
/// must reject (never stay pending): the proof that no panic can leave a Promise unsettled.
#[napi(ts_return_type = "Promise<void>")]
pub fn test_panic(env: &Env, on_worker: bool) -> napi::Result<Object<'_>> {
    if on_worker {
        spawn_blocking(env, || panic!("forced panic (test)"))
    } else {
        spawn_on_runtime(env, async {
            if std::hint::black_box(true) {
                panic!("forced panic (test)");
            }
            Ok(Out::Unit)
        })
    }
}

/// Validates a proxy config (JSON text) and returns its RFC 8414 metadata (snake_case JSON text); needs no store,
/// so a proxy whose store is still opening can already answer `getAuthorizationServerMetadata()`.
#[napi]
pub fn proxy_metadata(config: String) -> napi::Result<String> {
    let c = OAuthProxyConfig::from_json(&parse_json(&config, "the proxy config")?).map_err(core_err)?;
    Ok(c.authorization_server_metadata().to_string())
}

/// The production checklist's findings of a proxy config (JSON text → JSON array text), without building it.
#[napi]
pub fn proxy_config_warnings(config: String) -> napi::Result<String> {
    let c = OAuthProxyConfig::from_json(&parse_json(&config, "the proxy config")?).map_err(core_err)?;
    Ok(serde_json::to_string(&c.production_findings()).unwrap_or_else(|_| "[]".into()))
}

/// Validates a proxy config (JSON text) and returns the RFC 9728 metadata of `resource` (snake_case JSON text).
#[napi]
pub fn proxy_resource_metadata(config: String, resource: String) -> napi::Result<String> {
    let c = OAuthProxyConfig::from_json(&parse_json(&config, "the proxy config")?).map_err(core_err)?;
    Ok(c.protected_resource_metadata(&resource).to_string())
}

/// The OAuth proxy. `config` is JSON of the core's `OAuthProxyConfig` members (snake_case, seconds); `store` the
/// token storage (default: memory). Every method runs on the core's runtime and returns a Promise of JSON text.
#[napi]
pub struct NativeProxy {
    inner: CoreProxy,
}

fn response_text(r: OAuthResult<HttpResponse>) -> napi::Result<String> {
    r.map(|r| r.to_json().to_string()).map_err(oauth_err)
}

fn token_text(r: OAuthResult<TokenResponse>) -> napi::Result<String> {
    r.map(|r| r.to_json().to_string()).map_err(oauth_err)
}

#[napi]
impl NativeProxy {
    #[napi(constructor)]
    pub fn new(config: String, store: Option<&NativeStore>) -> napi::Result<Self> {
        let mut c =
            OAuthProxyConfig::from_json(&parse_json(&config, "the proxy config")?).map_err(core_err)?;
        if let Some(s) = store {
            c.token_storage = Some(s.inner.as_async().clone());
        }
        Ok(NativeProxy {
            inner: CoreProxy::new(c).map_err(core_err)?,
        })
    }

    fn spawn<'e, F>(
        &self,
        env: &'e Env,
        f: impl FnOnce(Arc<fastmcp_auth::OAuthProxy>) -> F,
    ) -> napi::Result<Object<'e>>
    where
        F: Future<Output = napi::Result<String>> + Send + 'static,
    {
        spawn_on_runtime(env, f(self.inner.as_async().clone()))
    }

    /// RFC 7591 registration: request JSON in, client JSON out.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn register_client<'e>(
        &self,
        env: &'e Env,
        request: String,
        remote_addr: Option<String>,
    ) -> napi::Result<Object<'e>> {
        let req = parse_json(&request, "the registration request")?;
        self.spawn(env, |p| async move {
            p.register_client_from(&req, remote_addr.as_deref())
                .await
                .map(|v| v.to_string())
                .map_err(oauth_err)
        })
    }

    /// The authorization endpoint: query string and `Cookie` header in, `{"status","headers","body"}` out.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn authorize<'e>(
        &self,
        env: &'e Env,
        query: String,
        cookie: Option<String>,
        remote_addr: Option<String>,
    ) -> napi::Result<Object<'e>> {
        let q = AuthorizeParams::from_query(&query)
            .map_err(oauth_err)?
            .with_cookie(cookie.as_deref())
            .with_remote_addr(remote_addr.as_deref());
        self.spawn(env, |p| async move { response_text(p.authorize(&q).await) })
    }

    /// The consent form (urlencoded body) and `Cookie` header → response JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn handle_consent<'e>(
        &self,
        env: &'e Env,
        form: String,
        cookie: Option<String>,
        remote_addr: Option<String>,
    ) -> napi::Result<Object<'e>> {
        let c = ConsentParams::from_form(form.as_bytes())
            .map_err(oauth_err)?
            .with_cookie(cookie.as_deref())
            .with_remote_addr(remote_addr.as_deref());
        self.spawn(env, |p| async move { response_text(p.handle_consent(&c).await) })
    }

    /// The upstream callback (query string) and `Cookie` header → response JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn handle_callback<'e>(
        &self,
        env: &'e Env,
        query: String,
        cookie: Option<String>,
        remote_addr: Option<String>,
    ) -> napi::Result<Object<'e>> {
        let c = CallbackParams::from_query(&query)
            .map_err(oauth_err)?
            .with_cookie(cookie.as_deref())
            .with_remote_addr(remote_addr.as_deref());
        self.spawn(env, |p| async move { response_text(p.handle_callback(&c).await) })
    }

    /// The token endpoint; `grant` is "any", "authorization_code" or "refresh_token".
    #[napi(ts_return_type = "Promise<string>")]
    pub fn token<'e>(
        &self,
        env: &'e Env,
        grant: String,
        form: String,
        authorization: Option<String>,
        remote_addr: Option<String>,
    ) -> napi::Result<Object<'e>> {
        let r = TokenRequest::from_form(form.as_bytes(), authorization.as_deref())
            .map_err(oauth_err)?
            .with_remote_addr(remote_addr.as_deref());
        match grant.as_str() {
            "any" => self.spawn(env, |p| async move { token_text(p.token(&r).await) }),
            "authorization_code" => self.spawn(env, |p| async move {
                token_text(p.exchange_authorization_code(&r).await)
            }),
            "refresh_token" => self.spawn(
                env,
                |p| async move { token_text(p.exchange_refresh_token(&r).await) },
            ),
            _ => Err(arg_err("grant must be any, authorization_code or refresh_token")),
        }
    }

    /// The upstream tokens behind one of our tokens (JSON text), or null.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn load_upstream_tokens<'e>(&self, env: &'e Env, token: String) -> napi::Result<Object<'e>> {
        spawn_on_runtime(env, {
            let p = self.inner.as_async().clone();
            async move {
                let t = p.load_upstream_tokens(&token).await.map_err(oauth_err)?;
                Ok(Out::Text(t.map(|t| {
                    serde_json::to_string(&t).unwrap_or_else(|_| "null".into())
                })))
            }
        })
    }

    /// The upstream tokens behind one of our tokens, computed in place (no thread hop) when the proxy's store
    /// completes inline (memory): `null` when it does not (use `loadUpstreamTokens`), else the JSON text (`"null"`
    /// when there are none).
    #[napi]
    pub fn load_upstream_tokens_inline(&self, token: String) -> napi::Result<Option<String>> {
        match self.inner.as_async().load_upstream_tokens_inline(&token) {
            None => Ok(None),
            Some(r) => {
                let t = r.map_err(oauth_err)?;
                Ok(Some(
                    t.map(|t| serde_json::to_string(&t).unwrap_or_else(|_| "null".into()))
                        .unwrap_or_else(|| "null".into()),
                ))
            }
        }
    }

    /// The bearer check of a request to `resource`: `{"authorized", "claims", "upstream"}` or
    /// `{"authorized": false, "response"}` (JSON text).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn check_bearer<'e>(
        &self,
        env: &'e Env,
        authorization: Option<String>,
        resource: String,
        required_scopes: Vec<String>,
    ) -> napi::Result<Object<'e>> {
        self.spawn(env, |p| async move {
            p.check_bearer(authorization.as_deref(), &resource, &required_scopes)
                .await
                .map(|r| r.to_json().to_string())
                .map_err(oauth_err)
        })
    }

    /// `checkBearer` computed in place when the proxy's store completes inline (memory): its JSON text, or
    /// `null` when the store does not (use `checkBearer`).
    #[napi]
    pub fn check_bearer_inline(
        &self,
        authorization: Option<String>,
        resource: String,
        required_scopes: Vec<String>,
    ) -> napi::Result<Option<String>> {
        self.inner
            .as_async()
            .check_bearer_inline(authorization.as_deref(), &resource, &required_scopes)
            .map(|r| r.map(|r| r.to_json().to_string()).map_err(oauth_err))
            .transpose()
    }

    /// RFC 7009 revocation by the token's client.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn revoke<'e>(
        &self,
        env: &'e Env,
        token: String,
        client_id: String,
        client_secret: Option<String>,
    ) -> napi::Result<Object<'e>> {
        spawn_on_runtime(env, {
            let p = self.inner.as_async().clone();
            async move {
                p.revoke(&token, &client_id, client_secret.as_deref())
                    .await
                    .map_err(oauth_err)?;
                Ok(Out::Unit)
            }
        })
    }

    /// RFC 7009 revocation as an endpoint: the urlencoded body and the optional Authorization header.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn revoke_request<'e>(
        &self,
        env: &'e Env,
        form: String,
        authorization: Option<String>,
        remote_addr: Option<String>,
    ) -> napi::Result<Object<'e>> {
        let r = RevocationRequest::from_form(form.as_bytes(), authorization.as_deref())
            .map_err(oauth_err)?
            .with_remote_addr(remote_addr.as_deref());
        spawn_on_runtime(env, {
            let p = self.inner.as_async().clone();
            async move {
                p.revoke_request(&r).await.map_err(oauth_err)?;
                Ok(Out::Unit)
            }
        })
    }

    /// Readiness: `{"ok","store","latency_ms","warnings"}` (JSON text) after one store round trip within
    /// `timeout_ms`.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn health<'e>(&self, env: &'e Env, timeout_ms: f64) -> napi::Result<Object<'e>> {
        if !(timeout_ms.is_finite() && timeout_ms > 0.0 && timeout_ms <= 3_600_000.0) {
            return Err(arg_err(
                "timeoutMs must be a number of milliseconds in (0, 3600000]",
            ));
        }
        let timeout = std::time::Duration::from_secs_f64(timeout_ms / 1000.0);
        self.spawn(env, move |p| async move {
            Ok(p.health(timeout).await.to_json().to_string())
        })
    }

    /// The Prometheus text exposition of the proxy's metrics.
    #[napi]
    pub fn metrics(&self) -> String {
        self.inner.as_async().metrics_text()
    }

    /// Stops background work of the proxy's store.
    #[napi]
    pub fn close(&self) {
        self.inner.close()
    }
}
