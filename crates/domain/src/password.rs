//! Passwords: the policy a new password must meet (length, and a strength estimate with zxcvbn)
//! and its argon2id PHC hash. Pure and synchronous: callers hash off their async runtime.
//!
//! Argon2id with the argon2 crate's defaults, OWASP's first recommendation (m = 19 MiB, t = 2,
//! p = 1), and a fresh random salt per hash. The password itself is never kept, logged or shown.

use argon2::{Argon2, PasswordHasher};

/// The longest password accepted, in characters (argon2 takes any length; this bounds the work
/// and the request).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// What a new password must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// In characters.
    pub min_length: usize,
    /// zxcvbn's score, 0 (guessable in 10^3 tries) to 4 (more than 10^10).
    pub min_score: u8,
}

impl Default for PasswordPolicy {
    /// 10 characters and a score of 3 (about 10^10 guesses to crack offline).
    fn default() -> Self {
        Self {
            min_length: 10,
            min_score: 3,
        }
    }
}

/// Why a password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyProblem {
    TooShort {
        min: usize,
    },
    TooLong {
        max: usize,
    },
    /// Easy to guess: common, a pattern, or built from the user's own name or email.
    Weak,
}

impl PasswordPolicy {
    /// The problems of `password`, none when it is acceptable. `user_inputs` (the email, the
    /// name) make a password built from them score lower.
    pub fn check(&self, password: &str, user_inputs: &[&str]) -> Vec<PolicyProblem> {
        let chars = password.chars().count();
        if chars < self.min_length {
            return vec![PolicyProblem::TooShort {
                min: self.min_length,
            }];
        }
        if chars > MAX_PASSWORD_CHARS {
            return vec![PolicyProblem::TooLong {
                max: MAX_PASSWORD_CHARS,
            }];
        }
        let score: u8 = zxcvbn::zxcvbn(password, user_inputs).score().into();
        if score < self.min_score {
            return vec![PolicyProblem::Weak];
        }
        Vec::new()
    }
}

/// The argon2id PHC string of `password` (`$argon2id$v=19$m=19456,t=2,p=1$…`). Takes tens of
/// milliseconds and 19 MiB: call it off the async runtime, a few at a time.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_refuses_short_long_and_guessable_passwords() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check("short", &[]),
            vec![PolicyProblem::TooShort { min: 10 }]
        );
        assert_eq!(
            policy.check(&"x".repeat(129), &[]),
            vec![PolicyProblem::TooLong { max: 128 }]
        );
        assert_eq!(policy.check("password123", &[]), vec![PolicyProblem::Weak]);
        assert_eq!(
            policy.check(
                "alex.example2026",
                &["alex.example@example.com", "alex.example"]
            ),
            vec![PolicyProblem::Weak]
        );
        assert!(policy.check("correct horse battery staple", &[]).is_empty());
    }

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_a_fresh_salt() {
        let a = hash_password("correct horse battery staple").unwrap();
        let b = hash_password("correct horse battery staple").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b);
    }
}
