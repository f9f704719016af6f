//! Redis, for several server replicas sharing one state: `SET … PX` for TTLs, `GETDEL` for atomic take
//! (Redis ≥ 6.2), expiry by Redis itself, `SCAN` over the key prefix for size and keys. Values are JSON text
//! (ciphertext when wrapped by [`EncryptedStore`](super::EncryptedStore)).
//!
//! One multiplexed connection per store, managed by redis-rs's `ConnectionManager`: it reconnects after a failure
//! (exponential back-off), and every command has a response timeout, so while Redis is down calls fail fast with
//! [`Error::Io`] (code `storage_io`) instead of hanging; nothing already stored is touched.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use serde_json::Value;

use super::{validate_key, Store};
use crate::error::{Error, Result};

/// Options of a [`RedisStore`].
#[derive(Clone, Debug)]
pub struct RedisStoreOptions {
    /// `redis://[user:pass@]host:port/db` or `rediss://…` (TLS).
    pub url: String,
    /// Prefix of every key this store writes (namespaces several apps in one Redis).
    pub prefix: String,
    /// Timeout of each connection attempt.
    pub connection_timeout: Duration,
    /// Timeout of each command.
    pub response_timeout: Duration,
    /// Reconnection attempts per failure before a command gives up (the next command tries again).
    pub reconnect_retries: usize,
}

impl RedisStoreOptions {
    /// Defaults for `url`: prefix `fastmcp:`, 5 s timeouts, 3 retries.
    pub fn new(url: impl Into<String>) -> Self {
        RedisStoreOptions {
            url: url.into(),
            prefix: "fastmcp:".into(),
            connection_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            reconnect_retries: 3,
        }
    }
}

/// A store in Redis; cheap to share, safe from many tasks and threads.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    closed: std::sync::Arc<AtomicBool>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Redis errors as storage errors; the text names the failure class, never a key or value.
fn redis_err(op: &'static str, e: redis::RedisError) -> Error {
    let kind = if e.is_timeout() {
        std::io::ErrorKind::TimedOut
    } else if e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
        std::io::ErrorKind::ConnectionRefused
    } else {
        std::io::ErrorKind::Other
    };
    let what = match kind {
        std::io::ErrorKind::TimedOut => "Redis did not answer in time".to_owned(),
        std::io::ErrorKind::ConnectionRefused => "Redis is unreachable".to_owned(),
        _ => format!("Redis error ({:?})", e.kind()),
    };
    Error::io(op, std::io::Error::new(kind, what))
}

/// Escapes glob characters so a prefix matches literally in `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisStore {
    /// Connects (on the library's runtime, which owns the connection from then on). Fails with a clear error when
    /// the URL is invalid or Redis cannot be reached within the connection timeout.
    pub async fn open(options: RedisStoreOptions) -> Result<Self> {
        let client = redis::Client::open(options.url.as_str()).map_err(|_| {
            Error::InvalidArgument("Redis URL must look like redis://host:port[/db] or rediss://…".into())
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connection_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(options.reconnect_retries)
            .set_max_delay(Duration::from_secs(2));
        let conn = crate::runtime::runtime()?
            .spawn(async move { client.get_connection_manager_with_config(config).await })
            .await
            .map_err(|e| Error::Task(e.to_string()))?
            .map_err(|e| redis_err("connect", e))?;
        Ok(RedisStore {
            conn,
            prefix: options.prefix,
            closed: Default::default(),
        })
    }

    /// [`open`](Self::open) from synchronous code.
    pub fn open_blocking(options: RedisStoreOptions) -> Result<Self> {
        crate::runtime::block_on(Self::open(options))?
    }

    fn key(&self, key: &str) -> Result<String> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        validate_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    fn parse(&self, raw: Option<String>) -> Option<Value> {
        let raw = raw?;
        match serde_json::from_str(&raw) {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::warn!("RedisStore: a value that is not JSON was ignored");
                None
            }
        }
    }

    async fn scan(&self) -> Result<Vec<String>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_err("scan", e))?;
            out.extend(
                batch
                    .into_iter()
                    .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_owned)),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key twice across a rehash.
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn save(&self, key: &str, value: Value, ttl: Option<Duration>) -> Result<()> {
        let k = self.key(key)?;
        let text = serde_json::to_string(&value)?;
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(&k).arg(text);
        if let Some(d) = ttl.filter(|d| !d.is_zero()) {
            // Redis refuses a PX past i64 milliseconds; anything that long is "never" in practice.
            let ms = u64::try_from(d.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, i64::MAX as u64 / 2);
            cmd.arg("PX").arg(ms);
        }
        cmd.query_async::<()>(&mut conn)
            .await
            .map_err(|e| redis_err("save", e))
    }

    async fn get(&self, key: &str) -> Result<Option<Value>> {
        let k = self.key(key)?;
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.get(&k).await.map_err(|e| redis_err("get", e))?;
        Ok(self.parse(raw))
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let k = self.key(key)?;
        let mut conn = self.conn.clone();
        let n: u64 = conn.del(&k).await.map_err(|e| redis_err("delete", e))?;
        Ok(n > 0)
    }

    async fn take(&self, key: &str) -> Result<Option<Value>> {
        let k = self.key(key)?;
        let mut conn = self.conn.clone();
        let raw: Option<String> = redis::cmd("GETDEL")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_err("take", e))?;
        Ok(self.parse(raw))
    }

    async fn cleanup(&self) -> Result<u64> {
        // Redis expires keys itself.
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(0)
    }

    async fn size(&self) -> Result<u64> {
        Ok(self.scan().await?.len() as u64)
    }

    async fn keys(&self) -> Result<Vec<String>> {
        self.scan().await
    }

    /// GCRA in one atomic script on the server's clock, so every replica shares the bucket: the key holds the
    /// bucket's "theoretical arrival time" (ms) and expires when the bucket is full again.
    async fn rate_limit(
        &self,
        key: &str,
        period: Duration,
        burst: u32,
        cost: u32,
        partial: bool,
    ) -> Result<Option<super::RateLimitAnswer>> {
        const GCRA: &str = r"
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            local period, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
            local partial = ARGV[4] == '1'
            local stored = redis.call('GET', KEYS[1])
            local tat = stored and tonumber(stored) or now
            if tat < now then tat = now end
            local new_tat = tat + period * cost
            local allow_at = new_tat - period * burst
            if allow_at > now then
                if not partial then return allow_at - now end
                new_tat = now + period * burst
                if new_tat < tat then new_tat = tat end
            end
            redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.max(1, new_tat - now))
            return -1";
        let k = self.key(key)?;
        let mut conn = self.conn.clone();
        let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
        let wait_ms: i64 = redis::cmd("EVAL")
            .arg(GCRA)
            .arg(1)
            .arg(&k)
            .arg(period_ms)
            .arg(burst)
            .arg(cost)
            .arg(if partial { "1" } else { "0" })
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_err("rate_limit", e))?;
        Ok(Some(if wait_ms < 0 {
            super::RateLimitAnswer::Allowed
        } else {
            super::RateLimitAnswer::Limited {
                retry_after: Duration::from_millis(wait_ms.max(1) as u64),
            }
        }))
    }

    /// Reads the raw text, compares its JSON with `expected` here, then swaps in one script only if the text is
    /// still byte-for-byte what was read, keeping the remaining time to live (`PTTL` → `PX`).
    async fn replace(&self, key: &str, expected: &Value, new: Value) -> Result<Option<super::Replaced>> {
        use super::Replaced;
        const SWAP: &str = r"
            if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
            local ttl = redis.call('PTTL', KEYS[1])
            if ttl > 0 then
                redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
            else
                redis.call('SET', KEYS[1], ARGV[2])
            end
            return 1";
        let k = self.key(key)?;
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.get(&k).await.map_err(|e| redis_err("replace", e))?;
        let Some(raw) = raw else {
            return Ok(Some(Replaced::Absent));
        };
        if serde_json::from_str::<Value>(&raw).ok().as_ref() != Some(expected) {
            return Ok(Some(Replaced::Changed));
        }
        let text = serde_json::to_string(&new)?;
        let swapped: i64 = redis::cmd("EVAL")
            .arg(SWAP)
            .arg(1)
            .arg(&k)
            .arg(&raw)
            .arg(text)
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_err("replace", e))?;
        Ok(Some(if swapped == 1 {
            Replaced::Replaced
        } else {
            Replaced::Changed
        }))
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_escape() {
        assert_eq!(super::glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
