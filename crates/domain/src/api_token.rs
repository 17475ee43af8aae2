//! Opaque Management API tokens and the scopes they carry: how a token is made, what is stored
//! of it (its SHA-256 only), and which scope names exist.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// What every Herald API token starts with, so a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "hrld_";

/// The scopes Herald's Management API checks, as Auth0 names them.
pub const SCOPES: &[&str] = &[
    "read:users",
    "create:users",
    "update:users",
    "delete:users",
    "create:user_tickets",
    "create:guardian_enrollment_tickets",
    "delete:guardian_enrollments",
    "read:organizations",
    "create:organizations",
    "update:organizations",
    "delete:organizations",
    "read:clients",
    "create:clients",
    "update:clients",
    "delete:clients",
    "read:email_templates",
    "create:email_templates",
    "update:email_templates",
    // Herald's own: checking a user's OTP code at login (POST /x-herald/users/{id}/otp-verifications).
    "verify:mfa_otp",
];

/// A scope string, checked against [`SCOPES`].
pub fn parse_scopes(raw: &str) -> Result<Vec<String>, String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in raw.split([' ', ',']).filter(|s| !s.is_empty()) {
        if !SCOPES.contains(&scope) {
            return Err(format!(
                "unknown scope {scope:?}; the scopes are: {}",
                SCOPES.join(" ")
            ));
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    if scopes.is_empty() {
        return Err("give at least one scope".into());
    }
    Ok(scopes)
}

/// A token as its holder sees it: `hrld_` and 256 random bits, base64url. Never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        ApiToken(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A token presented in an `Authorization` header.
    pub fn from_presented(token: impl Into<String>) -> Self {
        ApiToken(token.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the token: what the database keeps and looks tokens up by. (A fast hash is
    /// right for 256 random bits; a password hash would cost every request tens of ms.)
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hide_in_debug() {
        let a = ApiToken::generate();
        let b = ApiToken::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(a.expose().len(), TOKEN_PREFIX.len() + 43);
        assert_eq!(format!("{a:?}"), "ApiToken(..)");
        assert_eq!(a.hash(), ApiToken::from_presented(a.expose()).hash());
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn scopes_are_checked_and_deduplicated() {
        assert_eq!(
            parse_scopes("update:users create:user_tickets,update:users").unwrap(),
            ["update:users", "create:user_tickets"]
        );
        assert!(
            parse_scopes("update:user")
                .unwrap_err()
                .contains("unknown scope")
        );
        assert!(parse_scopes("  ").is_err());
    }
}
