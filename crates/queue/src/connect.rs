//! Opening a RabbitMQ connection the way every Herald process does: named, auto-recovering and
//! bounded in time, with an error that says where it tried and how to start the broker.

use std::time::Duration;

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};

use crate::error::QueueError;

/// How long [`connect`] waits for the TCP connection plus the AMQP handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `url` (`amqp://user:pass@host:port/vhost`, vhost percent-encoded, `%2f` for `/`).
///
/// `connection_name` shows in `rabbitmqctl list_connections client_properties` and the
/// management UI. Automatic recovery is on: after a network failure lapin reconnects with
/// backoff and replays the declared topology, confirm mode, QoS and consumers; operations that
/// fail meanwhile return errors, and `Channel::wait_for_recovery` waits for the new connection.
/// The whole attempt is bounded by [`CONNECT_TIMEOUT`].
pub async fn connect(url: &str, connection_name: &str) -> Result<Connection, QueueError> {
    let uri: AMQPUri = url
        .parse()
        .map_err(|reason| QueueError::InvalidUrl { reason })?;
    let host = uri.authority.host.clone();
    let port = uri.authority.port;
    let target = format!("{host}:{port} (vhost {:?})", uri.vhost);

    // lapin retries the first connection in a background thread with backoff, for minutes, even
    // after this future is dropped; when nothing listens at all, refuse at once instead.
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(probe)) => drop(probe),
        Ok(Err(e)) => {
            return Err(QueueError::Connect {
                target,
                source: Box::new(e),
            });
        }
        Err(_) => {
            return Err(QueueError::ConnectTimeout {
                target,
                timeout: CONNECT_TIMEOUT,
            });
        }
    }

    let properties = ConnectionProperties::default()
        .with_connection_name(connection_name.into())
        .enable_auto_recover();
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, properties)).await {
        Ok(Ok(connection)) => {
            tracing::debug!(%target, connection_name, "Connected to RabbitMQ.");
            Ok(connection)
        }
        Ok(Err(e)) => Err(QueueError::Connect {
            target,
            source: Box::new(e),
        }),
        Err(_) => Err(QueueError::ConnectTimeout {
            target,
            timeout: CONNECT_TIMEOUT,
        }),
    }
}
