//! `fastmcp_auth._native`: the Python face of the core. Each function converts its arguments, releases the GIL
//! around one call of the core's blocking facade, and converts the result; errors become the classes of
//! `fastmcp_auth.errors` through `to_py_err`.

use std::sync::Arc;
use std::time::Duration;

mod bridge;
mod jwt;
mod kv_store;
mod serve;

use fastmcp_auth::blocking::{OAuthProxy as CoreProxy, Store as CoreStore};
use fastmcp_auth::keys::{derive_jwt_key_with_iterations, key_material, JWT_KEY_PBKDF2_ITERATIONS};
use fastmcp_auth::pkce::{self, ChallengeMethod, CodeVerifier};
use fastmcp_auth::proxy::{
    AuthorizeParams, CallbackParams, ConsentParams, OAuthError, OAuthProxyConfig, TokenRequest,
};
use fastmcp_auth::store::{DiskStoreOptions, FileNaming, MemoryStore as CoreMemory, RedisStoreOptions};
use fastmcp_auth::Error;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Value};

// ---- errors ---------------------------------------------------------------------------------------------------

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn errors(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    Ok(ERRORS
        .get_or_try_init(py, || py.import("fastmcp_auth.errors").map(Bound::unbind))?
        .bind(py))
}

/// One place mapping core errors to Python classes, on `Error::code()` (never on message text).
pub(crate) fn to_py_err(e: Error) -> PyErr {
    Python::attach(|py| {
        let code = e.code().as_str();
        let class = match e.code() {
            fastmcp_auth::ErrorCode::InvalidToken | fastmcp_auth::ErrorCode::TokenExpired => {
                "InvalidTokenError"
            }
            fastmcp_auth::ErrorCode::StorageIo | fastmcp_auth::ErrorCode::Closed => "StorageError",
            fastmcp_auth::ErrorCode::NotADirectory => "NotADirectoryStoreError",
            fastmcp_auth::ErrorCode::InvalidArgument
            | fastmcp_auth::ErrorCode::InvalidKey
            | fastmcp_auth::ErrorCode::InvalidJson => "InvalidArgumentError",
            _ => "FastMCPAuthError",
        };
        match errors(py).and_then(|m| m.getattr(class)) {
            Ok(cls) => match cls.call1((code, e.to_string())) {
                Ok(obj) => PyErr::from_value(obj),
                Err(err) => err,
            },
            Err(err) => err,
        }
    })
}

pub(crate) fn oauth_err(e: OAuthError) -> PyErr {
    Python::attach(|py| {
        let made = errors(py)
            .and_then(|m| m.getattr("OAuthProxyError"))
            .and_then(|cls| cls.call1((e.code.clone(), e.description.clone(), e.status, e.retry_after)));
        match made {
            Ok(obj) => PyErr::from_value(obj),
            Err(err) => err,
        }
    })
}

// ---- panics ---------------------------------------------------------------------------------------------------

/// Runs `f` with the GIL released. A panic inside it (a bug) becomes the error `on_panic()` gives, a normal
/// exception, instead of pyo3's `PanicException`, a `BaseException` that web frameworks' `except Exception` misses.
fn detached<T: Send, E: Send>(
    py: Python<'_>,
    on_panic: fn() -> E,
    f: impl FnOnce() -> Result<T, E> + Send,
) -> Result<T, E> {
    py.detach(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| Err(on_panic()))
    })
}

fn core_panic() -> Error {
    Error::Task("the operation failed unexpectedly".into())
}

fn oauth_panic() -> OAuthError {
    OAuthError::server_error("internal error")
}

/// For tests: a call that panics inside the library must raise a normal exception (`FastMCPAuthError`).
#[pyfunction]
fn _test_panic(py: Python<'_>) -> PyResult<()> {
    detached(py, core_panic, || -> Result<(), Error> {
        if std::hint::black_box(true) {
            panic!("forced panic (test)");
        }
        Ok(())
    })
    .map_err(to_py_err)
}

// ---- values ---------------------------------------------------------------------------------------------------

/// Deepest nesting a value from Python may have (serde_json's own parse limit): deeper values, and cycles, are a
/// `ValueError` instead of a native stack overflow.
const MAX_DEPTH: usize = 128;

fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_json_at(obj, 0)
}

fn to_json_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "value nested deeper than {MAX_DEPTH} levels (or circular)"
        )));
    }
    let to_json = |v: &Bound<'_, PyAny>| to_json_at(v, depth + 1);
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(i.into());
        }
        return Ok(obj
            .extract::<u64>()
            .map_err(|_| PyValueError::new_err("integer out of JSON range"))?
            .into());
    }
    if obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract()?;
        return serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| PyValueError::new_err("NaN and infinity are not JSON"));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, v) in d.iter() {
            let k = k
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err("JSON object keys must be str"))?;
            m.insert(k.to_cow()?.into_owned(), to_json(&v)?);
        }
        return Ok(Value::Object(m));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .map(|v| to_json(&v))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .map(|v| to_json(&v))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    Err(PyTypeError::new_err(format!(
        "cannot store a {} (use dict, list, str, int, float, bool or None)",
        obj.get_type().name()?
    )))
}

pub(crate) fn from_json<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let l = PyList::empty(py);
            for x in a {
                l.append(from_json(py, x)?)?;
            }
            l.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, from_json(py, x)?)?;
            }
            d.into_any()
        }
    })
}

fn opt_map(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Map<String, Value>>> {
    match obj.map(to_json).transpose()? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(PyTypeError::new_err("expected a dict")),
    }
}

/// Longest duration a host may pass, in seconds (~31,700 years; Node's bound too): `Duration::from_secs_f64`
/// would panic past u64 seconds, so larger values are a `ValueError`.
const MAX_SECONDS: f64 = 1e12;

fn ttl_of(ttl: Option<f64>) -> PyResult<Option<Duration>> {
    match ttl {
        None => Ok(None),
        Some(t) if t.is_finite() && (0.0..=MAX_SECONDS).contains(&t) => Ok(Some(Duration::from_secs_f64(t))),
        Some(_) => Err(PyValueError::new_err(
            "ttl must be a non-negative number of seconds, at most 1e12",
        )),
    }
}

// ---- stores ---------------------------------------------------------------------------------------------------

/// A token store (the base of MemoryStore, DiskStore, EncryptedStore and RedisStore). Values are plain JSON
/// data; every method releases the GIL while the store works; share one between threads freely.
#[pyclass(subclass, name = "Store", module = "fastmcp_auth._native", frozen)]
struct PyStore {
    inner: CoreStore,
}

#[pymethods]
impl PyStore {
    /// Stores `value` under `key`; `ttl` in seconds (None or 0: never expires).
    #[pyo3(signature = (key, value, ttl=None))]
    fn save(&self, py: Python<'_>, key: String, value: &Bound<'_, PyAny>, ttl: Option<f64>) -> PyResult<()> {
        let (v, ttl) = (to_json(value)?, ttl_of(ttl)?);
        detached(py, core_panic, || self.inner.save(&key, v, ttl)).map_err(to_py_err)
    }

    /// The live value under `key`, or None.
    fn get<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let v = detached(py, core_panic, || self.inner.get(&key)).map_err(to_py_err)?;
        from_json(py, &v.unwrap_or(Value::Null))
    }

    /// Removes `key`; True when something was removed.
    fn delete(&self, py: Python<'_>, key: String) -> PyResult<bool> {
        detached(py, core_panic, || self.inner.delete(&key)).map_err(to_py_err)
    }

    /// Atomic get-and-delete: among concurrent callers (threads, processes, replicas) at most one gets the value.
    fn take<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let v = detached(py, core_panic, || self.inner.take(&key)).map_err(to_py_err)?;
        from_json(py, &v.unwrap_or(Value::Null))
    }

    /// Removes expired entries now; returns how many.
    fn cleanup(&self, py: Python<'_>) -> PyResult<u64> {
        detached(py, core_panic, || self.inner.cleanup()).map_err(to_py_err)
    }

    /// Number of entries.
    fn size(&self, py: Python<'_>) -> PyResult<u64> {
        detached(py, core_panic, || self.inner.size()).map_err(to_py_err)
    }

    /// The keys, sorted.
    fn keys(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let mut k = detached(py, core_panic, || self.inner.keys()).map_err(to_py_err)?;
        k.sort();
        Ok(k)
    }

    /// Stops background work; later calls raise StorageError.
    fn close(&self) {
        self.inner.close()
    }

    /// `save` as an awaitable run on the library's runtime (the event loop never waits; `fastmcp_auth.aio`).
    #[pyo3(signature = (key, value, ttl=None))]
    fn save_async<'py>(
        &self,
        py: Python<'py>,
        key: String,
        value: &Bound<'py, PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (v, ttl) = (to_json(value)?, ttl_of(ttl)?);
        self.op(py, StoreOp::Save(key, v, ttl))
    }

    /// `get` as an awaitable (see `save_async`).
    fn get_async<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, StoreOp::Get(key))
    }

    /// `delete` as an awaitable (see `save_async`).
    fn delete_async<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, StoreOp::Delete(key))
    }

    /// `take` as an awaitable (see `save_async`).
    fn take_async<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, StoreOp::Take(key))
    }
}

/// One store operation, for the awaitable methods.
enum StoreOp {
    Save(String, Value, Option<Duration>),
    Get(String),
    Delete(String),
    Take(String),
}

impl StoreOp {
    async fn run(self, store: &dyn fastmcp_auth::store::Store) -> fastmcp_auth::Result<Value> {
        match self {
            StoreOp::Save(k, v, ttl) => store.save(&k, v, ttl).await.map(|()| Value::Null),
            StoreOp::Get(k) => store.get(&k).await.map(|v| v.unwrap_or(Value::Null)),
            StoreOp::Delete(k) => store.delete(&k).await.map(Value::Bool),
            StoreOp::Take(k) => store.take(&k).await.map(|v| v.unwrap_or(Value::Null)),
        }
    }

    /// [`Self::run_sync`] on the synchronous face of a store that has one.
    fn run_on(self, store: &dyn fastmcp_auth::store::Store) -> fastmcp_auth::Result<Value> {
        match store.as_sync() {
            Some(s) => self.run_sync(s),
            None => Err(core_panic()),
        }
    }

    fn run_sync(self, store: &dyn fastmcp_auth::store::SyncStore) -> fastmcp_auth::Result<Value> {
        match self {
            StoreOp::Save(k, v, ttl) => store.save_sync(&k, v, ttl).map(|()| Value::Null),
            StoreOp::Get(k) => store.get_sync(&k).map(|v| v.unwrap_or(Value::Null)),
            StoreOp::Delete(k) => store.delete_sync(&k).map(Value::Bool),
            StoreOp::Take(k) => store.take_sync(&k).map(|v| v.unwrap_or(Value::Null)),
        }
    }
}

fn complete_json(r: fastmcp_auth::Result<Value>) -> bridge::Complete {
    Box::new(move |py: Python<'_>| {
        let v = r.map_err(to_py_err)?;
        from_json(py, &v).map(Bound::unbind)
    })
}

impl PyStore {
    /// An awaitable of `op`: answered in place by a store that never waits (memory), and for a read a store with a
    /// synchronous face can answer from the kernel's caches (disk: `get_nowait`, no thread hop); else run on the
    /// blocking pool by a store with a synchronous face (disk writes, uncached reads: one thread hop each way);
    /// else awaited on the runtime (Redis).
    fn op<'py>(&self, py: Python<'py>, op: StoreOp) -> PyResult<Bound<'py, PyAny>> {
        use futures_util::FutureExt;
        let store = self.inner.as_async().clone();
        if store.completes_inline() {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                op.run(store.as_ref()).now_or_never()
            }))
            .unwrap_or_else(|_| Some(Err(core_panic())));
            if let Some(r) = r {
                return bridge::ready(py, complete_json(r));
            }
            return Err(to_py_err(Error::Task("the store did not answer in place".into())));
        }
        if store.as_sync().is_none() {
            return bridge::spawn(py, async move {
                let r = std::panic::AssertUnwindSafe(op.run(store.as_ref()))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(core_panic()));
                complete_json(r)
            });
        }
        if let StoreOp::Get(k) = op {
            let s2 = store.clone();
            let k2 = k.clone();
            return bridge::in_place_or(
                py,
                move || {
                    let r = store.as_sync()?.get_nowait(&k)?;
                    Some(complete_json(r.map(|v| v.unwrap_or(Value::Null))))
                },
                move || complete_json(StoreOp::Get(k2).run_on(s2.as_ref())),
            );
        }
        bridge::spawn_blocking_waited(py, move || complete_json(op.run_on(store.as_ref())))
    }
}

fn interval(seconds: f64) -> PyResult<Option<Duration>> {
    if !seconds.is_finite() || !(0.0..=MAX_SECONDS).contains(&seconds) {
        return Err(PyValueError::new_err(
            "cleanup_interval and timeout must be non-negative numbers of seconds, at most 1e12",
        ));
    }
    Ok((seconds > 0.0).then(|| Duration::from_secs_f64(seconds)))
}

/// Values in process memory, swept every `cleanup_interval` seconds (0: no background sweep).
#[pyclass(extends = PyStore, name = "MemoryStore", module = "fastmcp_auth._native", frozen)]
struct PyMemoryStore;

#[pymethods]
impl PyMemoryStore {
    #[new]
    #[pyo3(signature = (cleanup_interval=60.0))]
    fn new(cleanup_interval: f64) -> PyResult<(Self, PyStore)> {
        let i = interval(cleanup_interval)?.unwrap_or(Duration::ZERO);
        let s = CoreStore::from_async(Arc::new(CoreMemory::with_cleanup_interval(i)));
        Ok((PyMemoryStore, PyStore { inner: s }))
    }
}

/// One JSON file per key in `directory`, in fastmcp TS's format. `file_names`: "fastmcp" (fastmcp's names, so
/// fastmcp TS reads the directory; colliding keys kept apart) or "safe" (percent-encoded); either reads both.
#[pyclass(extends = PyStore, name = "DiskStore", module = "fastmcp_auth._native", frozen)]
struct PyDiskStore;

#[pymethods]
impl PyDiskStore {
    #[new]
    #[pyo3(signature = (directory, cleanup_interval=60.0, file_extension=".json".to_owned(), fsync=false, file_names="fastmcp", strict_permissions=false))]
    fn new(
        py: Python<'_>,
        directory: std::path::PathBuf,
        cleanup_interval: f64,
        file_extension: String,
        fsync: bool,
        file_names: &str,
        strict_permissions: bool,
    ) -> PyResult<(Self, PyStore)> {
        let mut o = DiskStoreOptions::new(directory);
        o.naming = match file_names {
            "fastmcp" => FileNaming::Fastmcp,
            "safe" => FileNaming::Safe,
            _ => return Err(PyValueError::new_err("file_names must be 'fastmcp' or 'safe'")),
        };
        o.cleanup_interval = interval(cleanup_interval)?;
        o.file_extension = file_extension;
        o.fsync = fsync;
        o.strict_permissions = strict_permissions;
        let s = detached(py, core_panic, || CoreStore::disk(o)).map_err(to_py_err)?;
        Ok((PyDiskStore, PyStore { inner: s }))
    }
}

/// AES-256-GCM over another store, byte-compatible with fastmcp TS's EncryptedTokenStorage.
#[pyclass(extends = PyStore, name = "EncryptedStore", module = "fastmcp_auth._native", frozen)]
struct PyEncryptedStore;

#[pymethods]
impl PyEncryptedStore {
    #[new]
    #[pyo3(signature = (store, key, previous_keys=Vec::new()))]
    fn new(
        py: Python<'_>,
        store: PyRef<'_, PyStore>,
        key: String,
        previous_keys: Vec<String>,
    ) -> PyResult<(Self, PyStore)> {
        let inner = store.inner.clone();
        let s = detached(py, core_panic, || {
            let prev: Vec<&str> = previous_keys.iter().map(String::as_str).collect();
            inner.encrypted(&key, &prev)
        })
        .map_err(to_py_err)?;
        Ok((PyEncryptedStore, PyStore { inner: s }))
    }
}

/// Redis (≥ 6.2), shared by several server replicas. Connects now.
#[pyclass(extends = PyStore, name = "RedisStore", module = "fastmcp_auth._native", frozen)]
struct PyRedisStore;

#[pymethods]
impl PyRedisStore {
    #[new]
    #[pyo3(signature = (url, prefix="fastmcp:".to_owned(), timeout=5.0))]
    fn new(py: Python<'_>, url: String, prefix: String, timeout: f64) -> PyResult<(Self, PyStore)> {
        let mut o = RedisStoreOptions::new(url);
        o.prefix = prefix;
        let t = interval(timeout)?.unwrap_or(Duration::from_secs(5));
        o.connection_timeout = t;
        o.response_timeout = t;
        let s = detached(py, core_panic, || CoreStore::redis(o)).map_err(to_py_err)?;
        Ok((PyRedisStore, PyStore { inner: s }))
    }
}

// ---- keys, PKCE ---------------------------------------------------------------------------------------------------

/// fastmcp Python's `derive_jwt_key`: exactly one material; returns the urlsafe base64 key as bytes.
#[pyfunction]
#[pyo3(signature = (*, high_entropy_material=None, low_entropy_material=None, salt, iterations=JWT_KEY_PBKDF2_ITERATIONS))]
fn derive_jwt_key<'py>(
    py: Python<'py>,
    high_entropy_material: Option<String>,
    low_entropy_material: Option<String>,
    salt: String,
    iterations: u32,
) -> PyResult<Bound<'py, PyBytes>> {
    let key = detached(py, core_panic, || {
        let m = key_material(high_entropy_material.as_deref(), low_entropy_material.as_deref())?;
        derive_jwt_key_with_iterations(m, &salt, iterations)
    })
    .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, key.as_bytes()))
}

/// fastmcp TS's `JWTIssuer.deriveKey(secret, iterations)`: PBKDF2, standard base64 text.
#[pyfunction]
#[pyo3(signature = (secret, iterations=100_000))]
fn derive_key(py: Python<'_>, secret: String, iterations: u32) -> PyResult<String> {
    detached(py, core_panic, || fastmcp_auth::derive_key(&secret, iterations)).map_err(to_py_err)
}

/// A random PKCE verifier of `length` (43-128) characters.
#[pyfunction]
#[pyo3(signature = (length=128))]
fn generate_verifier(length: usize) -> PyResult<String> {
    Ok(CodeVerifier::generate(length)
        .map_err(to_py_err)?
        .as_str()
        .to_owned())
}

/// The challenge of `verifier` ("S256" or "plain").
#[pyfunction]
#[pyo3(signature = (verifier, method="S256"))]
fn generate_challenge(verifier: &str, method: &str) -> PyResult<String> {
    let m = ChallengeMethod::parse(method).map_err(to_py_err)?;
    Ok(pkce::generate_challenge(verifier, m))
}

/// Whether `verifier` matches `challenge` (constant time).
#[pyfunction]
fn validate_challenge(verifier: &str, challenge: &str, method: &str) -> PyResult<bool> {
    let m = ChallengeMethod::parse(method).map_err(to_py_err)?;
    Ok(pkce::validate_challenge(verifier, challenge, m))
}

// ---- the proxy ------------------------------------------------------------------------------------------------

/// The OAuth proxy with token swap. `config` is a dict of the Rust `OAuthProxyConfig` fields (snake_case,
/// durations in seconds); `storage` any Store (default: memory). Methods take the HTTP request parts and return
/// dicts; OAuth failures raise OAuthProxyError(code, description, status_code). Every method releases the GIL.
#[pyclass(name = "OAuthProxy", module = "fastmcp_auth._native", frozen)]
struct PyOAuthProxy {
    inner: CoreProxy,
}

#[pymethods]
impl PyOAuthProxy {
    #[new]
    #[pyo3(signature = (config, storage=None))]
    fn new(py: Python<'_>, config: &Bound<'_, PyAny>, storage: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let mut c = OAuthProxyConfig::from_json(&to_json(config)?).map_err(to_py_err)?;
        match storage {
            None => {}
            Some(s) if s.is_none() => {}
            Some(s) => match s.cast::<PyStore>() {
                Ok(st) => c.token_storage = Some(st.get().inner.as_async().clone()),
                // `fastmcp_auth.fastmcp._KeyValueBridge` over any py-key-value AsyncKeyValue: async API only.
                Err(_) if s.hasattr("_fastmcp_auth_bridge")? => {
                    c.token_storage = Some(Arc::new(kv_store::PyKvStore::new(s.clone().unbind())))
                }
                Err(_) => {
                    return Err(PyTypeError::new_err(
                        "storage must be a fastmcp_auth Store (or, through fastmcp_auth.fastmcp, an AsyncKeyValue)",
                    ))
                }
            },
        }
        let inner = detached(py, core_panic, || CoreProxy::new(c)).map_err(to_py_err)?;
        Ok(PyOAuthProxy { inner })
    }

    /// RFC 7591 registration. `remote_addr`: the caller's address, for the rate limits.
    #[pyo3(signature = (request, remote_addr=None))]
    fn register_client<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyAny>,
        remote_addr: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req = to_json(request)?;
        let r = detached(py, oauth_panic, || {
            self.inner.register_client_from(&req, remote_addr)
        })
        .map_err(oauth_err)?;
        from_json(py, &r)
    }

    /// The authorization endpoint: the query string and the request's `Cookie` header in, `{"status", "headers",
    /// "body"}` out (send every header, `Set-Cookie` included: it binds the authorization to this browser).
    #[pyo3(signature = (query, cookie=None, remote_addr=None))]
    fn authorize<'py>(
        &self,
        py: Python<'py>,
        query: &str,
        cookie: Option<&str>,
        remote_addr: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let p = AuthorizeParams::from_query(query)
            .map_err(oauth_err)?
            .with_cookie(cookie)
            .with_remote_addr(remote_addr);
        let r = detached(py, oauth_panic, || self.inner.authorize(&p)).map_err(oauth_err)?;
        from_json(py, &r.to_json())
    }

    /// The consent form (urlencoded body) and the request's `Cookie` header → HTTP response dict (403 page when the
    /// POST is not from the consent page in the browser that started the authorization).
    #[pyo3(signature = (form, cookie=None, remote_addr=None))]
    fn handle_consent<'py>(
        &self,
        py: Python<'py>,
        form: &[u8],
        cookie: Option<&str>,
        remote_addr: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let p = ConsentParams::from_form(form)
            .map_err(oauth_err)?
            .with_cookie(cookie)
            .with_remote_addr(remote_addr);
        let r = detached(py, oauth_panic, || self.inner.handle_consent(&p)).map_err(oauth_err)?;
        from_json(py, &r.to_json())
    }

    /// The upstream callback (query string) and the request's `Cookie` header → HTTP response dict (403 page when
    /// this is not the browser that started the authorization).
    #[pyo3(signature = (query, cookie=None, remote_addr=None))]
    fn handle_callback<'py>(
        &self,
        py: Python<'py>,
        query: &str,
        cookie: Option<&str>,
        remote_addr: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let p = CallbackParams::from_query(query)
            .map_err(oauth_err)?
            .with_cookie(cookie)
            .with_remote_addr(remote_addr);
        let r = detached(py, oauth_panic, || self.inner.handle_callback(&p)).map_err(oauth_err)?;
        from_json(py, &r.to_json())
    }

    /// The token endpoint (any grant): urlencoded body and optional Authorization header → token dict.
    #[pyo3(signature = (form, authorization=None, remote_addr=None))]
    fn token<'py>(
        &self,
        py: Python<'py>,
        form: &[u8],
        authorization: Option<&str>,
        remote_addr: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.token_with(py, form, authorization, remote_addr, CoreProxy::token)
    }

    /// The authorization_code grant only (same arguments as `token`).
    #[pyo3(signature = (form, authorization=None, remote_addr=None))]
    fn exchange_authorization_code<'py>(
        &self,
        py: Python<'py>,
        form: &[u8],
        authorization: Option<&str>,
        remote_addr: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.token_with(
            py,
            form,
            authorization,
            remote_addr,
            CoreProxy::exchange_authorization_code,
        )
    }

    /// The refresh_token grant only (same arguments as `token`).
    #[pyo3(signature = (form, authorization=None, remote_addr=None))]
    fn exchange_refresh_token<'py>(
        &self,
        py: Python<'py>,
        form: &[u8],
        authorization: Option<&str>,
        remote_addr: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.token_with(
            py,
            form,
            authorization,
            remote_addr,
            CoreProxy::exchange_refresh_token,
        )
    }

    /// The upstream tokens behind one of our access tokens, or None.
    fn load_upstream_tokens<'py>(&self, py: Python<'py>, token: &str) -> PyResult<Bound<'py, PyAny>> {
        let t = detached(py, oauth_panic, || self.inner.load_upstream_tokens(token)).map_err(oauth_err)?;
        let v = t
            .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        from_json(py, &v)
    }

    /// RFC 7009 revocation by the token's client.
    #[pyo3(signature = (token, client_id, client_secret=None, remote_addr=None))]
    fn revoke(
        &self,
        py: Python<'_>,
        token: &str,
        client_id: &str,
        client_secret: Option<&str>,
        remote_addr: Option<&str>,
    ) -> PyResult<()> {
        let r = fastmcp_auth::proxy::RevocationRequest {
            token: Some(token.to_owned()),
            client_id: Some(client_id.to_owned()),
            client_secret: client_secret.map(str::to_owned),
            ..Default::default()
        }
        .with_remote_addr(remote_addr);
        detached(py, oauth_panic, || self.inner.revoke_request(&r)).map_err(oauth_err)
    }

    /// RFC 9728 protected resource metadata of `resource` (the MCP endpoint URL).
    fn protected_resource_metadata<'py>(
        &self,
        py: Python<'py>,
        resource: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.inner.as_async().protected_resource_metadata(resource))
    }

    /// Checks a request to `resource`: `authorization` is its `Authorization` header (None when absent). Returns
    /// `{"authorized": True, "claims", "upstream"}` or `{"authorized": False, "response": {"status", "headers",
    /// "body"}}` (the 401/403 challenge to send as it is).
    #[pyo3(signature = (authorization, resource, required_scopes=None))]
    fn check_bearer<'py>(
        &self,
        py: Python<'py>,
        authorization: Option<&str>,
        resource: &str,
        required_scopes: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let scopes = required_scopes.unwrap_or_default();
        let r = detached(py, oauth_panic, || {
            self.inner.check_bearer(authorization, resource, &scopes)
        })
        .map_err(oauth_err)?;
        from_json(py, &r.to_json())
    }

    /// RFC 8414 metadata.
    fn authorization_server_metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.inner.authorization_server_metadata())
    }

    /// Readiness: one write/read/delete round trip through the store within `timeout` seconds →
    /// `{"ok", "store", "latency_ms", "warnings"}` (never raises for an unhealthy store).
    #[pyo3(signature = (timeout=2.0))]
    fn health<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        if !(timeout.is_finite() && timeout > 0.0 && timeout <= 3600.0) {
            return Err(PyValueError::new_err(
                "timeout must be a number of seconds in (0, 3600]",
            ));
        }
        let d = std::time::Duration::from_secs_f64(timeout);
        let h = detached(py, oauth_panic, || self.inner.health(d)).map_err(oauth_err)?;
        from_json(py, &h.to_json())
    }

    /// The proxy's metrics in the Prometheus text exposition format (no label carries a token, secret, client id or
    /// address).
    fn metrics_text(&self) -> String {
        self.inner.as_async().metrics_text()
    }

    /// The production checklist's findings at construction (option names, never values).
    fn config_warnings(&self) -> Vec<String> {
        self.inner.as_async().config_warnings().to_vec()
    }

    /// Stops background work of the store.
    fn close(&self) {
        self.inner.close()
    }

    // ---- awaitable endpoints (see serve.rs): each returns an asyncio future of {"status", "headers", "body"} --

    /// RFC 7591 registration: the raw JSON body.
    #[pyo3(signature = (body, remote_addr=None))]
    fn serve_register<'py>(
        &self,
        py: Python<'py>,
        body: Vec<u8>,
        remote_addr: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        serve::register(py, self.inner.as_async().clone(), body, remote_addr)
    }

    /// The authorization endpoint: the raw query string and the `Cookie` header.
    #[pyo3(signature = (query, cookie=None, remote_addr=None))]
    fn serve_authorize<'py>(
        &self,
        py: Python<'py>,
        query: String,
        cookie: Option<String>,
        remote_addr: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        serve::authorize(py, self.inner.as_async().clone(), query, cookie, remote_addr)
    }

    /// The consent form's POST: the raw urlencoded body and the `Cookie` header.
    #[pyo3(signature = (form, cookie=None, remote_addr=None))]
    fn serve_consent<'py>(
        &self,
        py: Python<'py>,
        form: Vec<u8>,
        cookie: Option<String>,
        remote_addr: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        serve::consent(py, self.inner.as_async().clone(), form, cookie, remote_addr)
    }

    /// The upstream callback: the raw query string and the `Cookie` header.
    #[pyo3(signature = (query, cookie=None, remote_addr=None))]
    fn serve_callback<'py>(
        &self,
        py: Python<'py>,
        query: String,
        cookie: Option<String>,
        remote_addr: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        serve::callback(py, self.inner.as_async().clone(), query, cookie, remote_addr)
    }

    /// The token endpoint (any grant): the raw urlencoded body and the `Authorization` header.
    #[pyo3(signature = (form, authorization=None, remote_addr=None))]
    fn serve_token<'py>(
        &self,
        py: Python<'py>,
        form: Vec<u8>,
        authorization: Option<String>,
        remote_addr: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        serve::token(
            py,
            self.inner.as_async().clone(),
            form,
            authorization,
            remote_addr,
        )
    }

    /// RFC 7009 revocation: the raw urlencoded body and the `Authorization` header.
    #[pyo3(signature = (form, authorization=None, remote_addr=None))]
    fn serve_revoke<'py>(
        &self,
        py: Python<'py>,
        form: Vec<u8>,
        authorization: Option<String>,
        remote_addr: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        serve::revoke(
            py,
            self.inner.as_async().clone(),
            form,
            authorization,
            remote_addr,
        )
    }

    /// An awaitable bearer check of `token` for `resource` (the MCP endpoint URL): `{"claims", "upstream"}` when
    /// the token is ours, live, for this resource and backed by upstream tokens, else None. Storage failures raise
    /// `OAuthProxyError` (`server_error`).
    fn verify_async<'py>(
        &self,
        py: Python<'py>,
        token: String,
        resource: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        serve::verify(py, self.inner.as_async().clone(), token, resource)
    }

    /// `verify_async`'s answer computed in place when the store never waits (memory), else `NotImplemented`.
    fn verify_inline<'py>(
        &self,
        py: Python<'py>,
        token: &str,
        resource: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        serve::verify_inline(py, self.inner.as_async(), token, resource)
    }
}

impl PyOAuthProxy {
    fn token_with<'py>(
        &self,
        py: Python<'py>,
        form: &[u8],
        authorization: Option<&str>,
        remote_addr: Option<&str>,
        grant: fn(
            &CoreProxy,
            &TokenRequest,
        ) -> fastmcp_auth::proxy::OAuthResult<fastmcp_auth::proxy::TokenResponse>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req = TokenRequest::from_form(form, authorization)
            .map_err(oauth_err)?
            .with_remote_addr(remote_addr);
        let r = detached(py, oauth_panic, || grant(&self.inner, &req)).map_err(oauth_err)?;
        from_json(py, &r.to_json())
    }
}

// ---- logging ---------------------------------------------------------------------------------------------------

/// The core's log records reach Python `logging` (logger `fastmcp_auth.<module>`, e.g. `fastmcp_auth.proxy.refresh`)
/// through a queue and one thread of ours: the thread that logged (a request, a tokio worker) never waits for the
/// GIL, and a full queue (4,096 records) drops records rather than slow requests down (counted, then reported).
mod py_logging {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::mpsc::{sync_channel, SyncSender};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use fastmcp_auth::log::{self, Record};
    use pyo3::prelude::*;

    /// One queue and its drain thread. A forked child has no drain thread (fork copies one thread), so it starts a
    /// fresh `Drain` (`os.register_at_fork` in `__init__.py` calls `_install_logging` again); the parent's, with
    /// whatever lock state the fork caught it in, is simply never used there.
    struct Drain {
        tx: SyncSender<Record>,
        pending: AtomicU64,
        dropped: AtomicU64,
        stopped: AtomicBool,
        /// Held by the drain thread while it is inside Python; `stop` takes it, so after `stop` returns the thread
        /// never enters Python again (interpreter shutdown).
        in_python: Mutex<()>,
    }

    static CURRENT: Mutex<Option<Arc<Drain>>> = Mutex::new(None);

    fn levelno(level: tracing::Level) -> i32 {
        match level {
            tracing::Level::ERROR => 40,
            tracing::Level::WARN => 30,
            tracing::Level::INFO => 20,
            tracing::Level::DEBUG => 10,
            tracing::Level::TRACE => 5,
        }
    }

    fn emit(py: Python<'_>, r: &Record) -> PyResult<()> {
        let name = r.target.replace("::", ".");
        let logger = py.import("logging")?.call_method1("getLogger", (name,))?;
        logger.call_method1("log", (levelno(r.level), "%s", r.message.as_str()))?;
        Ok(())
    }

    fn start() -> Arc<Drain> {
        let (tx, rx) = sync_channel::<Record>(4096);
        let drain = Arc::new(Drain {
            tx,
            pending: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            in_python: Mutex::new(()),
        });
        let d = drain.clone();
        let spawned = std::thread::Builder::new()
            .name("fastmcp-auth-log".into())
            .spawn(move || {
                for r in rx {
                    {
                        let _inside = d.in_python.lock().unwrap_or_else(|p| p.into_inner());
                        if !d.stopped.load(Ordering::Acquire) {
                            Python::try_attach(|py| {
                                let dropped = d.dropped.swap(0, Ordering::Relaxed);
                                if dropped > 0 {
                                    let note = Record {
                                        level: tracing::Level::WARN,
                                        target: "fastmcp_auth".into(),
                                        message: format!(
                                            "{dropped} log records dropped (the log queue was full)"
                                        ),
                                    };
                                    let _ = emit(py, &note);
                                }
                                // A failing handler is the application's business; never ours to crash on.
                                if emit(py, &r).is_err() {
                                    PyErr::take(py);
                                }
                            });
                        }
                    }
                    d.pending.fetch_sub(1, Ordering::AcqRel);
                }
            });
        if spawned.is_err() {
            drain.stopped.store(true, Ordering::Release);
        }
        drain
    }

    fn current() -> Option<Arc<Drain>> {
        CURRENT.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Starts forwarding at `level` (a `logging` level name), with a new queue and thread (at import, and in a
    /// forked child). False when the process already has another Rust `tracing` subscriber.
    #[pyfunction]
    #[pyo3(signature = (level = None))]
    pub fn _install_logging(level: Option<&str>) -> PyResult<bool> {
        // None: the level in force (a forked child keeps its parent's).
        let level = match level {
            Some(l) => parse(l)?,
            None => log::max_level(),
        };
        let drain = start();
        *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = Some(drain.clone());
        let sink: log::Sink = Arc::new(move |r: &Record| {
            drain.pending.fetch_add(1, Ordering::AcqRel);
            if drain.tx.try_send(r.clone()).is_err() {
                drain.pending.fetch_sub(1, Ordering::AcqRel);
                drain.dropped.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(log::set_sink(Some(sink), level) == log::SinkInstall::Forwarding)
    }

    fn parse(level: &str) -> PyResult<tracing::Level> {
        log::parse_level(level).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(
                "level must be one of 'error', 'warning', 'info', 'debug', 'trace'",
            )
        })
    }

    /// Which records the library sends to `logging`: `"warning"` (the default: warnings and errors), `"info"`,
    /// `"debug"`, `"trace"` or `"error"`. Raises `ValueError` for another name. The `fastmcp_auth` loggers'
    /// own levels and handlers then filter as usual.
    #[pyfunction]
    pub fn set_log_level(level: &str) -> PyResult<()> {
        log::set_level(parse(level)?);
        Ok(())
    }

    /// Waits (GIL released) until every queued record has been handed to `logging`, at most `timeout` seconds.
    #[pyfunction]
    #[pyo3(signature = (timeout = 5.0))]
    pub fn _flush_logging(py: Python<'_>, timeout: f64) -> bool {
        let Some(d) = current() else { return true };
        let deadline = Instant::now() + Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
        py.detach(|| {
            while d.pending.load(Ordering::Acquire) > 0 {
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            true
        })
    }

    /// Registered with `atexit`: no record enters Python once the interpreter starts shutting down. Waits at most
    /// a second for a record being logged (never forever: a lock a fork caught mid-use is never released).
    #[pyfunction]
    pub fn _stop_logging(py: Python<'_>) {
        log::set_sink(None, tracing::Level::WARN);
        if let Some(d) = current() {
            py.detach(|| {
                let deadline = Instant::now() + Duration::from_secs(1);
                loop {
                    if let Ok(_inside) = d.in_python.try_lock() {
                        d.stopped.store(true, Ordering::Release);
                        return;
                    }
                    if Instant::now() >= deadline {
                        d.stopped.store(true, Ordering::Release);
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
        }
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The event loop's thread first: the runtime's threads (file I/O, upstream calls) at nice 10, so that on busy
    // cores the loop — which every request's Python waits on — is not kept waiting for a CPU (runtime.rs).
    // Measured on 2 cores: the server's longest loop pause under token load fell from ~23 ms to ... (README).
    fastmcp_auth::runtime::lower_thread_priority(10);
    // The job drainers (bridge.rs) make DiskStore's next entry files between jobs (store/disk/spare.rs).
    fastmcp_auth::store::enable_prepare_ahead();
    // Awaitables run on the core's one runtime, where its HTTP clients and Redis connections live (runtime.rs).
    // Err: already set (a second import in a subinterpreter-free process cannot happen; harmless either way).
    let _ =
        pyo3_async_runtimes::tokio::init_with_runtime(fastmcp_auth::runtime::runtime().map_err(to_py_err)?);
    m.add_class::<PyStore>()?;
    m.add_class::<PyMemoryStore>()?;
    m.add_class::<PyDiskStore>()?;
    m.add_class::<PyEncryptedStore>()?;
    m.add_class::<PyRedisStore>()?;
    m.add_class::<jwt::PyJwtIssuer>()?;
    m.add_class::<PyOAuthProxy>()?;
    m.add_function(wrap_pyfunction!(derive_jwt_key, m)?)?;
    m.add_function(wrap_pyfunction!(_test_panic, m)?)?;
    m.add_function(wrap_pyfunction!(derive_key, m)?)?;
    m.add_function(wrap_pyfunction!(generate_verifier, m)?)?;
    m.add_function(wrap_pyfunction!(generate_challenge, m)?)?;
    m.add_function(wrap_pyfunction!(validate_challenge, m)?)?;
    m.add_function(wrap_pyfunction!(py_logging::_install_logging, m)?)?;
    m.add_function(wrap_pyfunction!(py_logging::set_log_level, m)?)?;
    m.add_function(wrap_pyfunction!(py_logging::_flush_logging, m)?)?;
    m.add_function(wrap_pyfunction!(py_logging::_stop_logging, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
