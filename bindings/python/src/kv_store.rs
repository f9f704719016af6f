//! A core `Store` over a Python asyncio key-value store: any py-key-value `AsyncKeyValue` (fastmcp's default
//! Fernet-over-FileTreeStore, a user's Redis, DynamoDB, ...) through `fastmcp_auth.fastmcp._KeyValueBridge`, whose
//! coroutines this store schedules on the event loop of the request that needs them and awaits from the core's
//! runtime (pyo3-async-runtimes), so neither side blocks the other.
//!
//! The event loop is the one of the awaiting request (a task-local set by `future_into_py`): a call with no
//! request behind it (the blocking API, a background sweep) fails with a storage error instead of blocking a loop
//! that would have to run the call itself.

use std::time::Duration;

use fastmcp_auth::store::Store;
use fastmcp_auth::{Error, Result};
use pyo3::prelude::*;
use serde_json::Value;

pub(crate) struct PyKvStore {
    bridge: Py<PyAny>,
}

impl PyKvStore {
    pub(crate) fn new(bridge: Py<PyAny>) -> Self {
        PyKvStore { bridge }
    }

    /// One awaited call of the bridge's coroutine `op`; its answer (a str or None for reads, a bool for delete).
    async fn call(
        &self,
        op: &'static str,
        key: &str,
        value: Option<String>,
        ttl: Option<f64>,
        extra: Option<String>,
    ) -> Result<Py<PyAny>> {
        // The store's own error text can name keys, values or credentials: it is neither logged nor returned.
        let failed = |_: PyErr| {
            tracing::warn!(op, "Python client_storage call failed");
            Error::Io {
                op: "client_storage",
                source: std::io::Error::other(format!("the client_storage {op} failed")),
            }
        };
        let pending = Python::attach(|py| -> PyResult<_> {
            let locals = pyo3_async_runtimes::tokio::get_current_locals(py)?;
            let coro = match (op, extra) {
                ("save", _) => self.bridge.bind(py).call_method1(op, (key, value, ttl))?,
                ("replace", Some(new)) => self.bridge.bind(py).call_method1(op, (key, value, new))?,
                _ => self.bridge.bind(py).call_method1(op, (key,))?,
            };
            pyo3_async_runtimes::into_future_with_locals(&locals, coro)
        })
        .map_err(failed)?;
        pending.await.map_err(failed)
    }

    async fn text(&self, op: &'static str, key: &str) -> Result<Option<Value>> {
        fastmcp_auth::store::validate_key(key)?;
        let answer = self.call(op, key, None, None, None).await?;
        let text: Option<String> = Python::attach(|py| answer.bind(py).extract()).map_err(|_| {
            Error::InvalidArgument(format!("client_storage {op} answered something other than text"))
        })?;
        text.map(|t| serde_json::from_str(&t).map_err(Error::from))
            .transpose()
    }
}

#[async_trait::async_trait]
impl Store for PyKvStore {
    async fn save(&self, key: &str, value: Value, ttl: Option<Duration>) -> Result<()> {
        fastmcp_auth::store::validate_key(key)?;
        let ttl = ttl.filter(|t| !t.is_zero()).map(|t| t.as_secs_f64());
        self.call("save", key, Some(value.to_string()), ttl, None)
            .await
            .map(drop)
    }
    async fn get(&self, key: &str) -> Result<Option<Value>> {
        self.text("get", key).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        fastmcp_auth::store::validate_key(key)?;
        let answer = self.call("delete", key, None, None, None).await?;
        Ok(Python::attach(|py| answer.bind(py).is_truthy()).unwrap_or(true))
    }
    async fn take(&self, key: &str) -> Result<Option<Value>> {
        self.text("take", key).await
    }
    /// Compare-and-swap through the bridge (atomic within this process: the key's lock, shared with `take`), so
    /// single-use codes get the swap scheme (code_use.rs); `Ok(None)` when the Python store has no `ttl()`.
    async fn replace(
        &self,
        key: &str,
        expected: &Value,
        new: Value,
    ) -> Result<Option<fastmcp_auth::store::Replaced>> {
        use fastmcp_auth::store::Replaced;
        fastmcp_auth::store::validate_key(key)?;
        let answer = self
            .call(
                "replace",
                key,
                Some(expected.to_string()),
                None,
                Some(new.to_string()),
            )
            .await?;
        let said: Option<String> = Python::attach(|py| answer.bind(py).extract()).map_err(|_| {
            Error::InvalidArgument("client_storage replace answered something other than text".into())
        })?;
        Ok(match said.as_deref() {
            None => None,
            Some("replaced") => Some(Replaced::Replaced),
            Some("changed") => Some(Replaced::Changed),
            Some("absent") => Some(Replaced::Absent),
            Some(_) => {
                return Err(Error::InvalidArgument(
                    "client_storage replace answered something unexpected".into(),
                ))
            }
        })
    }
    async fn cleanup(&self) -> Result<u64> {
        // py-key-value stores expire entries themselves (TTL on read); nothing to sweep from here.
        Ok(0)
    }
    async fn size(&self) -> Result<u64> {
        Err(Error::InvalidArgument(
            "an AsyncKeyValue client_storage cannot count its entries".into(),
        ))
    }
    async fn keys(&self) -> Result<Vec<String>> {
        Err(Error::InvalidArgument(
            "an AsyncKeyValue client_storage cannot list its keys".into(),
        ))
    }
}
