//! The email factor's codes: six random digits from a CSPRNG, stored only as a keyed digest
//! (an unkeyed hash of six digits is reversed by trying all million), and compared in
//! constant time.

use std::fmt;

use hmac::Mac;
use rand::Rng;
use subtle::ConstantTimeEq;

use crate::{MfaKey, MfaKeys};

/// A code to email. Its `Debug` prints nothing of it.
#[derive(Clone)]
pub struct EmailCode(String);

impl EmailCode {
    /// Six digits, uniformly from `rand`'s thread-local CSPRNG (ChaCha12, seeded by the OS).
    pub fn generate() -> Self {
        let n: u32 = rand::rng().random_range(0..1_000_000);
        EmailCode(format!("{n:06}"))
    }

    /// The code to put in the email.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps: `HMAC-SHA256(key, "herald.email-code.v1:" ‖ context ‖ code)`, where
    /// `context` binds it to one use (e.g. the enrollment ticket's hash).
    pub fn digest(&self, key: &MfaKey, context: &[u8]) -> [u8; 32] {
        digest(key, context, &self.0)
    }
}

impl fmt::Debug for EmailCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailCode(..)")
    }
}

fn digest(key: &MfaKey, context: &[u8], code: &str) -> [u8; 32] {
    let mut mac = key.mac();
    mac.update(b"herald.email-code.v1:");
    mac.update(&(context.len() as u64).to_be_bytes());
    mac.update(context);
    mac.update(code.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Whether the code a user typed (spaces ignored) is the one whose digest was stored under any
/// of `keys` (a code sent just before a key change still works), compared in constant time.
pub fn code_matches(keys: &MfaKeys, context: &[u8], presented: &str, stored_digest: &[u8]) -> bool {
    let presented: String = presented.chars().filter(|c| !c.is_whitespace()).collect();
    if presented.len() != 6 || !presented.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    keys.all()
        .any(|key| digests_equal(&digest(key, context, &presented), stored_digest))
}

/// Constant-time equality of two byte strings (of the same length; different lengths are
/// unequal, which reveals only the length).
pub fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: Vec<String> = (0..200)
            .map(|_| EmailCode::generate().expose().to_owned())
            .collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert!(distinct.len() > 190, "{}", distinct.len());
        assert_eq!(format!("{:?}", EmailCode::generate()), "EmailCode(..)");
    }

    #[test]
    fn a_code_matches_its_digest_in_its_context_only() {
        let key = MfaKey::random();
        let code = EmailCode::generate();
        let stored = code.digest(&key, b"ticket-1");
        let keys = MfaKeys::from(key.clone());
        assert!(code_matches(&keys, b"ticket-1", code.expose(), &stored));
        // After a key change, a code sent before it still matches while the old key is kept.
        let rotated = MfaKeys::new(MfaKey::random(), vec![key.clone()]);
        assert!(code_matches(&rotated, b"ticket-1", code.expose(), &stored));
        let key = keys;
        let spaced = format!("{} {}", &code.expose()[..3], &code.expose()[3..]);
        assert!(code_matches(&key, b"ticket-1", &spaced, &stored));
        assert!(!code_matches(&key, b"ticket-2", code.expose(), &stored));
        assert!(!code_matches(
            &MfaKeys::from(MfaKey::random()),
            b"ticket-1",
            code.expose(),
            &stored
        ));
        let other = format!(
            "{:06}",
            (code.expose().parse::<u32>().unwrap() + 1) % 1_000_000
        );
        assert!(!code_matches(&key, b"ticket-1", &other, &stored));
        assert!(!code_matches(&key, b"ticket-1", "", &stored));
        assert!(!code_matches(&key, b"ticket-1", "12345a", &stored));
    }

    #[test]
    fn digests_compare_by_content_and_length() {
        assert!(digests_equal(b"abc", b"abc"));
        assert!(!digests_equal(b"abc", b"abd"));
        assert!(!digests_equal(b"abc", b"abcd"));
    }
}
