//! Opening a RabbitMQ connection the way every Herald process does: named, auto-recovering and
//! bounded in time, failing over between the nodes of a cluster, with an error that says where it
//! tried and how to start the broker.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::tcp::{AMQPUriTcpExt, TLSConfig};
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};

use crate::error::QueueError;

/// How long [`connect`] waits for the TCP connection plus the AMQP handshake, per node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest pause between two reconnection attempts of a recovering connection.
const RECOVERY_MAX_DELAY: Duration = Duration::from_secs(10);
/// Reconnection attempts before a recovering connection gives up (about ten minutes).
const RECOVERY_MAX_TIMES: usize = 64;

/// Connects to `urls`: one AMQP URL (`amqp://user:pass@host:port/vhost`, vhost percent-encoded,
/// `%2f` for `/`), or the nodes of one cluster as several URLs separated by commas (see
/// [`parse_urls`]).
///
/// The nodes are tried in the order given, each for at most [`CONNECT_TIMEOUT`], until one
/// accepts; if none does, the error names every node and why it failed. Order the list to
/// spread processes over the nodes.
///
/// `connection_name` shows in `rabbitmqctl list_connections client_properties` and the
/// management UI. Automatic recovery is on: after a network failure lapin reconnects with
/// backoff (at most 10 s apart, for about ten minutes, after which the connection stays failed)
/// and replays the declared topology, confirm mode, QoS and consumers; operations that fail
/// meanwhile return errors, and `Channel::wait_for_recovery` waits for the new connection.
/// Each reconnection tries the node it was connected to, then the others in order, so the
/// connection moves to a surviving node when its own one is stopped.
pub async fn connect(urls: &str, connection_name: &str) -> Result<Connection, QueueError> {
    open(urls, connection_name, true).await
}

/// Like [`connect`], without automatic recovery: when the connection drops, its channels,
/// consumers and pending confirms fail at once and stay failed.
///
/// For a caller that rebuilds its whole session itself, as the worker does. Recovery hidden
/// inside lapin would keep such a caller from noticing the outage, and lapin stops trying after
/// its last backoff step while leaving the channels "reconnecting" for good. The caller's next
/// call fails over to the next node that accepts.
pub async fn connect_without_recovery(
    urls: &str,
    connection_name: &str,
) -> Result<Connection, QueueError> {
    open(urls, connection_name, false).await
}

/// The entries of a comma-separated list of AMQP URLs, trimmed; empty entries are kept, so that
/// [`parse_urls`] can refuse them. A comma inside a password or vhost must be percent-encoded
/// (`%2C`).
pub fn split_urls(urls: &str) -> impl Iterator<Item = &str> {
    urls.split(',').map(str::trim)
}

/// Parses one AMQP URL or a comma-separated list of them, the nodes of one cluster.
///
/// The URLs of a list must differ only in host and port: same scheme, credentials, vhost and
/// query. A recovering connection replays the handshake of the node it first reached on
/// whichever node it reconnects to, so the nodes cannot have settings of their own. The error
/// never repeats a URL (it may hold a password); it names the entry by its position.
pub fn parse_urls(urls: &str) -> Result<Vec<AMQPUri>, QueueError> {
    let entries: Vec<&str> = split_urls(urls).collect();
    let several = entries.len() > 1;
    let mut nodes: Vec<AMQPUri> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let which = || {
            if several {
                format!("entry {} of the list: ", i + 1)
            } else {
                String::new()
            }
        };
        if entry.is_empty() {
            return Err(QueueError::InvalidUrl {
                reason: format!("{}is empty", which()),
            });
        }
        let uri: AMQPUri = entry.parse().map_err(|reason| QueueError::InvalidUrl {
            reason: format!("{}{reason}", which()),
        })?;
        // lapin is built without a TLS backend (no rustls feature), and then opens amqps:// as
        // plain TCP: the password would cross the network unencrypted while the URL says TLS.
        if uri.scheme == lapin::uri::AMQPScheme::AMQPS {
            return Err(QueueError::InvalidUrl {
                reason: format!(
                    "{}uses amqps://, but this build of Herald has no AMQP TLS support and \
                     would connect without encryption; use amqp:// (through a TLS tunnel such \
                     as stunnel when the network is not trusted)",
                    which()
                ),
            });
        }
        if let Some(first) = nodes.first()
            && !same_but_address(first, &uri)
        {
            return Err(QueueError::InvalidUrl {
                reason: format!(
                    "{}differs from the first URL in more than host and port; the nodes of \
                     one cluster share the scheme, credentials, vhost and options",
                    which()
                ),
            });
        }
        nodes.push(uri);
    }
    Ok(nodes)
}

/// Whether `a` and `b` are the same but for host and port.
fn same_but_address(a: &AMQPUri, b: &AMQPUri) -> bool {
    a.scheme == b.scheme
        && a.authority.userinfo == b.authority.userinfo
        && a.vhost == b.vhost
        && a.query == b.query
}

/// `host:port (vhost "…")`, never the credentials.
fn describe(uri: &AMQPUri) -> String {
    format!(
        "{}:{} (vhost {:?})",
        uri.authority.host, uri.authority.port, uri.vhost
    )
}

async fn open(urls: &str, connection_name: &str, recover: bool) -> Result<Connection, QueueError> {
    let nodes: Arc<[AMQPUri]> = parse_urls(urls)?.into();
    let mut failures = Vec::new();
    for first in 0..nodes.len() {
        match open_from(&nodes, first, connection_name, recover).await {
            Ok(connection) => return Ok(connection),
            Err(e) => {
                if nodes.len() > 1 {
                    tracing::debug!(error = %e, connection_name, "A RabbitMQ node refused; trying the next.");
                }
                failures.push(e);
            }
        }
    }
    if failures.len() == 1 {
        return Err(failures.remove(0));
    }
    Err(QueueError::Connect {
        target: nodes.iter().map(describe).collect::<Vec<_>>().join(", "),
        source: Box::new(EveryNodeFailed(failures)),
    })
}

/// Opens a connection to `nodes[first]`. A recovering one later reconnects to that node or,
/// failing that, to the others in order.
async fn open_from(
    nodes: &Arc<[AMQPUri]>,
    first: usize,
    connection_name: &str,
    recover: bool,
) -> Result<Connection, QueueError> {
    let uri = nodes[first].clone();
    let target = describe(&uri);
    let (host, port) = (uri.authority.host.clone(), uri.authority.port);

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
    let runtime = lapin::runtime::default_runtime().map_err(|e| QueueError::Connect {
        target: target.clone(),
        source: Box::new(e),
    })?;
    // lapin calls `dial` for the first connection and for every reconnection; the handshake that
    // follows uses `uri`, which is why the nodes of a list may differ only in their address.
    let (dialed, current) = (nodes.clone(), Arc::new(AtomicUsize::new(first)));
    let dial = async move |_uri: AMQPUri, runtime| {
        let start = current.load(Ordering::Relaxed);
        let mut last = None;
        for i in (0..dialed.len()).map(|k| (start + k) % dialed.len()) {
            let attempt = dialed[i].connect_with_config_async(TLSConfig::default(), &runtime);
            match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
                Ok(Ok(stream)) => {
                    if i != start {
                        tracing::info!(node = %describe(&dialed[i]), "Connected to another RabbitMQ node of the list.");
                    }
                    current.store(i, Ordering::Relaxed);
                    return Ok(stream);
                }
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no TCP connection within {CONNECT_TIMEOUT:?}"),
                    ));
                }
            }
        }
        Err(lapin::Error::from(last.unwrap_or_else(|| {
            std::io::Error::other("no RabbitMQ node to connect to")
        })))
    };
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connector(uri, runtime, dial, properties),
    )
    .await
    {
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

/// Why no node of a list accepted: each node's error, in the order tried.
#[derive(Debug)]
struct EveryNodeFailed(Vec<QueueError>);

impl fmt::Display for EveryNodeFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("every node failed")?;
        for failure in &self.0 {
            match failure {
                QueueError::Connect { target, source } => {
                    write!(f, "; {target}: {source}")?;
                    let mut cause = source.source();
                    while let Some(inner) = cause {
                        write!(f, ": {inner}")?;
                        cause = inner.source();
                    }
                }
                QueueError::ConnectTimeout { target, timeout } => {
                    write!(f, "; {target}: timed out after {timeout:?}")?;
                }
                other => write!(f, "; {other}")?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for EveryNodeFailed {}

#[cfg(test)]
mod tests {
    use super::*;

    use herald_testkit::broker::TestBroker;
    use tokio::net::TcpListener;
    use tokio::task::JoinSet;

    use crate::{Publisher, Topology};

    const A: &str = "amqp://guest:guest@10.0.0.1:5672/%2f";
    const B: &str = "amqp://guest:guest@10.0.0.2:5673/%2f";

    #[test]
    fn a_list_names_the_nodes_of_one_cluster_in_order() {
        let nodes = parse_urls(&format!("{A}, {B}")).unwrap();
        let addresses: Vec<_> = nodes
            .iter()
            .map(|n| (n.authority.host.as_str(), n.authority.port))
            .collect();
        assert_eq!(addresses, [("10.0.0.1", 5672), ("10.0.0.2", 5673)]);
        assert_eq!(parse_urls(A).unwrap().len(), 1);
    }

    #[test]
    fn a_list_whose_nodes_differ_in_more_than_their_address_is_refused() {
        for (list, problem) in [
            (
                format!("{A},amqp://guest:s3cret@10.0.0.2:5672/%2f"),
                "entry 2",
            ),
            (
                format!("{A},amqp://guest:guest@10.0.0.2:5672/other"),
                "entry 2",
            ),
            (
                format!("{A},amqps://guest:guest@10.0.0.2:5671/%2f"),
                "entry 2",
            ),
            (
                format!("{A},amqp://guest:guest@10.0.0.2:5672/%2f?heartbeat=5"),
                "entry 2",
            ),
            (format!("{A},,{B}"), "entry 2 of the list: is empty"),
            (format!("{A},"), "entry 2 of the list: is empty"),
            ("nope://x".to_owned(), "Invalid AMQP scheme"),
        ] {
            let err = parse_urls(&list).unwrap_err().to_string();
            assert!(err.contains(problem), "{list}: {err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    /// A port on 127.0.0.1 that nothing listens on (it was free a moment ago).
    async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }

    fn on_port(url: &str, port: u16) -> String {
        url.replacen("127.0.0.1:5672", &format!("127.0.0.1:{port}"), 1)
    }

    #[tokio::test]
    async fn a_list_connects_to_the_first_node_that_accepts() -> anyhow::Result<()> {
        let broker = TestBroker::new().await?;
        let down = on_port(&broker.url, closed_port().await);
        let conn = connect_without_recovery(&format!("{down},{}", broker.url), "test").await?;
        assert!(conn.status().connected());
        conn.create_channel().await?;
        Ok(())
    }

    #[tokio::test]
    async fn when_no_node_accepts_the_error_names_every_node() {
        let (p1, p2) = (closed_port().await, closed_port().await);
        let list =
            format!("amqp://guest:guest@127.0.0.1:{p1}/%2f,amqp://guest:guest@127.0.0.1:{p2}/%2f");
        let err = connect(&list, "test").await.unwrap_err();
        let shown = format!("{:#}", anyhow::Error::new(err));
        for port in [p1, p2] {
            assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
        }
        assert!(shown.contains("every node failed"), "{shown}");
        assert!(!shown.contains("guest:guest"), "{shown}");
    }

    /// This build has no AMQP TLS backend: lapin would open `amqps://` as plain TCP and send the
    /// credentials unencrypted, so the scheme is refused before any connection.
    #[tokio::test]
    async fn an_amqps_url_is_refused_rather_than_opened_in_plain_text() {
        let broker = TestBroker::new().await.unwrap();
        let amqps = broker.url.replacen("amqp://", "amqps://", 1);
        let err = match connect_without_recovery(&amqps, "test").await {
            Ok(conn) => panic!("connected over {:?}", conn.status()),
            Err(e) => e,
        };
        assert!(matches!(err, QueueError::InvalidUrl { .. }), "{err}");
        let err = parse_urls(&amqps).unwrap_err().to_string();
        assert!(err.contains("amqps://"), "{err}");
        assert!(!err.contains("guest"), "{err}");
    }

    /// A TCP forwarder to the shared broker; dropping it closes its port and every connection
    /// through it, as a stopped node would.
    struct Forwarder {
        port: u16,
        tasks: JoinSet<()>,
    }

    impl Forwarder {
        async fn start() -> Forwarder {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let mut tasks = JoinSet::new();
            tasks.spawn(async move {
                let mut pipes = JoinSet::new();
                while let Ok((mut client, _)) = listener.accept().await {
                    pipes.spawn(async move {
                        if let Ok(mut broker) =
                            tokio::net::TcpStream::connect("127.0.0.1:5672").await
                        {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                        }
                    });
                }
            });
            Forwarder { port, tasks }
        }
    }

    #[tokio::test]
    async fn a_recovering_connection_moves_to_the_next_node_when_its_own_goes_away()
    -> anyhow::Result<()> {
        let broker = TestBroker::new().await?;
        let forwarder = Forwarder::start().await;
        let via = on_port(&broker.url, forwarder.port);
        let conn = connect(&format!("{via},{}", broker.url), "test").await?;
        let topology = Topology::default();
        topology.declare(&conn.create_channel().await?).await?;
        let publisher = Publisher::new(&conn, topology).await?;
        publisher
            .publish_job("email.welcome", "job_before", b"{}")
            .await?;

        // The first node goes away: its port refuses, its connections are cut.
        let Forwarder { port, mut tasks } = forwarder;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
        );

        // lapin reconnects, to the second node this time, and the publish goes through.
        publisher
            .publish_job("email.welcome", "job_after", b"{}")
            .await?;
        assert!(conn.status().connected());
        assert_eq!(broker.depth("herald.email").await, 2);
        Ok(())
    }
}
