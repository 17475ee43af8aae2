//! Identifier and address newtypes, each parsed once at the edge and trusted afterwards.

use std::fmt;

/// Why an identifier or address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct IdError {
    pub field: &'static str,
    pub problem: String,
}

impl IdError {
    fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

/// Refuses empty values, values over `max` bytes and control characters (CR/LF above all, since
/// identifiers end up in headers and URLs).
fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), IdError> {
    if value.trim().is_empty() {
        return Err(IdError::new(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(IdError::new(
            field,
            format!("must be at most {max} bytes long"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(IdError::new(field, "must not contain control characters"));
    }
    Ok(())
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_text($field, &value, $max)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

text_id!(
    /// An Auth0-style user id such as `auth0|643e…` or `google-oauth2|1234`.
    UserId, "user.user_id", 255
);
text_id!(
    /// The id of a registered client (application).
    ClientId, "client_id", 128
);
text_id!(
    /// The id of a registered organization, e.g. `org_acme`.
    OrganizationId, "organization_id", 128
);

/// The job's idempotency key. It becomes the AMQP `message_id` and the left half of the email's
/// `Message-ID`, so it is restricted to an RFC 5322 dot-atom: letters, digits, `-` and `_`,
/// with single dots between them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

impl JobId {
    pub const MAX_LEN: usize = 200;

    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        if value.is_empty() {
            return Err(IdError::new("id", "must not be empty"));
        }
        if value.len() > Self::MAX_LEN {
            return Err(IdError::new(
                "id",
                format!("must be at most {} characters long", Self::MAX_LEN),
            ));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(IdError::new(
                "id",
                format!("may only contain A-Z, a-z, 0-9, '-', '_' and '.' (found {bad:?})"),
            ));
        }
        if value.starts_with('.') || value.ends_with('.') || value.contains("..") {
            return Err(IdError::new(
                "id",
                "must not start or end with '.' or contain '..' (it becomes part of the email's Message-ID)",
            ));
        }
        Ok(Self(value))
    }

    /// The id of `user_id`'s welcome email. Derived from the user, so the welcome email is one
    /// job however often (and from wherever) it is published: the worker sends a job id once.
    pub fn welcome(user_id: &str) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(user_id.as_bytes());
        Self(format!("job_welcome_{}", hex::encode(&digest[..16])))
    }

    /// A fresh id in Auth0's style (`job_` followed by a time-ordered random suffix).
    pub fn generate() -> Self {
        use rand::Rng;
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let mut rng = rand::rng();
        let suffix: String = (0..12)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        Self(format!("job_{millis:x}{suffix}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A syntactically valid email address (RFC 5321 mailbox, no display name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        check_text("user.email", &value, 254)?;
        let parsed = email_address::EmailAddress::parse_with_options(
            &value,
            email_address::Options::default().without_display_text(),
        )
        .map_err(|e| IdError::new("user.email", format!("is not a valid email address ({e})")))?;
        if parsed.domain().starts_with('[') {
            return Err(IdError::new(
                "user.email",
                "must name a domain, not an IP literal",
            ));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_restricted_to_header_safe_characters() {
        assert!(JobId::parse("job_0000000000000001").is_ok());
        assert!(JobId::parse("order-42.welcome").is_ok());
        assert!(JobId::parse("order-42:welcome").is_err());
        assert!(JobId::parse(".a").is_err());
        assert!(JobId::parse("a.").is_err());
        assert!(JobId::parse("a..b").is_err());
        assert!(JobId::parse("").is_err());
        assert!(JobId::parse("a b").is_err());
        assert!(JobId::parse("a>b").is_err());
        assert!(JobId::parse("x".repeat(201)).is_err());
    }

    #[test]
    fn generated_job_ids_parse_and_differ() {
        let a = JobId::generate();
        let b = JobId::generate();
        assert_ne!(a, b);
        assert_eq!(JobId::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn email_addresses_are_validated() {
        assert!(EmailAddress::parse("a@example.com").is_ok());
        assert!(EmailAddress::parse("not-an-email").is_err());
        assert!(EmailAddress::parse("a@example.com\r\nBcc: x@evil.test").is_err());
        assert!(EmailAddress::parse("Name <a@example.com>").is_err());
    }

    #[test]
    fn text_ids_refuse_control_characters() {
        assert!(UserId::parse("auth0|123").is_ok());
        assert!(UserId::parse("u\n1").is_err());
        assert!(UserId::parse("  ").is_err());
    }
}
