//! Opening a RabbitMQ connection the way every Herald process does: named, auto-recovering and
//! bounded in time, with an error that says where it tried and how to start the broker.

use std::time::Duration;

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};

use crate::error::QueueError;

/// How long [`connect`] waits for the TCP connection plus the AMQP handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest pause between two reconnection attempts of a recovering connection.
const RECOVERY_MAX_DELAY: Duration = Duration::from_secs(10);
/// Reconnection attempts before a recovering connection gives up (about ten minutes).
const RECOVERY_MAX_TIMES: usize = 64;

/// Connects to `url` (`amqp://user:pass@host:port/vhost`, vhost percent-encoded, `%2f` for `/`).
///
/// `connection_name` shows in `rabbitmqctl list_connections client_properties` and the
/// management UI. Automatic recovery is on: after a network failure lapin reconnects with
/// backoff (at most 10 s apart, for about ten minutes, after which the connection stays failed)
/// and replays the declared topology, confirm mode, QoS and consumers; operations that fail
/// meanwhile return errors, and `Channel::wait_for_recovery` waits for the new connection.
/// The whole attempt is bounded by [`CONNECT_TIMEOUT`].
pub async fn connect(url: &str, connection_name: &str) -> Result<Connection, QueueError> {
    open(url, connection_name, true).await
}

/// Like [`connect`], without automatic recovery: when the connection drops, its channels,
/// consumers and pending confirms fail at once and stay failed.
///
/// For a caller that rebuilds its whole session itself, as the worker does. Recovery hidden
/// inside lapin would keep such a caller from noticing the outage, and lapin stops trying after
/// its last backoff step while leaving the channels "reconnecting" for good.
pub async fn connect_without_recovery(
    url: &str,
    connection_name: &str,
) -> Result<Connection, QueueError> {
    open(url, connection_name, false).await
}

async fn open(url: &str, connection_name: &str, recover: bool) -> Result<Connection, QueueError> {
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

    let mut properties =
        ConnectionProperties::default().with_connection_name(connection_name.into());
    if recover {
        // lapin's default backoff grows to 60 s between attempts, so a connection could stay
        // down for a minute after the broker is back; cap the wait at RECOVERY_MAX_DELAY and
        // keep trying for about as long as before (some ten minutes).
        properties = properties
            .enable_auto_recover()
            .configure_backoff(|backoff| {
                backoff
                    .with_max_delay(RECOVERY_MAX_DELAY)
                    .with_max_times(RECOVERY_MAX_TIMES)
            });
    }
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
