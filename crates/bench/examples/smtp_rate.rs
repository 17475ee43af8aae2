//! Measures messages per second over one pooled SMTP connection against the mail sink, for
//! Herald's mailer and, for comparison, lettre's stock pooled transport.
//!
//! `cargo run --release -p herald-bench --example smtp_rate [MESSAGES]` (default 2000).

use std::time::Instant;

use herald_bench::smtp::{one_connection_rate, sample_message};
use herald_mailsink::{MailSink, SinkOptions};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 2000,
    };
    let sink = MailSink::start_with(SinkOptions {
        keep_in_memory: false,
        ..SinkOptions::default()
    })
    .await?;

    let herald = one_connection_rate(&sink.url(), count, 0).await?;
    println!(
        "herald-smtp, 1 pooled connection: {count} messages in {:.2?} = {:.0} msgs/s",
        herald.elapsed,
        herald.per_second()
    );

    // lettre's transport stalls ~40 ms per message, so fewer messages keep this short.
    let stock_count = count.min(200);
    let stock = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.addr().port())
        .pool_config(PoolConfig::new().max_size(1))
        .build();
    stock.send(sample_message(0, 0)).await?;
    let messages: Vec<_> = (0..stock_count).map(|n| sample_message(n, 0)).collect();
    let start = Instant::now();
    for message in messages {
        stock.send(message).await?;
    }
    let elapsed = start.elapsed();
    println!(
        "lettre AsyncSmtpTransport, pool max_size 1: {stock_count} messages in {elapsed:.2?} = {:.0} msgs/s",
        stock_count as f64 / elapsed.as_secs_f64()
    );
    println!(
        "sink accepted {} messages over {} connections",
        sink.count(),
        sink.connections()
    );
    Ok(())
}
