//! JWT access tokens from an existing identity provider, checked with `jsonwebtoken`: HS256 with
//! a shared secret (HERALD_JWT_HS256_SECRET). `iss`, `aud`, `exp` and `nbf` are checked (60 s
//! leeway); scopes come from the `scope` claim (space-separated) or the `permissions` array, as
//! Auth0's own access tokens carry them. Only HS256 is accepted, so a token cannot choose a
//! weaker algorithm or `none`.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::ApiError;

/// What a JWT must say to be accepted.
#[derive(Clone)]
pub struct JwtConfig {
    pub issuer: String,
    pub audience: String,
    /// The HS256 key (32 bytes or more).
    pub hs256_secret: Vec<u8>,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Checks JWTs against one configuration.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    issuer: String,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
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
    pub fn new(config: &JwtConfig) -> Result<Self, String> {
        // With no crypto backend (or two, by feature unification) the first decode would panic;
        // refuse at startup instead.
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err("this build has no JWT crypto backend".into());
        }
        let key = DecodingKey::from_secret(&config.hs256_secret)
            .map_err(|e| format!("the HS256 secret is not usable: {e}"))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = 60;
        Ok(JwtVerifier {
            key,
            validation,
            issuer: config.issuer.clone(),
        })
    }

    /// The caller a valid token names, or Auth0's 401 for an invalid one.
    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let data =
            decode::<Claims>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("Expired token received for JSON Web Token validation")
                }
                ErrorKind::InvalidSignature => ApiError::unauthorized(
                    "Invalid signature received for JSON Web Token validation",
                ),
                ErrorKind::InvalidAudience => ApiError::unauthorized("Bad audience"),
                ErrorKind::InvalidIssuer => ApiError::unauthorized("Bad issuer"),
                ErrorKind::ImmatureSignature => ApiError::unauthorized("Token not yet valid"),
                _ => ApiError::unauthorized("Invalid token"),
            })?;
        let claims = data.claims;
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
        Ok(Principal {
            token_id: Uuid::from_bytes(id),
            scopes,
        })
    }
}

/// True when `token` has a JWT's shape (three base64url parts), not an opaque Herald token's.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && !token.starts_with(herald_domain::api_token::TOKEN_PREFIX)
}
