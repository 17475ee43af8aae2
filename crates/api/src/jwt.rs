//! JWT access tokens from an existing identity provider, checked with `jsonwebtoken`: RS256 with
//! the keys of a JWKS URL (HERALD_JWT_JWKS_URL, see `jwks`), HS256 with a shared secret
//! (HERALD_JWT_HS256_SECRET), or both. `iss`, `aud`, `exp` and `nbf` are checked (60 s leeway);
//! scopes come from the `scope` claim (space-separated) or the `permissions` array, as Auth0's
//! own access tokens carry them.
//!
//! Each key kind has a `Validation` of its own that allows its one algorithm, and the token's
//! `alg` only picks which of the configured ones to try: an HS256 token "signed" with the RSA
//! public key, or `alg: none`, never meets a key it could fool.

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::jwks::{Jwks, KeyError, Refetch};

/// What a JWT must say to be accepted, and the keys that may have signed it (one or both).
#[derive(Clone)]
pub struct JwtConfig {
    pub issuer: String,
    pub audience: String,
    /// The HS256 key (32 bytes or more).
    pub hs256_secret: Option<Vec<u8>>,
    /// Where the identity provider publishes its RS256 keys.
    pub jwks_url: Option<Url>,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("hs256", &self.hs256_secret.is_some())
            .field("jwks_url", &self.jwks_url.as_ref().map(Url::as_str))
            .finish_non_exhaustive()
    }
}

/// Checks JWTs against one configuration.
#[derive(Clone)]
pub struct JwtVerifier {
    hs256: Option<(DecodingKey, Validation)>,
    rs256: Option<(Arc<Jwks>, Validation)>,
    issuer: String,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("hs256", &self.hs256.is_some())
            .field("rs256", &self.rs256.as_ref().map(|(jwks, _)| jwks))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    scope: Option<String>,
    permissions: Option<Vec<String>>,
}

impl JwtVerifier {
    /// # Errors
    /// A sentence naming the setting that cannot be used.
    pub fn new(config: &JwtConfig) -> Result<Self, String> {
        // With no crypto backend (or two, by feature unification) the first decode would panic;
        // refuse at startup instead.
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err("HERALD_JWT_*: this build has no JWT crypto backend".into());
        }
        let hs256 = config
            .hs256_secret
            .as_deref()
            .map(|secret| {
                DecodingKey::from_secret(secret)
                    .map(|key| (key, validation(Algorithm::HS256, config)))
                    .map_err(|e| format!("HERALD_JWT_HS256_SECRET: the secret is not usable: {e}"))
            })
            .transpose()?;
        let rs256 = config.jwks_url.clone().map(|url| {
            (
                Arc::new(Jwks::new(url, Refetch::default())),
                validation(Algorithm::RS256, config),
            )
        });
        if hs256.is_none() && rs256.is_none() {
            return Err(
                "HERALD_JWT_HS256_SECRET or HERALD_JWT_JWKS_URL must be set to accept JWTs".into(),
            );
        }
        Ok(JwtVerifier {
            hs256,
            rs256,
            issuer: config.issuer.clone(),
        })
    }

    /// Fetches the JWKS once, when one is configured (see [`Jwks::prefetch`]).
    pub async fn prefetch(&self) {
        if let Some((jwks, _)) = &self.rs256 {
            jwks.prefetch().await;
        }
    }

    /// The caller a valid token names, or Auth0's 401 for an invalid one.
    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let header = decode_header(token).map_err(|_| ApiError::unauthorized("Invalid token"))?;
        let claims = match (header.alg, &self.hs256, &self.rs256) {
            (Algorithm::HS256, Some((key, validation)), _) => check(token, key, validation)?,
            (Algorithm::RS256, _, Some((jwks, validation))) => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| ApiError::unauthorized("Invalid token"))?;
                let key = jwks.key(kid).await.map_err(|e| {
                    // Only the kid is logged, never the token (and at debug: anyone can send
                    // made-up kids; a failed fetch is logged as a warning by `jwks`).
                    tracing::debug!(kid = ?kid, reason = %e, "Refused a JWT: no signing key for its kid.");
                    match e {
                        KeyError::UnknownKid => ApiError::unauthorized("Invalid token"),
                        KeyError::Unavailable => ApiError::unauthorized(
                            "Invalid token: the signing keys could not be fetched",
                        ),
                    }
                })?;
                check(token, &key, validation)?
            }
            _ => return Err(ApiError::unauthorized("Invalid token")),
        };
        Ok(self.principal(claims))
    }

    fn principal(&self, claims: Claims) -> Principal {
        let mut scopes: Vec<String> = claims
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        for permission in claims.permissions.unwrap_or_default() {
            if !scopes.contains(&permission) {
                scopes.push(permission);
            }
        }
        // One rate-limit bucket per subject of this issuer.
        let digest = Sha256::digest(
            format!(
                "jwt\u{0}{}\u{0}{}",
                self.issuer,
                claims.sub.unwrap_or_default()
            )
            .as_bytes(),
        );
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Principal {
            token_id: Uuid::from_bytes(id),
            scopes,
        }
    }
}

/// The checks every accepted JWT passes, for one algorithm.
fn validation(alg: Algorithm, config: &JwtConfig) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.validate_nbf = true;
    validation.leeway = 60;
    validation
}

fn check(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, ApiError> {
    decode::<Claims>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => {
                ApiError::unauthorized("Expired token received for JSON Web Token validation")
            }
            ErrorKind::InvalidSignature => {
                ApiError::unauthorized("Invalid signature received for JSON Web Token validation")
            }
            ErrorKind::InvalidAudience => ApiError::unauthorized("Bad audience"),
            ErrorKind::InvalidIssuer => ApiError::unauthorized("Bad issuer"),
            ErrorKind::ImmatureSignature => ApiError::unauthorized("Token not yet valid"),
            _ => ApiError::unauthorized("Invalid token"),
        })
}

/// True when `token` has a JWT's shape (three base64url parts), not an opaque Herald token's.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && !token.starts_with(herald_domain::api_token::TOKEN_PREFIX)
}
