//! Phase 1, the raw broker ceiling: the same messages through the same exchange and quorum queue
//! as Herald's, published persistent with confirms (pipelined) while a plain consumer acks each
//! one by hand. What RabbitMQ alone manages on this machine, for Herald to be compared with.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use herald_domain::EmailJob;
use herald_queue::{Topology, headers, job_properties};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Confirmation, Consumer};
use serde::Serialize;

/// Unconfirmed publishes allowed in flight: enough that the broker, not the client, sets the pace.
pub const CONFIRM_WINDOW: usize = 1000;
/// A phase that makes no progress for this long has failed.
const STALL: Duration = Duration::from_secs(60);

/// What the broker alone managed.
#[derive(Debug, Clone, Serialize)]
pub struct CeilingResult {
    pub messages: usize,
    pub average_body_bytes: usize,
    pub confirm_window: usize,
    pub prefetch: u16,
    /// From the first publish to the last confirm.
    pub publish_seconds: f64,
    /// From the first publish to the last ack.
    pub seconds: f64,
    /// `messages / seconds`: the ceiling.
    pub per_second: f64,
}

/// Runs the phase on the vhost at `amqp_url` (which should be fresh: it declares contract v1's
/// exchange and work queue there) with the bodies and properties Herald's producer would send.
pub async fn measure(
    amqp_url: &str,
    jobs: &[EmailJob],
    prefetch: u16,
) -> anyhow::Result<CeilingResult> {
    let topology = Topology::default();
    let messages: Vec<(&'static str, String, Vec<u8>)> = jobs
        .iter()
        .map(|job| (job.kind().routing_key(), job.id.to_string(), job.to_json()))
        .collect();
    let total = messages.len();
    let average_body_bytes = messages.iter().map(|(_, _, b)| b.len()).sum::<usize>() / total.max(1);

    let publishing = herald_queue::connect(amqp_url, "herald-bench-ceiling-publisher").await?;
    let channel = publishing.create_channel().await?;
    topology.declare_core(&channel).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    // The consumer is subscribed before the clock starts, as a running worker would be.
    let consuming = herald_queue::connect(amqp_url, "herald-bench-ceiling-consumer").await?;
    let consumer_channel = consuming.create_channel().await?;
    consumer_channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let deliveries = consumer_channel
        .basic_consume(
            topology.work_queue.as_str().into(),
            "herald-bench-ceiling".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let consumer = tokio::spawn(consume(deliveries, total));

    let start = Instant::now();
    let mut pending = FuturesUnordered::new();
    for (routing_key, message_id, body) in &messages {
        if pending.len() >= CONFIRM_WINDOW {
            confirmed(tokio::time::timeout(STALL, pending.next()).await)?;
        }
        let mut schema = FieldTable::default();
        schema.insert(headers::SCHEMA.into(), AMQPValue::LongInt(1));
        let props = job_properties(message_id)?.with_headers(schema);
        let confirm = channel
            .basic_publish(
                topology.exchange.as_str().into(),
                (*routing_key).into(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                body,
                props,
            )
            .await?;
        pending.push(confirm);
    }
    while !pending.is_empty() {
        confirmed(tokio::time::timeout(STALL, pending.next()).await)?;
    }
    let publish_seconds = start.elapsed().as_secs_f64();
    let last_ack = consumer.await.context("the ceiling consumer panicked")??;
    let seconds = last_ack.duration_since(start).as_secs_f64();
    let _ = publishing.close(200, "OK".into()).await;
    let _ = consuming.close(200, "OK".into()).await;
    Ok(CeilingResult {
        messages: total,
        average_body_bytes,
        confirm_window: CONFIRM_WINDOW,
        prefetch,
        publish_seconds,
        seconds,
        per_second: total as f64 / seconds,
    })
}

/// Consumes `total` messages with manual acks, one ack per message as Herald's worker does,
/// and returns when the last ack was sent.
async fn consume(mut deliveries: Consumer, total: usize) -> anyhow::Result<Instant> {
    for acked in 0..total {
        let delivery = match tokio::time::timeout(STALL, deliveries.next()).await {
            Ok(Some(delivery)) => delivery?,
            Ok(None) => {
                bail!("the ceiling consumer was cancelled after {acked} of {total} messages")
            }
            Err(_) => {
                bail!("the ceiling consumer got nothing for 60 s after {acked} of {total} messages")
            }
        };
        delivery.ack(BasicAckOptions::default()).await?;
    }
    Ok(Instant::now())
}

type Confirmed = Option<Result<Confirmation, lapin::Error>>;

/// Checks one confirm from the window: a nack, a return or silence fails the phase.
fn confirmed(next: Result<Confirmed, tokio::time::error::Elapsed>) -> anyhow::Result<()> {
    match next {
        Ok(Some(Ok(Confirmation::Ack(None)))) => Ok(()),
        Ok(Some(Ok(other))) => bail!("the broker did not take a ceiling message: {other:?}"),
        Ok(Some(Err(e))) => Err(e).context("a ceiling publish failed"),
        Ok(None) => Ok(()),
        Err(_) => bail!("no publisher confirm for 60 s in the ceiling phase"),
    }
}
