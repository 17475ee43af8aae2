//! `herald send <kind> …`: build one job from flags and publish it with publisher confirms.

use anyhow::Context;
use herald_domain::EmailJob;
use herald_producer::Producer;

use crate::cli::SendArgs;
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: SendArgs) -> anyhow::Result<()> {
    let job = build_job(args)?;
    let producer = Producer::connect_with(
        secrecy::ExposeSecret::expose_secret(&settings.amqp_url),
        settings.topology(),
    )
    .await
    .context("connecting to RabbitMQ")?;
    producer.publish(&job).await.context("publishing the job")?;
    producer.close().await;
    println!(
        "Published {} ({}) with routing key {}; the broker confirmed it.",
        job.id,
        job.kind(),
        job.kind().routing_key()
    );
    Ok(())
}

pub fn build_job(args: SendArgs) -> anyhow::Result<EmailJob> {
    let mut b = EmailJob::builder(args.kind.0, args.user_id, args.email);
    if let Some(v) = args.id {
        b = b.id(v);
    }
    if let Some(v) = args.name {
        b = b.name(v);
    }
    if let Some(v) = args.locale {
        b = b.email_locale(v);
    }
    if let Some(v) = args.user_locale {
        b = b.user_locale(v);
    }
    if let Some(v) = args.client_id {
        b = b.client_id(v);
    }
    if let Some(v) = args.organization_id {
        b = b.organization_id(v);
    }
    if let Some(v) = args.result_url {
        b = b.result_url(v);
    }
    if let Some(v) = args.ttl_sec {
        b = b.ttl_sec(v);
    }
    if args.include_email_in_redirect {
        b = b.include_email_in_redirect(true);
    }
    if let Some(v) = args.custom_domain {
        b = b.custom_domain(v);
    }
    if let Some(v) = args.factor {
        b = b.factor(v);
    }
    if args.allow_multiple_enrollments {
        b = b.allow_multiple_enrollments(true);
    }
    if args.mark_email_as_verified {
        b = b.mark_email_as_verified(true);
    }
    if let Some(v) = args.code {
        b = b.code(v);
    }
    b.build().context("the job is not valid")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn job_from(args: &[&str]) -> anyhow::Result<EmailJob> {
        let cli = Cli::try_parse_from(["herald", "send"].iter().chain(args))?;
        let Command::Send(send) = cli.command else {
            unreachable!("herald send parses as Send")
        };
        build_job(send)
    }

    #[test]
    fn send_mfa_code_email_takes_the_code_and_its_lifetime() {
        let user = ["--user-id", "auth0|1", "--email", "a@example.com"];
        let job = job_from(
            &[
                &["mfa-code-email"][..],
                &user,
                &["--code", "042917", "--ttl-sec", "600"],
            ]
            .concat(),
        )
        .unwrap();
        assert_eq!(job.kind(), herald_domain::JobKind::MfaCode);
        assert_eq!(job.code().unwrap().expose(), "042917");
        let missing = job_from(&[&["mfa-code-email"][..], &user].concat()).unwrap_err();
        assert!(
            format!("{missing:#}").contains("code is required"),
            "{missing:#}"
        );
        let elsewhere =
            job_from(&[&["welcome-email"][..], &user, &["--code", "042917"]].concat()).unwrap_err();
        assert!(
            format!("{elsewhere:#}").contains("code is only allowed"),
            "{elsewhere:#}"
        );
    }
}
