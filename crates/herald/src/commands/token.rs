//! `herald token create|list|revoke`: the Management API's opaque tokens. `create` prints the
//! token, and only the token, on stdout (so `T=$(herald token create …)` works); the database
//! keeps its SHA-256.

use anyhow::{Context, bail};
use herald_domain::{ApiToken, parse_scopes};
use time::OffsetDateTime;

use crate::cli::TokenCommand;
use crate::settings::Settings;

pub async fn run(settings: &Settings, command: TokenCommand) -> anyhow::Result<()> {
    let store = crate::app::store(settings).await?;
    match command {
        TokenCommand::Create(args) => {
            let scopes =
                parse_scopes(&args.scopes).map_err(|e| anyhow::anyhow!("--scopes: {e}"))?;
            let expires_at = args
                .expires_in
                .map(|d| {
                    time::Duration::try_from(*d)
                        .ok()
                        .and_then(|d| OffsetDateTime::now_utc().checked_add(d))
                        .context("--expires-in is too long")
                })
                .transpose()?;
            let token = ApiToken::generate();
            let name = args
                .name
                .unwrap_or_else(|| format!("token-{}", &token.expose()[5..13]));
            store
                .create_api_token(&name, &token.hash(), &scopes, expires_at)
                .await
                .context("storing the token")?;
            println!("{}", token.expose());
        }
        TokenCommand::List => {
            let now = OffsetDateTime::now_utc();
            let tokens = store.list_api_tokens().await?;
            if tokens.is_empty() {
                println!("No tokens. Create one with: herald token create --scopes \"…\"");
            }
            for t in tokens {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at.is_some_and(|e| e <= now) {
                    "expired"
                } else {
                    "active"
                };
                let expires = t
                    .expires_at
                    .map_or_else(|| "never".to_owned(), |e| e.date().to_string());
                println!(
                    "{}  {}  {}  expires {}  {}",
                    t.id,
                    t.name,
                    state,
                    expires,
                    t.scopes.join(" ")
                );
            }
        }
        TokenCommand::Revoke { id_or_name } => {
            if !store.revoke_api_token(&id_or_name).await? {
                bail!("no active token has the id or name {id_or_name:?}");
            }
            println!("Revoked {id_or_name}.");
        }
    }
    Ok(())
}
