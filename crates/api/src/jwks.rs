//! The RS256 signing keys of HERALD_JWT_JWKS_URL: fetched with `ureq` (off the async threads,
//! with a timeout), kept by `kid`, and fetched again when a token names a `kid` Herald has not
//! seen or the set is old, at most once a minute, so a flood of made-up `kid`s cannot turn
//! Herald into a load generator against the identity provider.
//!
//! When the identity provider cannot be reached, the keys already fetched keep working; with
//! none (it was down when Herald started), a JWT gets a 401 and the log says why.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use serde::Deserialize;
use url::Url;

/// How long one fetch of the key set may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest time between two fetches a request causes (an unknown `kid`, an old set).
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// A set older than this is fetched again on the next request, so a key the identity provider
/// removed (rotated out, or revoked) stops being accepted.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(600);
/// Larger answers are refused: a key set is a few kilobytes.
const MAX_BODY_BYTES: u64 = 1 << 20;

/// Why no key was found for a token's `kid`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The set is known and has no such key.
    #[error("the key set has no RS256 key with this kid")]
    UnknownKid,
    /// No set could be fetched yet.
    #[error("the key set could not be fetched")]
    Unavailable,
}

/// Why a fetch failed, for the log (it never holds a token or a key).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Http(#[from] ureq::Error),
    #[error("the answer is not a JSON Web Key Set: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the set has no RSA signing key with a kid")]
    NoUsableKey,
    #[error("the fetch did not finish: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// How often the cache may go back to the identity provider: the constants above, except in
/// tests that need to see a refetch without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refetch {
    pub min_interval: Duration,
    pub max_age: Duration,
}

impl Default for Refetch {
    fn default() -> Self {
        Refetch {
            min_interval: MIN_REFETCH_INTERVAL,
            max_age: MAX_KEY_AGE,
        }
    }
}

/// The keys of one JWKS URL.
pub struct Jwks {
    url: Url,
    agent: ureq::Agent,
    refetch: Refetch,
    keys: RwLock<Keys>,
    /// When a request last made us fetch; held while fetching, so concurrent requests that
    /// need a fetch wait for the one in flight instead of starting their own.
    last_request_fetch: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, Arc<DecodingKey>>,
    fetched_at: Option<Instant>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &redacted(&self.url))
            .field("refetch", &self.refetch)
            .finish_non_exhaustive()
    }
}

impl Jwks {
    pub fn new(url: Url, refetch: Refetch) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(FETCH_TIMEOUT))
            // Only HERALD_* settings configure Herald: no proxy from the environment.
            .proxy(None)
            // An https:// set is never fetched over plain http, not even after a redirect.
            .https_only(url.scheme() == "https")
            .max_redirects(3)
            .build()
            .new_agent();
        Jwks {
            url,
            agent,
            refetch,
            keys: RwLock::new(Keys::default()),
            last_request_fetch: tokio::sync::Mutex::new(None),
        }
    }

    /// The first fetch, at startup. A failure is logged and not fatal: opaque tokens work
    /// without the identity provider, and JWTs are accepted once a later fetch succeeds.
    pub async fn prefetch(&self) {
        let _fetching = self.last_request_fetch.lock().await;
        if let Err(e) = self.fetch_and_store().await {
            tracing::warn!(
                url = %redacted(&self.url),
                error = %e,
                "Could not fetch the JWT signing keys (HERALD_JWT_JWKS_URL) at startup; JWT access tokens are refused until a later fetch succeeds."
            );
        }
    }

    /// The key a token's `kid` names, fetching the set again when the `kid` is unknown or the
    /// set is old (at most once per [`Refetch::min_interval`]).
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, KeyError> {
        if let Some(key) = self.cached(kid, true) {
            return Ok(key);
        }
        let mut last = self.last_request_fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.cached(kid, true) {
            return Ok(key);
        }
        let may_fetch = last.is_none_or(|t| t.elapsed() >= self.refetch.min_interval);
        if may_fetch {
            *last = Some(Instant::now());
            match self.fetch_and_store().await {
                Ok(count) => {
                    tracing::info!(url = %redacted(&self.url), keys = count, "Fetched the JWT signing keys.");
                }
                Err(e) => tracing::warn!(
                    url = %redacted(&self.url),
                    error = %e,
                    "Could not fetch the JWT signing keys (HERALD_JWT_JWKS_URL); the keys fetched before, if any, stay in use."
                ),
            }
        }
        drop(last);
        // An old key is still better than none while the identity provider is away.
        if let Some(key) = self.cached(kid, false) {
            return Ok(key);
        }
        if self.read().fetched_at.is_none() {
            Err(KeyError::Unavailable)
        } else {
            Err(KeyError::UnknownKid)
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        // A poisoned lock only means a panic elsewhere; the map itself is always whole.
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    fn cached(&self, kid: &str, fresh_only: bool) -> Option<Arc<DecodingKey>> {
        let keys = self.read();
        if fresh_only
            && keys
                .fetched_at
                .is_none_or(|t| t.elapsed() >= self.refetch.max_age)
        {
            return None;
        }
        keys.by_kid.get(kid).cloned()
    }

    /// Fetches the set and, when it holds a usable key, replaces the cached keys with it.
    async fn fetch_and_store(&self) -> Result<usize, FetchError> {
        let agent = self.agent.clone();
        let url = self.url.to_string();
        let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ureq::Error> {
            agent
                .get(&url)
                .header("Accept", "application/json")
                .call()?
                .body_mut()
                .with_config()
                .limit(MAX_BODY_BYTES)
                .read_to_vec()
        })
        .await??;
        let by_kid = parse(&body)?;
        let count = by_kid.len();
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        *keys = Keys {
            by_kid,
            fetched_at: Some(Instant::now()),
        };
        Ok(count)
    }
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// The RS256 signing keys of a JWKS document, by `kid`. Keys of other kinds, for encryption,
/// for another algorithm or without a `kid` are skipped (one odd key does not spoil the set).
fn parse(body: &[u8]) -> Result<HashMap<String, Arc<DecodingKey>>, FetchError> {
    let raw: RawSet = serde_json::from_slice(body)?;
    let by_kid: HashMap<_, _> = raw
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter(|jwk| {
            matches!(jwk.algorithm, AlgorithmParameters::RSA(_))
                && matches!(
                    jwk.common.public_key_use,
                    None | Some(PublicKeyUse::Signature)
                )
                && matches!(jwk.common.key_algorithm, None | Some(KeyAlgorithm::RS256))
        })
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some((kid, Arc::new(key)))
        })
        .collect();
    if by_kid.is_empty() {
        return Err(FetchError::NoUsableKey);
    }
    Ok(by_kid)
}

/// The URL without a user or password, for logs.
fn redacted(url: &Url) -> Url {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RSA modulus (RFC 7517's example key); this test checks selection, not signatures.
    const N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    #[test]
    fn only_rsa_signing_keys_with_a_kid_are_kept() {
        let n = N;
        let body = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "good", "use": "sig", "alg": "RS256", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "plain", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": n, "e": "AQAB"},
            {"kty": "RSA", "n": n, "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "weird", "kid": "odd"}
        ]});
        let keys = parse(body.to_string().as_bytes()).unwrap();
        let mut kids: Vec<_> = keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["good", "plain"]);
        assert!(matches!(
            parse(br#"{"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]}"#),
            Err(FetchError::NoUsableKey)
        ));
        assert!(matches!(parse(b"<html>"), Err(FetchError::Json(_))));
    }

    #[test]
    fn logged_urls_carry_no_password() {
        let url = Url::parse("https://user:pw@idp.test/.well-known/jwks.json").unwrap();
        assert_eq!(
            redacted(&url).as_str(),
            "https://idp.test/.well-known/jwks.json"
        );
        let jwks = Jwks::new(url, Refetch::default());
        assert!(!format!("{jwks:?}").contains("pw"));
    }
}
