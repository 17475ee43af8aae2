//! TOTP (RFC 6238 with SHA-1, 6 digits, 30-second steps, one step of skew either way): the
//! secret of an enrollment ticket, the otpauth URL and base32 text an authenticator app takes,
//! and checking a code with replay protection (a code whose time step is not after the last
//! accepted one is refused; the caller stores that step).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use herald_domain::TokenHash;
use hmac::Mac;
use totp_rs::{Builder, Totp};

use crate::MfaKey;

/// 160 bits, RFC 4226's recommended length.
pub const SECRET_LEN: usize = 20;
/// Seconds per time step.
pub const STEP_SECONDS: u64 = 30;
/// Steps accepted either side of the current one.
pub const SKEW: u64 = 1;
pub const DIGITS: u8 = 6;

/// The issuer an authenticator app shows next to the account: "Herald", or an organization's
/// display name made fit for an otpauth label (no `:`, no control characters, one line, at most
/// 64 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer(String);

impl Issuer {
    pub fn herald() -> Self {
        Issuer("Herald".to_owned())
    }

    /// `name` with every `:` and control character turned into a space, runs of spaces
    /// collapsed and cut to 64 characters; "Herald" when nothing is left.
    pub fn named(name: &str) -> Self {
        let label = label(name, 64);
        if label.is_empty() {
            Self::herald()
        } else {
            Issuer(label)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Issuer {
    fn default() -> Self {
        Self::herald()
    }
}

/// Text fit for an otpauth label part: no `:`, no control characters, single spaces, trimmed.
fn label(text: &str, max_chars: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c == ':' || c.is_control() { ' ' } else { c })
        .collect();
    cleaned
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(max_chars)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeRefused {
    /// Not the code of any step in the window (or not six digits).
    #[error("the code is wrong or expired")]
    Wrong,
    /// The code of a step at or before the last accepted one: it was used already.
    #[error("the code was used already")]
    Replayed,
}

/// A TOTP secret. Never logged: its `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret([u8; SECRET_LEN]);

impl TotpSecret {
    /// The secret of the enrollment ticket of `ticket`:
    /// `HMAC-SHA256(key, "herald.totp.v1:" ‖ ticket hash)[..20]`. The enrollment page shows the
    /// same QR code each time it is opened without storing anything, and its POST recomputes it.
    pub fn for_ticket(key: &MfaKey, ticket: &TokenHash) -> Self {
        let mut mac = key.mac();
        mac.update(b"herald.totp.v1:");
        mac.update(ticket.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut secret = [0u8; SECRET_LEN];
        secret.copy_from_slice(&digest[..SECRET_LEN]);
        TotpSecret(secret)
    }

    /// A secret from its bytes (as [`TotpSecret::open`] returns them); `None` unless 20 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(TotpSecret)
    }

    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Encrypts the secret for storage, bound to the user and the `otp` factor.
    pub fn seal(&self, key: &MfaKey, user_id: &str) -> Vec<u8> {
        crate::seal::seal(key, &self.0, &crate::seal::aad(user_id, crate::factor::OTP))
    }

    /// The secret a [`TotpSecret::seal`] of this user stored, under any of `keys`.
    pub fn open(
        keys: &crate::MfaKeys,
        user_id: &str,
        sealed: &[u8],
    ) -> Result<Self, crate::SealError> {
        let aad = crate::seal::aad(user_id, crate::factor::OTP);
        let bytes = crate::seal::open_any(keys, sealed, &aad)?;
        Self::from_bytes(&bytes).ok_or(crate::SealError::Malformed)
    }

    /// The secret as an authenticator app takes it typed in: RFC 4648 base32 without padding
    /// (32 characters).
    pub fn base32(&self) -> String {
        self.totp(SKEW).secret().to_base32()
    }

    /// The `otpauth://totp/Issuer:account?secret=…&issuer=Issuer` URL the QR code carries.
    /// `account` (usually the user's email) is made label-safe as the issuer is.
    pub fn otpauth_url(&self, issuer: &Issuer, account: &str) -> String {
        let mut account = label(account, 128);
        if account.is_empty() {
            account = "user".to_owned();
        }
        Builder::new()
            .with_secret(self.0)
            .with_issuer(Some(issuer.as_str()))
            .with_account_name(account)
            .build()
            .and_then(|totp| totp.to_url())
            .expect("a 20-byte secret and label-safe, non-empty names make a valid otpauth URL")
    }

    /// The code of the step `unix_seconds` falls in (tests, and nothing else needs it).
    pub fn code_at(&self, unix_seconds: u64) -> String {
        self.totp(0).generate(unix_seconds).to_string()
    }

    /// The step `unix_seconds` falls in.
    pub fn step_of(unix_seconds: u64) -> u64 {
        unix_seconds / STEP_SECONDS
    }

    /// The step `code` is the code of, within one step of `unix_seconds`, if that step is after
    /// `last_step` (the last step accepted for this secret). Spaces in the code are ignored.
    /// Comparisons are constant-time.
    pub fn verify_at(
        &self,
        code: &str,
        unix_seconds: u64,
        last_step: Option<u64>,
    ) -> Result<u64, CodeRefused> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let exact = self.totp(0);
        let now = Self::step_of(unix_seconds);
        let mut replayed = false;
        // The newest step first, so a code that happens to match two steps counts for the later.
        for step in (now.saturating_sub(SKEW)..=now + SKEW).rev() {
            if exact.check(&code, step * STEP_SECONDS) == Some(step) {
                if last_step.is_some_and(|last| step <= last) {
                    replayed = true;
                    continue;
                }
                return Ok(step);
            }
        }
        Err(if replayed {
            CodeRefused::Replayed
        } else {
            CodeRefused::Wrong
        })
    }

    /// [`TotpSecret::verify_at`] at the system clock's time.
    pub fn verify_now(&self, code: &str, last_step: Option<u64>) -> Result<u64, CodeRefused> {
        self.verify_at(code, unix_now(), last_step)
    }

    fn totp(&self, skew: u64) -> Totp {
        Builder::new()
            .with_secret(self.0)
            .with_digits(DIGITS)
            .with_step_duration(STEP_SECONDS)
            .with_skew(skew as u16)
            .build()
            .expect("a 20-byte secret, 6 digits and 30-second steps are RFC 6238 parameters")
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use herald_domain::TicketToken;

    use super::*;

    fn secret() -> TotpSecret {
        let ticket = TicketToken::from_presented("a-ticket").hash();
        TotpSecret::for_ticket(&MfaKey::from_bytes(&[1u8; 32]).unwrap(), &ticket)
    }

    const NOW: u64 = 1_800_000_015;

    #[test]
    fn the_secret_of_a_ticket_is_stable_and_differs_per_ticket_and_key() {
        let key = MfaKey::from_bytes(&[1u8; 32]).unwrap();
        let a = TicketToken::from_presented("a-ticket").hash();
        let b = TicketToken::from_presented("b-ticket").hash();
        assert_eq!(TotpSecret::for_ticket(&key, &a), secret());
        assert_ne!(TotpSecret::for_ticket(&key, &b), secret());
        assert_ne!(TotpSecret::for_ticket(&MfaKey::random(), &a), secret());
        assert_eq!(secret().base32().len(), 32);
        assert_eq!(format!("{:?}", secret()), "TotpSecret(..)");
    }

    #[test]
    fn a_code_for_the_current_step_is_accepted_with_its_step() {
        let s = secret();
        let code = s.code_at(NOW);
        assert_eq!(code.len(), 6);
        assert_eq!(s.verify_at(&code, NOW, None), Ok(NOW / 30));
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(s.verify_at(&spaced, NOW, None), Ok(NOW / 30));
    }

    #[test]
    fn one_step_either_way_is_accepted_and_two_are_refused() {
        let s = secret();
        for (offset, accepted) in [(-60i64, false), (-30, true), (30, true), (60, false)] {
            let then = NOW.checked_add_signed(offset).unwrap();
            let answer = s.verify_at(&s.code_at(then), NOW, None);
            if accepted {
                assert_eq!(answer, Ok(then / 30), "{offset}");
            } else {
                assert_eq!(answer, Err(CodeRefused::Wrong), "{offset}");
            }
        }
    }

    #[test]
    fn a_replayed_or_older_code_is_refused() {
        let s = secret();
        let code = s.code_at(NOW);
        let step = s.verify_at(&code, NOW, None).unwrap();
        assert_eq!(
            s.verify_at(&code, NOW + 5, Some(step)),
            Err(CodeRefused::Replayed)
        );
        // The previous step's code, after the current one was accepted.
        assert_eq!(
            s.verify_at(&s.code_at(NOW - 30), NOW, Some(step)),
            Err(CodeRefused::Replayed)
        );
        // The next step's code is still fine.
        assert_eq!(
            s.verify_at(&s.code_at(NOW + 30), NOW + 30, Some(step)),
            Ok(step + 1)
        );
    }

    #[test]
    fn malformed_codes_are_wrong() {
        let s = secret();
        for code in ["", "12345", "1234567", "+12345", "abcdef", "١٢٣٤٥٦"] {
            assert_eq!(
                s.verify_at(code, NOW, None),
                Err(CodeRefused::Wrong),
                "{code}"
            );
        }
    }

    #[test]
    fn the_otpauth_url_names_a_sanitised_issuer_and_the_account() {
        let s = secret();
        let url = s.otpauth_url(&Issuer::herald(), "bob@example.com");
        assert_eq!(
            url,
            format!(
                "otpauth://totp/Herald:bob%40example.com?secret={}&issuer=Herald",
                s.base32()
            )
        );
        let acme = Issuer::named("  Acme:  Corp\n");
        assert_eq!(acme.as_str(), "Acme Corp");
        assert!(
            s.otpauth_url(&acme, "a:b@example.com")
                .starts_with("otpauth://totp/Acme%20Corp:a%20b%40example.com?")
        );
        assert_eq!(Issuer::named(" :: "), Issuer::herald());
        assert_eq!(Issuer::named(&"x".repeat(100)).as_str().len(), 64);
        assert!(s.otpauth_url(&Issuer::herald(), "").contains(":user?"));
    }

    #[test]
    fn a_sealed_secret_opens_for_its_user_only() {
        let key = crate::MfaKeys::from(MfaKey::random());
        let sealed = secret().seal(key.current(), "auth0|ana");
        assert_eq!(TotpSecret::open(&key, "auth0|ana", &sealed), Ok(secret()));
        assert_eq!(
            TotpSecret::open(&key, "auth0|bob", &sealed),
            Err(crate::SealError::Forged)
        );
    }
}
