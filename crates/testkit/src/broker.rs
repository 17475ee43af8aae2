//! An isolated RabbitMQ vhost per test: created with `rabbitmqctl`, deleted when dropped.

use std::fmt;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use tokio::sync::OnceCell;

/// The broker every test uses; only loopback is reachable on the project's machines.
const HOST: &str = "127.0.0.1:5672";
const START_HINT: &str = "Start RabbitMQ with `rabbitmq-server -detached`, \
     then wait until `rabbitmq-diagnostics -q ping` answers";

/// A fresh vhost `herald-test-<uuid>` on the local RabbitMQ, with `guest` allowed everything.
pub struct TestBroker {
    pub vhost: String,
    /// `amqp://guest:guest@127.0.0.1:5672/<percent-encoded vhost>`.
    pub url: String,
    /// Shared by the assertion helpers so they do not open a connection per call.
    helper: OnceCell<Connection>,
}

impl fmt::Debug for TestBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestBroker")
            .field("vhost", &self.vhost)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl TestBroker {
    /// Creates the vhost. Fails with a sentence saying how to start RabbitMQ when it is down.
    pub async fn new() -> anyhow::Result<TestBroker> {
        let vhost = format!("herald-test-{}", uuid::Uuid::new_v4());
        rabbitmqctl(&["add_vhost", &vhost]).await?;
        let broker = TestBroker {
            url: format!("amqp://guest:guest@{HOST}/{}", percent_encode(&vhost)),
            vhost,
            helper: OnceCell::new(),
        };
        // From here on, Drop deletes the vhost even if granting permissions fails.
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &broker.vhost,
            "guest",
            ".*",
            ".*",
            ".*",
        ])
        .await?;
        Ok(broker)
    }

    /// A new auto-recovering connection to the vhost, opened as Herald opens its own.
    ///
    /// # Panics
    /// If RabbitMQ refuses the connection.
    pub async fn connection(&self) -> Connection {
        herald_queue::connect(&self.url, "herald-testkit")
            .await
            .unwrap_or_else(|e| panic!("{:#}", anyhow::Error::new(e)))
    }

    /// Takes one message from `queue` (and acks it) for assertions; `None` when it is empty.
    ///
    /// # Panics
    /// If the queue does not exist or the broker fails.
    pub async fn get(&self, queue: &str) -> Option<(Vec<u8>, BasicProperties)> {
        let channel = self
            .helper()
            .await
            .create_channel()
            .await
            .expect("open a channel for basic.get");
        let message = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap_or_else(|e| panic!("basic.get on queue {queue} failed: {e}"))?;
        message
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .unwrap_or_else(|e| panic!("ack of a message from queue {queue} failed: {e}"));
        let _ = channel.close(200, "OK".into()).await;
        let delivery = message.delivery;
        Some((delivery.data, delivery.properties))
    }

    /// Polls [`TestBroker::get`] until a message arrives or `timeout` passes.
    pub async fn wait_get(
        &self,
        queue: &str,
        timeout: Duration,
    ) -> Option<(Vec<u8>, BasicProperties)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(message) = self.get(queue).await {
                return Some(message);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Declares `queue` and binds it to Herald's events exchange (`herald.events`, declared
    /// too) with `binding_key` (`user.#` for every event), as a subscriber would.
    ///
    /// # Panics
    /// If the broker refuses.
    pub async fn subscribe_events(&self, queue: &str, binding_key: &str) {
        let channel = self
            .helper()
            .await
            .create_channel()
            .await
            .expect("open a channel to subscribe to events");
        let exchange = herald_queue::Topology::default().events_exchange;
        channel
            .exchange_declare(
                exchange.as_str().into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare the events exchange");
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare the events queue");
        channel
            .queue_bind(
                queue.into(),
                exchange.as_str().into(),
                binding_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind the events queue");
        let _ = channel.close(200, "OK".into()).await;
    }

    /// The ready messages in `queue`.
    ///
    /// # Panics
    /// If the queue does not exist.
    pub async fn depth(&self, queue: &str) -> u32 {
        herald_queue::queue_stats(self.helper().await, queue)
            .await
            .unwrap_or_else(|e| panic!("{:#}", anyhow::Error::new(e)))
            .messages
    }

    async fn helper(&self) -> &Connection {
        self.helper.get_or_init(|| self.connection()).await
    }
}

impl Drop for TestBroker {
    /// Best effort: closes the helper connection and deletes the vhost in the background (which
    /// also closes any connection a test left open).
    fn drop(&mut self) {
        drop(self.helper.take());
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.vhost])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

/// Runs `rabbitmqctl -q <args>` off the async threads and turns a failure into advice.
async fn rabbitmqctl(args: &[&str]) -> anyhow::Result<()> {
    let owned: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("rabbitmqctl")
            .arg("-q")
            .args(&owned)
            .stdin(Stdio::null())
            .output()
    })
    .await
    .context("the rabbitmqctl task panicked")?;
    let command = format!("rabbitmqctl {}", args.join(" "));
    let output = output.with_context(|| {
        format!(
            "could not run `{command}`; is RabbitMQ installed (it ships rabbitmqctl)? {START_HINT}"
        )
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        bail!(
            "`{command}` failed ({}): {}; is RabbitMQ running on {HOST}? {START_HINT}",
            output.status,
            format!("{stderr} {stdout}").trim()
        );
    }
    Ok(())
}

/// Percent-encodes a vhost for the URL path (everything but RFC 3986 unreserved characters).
fn percent_encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, URL_SEGMENT).to_string()
}

/// Everything but RFC 3986's unreserved characters is encoded.
const URL_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use super::percent_encode;

    #[test]
    fn vhosts_are_percent_encoded() {
        assert_eq!(percent_encode("herald-test-1a"), "herald-test-1a");
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_encode("a b"), "a%20b");
    }
}
