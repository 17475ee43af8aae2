//! One module per command; `run` loads the settings and dispatches.

#[cfg(feature = "bench")]
mod bench;
mod demo;
mod demo_redeem;
mod dlq;
mod jobs;
mod mfa;
mod queues;
mod registry;
mod send;
mod serve;
mod token;
mod worker;

use anyhow::Context;
use secrecy::ExposeSecret;

use crate::cli::Command;
use crate::settings::Settings;

pub use demo::{DemoReport, DemoRow, Redemption, demo_settings, run_demo};
pub use demo_redeem::Redeemed;

pub async fn run(command: Command) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let default_level = match command {
        Command::Worker | Command::Serve => "info",
        _ => "warn",
    };
    crate::telemetry::init(settings.log_format, default_level);
    match command {
        Command::Worker => worker::run(&settings).await,
        Command::Serve => serve::run(&settings).await,
        Command::Token(cmd) => token::run(&settings, cmd).await,
        Command::Send(args) => send::run(&settings, args).await,
        Command::Migrate => {
            let store = crate::app::store(&settings).await.context("migrating")?;
            drop(store);
            println!(
                "Database {} is migrated and ready.",
                redact_url(settings.database_url.expose_secret())
            );
            Ok(())
        }
        Command::Demo(args) => demo::run(&settings, args).await,
        Command::Org(cmd) => registry::org(&settings, cmd).await,
        Command::Client(cmd) => registry::client(&settings, cmd).await,
        Command::Template(cmd) => registry::template(&settings, cmd).await,
        Command::Queues(args) => queues::run(&settings, args).await,
        Command::Dlq(cmd) => dlq::run(&settings, cmd).await,
        Command::Jobs(cmd) => jobs::run(&settings, cmd).await,
        Command::Mfa(cmd) => mfa::run(&settings, cmd).await,
        #[cfg(feature = "bench")]
        Command::Bench(options) => bench::run(&settings, options).await,
    }
}

/// HERALD_AMQP_URL fit for printing: each node's URL redacted (it may list a cluster's nodes,
/// separated by commas; redacting the whole string would print the later passwords).
pub fn redact_amqp_urls(raw: &str) -> String {
    herald_queue::connect::split_urls(raw)
        .map(redact_url)
        .collect::<Vec<_>>()
        .join(",")
}

/// A URL fit for printing: the password, if any, replaced by `***`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparseable URL>".to_string(),
    }
}
