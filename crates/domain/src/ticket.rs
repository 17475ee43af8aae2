//! Ticket tokens: how they are derived, hashed and turned into links. Only the hash is ever stored.
//!
//! A token is `HMAC-SHA256(secret, salt)` encoded as URL-safe base64, where `salt` is 256 bits from a
//! CSPRNG stored next to the hash. Deriving rather than storing lets a worker that picks up a
//! redelivered job rebuild the very same link (so a duplicate email carries a working link), while
//! the database alone, without the secret, never reveals a usable token.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use url::Url;

/// What a ticket lets its holder do once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketPurpose {
    EmailVerification,
    PasswordChange,
    MfaEnrollment,
}

impl TicketPurpose {
    pub const ALL: [TicketPurpose; 3] = [
        TicketPurpose::EmailVerification,
        TicketPurpose::PasswordChange,
        TicketPurpose::MfaEnrollment,
    ];

    /// The value stored in the `purpose` column.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketPurpose::EmailVerification => "email_verification",
            TicketPurpose::PasswordChange => "password_change",
            TicketPurpose::MfaEnrollment => "mfa_enrollment",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The page that redeems the ticket, relative to the public base URL.
    pub fn path(self) -> &'static str {
        match self {
            TicketPurpose::EmailVerification => "u/email-verification",
            TicketPurpose::PasswordChange => "u/reset-password",
            TicketPurpose::MfaEnrollment => "u/mfa-enrollment",
        }
    }

    /// The ticket link for `token` under `base` (which ends with `/`), ending in an empty
    /// fragment as Auth0's do (`…/u/reset-password?ticket=…#`): clients that append their own
    /// parameters after the `#` (Auth0 documents `#type=invite`) keep working.
    pub fn url(self, base: &Url, token: &TicketToken) -> Url {
        let mut url = base
            .join(self.path())
            .expect("static relative path joins any base");
        url.query_pairs_mut().append_pair("ticket", token.expose());
        url.set_fragment(Some(""));
        url
    }
}

/// The server-side key tickets are derived with. Needed to (re)build links, never to check them.
#[derive(Clone)]
pub struct TicketSecret([u8; 32]);

impl TicketSecret {
    pub const MIN_LEN: usize = 32;

    /// Any secret of at least 32 bytes; it is condensed to 256 bits.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < Self::MIN_LEN {
            return Err(format!(
                "must be at least {} bytes long (got {})",
                Self::MIN_LEN,
                bytes.len()
            ));
        }
        Ok(Self(Sha256::digest(bytes).into()))
    }

    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn derive(&self, salt: &TokenSalt) -> TicketToken {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"herald.ticket.v1:");
        mac.update(&salt.0);
        TicketToken(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// `HMAC-SHA256(secret, label)`: a key for another use (e.g. the MFA key when
    /// HERALD_MFA_KEY is unset), stable with the secret and revealing nothing about it. `label`
    /// must differ from `herald.ticket.v1:`-prefixed inputs, which derive tokens.
    pub fn derive_key(&self, label: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(label);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for TicketSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketSecret(..)")
    }
}

/// 256 random bits per ticket, from `rand`'s thread-local CSPRNG (ChaCha12, seeded and reseeded by the OS).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSalt([u8; 32]);

impl TokenSalt {
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TokenSalt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSalt(..)")
    }
}

/// The secret that goes in the link. Never logged, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketToken(String);

impl TicketToken {
    /// Wraps a token presented by a user (e.g. from a link's query string).
    pub fn from_presented(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for TicketToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketToken(..)")
    }
}

/// SHA-256 of a token: what the database keeps and looks tickets up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({})", self.to_hex())
    }
}

/// The base URL of a job's links: `https://{custom_domain}/` when the job names a domain from
/// `allowed`, else `public_url`. A domain that is not allowed is an error, never silently ignored.
pub fn ticket_base(
    custom_domain: Option<&str>,
    allowed: &[String],
    public_url: &Url,
) -> Result<Url, String> {
    match custom_domain {
        None => {
            let mut base = public_url.clone();
            if !base.path().ends_with('/') {
                let path = format!("{}/", base.path());
                base.set_path(&path);
            }
            Ok(base)
        }
        Some(domain) => {
            let wanted = domain.to_ascii_lowercase();
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&wanted)) {
                return Err(format!(
                    "custom_domain {domain:?} is not one of the allowed custom domains (HERALD_ALLOWED_CUSTOM_DOMAINS)"
                ));
            }
            Url::parse(&format!("https://{wanted}/"))
                .map_err(|e| format!("custom_domain {domain:?} does not make a valid URL: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_url_safe_256_bit_and_stable_for_a_salt() {
        let secret = TicketSecret::random();
        let salt = TokenSalt::random();
        let token = secret.derive(&salt);
        assert_eq!(token.expose().len(), 43, "256 bits in unpadded base64");
        assert!(
            token
                .expose()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(
            secret.derive(&salt),
            token,
            "same secret and salt give the same link"
        );
        assert_ne!(secret.derive(&TokenSalt::random()), token);
        assert_ne!(TicketSecret::random().derive(&salt), token);
    }

    #[test]
    fn the_hash_is_not_the_token() {
        let token = TicketSecret::random().derive(&TokenSalt::random());
        let hash = token.hash();
        assert_ne!(hash.to_hex(), token.expose());
        assert_eq!(TicketToken::from_presented(token.expose()).hash(), hash);
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TicketSecret::from_bytes(b"short").is_err());
        assert!(TicketSecret::from_bytes(&[7u8; 32]).is_ok());
    }

    #[test]
    fn links_use_the_public_url_or_an_allowed_custom_domain() {
        let public = Url::parse("https://id.example.com/herald").unwrap();
        let token = TicketToken::from_presented("abc_-1");
        let base = ticket_base(None, &[], &public).unwrap();
        assert_eq!(
            TicketPurpose::PasswordChange.url(&base, &token).as_str(),
            "https://id.example.com/herald/u/reset-password?ticket=abc_-1#"
        );
        let allowed = vec!["login.acme.test".to_string()];
        let base = ticket_base(Some("Login.Acme.test"), &allowed, &public).unwrap();
        assert_eq!(
            TicketPurpose::EmailVerification.url(&base, &token).as_str(),
            "https://login.acme.test/u/email-verification?ticket=abc_-1#"
        );
        assert_eq!(
            TicketPurpose::MfaEnrollment.url(&base, &token).path(),
            "/u/mfa-enrollment"
        );
        let link = TicketPurpose::MfaEnrollment.url(&base, &token);
        assert_eq!(link.fragment(), Some(""));
        let ticket = link
            .query_pairs()
            .find(|(k, _)| k == "ticket")
            .map(|(_, v)| v);
        assert_eq!(
            ticket.as_deref(),
            Some("abc_-1"),
            "the # is not part of the ticket"
        );
        let err = ticket_base(Some("evil.test"), &allowed, &public).unwrap_err();
        assert!(
            err.contains("not one of the allowed custom domains"),
            "{err}"
        );
    }
}
