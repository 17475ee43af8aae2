//! A change of MFA key (HERALD_MFA_KEY): the keyring every process builds from the settings,
//! and [`reseal_mfa_secrets`], which moves every stored secret sealed under a previous key to
//! the current one (`herald mfa reseal`), so that the previous keys can then be dropped.

use herald_domain::TicketSecret;
use herald_mfa::{MfaKey, MfaKeys, SealError, seal};
use herald_store::{Store, StoreError};

use crate::Settings;

/// Enrollments read per query.
const BATCH: i64 = 500;

/// The keyring of these settings: HERALD_MFA_KEY, or the key derived from `ticket_secret`
/// when it is unset, then HERALD_MFA_PREVIOUS_KEYS.
pub fn mfa_keys(settings: &Settings, ticket_secret: &TicketSecret) -> MfaKeys {
    let current = settings
        .mfa_key
        .clone()
        .unwrap_or_else(|| MfaKey::derived_from(ticket_secret));
    MfaKeys::new(current, settings.mfa_previous_keys.clone())
}

/// What [`reseal_mfa_secrets`] did.
#[derive(Debug, Default)]
pub struct ResealReport {
    /// Secrets now sealed under the current key.
    pub resealed: u64,
    /// Secrets that changed or were deleted while they were being resealed (a login check
    /// resealed one itself, or the enrollment was deleted): nothing left to do for them.
    pub changed_meanwhile: u64,
    /// Enrollments whose secret no key of the ring opens, with why; they stay as they are.
    pub unopened: Vec<(String, SealError)>,
}

/// Reseals, under the current key, every stored secret sealed under another one. Each row is
/// replaced only if it still holds what was read, so it is safe while `herald serve` runs.
/// A secret no key opens is reported and left unchanged.
///
/// # Errors
/// When the database fails; the secrets resealed until then stay resealed.
pub async fn reseal_mfa_secrets(store: &Store, keys: &MfaKeys) -> Result<ResealReport, StoreError> {
    let current = keys.current();
    let mut report = ResealReport::default();
    let mut after = String::new();
    loop {
        let batch = store
            .enrollments_sealed_elsewhere(&current.id(), &after, BATCH)
            .await?;
        let Some(last) = batch.last() else {
            return Ok(report);
        };
        after = last.id.clone();
        for stored in &batch {
            let aad = seal::aad(&stored.user_id, &stored.factor);
            match seal::open_any(keys, &stored.secret_sealed, &aad) {
                Ok(secret) => {
                    let resealed = seal::seal(current, &secret, &aad);
                    if store
                        .reseal_enrollment(&stored.id, &stored.secret_sealed, &resealed)
                        .await?
                    {
                        report.resealed += 1;
                    } else {
                        report.changed_meanwhile += 1;
                    }
                }
                Err(e) => report.unopened.push((stored.id.clone(), e)),
            }
        }
    }
}
