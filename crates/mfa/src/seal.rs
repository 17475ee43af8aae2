//! Secrets encrypted at rest: XChaCha20-Poly1305 under a key derived from the [`MfaKey`], a
//! random 24-byte nonce per secret, and associated data naming the user and the factor, so a
//! sealed secret copied to another user's row (or factor) does not open. The stored form is
//! `key id (8 bytes) ‖ nonce (24) ‖ ciphertext and tag`.

use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::{MfaKey, MfaKeys};

const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Why a sealed secret did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Too short to be anything this module sealed.
    #[error("the sealed secret is malformed")]
    Malformed,
    /// Sealed under another MFA key (HERALD_MFA_KEY changed since, and the old key is not
    /// among HERALD_MFA_PREVIOUS_KEYS).
    #[error(
        "the secret was sealed under another MFA key (was HERALD_MFA_KEY changed without keeping the old one in HERALD_MFA_PREVIOUS_KEYS?)"
    )]
    OtherKey,
    /// The key is right but the bytes or the associated data are not: tampered with, or
    /// another user's or factor's secret.
    #[error("the sealed secret does not authenticate (tampered with, or another user's)")]
    Forged,
}

/// The associated data of a user's secret for `factor`: both are length-prefixed, so no two
/// pairs give the same bytes.
pub fn aad(user_id: &str, factor: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + user_id.len() + factor.len());
    aad.extend_from_slice(b"herald.mfa.v1");
    for part in [user_id, factor] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

fn cipher(key: &MfaKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&key.subkey(b"herald.mfa-seal.v1").into())
}

/// Encrypts `plaintext` for storage, bound to `aad`.
pub fn seal(key: &MfaKey, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce = XNonce::generate();
    let ciphertext = cipher(key)
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
    let mut sealed = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&key.id());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    sealed
}

/// Decrypts what [`seal`] returned, if it was sealed under `key` with the same `aad` and not
/// changed since.
pub fn open(key: &MfaKey, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < KEY_ID_LEN + NONCE_LEN + TAG_LEN {
        return Err(SealError::Malformed);
    }
    let (id, rest) = sealed.split_at(KEY_ID_LEN);
    if id != key.id() {
        return Err(SealError::OtherKey);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).map_err(|_| SealError::Malformed)?;
    cipher(key)
        .decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| SealError::Forged)
}

/// Decrypts what [`seal`] returned under any of `keys` (the one its key id names).
pub fn open_any(keys: &MfaKeys, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
    let id = sealed.get(..KEY_ID_LEN).ok_or(SealError::Malformed)?;
    let key = keys.by_id(id).ok_or(SealError::OtherKey)?;
    open(key, sealed, aad)
}

/// Whether `sealed` was sealed under `key` (by its key id; nothing is decrypted).
pub fn is_sealed_under(key: &MfaKey, sealed: &[u8]) -> bool {
    sealed.get(..KEY_ID_LEN) == Some(&key.id()[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_aad_only() {
        let key = MfaKey::random();
        let aad = aad("auth0|ana", "otp");
        let sealed = seal(&key, b"twenty bytes secret!", &aad);
        assert_eq!(sealed.len(), 8 + 24 + 20 + 16);
        assert_eq!(open(&key, &sealed, &aad).unwrap(), b"twenty bytes secret!");
        // A fresh nonce each time.
        assert_ne!(seal(&key, b"twenty bytes secret!", &aad), sealed);
    }

    #[test]
    fn tampered_ciphertext_is_refused() {
        let key = MfaKey::random();
        let aad = aad("auth0|ana", "otp");
        let sealed = seal(&key, b"twenty bytes secret!", &aad);
        for i in 8..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(open(&key, &bad, &aad), Err(SealError::Forged), "byte {i}");
        }
        assert_eq!(
            open(&key, &sealed[..sealed.len() - 1], &aad),
            Err(SealError::Forged)
        );
        assert_eq!(open(&key, &sealed[..40], &aad), Err(SealError::Malformed));
    }

    #[test]
    fn another_users_or_factors_aad_is_refused() {
        let key = MfaKey::random();
        let sealed = seal(&key, b"twenty bytes secret!", &aad("auth0|ana", "otp"));
        assert_eq!(
            open(&key, &sealed, &aad("auth0|bob", "otp")),
            Err(SealError::Forged)
        );
        assert_eq!(
            open(&key, &sealed, &aad("auth0|ana", "email")),
            Err(SealError::Forged)
        );
        // Length prefixes: moving a character from the user id to the factor changes the aad.
        assert_ne!(aad("ab", "c"), aad("a", "bc"));
    }

    #[test]
    fn a_keyring_opens_what_any_of_its_keys_sealed() {
        let (old, new) = (MfaKey::random(), MfaKey::random());
        let sealed = seal(&old, b"twenty bytes secret!", b"aad");
        assert!(is_sealed_under(&old, &sealed) && !is_sealed_under(&new, &sealed));
        let keys = MfaKeys::new(new.clone(), vec![old.clone()]);
        assert_eq!(
            open_any(&keys, &sealed, b"aad").unwrap(),
            b"twenty bytes secret!"
        );
        let without_old = MfaKeys::from(new);
        assert_eq!(
            open_any(&without_old, &sealed, b"aad"),
            Err(SealError::OtherKey)
        );
        assert_eq!(
            open_any(&keys, &sealed[..4], b"aad"),
            Err(SealError::Malformed)
        );
    }

    #[test]
    fn another_key_is_told_apart_from_a_forgery() {
        let sealed = seal(&MfaKey::random(), b"twenty bytes secret!", b"aad");
        assert_eq!(
            open(&MfaKey::random(), &sealed, b"aad"),
            Err(SealError::OtherKey)
        );
    }
}
