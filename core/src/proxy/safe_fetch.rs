//! An SSRF-safe HTTPS GET for documents at URLs a client chose (Client ID Metadata Documents).
//!
//! - `https` only; no proxy from the environment (a proxy would resolve and connect for us, unchecked).
//! - The host name is resolved by [`CheckedResolver`]: if *any* address it resolves to is not public (see
//!   [`address_policy`]) the fetch is refused, and the connection goes to the addresses that were checked — no
//!   second lookup, so DNS rebinding between check and connect is impossible. An IP-literal host is checked
//!   directly (the HTTP client does not resolve literals).
//! - No redirect is followed (a 3xx is refused), no compression is asked for, the body is counted while it streams
//!   and the fetch stops at `max_document_bytes`; `Content-Type` must be JSON; the timeout covers connect, TLS,
//!   headers and body (a slow drip ends at it).
//!
//! Errors are fixed texts (never the host's answer) and say whether the failure is transient — the cache may then
//! keep using a live copy — or the host's own answer.

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use url::{Host, Url};

use super::address_policy;
use super::config::CimdOptions;

/// Why a fetch gave no document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// Refused by our own rules before anything was sent (address, scheme).
    Refused(&'static str),
    /// The host answered, with something unacceptable (4xx, a redirect, not JSON, too large).
    Rejected(&'static str),
    /// The host could not be reached, or not in time: DNS, connection, TLS, timeout. Transient; starts the
    /// host's cool-down.
    Unreachable(&'static str),
    /// The host answered with a server error (5xx), or we refused to try now (cool-down, too many fetches).
    /// Transient.
    Unavailable(&'static str),
}

impl FetchError {
    /// The fixed text.
    pub fn message(&self) -> &'static str {
        match self {
            FetchError::Refused(m)
            | FetchError::Rejected(m)
            | FetchError::Unreachable(m)
            | FetchError::Unavailable(m) => m,
        }
    }

    /// Whether a live cached copy may stand in (the host could not be reached, as opposed to answering).
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Unreachable(_) | FetchError::Unavailable(_))
    }
}

/// A fetched document: its body and its `Cache-Control` header.
#[derive(Debug)]
pub struct Fetched {
    /// The body, at most `max_document_bytes`.
    pub body: Vec<u8>,
    /// Every `Cache-Control` header, joined with `, `.
    pub cache_control: Option<String>,
}

/// Raised by [`CheckedResolver`]; found again in the HTTP client's error chain.
#[derive(Debug)]
struct AddressRefused;

impl std::fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the host resolves to a non-public address")
    }
}

impl StdError for AddressRefused {}

/// Resolves with the system resolver and refuses names with any non-public address.
struct CheckedResolver {
    allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // Any non-public address refuses the name: a resolver answering one public and one private address
            // must not get a chance to have the private one tried.
            if !allow_private && addrs.iter().any(|a| !address_policy::is_public(a.ip())) {
                return Err(Box::new(AddressRefused) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The fetcher: one HTTP client (rustls, Mozilla's roots plus any configured) shared by all fetches.
pub struct SafeFetcher {
    client: reqwest::Client,
    allow_private: bool,
    max_bytes: usize,
}

impl std::fmt::Debug for SafeFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeFetcher")
            .field("allow_private", &self.allow_private)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl SafeFetcher {
    /// Builds the client; a certificate in `extra_root_certificates_pem` that does not parse is an error.
    pub fn new(o: &CimdOptions) -> crate::Result<Self> {
        let mut b = reqwest::Client::builder()
            .https_only(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(o.fetch_timeout)
            .connect_timeout(o.fetch_timeout)
            .pool_max_idle_per_host(0)
            .user_agent(concat!("fastmcp-auth/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(CheckedResolver {
                allow_private: o.allow_private_networks_for_testing,
            }));
        let bad_pem = || {
            crate::Error::InvalidArgument(
                "cimd.extra_root_certificates_pem: each entry must be a PEM certificate".into(),
            )
        };
        for pem in &o.extra_root_certificates_pem {
            // Each entry: one or more PEM certificates, every one a parsable trust anchor (checked here, where
            // the HTTP client would silently skip a broken one).
            let mut any = false;
            for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let der = der.map_err(|_| bad_pem())?;
                rustls::RootCertStore::empty()
                    .add(der.clone())
                    .map_err(|_| bad_pem())?;
                b = b.add_root_certificate(reqwest::Certificate::from_der(&der).map_err(|_| bad_pem())?);
                any = true;
            }
            if !any {
                return Err(bad_pem());
            }
        }
        let client = b
            .build()
            .map_err(|_| crate::Error::InvalidArgument("cimd: could not build the HTTPS client".into()))?;
        Ok(SafeFetcher {
            client,
            allow_private: o.allow_private_networks_for_testing,
            max_bytes: o.max_document_bytes,
        })
    }

    /// GETs `url` (already checked by `cimd_document::check_url`) as a JSON document.
    pub async fn get_json(&self, url: &Url) -> Result<Fetched, FetchError> {
        if url.scheme() != "https" {
            return Err(FetchError::Refused("only https URLs are fetched"));
        }
        let literal = match url.host() {
            Some(Host::Ipv4(a)) => Some(IpAddr::V4(a)),
            Some(Host::Ipv6(a)) => Some(IpAddr::V6(a)),
            Some(Host::Domain(_)) => None,
            None => return Err(FetchError::Refused("the URL has no host")),
        };
        if let Some(ip) = literal {
            if !self.allow_private && !address_policy::is_public(ip) {
                return Err(FetchError::Refused("the host is a non-public address"));
            }
        }
        let mut resp = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(classify)?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(FetchError::Rejected(
                "the document URL answered with a redirect, which is not followed",
            ));
        }
        if status.is_server_error() {
            return Err(FetchError::Unavailable(
                "the document host answered with a server error",
            ));
        }
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Rejected("the document URL did not answer 200 OK"));
        }
        let json = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json_media_type);
        if !json {
            return Err(FetchError::Rejected(
                "the document is not served as application/json",
            ));
        }
        let too_large = FetchError::Rejected("the document is larger than cimd.max_document_bytes");
        if resp.content_length().is_some_and(|n| n > self.max_bytes as u64) {
            return Err(too_large);
        }
        let cache_control = resp
            .headers()
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            body,
            cache_control: (!cache_control.is_empty()).then_some(cache_control),
        })
    }
}

/// `application/json` or a `+json` structured syntax suffix (RFC 6839), parameters ignored.
fn is_json_media_type(v: &str) -> bool {
    let t = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
}

fn classify(e: reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&e);
    while let Some(s) = source {
        if s.is::<AddressRefused>() {
            return FetchError::Refused("the host resolves to a non-public address");
        }
        source = s.source();
    }
    if e.is_timeout() {
        FetchError::Unreachable("fetching the document timed out")
    } else if e.is_connect() {
        FetchError::Unreachable("could not connect to the document host (DNS, TCP or TLS)")
    } else {
        FetchError::Unreachable("fetching the document failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        for (t, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/oauth-client-metadata+json", true),
            ("text/json", false),
            ("text/html", false),
            ("application/jsonp", false),
            ("", false),
            ("text/plain; application/json", false),
        ] {
            assert_eq!(is_json_media_type(t), ok, "{t}");
        }
    }
}
