//! Single use of our authorization codes — RFC 6749 §4.1.2 ("If an authorization code is used more than once, the
//! authorization server MUST deny the request and SHOULD revoke (when possible) all tokens previously issued based
//! on that authorization code") and RFC 9700 §4.5 — including when the two uses arrive at the same time.
//!
//! A redemption reads the code, runs its checks, then spends the code with a compare-and-swap
//! ([`Store::replace`](crate::store::Store::replace)): the code's record becomes a tombstone naming the grant the
//! redemption is about to issue. Of two redemptions racing, exactly one swap succeeds; the other finds the tombstone
//! and is a replay. A replay swaps the tombstone for one without the grant (the mark), then revokes the grant. The
//! redemption that won looks at the tombstone again once its tokens are written: if a replay marked it meanwhile —
//! perhaps before those tokens existed to be revoked — it revokes them itself and is refused too. Either the replay's
//! mark comes before that last look (the winner revokes), or after it, and then the replay's revocation comes after
//! the winner's writes. So no token of a code presented twice outlives the second presentation.
//!
//! Stores that cannot swap (`replace` answers `Ok(None)`: a host's own store through the Python, Node or C faces)
//! keep the earlier scheme: an atomic take, the tombstone written after issuing. There, two simultaneous uses are
//! still both refused but one, the first, yields tokens that stay valid (the second read nothing and had nothing
//! to revoke).

use serde_json::Value;

use super::error::{OAuthError, OAuthResult};
use super::model::{is_past, secs_until, ClientCode, SpentCode};
use super::provider::OAuthProxy;
use crate::store::Replaced;

/// The answer to a code that is unknown or expired (an expired code is gone from the store like one never issued).
pub(super) const CODE_UNKNOWN: &str = "Invalid or expired authorization code";
/// The answer to a code presented again.
pub(super) const CODE_REPLAYED: &str = "Authorization code already used";

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

fn spent(v: &Value) -> Option<SpentCode> {
    serde_json::from_value::<SpentCode>(v.clone())
        .ok()
        .filter(|s| s.used)
}

fn unknown() -> OAuthError {
    OAuthError::invalid_grant(CODE_UNKNOWN)
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
        let Some(stored) = self.get_json::<Value>(&key).await? else {
            return Err(unknown());
        };
        if let Some(s) = spent(&stored) {
            return Err(self.replayed(&key, stored, s).await);
        }
        let record = live_record(&stored)?;
        let checked = check(&record);
        let tomb = SpentCode {
            expires_at: record.expires_at.clone(),
            used: true,
            grant: checked.is_ok().then(|| grant.clone()).flatten(),
        };
        let tomb = serde_json::to_value(&tomb).map_err(crate::Error::from)?;
        match self.store.replace(&key, &stored, tomb.clone()).await? {
            Some(Replaced::Replaced) => {
                checked?;
                Ok(HeldCode {
                    record,
                    key,
                    stored,
                    grant,
                    tomb: Some(tomb),
                })
            }
            // Spent by another redemption between our read and our swap: this one is the second use.
            Some(Replaced::Changed) => match self.get_json::<Value>(&key).await? {
                Some(now) => match spent(&now) {
                    Some(s) => Err(self.replayed(&key, now, s).await),
                    None => Err(unknown()),
                },
                None => Err(unknown()),
            },
            Some(Replaced::Absent) => Err(unknown()),
            None => self.hold_code_by_take(key, grant, check).await,
        }
    }

    /// The scheme for stores that cannot swap: an atomic take.
    async fn hold_code_by_take(
        &self,
        key: String,
        grant: Option<String>,
        check: impl Fn(&ClientCode) -> OAuthResult<()>,
    ) -> OAuthResult<HeldCode> {
        let Some(stored) = self.store.take(&key).await? else {
            return Err(unknown());
        };
        if let Some(s) = spent(&stored) {
            // Taken out: whoever took it revokes, and puts the mark back.
            if let Some(g) = &s.grant {
                self.mark_and_revoke(&key, &s, g).await;
            } else {
                let _ = self
                    .save_json_retrying(&key, &s, secs_until(&s.expires_at).max(1))
                    .await;
            }
            return Err(OAuthError::invalid_grant(CODE_REPLAYED));
        }
        let record = live_record(&stored)?;
        if let Err(e) = check(&record) {
            let tomb = SpentCode {
                expires_at: record.expires_at.clone(),
                used: true,
                grant: None,
            };
            let _ = self
                .save_json_retrying(&key, &tomb, secs_until(&tomb.expires_at).max(1))
                .await;
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

    /// A spent code presented again: refused, and the grant it yielded revoked, once — the replay that swaps the
    /// tombstone for the marked one revokes; later ones find it marked.
    async fn replayed(&self, key: &str, stored: Value, s: SpentCode) -> OAuthError {
        if let Some(g) = s.grant.clone() {
            let marked = SpentCode {
                grant: None,
                ..s.clone()
            };
            match serde_json::to_value(&marked) {
                Ok(m) => match self.store.replace(key, &stored, m).await {
                    Ok(Some(Replaced::Replaced)) => self.revoke_replayed(&g).await,
                    // Marked by another replay (which revokes), or expired.
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        // The store cannot swap: take the tombstone; whoever gets it revokes.
                        if let Ok(Some(v)) = self.store.take(key).await {
                            if let Some(s) = spent(&v) {
                                match &s.grant {
                                    Some(g) => self.mark_and_revoke(key, &s, g).await,
                                    None => {
                                        let ttl = secs_until(&s.expires_at).max(1);
                                        let _ = self.save_json_retrying(key, &s, ttl).await;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "could not mark a replayed authorization code"),
                },
                Err(e) => tracing::error!(error = %e, "could not mark a replayed authorization code"),
            }
        }
        OAuthError::invalid_grant(CODE_REPLAYED)
    }

    /// Writes the marked tombstone (no grant), then revokes `grant`: the mark first, so a redemption still issuing
    /// sees it in its last look.
    async fn mark_and_revoke(&self, key: &str, s: &SpentCode, grant: &str) {
        let marked = SpentCode {
            grant: None,
            ..s.clone()
        };
        let _ = self
            .save_json_retrying(key, &marked, secs_until(&s.expires_at).max(1))
            .await;
        self.revoke_replayed(grant).await;
    }

    async fn revoke_replayed(&self, grant: &str) {
        tracing::warn!("authorization code replayed: the grant it yielded is revoked");
        if let Err(e) = self.revoke_grant(grant, None).await {
            tracing::error!(error = %e, "could not revoke the grant of a replayed authorization code");
        }
    }
}

/// The record under a code's key, refused as unknown when it is not one or has expired.
fn live_record(stored: &Value) -> OAuthResult<ClientCode> {
    let record: ClientCode = serde_json::from_value(stored.clone()).map_err(|_| unknown())?;
    if is_past(&record.expires_at) {
        return Err(unknown());
    }
    Ok(record)
}

impl HeldCode {
    /// The redemption issued its tokens: the code stays spent. Under the swap scheme, a replay that marked the
    /// tombstone meanwhile may have revoked the grant before its tokens were written, so they are revoked here and
    /// the redemption is refused. A failed look is a refusal too (the tokens are revoked as far as the store lets).
    pub(super) async fn finish(self, proxy: &OAuthProxy) -> OAuthResult<()> {
        let Some(tomb) = &self.tomb else {
            let spent = SpentCode {
                expires_at: self.record.expires_at.clone(),
                used: true,
                grant: self.grant.clone(),
            };
            let ttl = secs_until(&spent.expires_at).max(1);
            let _ = proxy.save_json_retrying(&self.key, &spent, ttl).await;
            return Ok(());
        };
        let look = proxy.get_json::<Value>(&self.key).await;
        match look {
            // Ours still, or expired with the code's own lifetime.
            Ok(Some(ref now)) if now == tomb => Ok(()),
            Ok(None) => Ok(()),
            other => {
                if let Some(g) = &self.grant {
                    proxy.revoke_replayed(g).await;
                }
                other?;
                Err(OAuthError::invalid_grant(CODE_REPLAYED))
            }
        }
    }

    /// Issuing failed (a store write): the code goes back, so the client's retry succeeds instead of hearing
    /// "already used" for a code that gave it nothing — unless a replay marked it meanwhile.
    pub(super) async fn give_back(self, proxy: &OAuthProxy) {
        let r = match &self.tomb {
            Some(tomb) => proxy
                .store
                .replace(&self.key, tomb, self.stored.clone())
                .await
                .map(|_| ())
                .map_err(OAuthError::from),
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
