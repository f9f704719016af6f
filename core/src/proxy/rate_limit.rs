//! Rate limits of the proxy's endpoints (MCP authorization, "Security Best Practices" / production checklist:
//! rate-limit the token endpoints; RFC 6749 §10.10 and RFC 9700 §4.x: credential guessing). Each endpoint has one
//! [`Limit`] (cells per minute, burst), applied to one key per request:
//!
//! - the caller's address when the host passes one (`remote_addr`): an IPv6 address counts by its /64 (what one
//!   subscriber gets), an IPv4-mapped one as the IPv4 address;
//! - without an address: the client id the request names (authorize, token, revoke; not a URL client id, shared by
//!   every user of an application), one shared key for registration, nothing for the consent form and the callback.
//!
//! Client ids are a key only when there is no address: a request merely *names* a client id, so counting by it
//! would let anyone lock a client out by sending failures in its name (found by the review of this module).
//! Secrets and codes are 256-bit random values, so the limits are about floods, not about making guessing
//! infeasible; hosts should pass addresses (Node's `mount` does).
//!
//! Failed client authentications, failed PKCE checks and other refused grants at the token endpoint cost
//! `failure_cost` cells instead of one (credential stuffing, code guessing).
//!
//! The algorithm is GCRA (the "generic cell rate algorithm": a token bucket without a timer). With a store that
//! can share it (RedisStore: an atomic script), every replica counts against one limit; otherwise each process
//! limits on its own with the `governor` crate. Keys are hashed (SHA-256) before they are stored or kept, so
//! neither a client id nor an address appears in the store. A store that fails while counting lets the request
//! through (logged): the limiter never turns a store outage into a refusal of its own.
//!
//! A refusal is HTTP 429 with `Retry-After` (seconds): `slow_down` at the token and revocation endpoints (RFC 8628
//! §3.5's code for "too fast"), `temporarily_unavailable` elsewhere (RFC 6749 §4.1.2.1).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::Value;

use super::error::OAuthError;
use super::provider::sha256_hex;
use crate::error::{Error, Result};
use crate::store::{RateLimitAnswer, Store};

/// One endpoint's limit: `per_minute` cells replenished evenly, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Sustained rate (cells per minute), at least 1.
    pub per_minute: u32,
    /// Most cells spent at once after a quiet spell, at least 1.
    pub burst: u32,
}

impl Limit {
    const fn new(per_minute: u32, burst: u32) -> Option<Limit> {
        Some(Limit { per_minute, burst })
    }

    /// Time between two cells.
    pub fn period(&self) -> Duration {
        Duration::from_secs(60) / self.per_minute.max(1)
    }
}

/// The limits of every endpoint; `None` turns one off. Defaults (per key, see the module docs) are far above what
/// a person or a well-behaved client does, and far below what a flood does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// All limits on (default) or off.
    pub enabled: bool,
    /// `/register`: 30 per minute, burst 30.
    pub register: Option<Limit>,
    /// `/authorize`: 120 per minute, burst 60.
    pub authorize: Option<Limit>,
    /// The consent form's POST: 60 per minute, burst 30 (per address only).
    pub consent: Option<Limit>,
    /// The upstream callback: 60 per minute, burst 30 (per address only).
    pub callback: Option<Limit>,
    /// `/token`: 300 per minute, burst 100.
    pub token: Option<Limit>,
    /// `/revoke`: 120 per minute, burst 60.
    pub revoke: Option<Limit>,
    /// Cells a failed client authentication, PKCE check or refused grant costs (default 5).
    pub failure_cost: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            enabled: true,
            register: Limit::new(30, 30),
            authorize: Limit::new(120, 60),
            consent: Limit::new(60, 30),
            callback: Limit::new(60, 30),
            token: Limit::new(300, 100),
            revoke: Limit::new(120, 60),
            failure_cost: 5,
        }
    }
}

/// The endpoints with a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// RFC 7591 registration.
    Register,
    /// The authorization endpoint.
    Authorize,
    /// The consent form.
    Consent,
    /// The upstream callback.
    Callback,
    /// The token endpoint.
    Token,
    /// RFC 7009 revocation.
    Revoke,
}

const ENDPOINTS: [Endpoint; 6] = [
    Endpoint::Register,
    Endpoint::Authorize,
    Endpoint::Consent,
    Endpoint::Callback,
    Endpoint::Token,
    Endpoint::Revoke,
];

impl Endpoint {
    /// The endpoint's name (`register`, `authorize`, …), as in the config and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Register => "register",
            Endpoint::Authorize => "authorize",
            Endpoint::Consent => "consent",
            Endpoint::Callback => "callback",
            Endpoint::Token => "token",
            Endpoint::Revoke => "revoke",
        }
    }

    /// The OAuth error code of a refusal here.
    fn error_code(self) -> &'static str {
        match self {
            Endpoint::Token | Endpoint::Revoke => "slow_down",
            _ => "temporarily_unavailable",
        }
    }

    /// Whether a client id is a key here (the consent form and the callback name none the client chose).
    fn keyed_by_client(self) -> bool {
        matches!(self, Endpoint::Authorize | Endpoint::Token | Endpoint::Revoke)
    }
}

impl RateLimits {
    fn limit(&self, e: Endpoint) -> Option<Limit> {
        if !self.enabled {
            return None;
        }
        match e {
            Endpoint::Register => self.register,
            Endpoint::Authorize => self.authorize,
            Endpoint::Consent => self.consent,
            Endpoint::Callback => self.callback,
            Endpoint::Token => self.token,
            Endpoint::Revoke => self.revoke,
        }
    }

    /// Parses the `rate_limits` member of a JSON config: `true`/`false`, or an object with `enabled`,
    /// `failure_cost` and per endpoint `false` or `{"per_minute": N, "burst": N}`. Unknown members are an error.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut r = RateLimits::default();
        let m = match v {
            Value::Null => return Ok(r),
            Value::Bool(b) => {
                r.enabled = *b;
                return Ok(r);
            }
            Value::Object(m) => m,
            _ => {
                return Err(Error::InvalidArgument(
                    "config `rate_limits` must be true, false or an object".into(),
                ))
            }
        };
        let bad =
            |k: &str, what: &str| Error::InvalidArgument(format!("config `rate_limits.{k}` must be {what}"));
        let u32_of = |k: &str, x: &Value| {
            x.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad(k, "a positive integer"))
        };
        for (k, x) in m {
            match k.as_str() {
                "enabled" => r.enabled = x.as_bool().ok_or_else(|| bad(k, "true or false"))?,
                "failure_cost" => r.failure_cost = u32_of(k, x)?,
                name => {
                    let Some(e) = ENDPOINTS.iter().copied().find(|e| e.name() == name) else {
                        return Err(Error::InvalidArgument(format!(
                            "unknown config member `rate_limits.{k}`"
                        )));
                    };
                    let limit = match x {
                        Value::Bool(false) | Value::Null => None,
                        Value::Object(o) => {
                            if let Some(extra) =
                                o.keys().find(|n| !matches!(n.as_str(), "per_minute" | "burst"))
                            {
                                return Err(Error::InvalidArgument(format!(
                                    "unknown config member `rate_limits.{k}.{extra}`"
                                )));
                            }
                            let get = |n: &str| {
                                o.get(n)
                                    .ok_or_else(|| bad(&format!("{k}.{n}"), "given"))
                                    .and_then(|x| u32_of(&format!("{k}.{n}"), x))
                            };
                            Some(Limit {
                                per_minute: get("per_minute")?,
                                burst: get("burst")?,
                            })
                        }
                        _ => return Err(bad(k, "false or {\"per_minute\": N, \"burst\": N}")),
                    };
                    match e {
                        Endpoint::Register => r.register = limit,
                        Endpoint::Authorize => r.authorize = limit,
                        Endpoint::Consent => r.consent = limit,
                        Endpoint::Callback => r.callback = limit,
                        Endpoint::Token => r.token = limit,
                        Endpoint::Revoke => r.revoke = limit,
                    }
                }
            }
        }
        Ok(r)
    }

    /// Checks the bounds (a zero rate is refused where it would divide: use `false` to turn a limit off).
    pub fn validate(&self) -> Result<()> {
        for e in ENDPOINTS {
            if let Some(l) = self.limit(e) {
                // One cell per millisecond at most (the shared limit counts in milliseconds); the burst bounded so
                // period × burst stays far from overflow.
                if l.per_minute == 0 || l.burst == 0 || l.per_minute > 60_000 || l.burst > 1_000_000 {
                    return Err(Error::InvalidArgument(format!(
                        "rate_limits.{}: per_minute must be 1..=60000 and burst 1..=1000000",
                        e.name()
                    )));
                }
            }
        }
        if self.failure_cost == 0 {
            return Err(Error::InvalidArgument(
                "rate_limits.failure_cost must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Who a request comes from, as far as the host and the request tell.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caller<'a> {
    /// The caller's address (the host's view: the socket's peer, or a trusted proxy's forwarded address).
    pub remote_addr: Option<&'a str>,
    /// The client id the request names (unchecked).
    pub client_id: Option<&'a str>,
    /// The client id is a metadata-document URL (shared by every user of an application).
    pub url_client: bool,
}

impl Caller<'_> {
    /// The key a request of `endpoint` counts against (hashed when stored), if any.
    fn keys(&self, e: Endpoint) -> Vec<String> {
        if let Some(a) = self.remote_addr.filter(|a| !a.is_empty()) {
            return vec![format!("{}|addr|{}", e.name(), address_key(a))];
        }
        match (e, self.client_id) {
            (Endpoint::Register, _) => vec!["register|all".into()],
            (_, Some(id)) if e.keyed_by_client() && !self.url_client && !id.is_empty() => {
                vec![format!("{}|client|{id}", e.name())]
            }
            _ => Vec::new(),
        }
    }
}

/// The address as a limit counts it: an IPv6 address by its /64 prefix (one subscriber's allocation, or an
/// attacker would have 2^64 buckets), an IPv4-mapped IPv6 address as its IPv4 address; anything else as given.
fn address_key(a: &str) -> String {
    use std::net::IpAddr;
    match a.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(ip) => ip.to_string(),
        Err(_) => a.to_owned(),
    }
}

type Keyed = DefaultKeyedRateLimiter<String>;

/// The limiter of a proxy: one GCRA bucket set per endpoint with a limit, counted in the store when it can share
/// them ([`Store::rate_limit`]) and in this process otherwise. Public for benchmarks and custom endpoints.
pub struct Limiter {
    limits: RateLimits,
    local: Vec<(Endpoint, Limit, Keyed)>,
    checks: AtomicU64,
    /// The store answered that it cannot share limits (a limiter is used with one store).
    store_is_local: AtomicBool,
    /// A request came without the caller's address (logged once).
    warned_no_address: AtomicBool,
    /// Counts the store's failures while counting (the request was let through).
    store_errors: prometheus_client::metrics::counter::Counter,
}

impl Limiter {
    /// How often the store failed while counting (each time the request was let through).
    pub fn store_errors(&self) -> prometheus_client::metrics::counter::Counter {
        self.store_errors.clone()
    }

    /// A limiter for `limits`.
    pub fn new(limits: &RateLimits) -> Limiter {
        let local = ENDPOINTS
            .iter()
            .filter_map(|&e| {
                let l = limits.limit(e)?;
                let burst = NonZeroU32::new(l.burst).unwrap_or(NonZeroU32::MIN);
                let quota = Quota::with_period(l.period())?.allow_burst(burst);
                Some((e, l, RateLimiter::keyed(quota)))
            })
            .collect();
        Limiter {
            limits: limits.clone(),
            local,
            checks: AtomicU64::new(0),
            store_is_local: AtomicBool::new(false),
            warned_no_address: AtomicBool::new(false),
            store_errors: Default::default(),
        }
    }

    /// Counts a request of `caller` at `endpoint` (always with the same `store`). Over the limit: the 429 error. `failed`: the request was
    /// answered and refused on its merits; it costs `failure_cost` more cells, as many as are left (never a 429).
    pub async fn check(
        &self,
        store: &dyn Store,
        endpoint: Endpoint,
        caller: &Caller<'_>,
        failed: bool,
    ) -> std::result::Result<(), OAuthError> {
        let Some((_, limit, local)) = self.local.iter().find(|(e, _, _)| *e == endpoint) else {
            return Ok(());
        };
        if caller.remote_addr.is_none() && !self.warned_no_address.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "rate limits: a request came without the caller's address; limits then count by client id, and \
                 all registrations share one limit. Pass remote_addr (Node's mount does; behind a reverse proxy, \
                 its forwarded address)"
            );
        }
        let cost = if failed { self.limits.failure_cost } else { 1 };
        let mut wait = Duration::ZERO;
        for key in caller.keys(endpoint) {
            // Once the store has said it cannot share limits, it is not asked again (and nothing is hashed: the
            // in-memory keys never leave the process).
            let answer = if self.store_is_local.load(Ordering::Relaxed) {
                self.local(local, limit, &key, cost, failed)
            } else {
                let hashed = format!("ratelimit:{}", sha256_hex(&key));
                match store
                    .rate_limit(&hashed, limit.period(), limit.burst, cost, failed)
                    .await
                {
                    Ok(Some(a)) => a,
                    Ok(None) => {
                        self.store_is_local.store(true, Ordering::Relaxed);
                        self.local(local, limit, &key, cost, failed)
                    }
                    Err(e) => {
                        // Logged once per 100 failures: an outage must not flood the log.
                        if self.store_errors.inc() % 100 == 0 {
                            tracing::warn!(error = %e, "rate limit store failed; requests let through");
                        }
                        RateLimitAnswer::Allowed
                    }
                }
            };
            if let RateLimitAnswer::Limited { retry_after } = answer {
                // Refused: nothing more is charged.
                wait = wait.max(retry_after);
                break;
            }
        }
        if wait.is_zero() {
            return Ok(());
        }
        Err(refusal(endpoint, wait))
    }

    fn local(&self, l: &Keyed, limit: &Limit, key: &str, cost: u32, partial: bool) -> RateLimitAnswer {
        // Keys indistinguishable from fresh ones are dropped now and then, so a flood of distinct keys (addresses,
        // client ids) does not stay in memory.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            l.retain_recent();
            l.shrink_to_fit();
        }
        let key = key.to_owned();
        if partial {
            // A penalty takes what the bucket still has, cell by cell (governor refuses a batch that does not fit
            // whole, and a refused batch counts nothing).
            for _ in 0..cost {
                if l.check_key(&key).is_err() {
                    break;
                }
            }
            return RateLimitAnswer::Allowed;
        }
        let n = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        match l.check_key_n(&key, n) {
            Ok(Ok(())) => RateLimitAnswer::Allowed,
            Ok(Err(not_until)) => RateLimitAnswer::Limited {
                retry_after: not_until.wait_time_from(l.clock().now()),
            },
            // More cells than the burst: never conforms; wait as long as the cost takes to replenish.
            Err(_) => RateLimitAnswer::Limited {
                retry_after: limit.period() * cost,
            },
        }
    }
}

/// The 429 answer: `Retry-After` in whole seconds, rounded up, at least 1.
fn refusal(e: Endpoint, wait: Duration) -> OAuthError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    OAuthError::new(e.error_code(), "too many requests; try again later")
        .with_status(429)
        .with_retry_after(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use serde_json::json;

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn keys_per_endpoint() {
        let both = Caller {
            remote_addr: Some("203.0.113.7"),
            client_id: Some("c1"),
            url_client: false,
        };
        let url = Caller {
            url_client: true,
            ..both
        };
        let anonymous = Caller::default();
        let no_addr = Caller {
            remote_addr: None,
            ..both
        };
        let v6 = Caller {
            remote_addr: Some("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
            ..both
        };
        let mapped = Caller {
            remote_addr: Some("::ffff:203.0.113.7"),
            ..both
        };
        #[rustfmt::skip]
        let table: &[(Endpoint, &Caller, &[&str])] = &[
            (Endpoint::Register, &both, &["register|addr|203.0.113.7"]),
            (Endpoint::Register, &anonymous, &["register|all"]),
            // With an address, the address alone: a client id named by anyone is no key.
            (Endpoint::Authorize, &both, &["authorize|addr|203.0.113.7"]),
            (Endpoint::Authorize, &url, &["authorize|addr|203.0.113.7"]),
            (Endpoint::Authorize, &no_addr, &["authorize|client|c1"]),
            (Endpoint::Authorize, &anonymous, &[]),
            (Endpoint::Consent, &both, &["consent|addr|203.0.113.7"]),
            (Endpoint::Consent, &no_addr, &[]),
            (Endpoint::Callback, &both, &["callback|addr|203.0.113.7"]),
            (Endpoint::Token, &both, &["token|addr|203.0.113.7"]),
            (Endpoint::Token, &no_addr, &["token|client|c1"]),
            (Endpoint::Token, &Caller { url_client: true, ..no_addr }, &[]),
            (Endpoint::Revoke, &no_addr, &["revoke|client|c1"]),
            (Endpoint::Token, &v6, &["token|addr|2001:db8:1:2::/64"]),
            (Endpoint::Token, &mapped, &["token|addr|203.0.113.7"]),
            (Endpoint::Token, &Caller { remote_addr: Some("[::1]"), ..both }, &["token|addr|0:0:0:0::/64"]),
        ];
        for (e, c, want) in table {
            assert_eq!(
                c.keys(*e),
                want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{e:?}"
            );
        }
    }

    #[test]
    fn burst_then_refused_with_retry_after_then_replenished() {
        let store = MemoryStore::new();
        let limits = RateLimits {
            token: Some(Limit {
                per_minute: 600, // one per 100 ms
                burst: 3,
            }),
            ..Default::default()
        };
        let l = Limiter::new(&limits);
        let c = Caller {
            remote_addr: Some("a"),
            client_id: Some("c"),
            url_client: false,
        };
        let other = Caller {
            remote_addr: Some("b"),
            client_id: Some("d"),
            url_client: false,
        };
        run(async {
            for _ in 0..3 {
                l.check(&store, Endpoint::Token, &c, false).await.unwrap();
            }
            let e = l.check(&store, Endpoint::Token, &c, false).await.unwrap_err();
            assert_eq!(
                (e.code.as_str(), e.status, e.retry_after),
                ("slow_down", 429, Some(1))
            );
            // Other callers are untouched.
            l.check(&store, Endpoint::Token, &other, false).await.unwrap();
            // Another endpoint is counted on its own.
            l.check(&store, Endpoint::Revoke, &c, false).await.unwrap();
            tokio::time::sleep(Duration::from_millis(120)).await;
            l.check(&store, Endpoint::Token, &c, false).await.unwrap();
            // A failure costs 5 more: the bucket of 3 is emptied, so the next request waits.
            tokio::time::sleep(Duration::from_millis(400)).await;
            l.check(&store, Endpoint::Token, &other, true).await.unwrap();
            let e = l.check(&store, Endpoint::Token, &other, false).await.unwrap_err();
            assert_eq!(e.retry_after, Some(1));
        });
        store.close();
    }

    #[test]
    fn off_switches() {
        let store = MemoryStore::new();
        let c = Caller {
            remote_addr: Some("a"),
            ..Default::default()
        };
        for limits in [
            RateLimits {
                enabled: false,
                ..Default::default()
            },
            RateLimits {
                register: None,
                ..Default::default()
            },
        ] {
            let l = Limiter::new(&limits);
            run(async {
                for _ in 0..1000 {
                    l.check(&store, Endpoint::Register, &c, false).await.unwrap();
                }
            });
        }
        store.close();
    }

    #[test]
    fn config() {
        let r = RateLimits::from_json(&json!({
            "token": {"per_minute": 10, "burst": 2},
            "register": false,
            "failure_cost": 3,
        }))
        .unwrap();
        assert_eq!(
            r.token,
            Some(Limit {
                per_minute: 10,
                burst: 2
            })
        );
        assert_eq!((r.register, r.failure_cost), (None, 3));
        assert!(!RateLimits::from_json(&json!(false)).unwrap().enabled);
        for (bad, why) in [
            (json!("x"), "true, false or an object"),
            (
                json!({"tokens": false}),
                "unknown config member `rate_limits.tokens`",
            ),
            (
                json!({"token": {"per_minute": 0, "burst": 1}}),
                "positive integer",
            ),
            (json!({"token": {"per_minute": 5}}), "rate_limits.token.burst"),
            (
                json!({"token": {"per_minute": 5, "burst": 1, "per_hour": 2}}),
                "rate_limits.token.per_hour",
            ),
            (json!({"token": 5}), "false or"),
            (json!({"failure_cost": 0}), "positive integer"),
        ] {
            let e = RateLimits::from_json(&bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
