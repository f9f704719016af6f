//! Single use of our authorization codes — RFC 6749 §4.1.2 ("If an authorization code is used more than once, the
//! authorization server MUST deny the request and SHOULD revoke (when possible) all tokens previously issued based
//! on that authorization code") and RFC 9700 §4.5 — including when the two uses arrive at the same time.
//!
//! A redemption reads the code, runs its checks, then spends the code with a compare-and-swap
//! ([`Store::replace`](crate::store::Store::replace)): the code's record becomes a tombstone naming the grant the
//! redemption is about to issue (the code is *held*). Of two redemptions racing, exactly one swap succeeds; the
//! other then finds the tombstone and is a replay. A replay swaps the tombstone for one without the grant (the
//! *mark*), then revokes the grant. The redemption that won looks at the tombstone again once its tokens are
//! written: unless it is still its own, unmarked tombstone, it revokes those tokens itself and is refused. Either
//! the mark comes before that last look (the winner revokes), or after it, and then the replay's revocation comes
//! after the winner's writes. So no token of a code presented twice outlives the second presentation.
//!
//! What keeps that argument true when stores misbehave:
//! - the tombstone keeps the code's expiry, so a code is held only with [`issuing_budget`] left: a tombstone that
//!   is gone at the last look (expired, or taken by an older replica) is a refusal, never a success;
//! - a swap that reports `Changed` is not final: the key is read again, and the replay marks (or the redemption
//!   retries) against what is there now — DiskStore's exchange can briefly show a loser's value, EncryptedStore's
//!   ciphertext can change under a key rotation (`store rekey`), and a held code can be given back;
//! - a store error after the swap may still have applied it: the key is read again before failing;
//! - a failed last look is retried; if it keeps failing, the tokens are revoked and the code given back, so the
//!   client's retry can succeed; a failed revocation puts the unmarked tombstone back for the next replay.
//!
//! Stores that cannot swap (`replace` answers `Ok(None)`: a host's store through the Node or C faces, a Python
//! `AsyncKeyValue` without `ttl()`, a file system without `RENAME_EXCHANGE`) keep the earlier scheme: an atomic take, the tombstone written after
//! issuing. There, of two simultaneous uses exactly one yields tokens, and they stay valid (the other read nothing
//! and had nothing to revoke).

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::error::{OAuthError, OAuthResult};
use super::model::{parse_iso, secs_until, ClientCode, SpentCode};
use super::provider::{random_id, OAuthProxy};
use crate::store::Replaced;

/// The answer to a code that is unknown or expired (an expired code is gone from the store like one never issued).
pub(super) const CODE_UNKNOWN: &str = "Invalid or expired authorization code";
/// The answer to a code presented again.
pub(super) const CODE_REPLAYED: &str = "Authorization code already used";

/// How many times a swap is tried again against what the key holds now, before giving up (each retry means another
/// writer changed the key meanwhile; a handful of racers settle in two or three).
const SWAP_ROUNDS: usize = 16;

/// A code one redemption holds, until it has issued (`finish`) or failed to (`give_back`).
pub(super) struct HeldCode {
    /// The code's record, as issued at the callback.
    pub record: ClientCode,
    key: String,
    /// The record as stored (what `give_back` restores).
    stored: Value,
    /// The grant this redemption issues (`None`: pass-through, nothing of ours to revoke).
    grant: Option<String>,
    /// The tombstone this redemption swapped in (the compare-and-swap scheme); `None` when the store cannot swap
    /// and the code was taken out of it instead.
    tomb: Option<Value>,
}

/// What is under a code's key, as far as its single use goes.
enum State {
    /// A code not yet spent.
    Live(Box<ClientCode>),
    /// Spent by a redemption that issued (or is issuing) `grant`: presenting it again revokes that grant.
    Held(SpentCode, String),
    /// Spent, nothing (left) to revoke: a failed redemption, pass-through mode, or already marked by a replay.
    Spent(SpentCode),
    /// Nothing, or not a code.
    Unknown,
}

fn state(v: Option<&Value>) -> State {
    let Some(v) = v else { return State::Unknown };
    if let Ok(s) = serde_json::from_value::<SpentCode>(v.clone()) {
        if s.used {
            return match s.grant.clone() {
                Some(g) => State::Held(s, g),
                None => State::Spent(s),
            };
        }
    }
    match serde_json::from_value::<ClientCode>(v.clone()) {
        Ok(r) => State::Live(Box::new(r)),
        Err(_) => State::Unknown,
    }
}

fn unknown() -> OAuthError {
    OAuthError::invalid_grant(CODE_UNKNOWN)
}

fn replayed() -> OAuthError {
    OAuthError::invalid_grant(CODE_REPLAYED)
}

/// A tombstone for a code expiring at `expires_at`, naming `grant` (to revoke on a replay); each one unique.
fn tombstone(expires_at: &str, grant: Option<String>) -> OAuthResult<Value> {
    let t = SpentCode {
        expires_at: expires_at.to_owned(),
        used: true,
        grant,
        holder: Some(random_id()),
    };
    Ok(serde_json::to_value(&t).map_err(crate::Error::from)?)
}

/// How long a code must still live to be held: its tombstone keeps the code's expiry and must outlive the issuing
/// (a few store writes). 5 s, or half the configured code lifetime when that is shorter.
fn issuing_budget(code_ttl_secs: u64) -> Duration {
    Duration::from_secs(5).min(Duration::from_millis(code_ttl_secs.saturating_mul(500)))
}

/// Whether a code expiring at `expires_at` (ISO) has less than `budget` left (unparseable: yes).
fn too_late(expires_at: &str, budget: Duration) -> bool {
    parse_iso(expires_at).is_none_or(|t| {
        t.duration_since(SystemTime::now())
            .map_or(true, |left| left < budget)
    })
}

async fn pause(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(20 << (2 * attempt.min(3)))).await;
}

impl OAuthProxy {
    /// Takes hold of the code stored under `key` for one redemption that will issue `grant`. `check` is the
    /// redemption's own verdict on the record (client, redirect URI, PKCE, resource): a failed check spends the code
    /// too (a tombstone without a grant) and is the answer.
    pub(super) async fn hold_code(
        &self,
        key: String,
        grant: Option<String>,
        check: impl Fn(&ClientCode) -> OAuthResult<()>,
    ) -> OAuthResult<HeldCode> {
        let budget = issuing_budget(self.config.authorization_code_ttl);
        let mut stored = self.get_json::<Value>(&key).await?;
        for _ in 0..SWAP_ROUNDS {
            let Some(current) = stored.take() else {
                return Err(unknown());
            };
            let record = match state(Some(&current)) {
                State::Live(r) => *r,
                State::Held(..) => return Err(self.replayed(&key, current).await),
                State::Spent(_) => return Err(replayed()),
                State::Unknown => return Err(unknown()),
            };
            if too_late(&record.expires_at, budget) {
                return Err(unknown());
            }
            let checked = check(&record);
            let granted = checked.is_ok().then(|| grant.clone()).flatten();
            let tomb = tombstone(&record.expires_at, granted)?;
            match self.swap(&key, &current, &tomb).await? {
                Some(Replaced::Replaced) => {
                    checked?;
                    return Ok(HeldCode {
                        record,
                        key,
                        stored: current,
                        grant,
                        tomb: Some(tomb),
                    });
                }
                // Another writer got there first: what is there now decides (most often: held, so a replay).
                Some(Replaced::Changed) => {
                    let now = self.get_json::<Value>(&key).await?;
                    if now.as_ref() == Some(&tomb) {
                        // Ours after all (an earlier attempt was applied; tombstones are unique).
                        checked?;
                        return Ok(HeldCode {
                            record,
                            key,
                            stored: current,
                            grant,
                            tomb: Some(tomb),
                        });
                    }
                    stored = now;
                }
                Some(Replaced::Absent) => return Err(unknown()),
                None => return self.hold_code_by_take(key, grant, check).await,
            }
        }
        tracing::warn!("an authorization code kept changing under its redemption; refused");
        Err(replayed())
    }

    /// `Store::replace`, tried again while the store fails, and read back after a failure (a swap that failed to
    /// answer may have been applied: finding `new` there means it was).
    async fn swap(&self, key: &str, expected: &Value, new: &Value) -> OAuthResult<Option<Replaced>> {
        let mut attempt = 0;
        loop {
            let err = match self.store.replace(key, expected, new.clone()).await {
                // After a failed attempt, `Changed` may be that attempt's own write: read it back.
                Ok(Some(Replaced::Changed)) if attempt > 0 => {
                    return Ok(match self.get_json::<Value>(key).await {
                        Ok(Some(v)) if v == *new => Some(Replaced::Replaced),
                        Ok(None) => Some(Replaced::Absent),
                        _ => Some(Replaced::Changed),
                    })
                }
                Ok(r) => return Ok(r),
                Err(e) => OAuthError::from(e),
            };
            // Not applied while the expected value is still there (or unreadable): tried again, then the error.
            match self.get_json::<Value>(key).await {
                Ok(Some(v)) if v == *new => return Ok(Some(Replaced::Replaced)),
                Ok(Some(v)) if v != *expected => return Ok(Some(Replaced::Changed)),
                Ok(None) => return Ok(Some(Replaced::Absent)),
                Ok(Some(_)) | Err(_) if attempt < 2 => {}
                Ok(Some(_)) | Err(_) => return Err(err),
            }
            pause(attempt).await;
            attempt += 1;
        }
    }

    /// The scheme for stores that cannot swap: an atomic take.
    async fn hold_code_by_take(
        &self,
        key: String,
        grant: Option<String>,
        check: impl Fn(&ClientCode) -> OAuthResult<()>,
    ) -> OAuthResult<HeldCode> {
        let stored = self.store.take(&key).await?;
        let record = match state(stored.as_ref()) {
            State::Live(r) => *r,
            State::Held(s, g) => {
                // Taken out: whoever took it revokes, and puts the mark back first.
                let ttl = secs_until(&s.expires_at).max(1);
                let marked = tombstone(&s.expires_at, None)?;
                let _ = self.save_json_retrying(&key, &marked, ttl).await;
                self.revoke_replayed(&g).await;
                return Err(replayed());
            }
            State::Spent(s) => {
                let _ = self
                    .save_json_retrying(&key, &s, secs_until(&s.expires_at).max(1))
                    .await;
                return Err(replayed());
            }
            State::Unknown => return Err(unknown()),
        };
        let stored = stored.unwrap_or_default();
        let ttl = secs_until(&record.expires_at).max(1);
        if too_late(&record.expires_at, Duration::ZERO) {
            return Err(unknown());
        }
        if let Err(e) = check(&record) {
            let tomb = tombstone(&record.expires_at, None)?;
            let _ = self.save_json_retrying(&key, &tomb, ttl).await;
            return Err(e);
        }
        Ok(HeldCode {
            record,
            key,
            stored,
            grant,
            tomb: None,
        })
    }

    /// A held code presented again: refused, and the grant it yielded revoked. The replay marks the tombstone (so
    /// the redemption still issuing sees it), then revokes. If the mark meets another value, what is there now
    /// decides: held still (mark that), given back by a redemption that failed to issue (spent by this presentation,
    /// which came second), or marked already. Every grant this presentation saw held is revoked before it answers,
    /// whatever its marks did (revoking is idempotent), so none outlives it even when a mark's outcome is unknown.
    async fn replayed(&self, key: &str, mut current: Value) -> OAuthError {
        let mut seen: Vec<String> = vec![];
        for _ in 0..SWAP_ROUNDS {
            let (expires_at, grant) = match state(Some(&current)) {
                State::Held(s, g) => (s.expires_at, Some(g)),
                State::Live(r) => (r.expires_at, None),
                State::Spent(_) | State::Unknown => break,
            };
            if let Some(g) = &grant {
                if !seen.contains(g) {
                    seen.push(g.clone());
                }
            }
            let Ok(target) = tombstone(&expires_at, None) else {
                break;
            };
            match self.swap(key, &current, &target).await {
                Ok(Some(Replaced::Replaced)) => {
                    let Some(g) = grant else { break };
                    seen.retain(|x| *x != g);
                    if !self.revoke_replayed(&g).await {
                        // Not revoked: a held tombstone goes back (a new one: the holder's last look refuses), so
                        // the next presentation revokes again.
                        if let Ok(again) = tombstone(&expires_at, Some(g)) {
                            let _ = self.swap(key, &target, &again).await;
                        }
                    }
                    break;
                }
                Ok(Some(Replaced::Changed)) => match self.get_json::<Value>(key).await {
                    Ok(Some(now)) => current = now,
                    _ => break,
                },
                Ok(Some(Replaced::Absent)) | Err(_) => break,
                Ok(None) => {
                    self.replayed_by_take(key).await;
                    break;
                }
            }
        }
        for g in &seen {
            self.revoke_replayed(g).await;
        }
        replayed()
    }

    /// A replay on a store that cannot swap: take the tombstone; whoever gets it revokes (and puts the mark back).
    async fn replayed_by_take(&self, key: &str) {
        let Ok(Some(v)) = self.store.take(key).await else {
            return;
        };
        let (expires_at, grant) = match state(Some(&v)) {
            State::Held(s, g) => (s.expires_at, Some(g)),
            State::Spent(s) => (s.expires_at, None),
            // A code given back meanwhile: spent by this (second) presentation.
            State::Live(r) => (r.expires_at, None),
            State::Unknown => return,
        };
        if let Ok(marked) = tombstone(&expires_at, None) {
            let _ = self
                .save_json_retrying(key, &marked, secs_until(&expires_at).max(1))
                .await;
        }
        if let Some(g) = grant {
            self.revoke_replayed(&g).await;
        }
    }

    /// Revokes the grant of a replayed code; whether it worked.
    async fn revoke_replayed(&self, grant: &str) -> bool {
        tracing::warn!("authorization code replayed: the grant it yielded is revoked");
        match self.revoke_grant(grant, None).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "could not revoke the grant of a replayed authorization code");
                false
            }
        }
    }
}

impl HeldCode {
    /// The redemption issued its tokens: the code stays spent. Under the swap scheme, anything but this redemption's
    /// own tombstone at the last look (marked by a replay, or gone) means the grant may have been revoked before its
    /// tokens were written: they are revoked here and the redemption is refused. A look that keeps failing revokes
    /// the tokens and gives the code back (the client's retry can then succeed).
    pub(super) async fn finish(self, proxy: &OAuthProxy) -> OAuthResult<()> {
        let Some(tomb) = &self.tomb else {
            let spent = tombstone(&self.record.expires_at, self.grant.clone())?;
            let ttl = secs_until(&self.record.expires_at).max(1);
            let _ = proxy.save_json_retrying(&self.key, &spent, ttl).await;
            return Ok(());
        };
        let mut attempt = 0;
        let failure = loop {
            match proxy.get_json::<Value>(&self.key).await {
                Ok(Some(now)) if now == *tomb => return Ok(()),
                Ok(now) => {
                    if let Some(g) = &self.grant {
                        proxy.revoke_replayed(g).await;
                    }
                    return Err(if now.is_some() { replayed() } else { unknown() });
                }
                Err(e) if attempt == 2 => break e,
                Err(_) => {
                    pause(attempt).await;
                    attempt += 1;
                }
            }
        };
        if let Some(g) = &self.grant {
            if proxy.revoke_grant(g, None).await.is_err() {
                // Tokens that may still work: the code stays spent (a replay revokes them).
                return Err(failure);
            }
        }
        self.give_back(proxy).await;
        Err(failure)
    }

    /// Issuing failed (a store write): the code goes back, so the client's retry succeeds instead of hearing
    /// "already used" for a code that gave it nothing — unless a replay marked it meanwhile.
    pub(super) async fn give_back(self, proxy: &OAuthProxy) {
        let r = match &self.tomb {
            Some(tomb) => proxy.swap(&self.key, tomb, &self.stored).await.map(|_| ()),
            None => {
                let ttl = secs_until(&self.record.expires_at).max(1);
                proxy.save_json_retrying(&self.key, &self.record, ttl).await
            }
        };
        if let Err(e) = r {
            tracing::error!(error = %e, "could not give back an authorization code after a failed write");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuing_budget_and_lateness() {
        assert_eq!(issuing_budget(300), Duration::from_secs(5));
        assert_eq!(issuing_budget(4), Duration::from_secs(2));
        assert_eq!(issuing_budget(1), Duration::from_millis(500));
        assert_eq!(issuing_budget(u64::MAX), Duration::from_secs(5));
        let at = |secs: i64| {
            let t = if secs >= 0 {
                SystemTime::now() + Duration::from_secs(secs as u64)
            } else {
                SystemTime::now() - Duration::from_secs((-secs) as u64)
            };
            humantime::format_rfc3339_millis(t).to_string()
        };
        let b = Duration::from_secs(5);
        for (expires_at, late) in [
            (at(60), false),
            (at(6), false),
            (at(4), true),
            (at(0), true),
            (at(-60), true),
            ("not a time".to_owned(), true),
            (String::new(), true),
        ] {
            assert_eq!(too_late(&expires_at, b), late, "{expires_at}");
        }
    }

    #[test]
    fn states_of_a_codes_key() {
        let spent = |grant: Option<&str>| {
            serde_json::to_value(SpentCode {
                expires_at: "2099-01-01T00:00:00Z".into(),
                used: true,
                grant: grant.map(str::to_owned),
                holder: None,
            })
            .unwrap()
        };
        assert!(matches!(state(None), State::Unknown));
        assert!(matches!(state(Some(&serde_json::json!("x"))), State::Unknown));
        assert!(matches!(
            state(Some(&serde_json::json!({"used": false}))),
            State::Unknown
        ));
        assert!(matches!(state(Some(&spent(None))), State::Spent(_)));
        assert!(matches!(state(Some(&spent(Some("g")))), State::Held(_, g) if g == "g"));
    }
}
