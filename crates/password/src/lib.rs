//! `herald-password`: passwords set through Herald (the Management API's `password` field and
//! the password-change page). The policy a new password must meet (length, and a strength
//! estimate with zxcvbn), its argon2id PHC hash ([`hash_password`], pure and synchronous), and
//! [`hash`], which runs it off the async runtime, at most [`MAX_CONCURRENT_HASHES`] at once in
//! the whole process.
//!
//! Argon2id with the argon2 crate's defaults, OWASP's first recommendation (m = 19 MiB, t = 2,
//! p = 1), and a fresh random salt per hash. The password itself is never kept, logged or shown.

use std::sync::LazyLock;

use argon2::{Argon2, PasswordHasher};
use tokio::sync::Semaphore;

/// Hashes running at once, in the whole process (the API's and the pages' together): each
/// takes 19 MiB and tens of milliseconds of one core.
pub const MAX_CONCURRENT_HASHES: usize = 4;

static HASHING: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(MAX_CONCURRENT_HASHES));

/// Why [`hash`] gave no hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the password could not be hashed: {0}")]
pub struct HashError(String);

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

/// [`hash_password`] on tokio's blocking threads, waiting for a turn when
/// [`MAX_CONCURRENT_HASHES`] are running, so a burst of password changes can neither stall the
/// async runtime nor take memory without bound.
///
/// # Errors
/// When argon2 fails (it does not for a password within [`MAX_PASSWORD_CHARS`]) or the
/// blocking task was cancelled (the runtime is shutting down).
pub async fn hash(password: String) -> Result<String, HashError> {
    let _turn = HASHING
        .acquire()
        .await
        .map_err(|e| HashError(e.to_string()))?;
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| HashError(e.to_string()))?
        .map_err(HashError)
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

    #[tokio::test(flavor = "current_thread")]
    async fn a_burst_of_hashes_all_verify_and_gives_back_every_turn() {
        use argon2::{PasswordHash, PasswordVerifier};

        let burst: Vec<_> = (0..MAX_CONCURRENT_HASHES * 2)
            .map(|i| tokio::spawn(hash(format!("violet harbor lantern {i}"))))
            .collect();
        for (i, task) in burst.into_iter().enumerate() {
            let phc = task.await.unwrap().unwrap();
            let parsed = PasswordHash::new(&phc).unwrap();
            let password = format!("violet harbor lantern {i}");
            assert!(
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            );
        }
        assert_eq!(HASHING.available_permits(), MAX_CONCURRENT_HASHES);
    }
}
