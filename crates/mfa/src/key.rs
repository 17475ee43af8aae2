//! [`MfaKey`]: the one server-side key of MFA (HERALD_MFA_KEY), and the separate keys derived
//! from it for each use (sealing secrets, deriving a ticket's TOTP secret, digesting emailed
//! codes), so no key serves two algorithms.

use std::fmt;

use herald_domain::TicketSecret;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The label the key is derived from the ticket secret with when HERALD_MFA_KEY is unset.
const FROM_TICKET_SECRET: &[u8] = b"herald.mfa-key.v1";

/// Why a configured key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("must be at least {min} bytes long (got {got})", min = MfaKey::MIN_LEN)]
    TooShort { got: usize },
}

/// The MFA key: 256 bits. Its `Debug` shows only its id (a one-way fingerprint).
#[derive(Clone, PartialEq, Eq)]
pub struct MfaKey([u8; 32]);

impl MfaKey {
    pub const MIN_LEN: usize = 32;

    /// Any secret of at least 32 bytes (HERALD_MFA_KEY); it is condensed to 256 bits with
    /// SHA-256, as `TicketSecret::from_bytes` does.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < Self::MIN_LEN {
            return Err(KeyError::TooShort { got: bytes.len() });
        }
        Ok(Self(Sha256::digest(bytes).into()))
    }

    /// The key of a deployment that sets no HERALD_MFA_KEY:
    /// `HMAC-SHA256(ticket secret, "herald.mfa-key.v1")`. It is stable as long as the ticket
    /// secret is, and reveals nothing about it.
    pub fn derived_from(ticket_secret: &TicketSecret) -> Self {
        Self(ticket_secret.derive_key(FROM_TICKET_SECRET))
    }

    /// A random key (tests, and a process with neither secret configured).
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// 8 bytes naming this key in what it sealed, so a secret sealed under another key is told
    /// apart from a forged one (and a future key rotation can pick the right key).
    pub fn id(&self) -> [u8; 8] {
        let mut id = [0u8; 8];
        id.copy_from_slice(&self.subkey(b"herald.mfa-key-id.v1")[..8]);
        id
    }

    /// `HMAC-SHA256(key, label)`: a key of its own for one use.
    pub(crate) fn subkey(&self, label: &[u8]) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(label);
        mac.finalize().into_bytes().into()
    }

    /// An HMAC-SHA256 keyed with this key, for the caller to feed a labelled message.
    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }
}

/// A deployment's MFA keys: the current one (HERALD_MFA_KEY), which derives and seals
/// everything new, and the ones it replaced (HERALD_MFA_PREVIOUS_KEYS), which still open what
/// they sealed and check what they derived (a QR code shown before the change, an emailed
/// code's digest) until `herald mfa reseal` has moved every stored secret to the current key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaKeys {
    current: MfaKey,
    previous: Vec<MfaKey>,
}

impl MfaKeys {
    /// `previous` in any order; repeats, and the current key among them, are dropped.
    pub fn new(current: MfaKey, previous: Vec<MfaKey>) -> Self {
        let mut kept: Vec<MfaKey> = Vec::with_capacity(previous.len());
        for key in previous {
            if key != current && !kept.contains(&key) {
                kept.push(key);
            }
        }
        Self {
            current,
            previous: kept,
        }
    }

    /// The key everything new is derived and sealed with.
    pub fn current(&self) -> &MfaKey {
        &self.current
    }

    /// The keys that are only read.
    pub fn previous(&self) -> &[MfaKey] {
        &self.previous
    }

    /// Every key, the current one first.
    pub fn all(&self) -> impl Iterator<Item = &MfaKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    /// The key whose [`MfaKey::id`] is `id`.
    pub fn by_id(&self, id: &[u8]) -> Option<&MfaKey> {
        self.all().find(|key| key.id() == id)
    }
}

impl From<MfaKey> for MfaKeys {
    fn from(current: MfaKey) -> Self {
        Self::new(current, Vec::new())
    }
}

impl fmt::Debug for MfaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.id();
        write!(
            f,
            "MfaKey(id {:02x}{:02x}{:02x}{:02x}..)",
            id[0], id[1], id[2], id[3]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_refused_and_long_ones_condensed() {
        assert_eq!(
            MfaKey::from_bytes(b"short"),
            Err(KeyError::TooShort { got: 5 })
        );
        let a = MfaKey::from_bytes(&[7u8; 32]).unwrap();
        let b = MfaKey::from_bytes(&[7u8; 64]).unwrap();
        assert_ne!(a, b);
        assert_eq!(a, MfaKey::from_bytes(&[7u8; 32]).unwrap());
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = MfaKey::from_bytes(b"mfa-key-s3cret-0123456789abcdef0123").unwrap();
        let shown = format!("{key:?}");
        assert!(shown.starts_with("MfaKey(id "), "{shown}");
        assert!(!shown.contains("s3cret"));
        let raw: String = key.0.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&raw[..8]), "{shown}");
    }

    #[test]
    fn a_keyring_finds_each_key_by_id_and_keeps_the_current_one_first() {
        let (a, b, c) = (MfaKey::random(), MfaKey::random(), MfaKey::random());
        let keys = MfaKeys::new(b.clone(), vec![a.clone(), b.clone(), a.clone()]);
        assert_eq!(keys.current(), &b);
        assert_eq!(keys.previous(), std::slice::from_ref(&a));
        assert_eq!(
            keys.all().cloned().collect::<Vec<_>>(),
            vec![b.clone(), a.clone()]
        );
        assert_eq!(keys.by_id(&a.id()), Some(&a));
        assert_eq!(keys.by_id(&b.id()), Some(&b));
        assert_eq!(keys.by_id(&c.id()), None);
    }

    #[test]
    fn the_derived_key_follows_the_ticket_secret_and_differs_from_it() {
        let secret = TicketSecret::from_bytes(b"ticket-secret-0123456789abcdef012345").unwrap();
        let again = TicketSecret::from_bytes(b"ticket-secret-0123456789abcdef012345").unwrap();
        assert_eq!(MfaKey::derived_from(&secret), MfaKey::derived_from(&again));
        assert_ne!(
            MfaKey::derived_from(&secret),
            MfaKey::derived_from(&TicketSecret::random())
        );
        // Not the ticket secret itself (which is SHA-256 of the configured bytes).
        assert_ne!(
            MfaKey::derived_from(&secret),
            MfaKey::from_bytes(b"ticket-secret-0123456789abcdef012345").unwrap()
        );
    }
}
