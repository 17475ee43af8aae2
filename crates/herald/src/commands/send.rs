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
    b.build().context("the job is not valid")
}
