//! `herald mfa reseal`: after HERALD_MFA_KEY changed (the old key kept in
//! HERALD_MFA_PREVIOUS_KEYS), moves every stored secret to the new key and says whether the old
//! keys can now be dropped.

use anyhow::{Context, bail};

use crate::cli::MfaCommand;
use crate::settings::Settings;

pub async fn run(settings: &Settings, command: MfaCommand) -> anyhow::Result<()> {
    match command {
        MfaCommand::Reseal => reseal(settings).await,
    }
}

async fn reseal(settings: &Settings) -> anyhow::Result<()> {
    let Some(ticket_secret) = settings.ticket_secret.clone().or_else(|| {
        // Only the derived key needs the ticket secret; any value serves when the key is set.
        settings
            .mfa_key
            .as_ref()
            .map(|_| herald_domain::TicketSecret::random())
    }) else {
        bail!(
            "HERALD_MFA_KEY is not set, and neither is HERALD_TICKET_SECRET, which it would be derived from: there is no stable key to reseal under"
        );
    };
    let keys = crate::app::mfa_keys(settings, &ticket_secret);
    let store = crate::app::store(settings)
        .await
        .context("opening the database")?;
    let report = crate::app::reseal_mfa_secrets(&store, &keys)
        .await
        .context("resealing MFA secrets")?;
    println!(
        "Resealed {} MFA secret(s) under the current key {:?}.",
        report.resealed,
        keys.current()
    );
    if report.changed_meanwhile > 0 {
        println!(
            "{} changed while this ran (a login check resealed it, or it was deleted).",
            report.changed_meanwhile
        );
    }
    if !report.unopened.is_empty() {
        for (id, why) in &report.unopened {
            eprintln!("enrollment {id}: {why}");
        }
        bail!(
            "{} secret(s) could not be opened with HERALD_MFA_KEY or HERALD_MFA_PREVIOUS_KEYS; keep the key they were sealed under in HERALD_MFA_PREVIOUS_KEYS and run this again (or delete those enrollments)",
            report.unopened.len()
        );
    }
    println!(
        "Every stored secret is sealed under the current key: HERALD_MFA_PREVIOUS_KEYS can be emptied. (A person who scanned an enrollment page's QR code before the change needs the old key to finish; without it they scan the page's new code.)"
    );
    Ok(())
}
