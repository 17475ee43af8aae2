//! Measures messages per second over one pooled SMTP connection against the mail sink, for
//! Herald's mailer and, for comparison, lettre's stock pooled transport.
//!
//! `cargo run --release -p herald-smtp --example smtp_rate [MESSAGES]` (default 2000).

use std::time::{Duration, Instant};

use herald_mailsink::{MailSink, SinkOptions};
use herald_smtp::{Mailer, MailerOptions};
use lettre::message::MultiPart;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

fn message(n: usize) -> Message {
    Message::builder()
        .from(
            "Herald <noreply@herald.test>"
                .parse()
                .expect("valid address"),
        )
        .to("bench@example.org".parse().expect("valid address"))
        .subject(format!("Your code {n}"))
        .message_id(Some(format!("<bench-{n}@herald.test>")))
        .multipart(MultiPart::alternative_plain_html(
            format!("Your code is {n}."),
            format!("<p>Your code is <b>{n}</b>.</p>"),
        ))
        .expect("valid message")
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 2000,
    };
    let sink = MailSink::start_with(SinkOptions {
        keep_in_memory: false,
        ..SinkOptions::default()
    })
    .await?;
    let messages: Vec<Message> = (0..count).map(message).collect();

    let mailer = Mailer::from_url(
        &sink.url(),
        MailerOptions {
            pool_size: 1,
            ..MailerOptions::default()
        },
    )?;
    mailer.check().await?;
    let start = Instant::now();
    for message in &messages {
        mailer.send(message).await?;
    }
    let elapsed = start.elapsed();
    println!(
        "herald-smtp, 1 pooled connection: {count} messages in {elapsed:.2?} = {:.0} msgs/s",
        rate(count, elapsed)
    );

    // lettre's transport stalls ~40 ms per message, so fewer messages keep this short.
    let stock_count = count.min(200);
    let stock = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.addr().port())
        .pool_config(PoolConfig::new().max_size(1))
        .build();
    stock.send(message(0)).await?;
    let start = Instant::now();
    for message in messages.iter().take(stock_count) {
        stock.send(message.clone()).await?;
    }
    let elapsed = start.elapsed();
    println!(
        "lettre AsyncSmtpTransport, pool max_size 1: {stock_count} messages in {elapsed:.2?} = {:.0} msgs/s",
        rate(stock_count, elapsed)
    );
    println!(
        "sink accepted {} messages over {} connections",
        sink.count(),
        sink.connections()
    );
    Ok(())
}
