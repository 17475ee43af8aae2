//! `herald queues`: the work queue, each retry tier and the dead queue, with their ready
//! messages, consumers and the age of their oldest message.
//!
//! Depth and consumers come from a passive declare, which needs nothing but AMQP. The oldest
//! message's age needs the RabbitMQ management API (`head_message_timestamp`): peeking at the
//! head with `basic.get` and a requeue would count as a delivery against the work queue's
//! `x-delivery-limit`, so a busy operator could end up dead-lettering the head job. Without the
//! API the age is shown as `-`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use herald_queue::{QueueError, QueueStats, Topology, queue_stats};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::uri::AMQPUri;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::app;
use crate::cli::QueuesArgs;
use crate::settings::Settings;

/// The management API's usual port, used on the AMQP host when no URL is configured.
const DEFAULT_API_PORT: u16 = 15672;
/// One management API request may take this long in total.
const API_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn run(settings: &Settings, args: QueuesArgs) -> anyhow::Result<()> {
    let topology = app::topology(settings);
    let conn = herald_queue::connect(settings.amqp_url.expose_secret(), "herald queues")
        .await
        .context("connecting to RabbitMQ")?;
    let queues = queue_roles(&topology);
    let mut stats: Vec<Option<QueueStats>> = Vec::with_capacity(queues.len());
    for (name, _) in &queues {
        match queue_stats(&conn, name).await {
            Ok(s) => stats.push(Some(s)),
            Err(e) if is_not_found(&e) => stats.push(None),
            Err(e) => return Err(e).with_context(|| format!("reading queue {name}")),
        }
    }
    let _ = conn.close(200, "OK".into()).await;

    let configured = args.api_url.or_else(|| settings.rabbitmq_api_url.clone());
    let api = ApiTarget::new(settings.amqp_url.expose_secret(), configured)?;
    let names: Vec<String> = queues.iter().map(|(n, _)| n.clone()).collect();
    let heads = {
        let api = api.clone();
        tokio::task::spawn_blocking(move || api.head_timestamps(&names))
            .await
            .context("the management API task panicked")?
    };
    print!("{}", render(&queues, &stats, &heads, &api.base, unix_now()));
    Ok(())
}

/// The queues to report on, in the order a job travels, with a short role for each.
fn queue_roles(topology: &Topology) -> Vec<(String, String)> {
    let mut queues = vec![(topology.work_queue.clone(), "work".to_owned())];
    for (tier, delay) in topology.retry_delays.iter().enumerate() {
        queues.push((
            topology.retry_queue(tier),
            format!("retry {}", herald_queue::topology::compact(*delay)),
        ));
    }
    queues.push((topology.dead_queue.clone(), "dead letters".to_owned()));
    queues
}

/// Whether a passive declare failed because the queue does not exist.
fn is_not_found(e: &QueueError) -> bool {
    matches!(
        e,
        QueueError::Amqp { source, .. }
            if matches!(
                source.kind(),
                lapin::ErrorKind::ProtocolError(p)
                    if *p.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)
            )
    )
}

/// What the management API said about each queue: the head message's timestamp (Unix seconds)
/// when it reported one. `Err` says why the API could not be used at all.
type Heads = Result<HashMap<String, Option<u64>>, String>;

/// Where the management API is and how to log in to it.
#[derive(Clone)]
struct ApiTarget {
    /// Without credentials, ending in `/`.
    base: Url,
    user: String,
    password: SecretString,
    vhost: String,
}

impl ApiTarget {
    /// `configured` (HERALD_RABBITMQ_API_URL), else port 15672 on the AMQP host; the
    /// credentials are the URL's own, else the AMQP URL's.
    fn new(amqp_url: &str, configured: Option<Url>) -> anyhow::Result<ApiTarget> {
        // With a cluster's nodes listed, the API of the first one.
        let amqp: AMQPUri = herald_queue::connect::parse_urls(amqp_url)
            .map_err(|e| anyhow::anyhow!("HERALD_AMQP_URL is invalid: {e}"))?
            .swap_remove(0);
        let mut base = match configured {
            Some(url) => url,
            None => {
                let host = match amqp.authority.host.parse::<std::net::Ipv6Addr>() {
                    Ok(_) => format!("[{}]", amqp.authority.host),
                    Err(_) => amqp.authority.host.clone(),
                };
                Url::parse(&format!("http://{host}:{DEFAULT_API_PORT}/"))
                    .context("building the management API URL from HERALD_AMQP_URL")?
            }
        };
        let (user, password) = if base.username().is_empty() {
            (
                amqp.authority.userinfo.username.clone(),
                amqp.authority.userinfo.password.clone(),
            )
        } else {
            let decode = |s: &str| {
                percent_decode(s).context("HERALD_RABBITMQ_API_URL has bad percent-encoding")
            };
            (
                decode(base.username())?,
                decode(base.password().unwrap_or(""))?,
            )
        };
        let _ = base.set_username("");
        let _ = base.set_password(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(ApiTarget {
            base,
            user,
            password: SecretString::from(password),
            vhost: amqp.vhost,
        })
    }

    /// Asks the API about each queue (blocking). A queue the API does not know maps to `None`.
    fn head_timestamps(&self, queues: &[String]) -> Heads {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(API_TIMEOUT))
            .http_status_as_error(false)
            .proxy(None)
            .build();
        let agent = ureq::Agent::new_with_config(config);
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.user,
            self.password.expose_secret()
        ));
        let mut heads = HashMap::new();
        for queue in queues {
            let url = self
                .base
                .join(&format!(
                    "api/queues/{}/{}",
                    path_segment(&self.vhost),
                    path_segment(queue)
                ))
                .map_err(|e| format!("cannot build a URL for queue {queue}: {e}"))?;
            let mut response = agent
                .get(url.as_str())
                .header("Authorization", format!("Basic {credentials}"))
                .call()
                .map_err(|e| e.to_string())?;
            match response.status().as_u16() {
                200 => {}
                404 => {
                    heads.insert(queue.clone(), None);
                    continue;
                }
                401 => {
                    return Err(format!(
                        "it refused user {:?} (401); give credentials in HERALD_RABBITMQ_API_URL",
                        self.user
                    ));
                }
                code => return Err(format!("it answered HTTP {code}")),
            }
            let body = response
                .body_mut()
                .read_to_string()
                .map_err(|e| format!("unreadable answer: {e}"))?;
            let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| {
                format!("the answer is not JSON ({e}); is this the management API?")
            })?;
            let head = json
                .get("head_message_timestamp")
                .and_then(serde_json::Value::as_u64);
            heads.insert(queue.clone(), head);
        }
        Ok(heads)
    }
}

/// Percent-encodes one URL path segment (the vhost `/` becomes `%2F`).
fn path_segment(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, URL_SEGMENT).to_string()
}

/// Everything but RFC 3986's unreserved characters is encoded.
const URL_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent_decode(value: &str) -> anyhow::Result<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .context("a % is not followed by two hex digits")?;
            out.push(u8::from_str_radix(hex, 16).context("a % is not followed by two hex digits")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).context("the decoded text is not UTF-8")
}

fn render(
    queues: &[(String, String)],
    stats: &[Option<QueueStats>],
    heads: &Heads,
    api: &Url,
    now: u64,
) -> String {
    let mut rows: Vec<[String; 5]> = Vec::with_capacity(queues.len());
    let mut unreported = false;
    for ((name, role), stats) in queues.iter().zip(stats) {
        let Some(stats) = stats else {
            rows.push([
                name.clone(),
                role.clone(),
                "missing".into(),
                "-".into(),
                "-".into(),
            ]);
            continue;
        };
        let age = match heads {
            _ if stats.messages == 0 => "-".to_owned(),
            Ok(heads) => match heads.get(name).copied().flatten() {
                Some(head) => human_age(now.saturating_sub(head)),
                None => {
                    unreported = true;
                    "-".to_owned()
                }
            },
            Err(_) => "-".to_owned(),
        };
        rows.push([
            name.clone(),
            role.clone(),
            stats.messages.to_string(),
            stats.consumers.to_string(),
            age,
        ]);
    }
    let header = ["QUEUE", "ROLE", "READY", "CONSUMERS", "OLDEST"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}\n",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
        )
    };
    let mut out = line(header);
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
    if rows.iter().any(|r| r[2] == "missing") {
        out.push_str(
            "\nA missing queue has not been declared yet in this vhost: `herald worker` declares \
             every queue when it starts.\n",
        );
    }
    match heads {
        Err(why) => out.push_str(&format!(
            "\nOLDEST needs the RabbitMQ management API, and {api} did not answer ({why}).\n\
             Enable it with `rabbitmq-plugins enable rabbitmq_management`, or point \
             HERALD_RABBITMQ_API_URL at it.\n"
        )),
        Ok(_) if unreported => out.push_str(
            "\nThe management API reported no head_message_timestamp for the queues shown with \
             `-` (RabbitMQ reports it only for some queue types).\n",
        ),
        Ok(_) => {}
    }
    out
}

/// A short age: `42s`, `12m`, `3h 5m`, `4d 2h`.
pub(super) fn human_age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_short() {
        assert_eq!(human_age(0), "0s");
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(90), "1m");
        assert_eq!(human_age(3 * 3600 + 5 * 60 + 7), "3h 5m");
        assert_eq!(human_age(4 * 86_400 + 2 * 3600), "4d 2h");
    }

    #[test]
    fn the_api_defaults_to_the_amqp_host_and_credentials() {
        let api = ApiTarget::new("amqp://ops:s%40cret@rabbit.internal:5672/prod", None).unwrap();
        assert_eq!(api.base.as_str(), "http://rabbit.internal:15672/");
        assert_eq!(api.user, "ops");
        assert_eq!(api.password.expose_secret(), "s@cret");
        assert_eq!(api.vhost, "prod");

        let root = ApiTarget::new("amqp://guest:guest@127.0.0.1:5672/%2f", None).unwrap();
        assert_eq!(root.vhost, "/");
        assert_eq!(path_segment(&root.vhost), "%2F");
    }

    #[test]
    fn with_a_list_of_nodes_the_api_is_the_first_node_s() {
        let api = ApiTarget::new(
            "amqp://ops:pw@rabbit-1.internal:5672/prod,amqp://ops:pw@rabbit-2.internal:5672/prod",
            None,
        )
        .unwrap();
        assert_eq!(api.base.as_str(), "http://rabbit-1.internal:15672/");
        assert_eq!(api.vhost, "prod");
    }

    #[test]
    fn a_configured_api_url_brings_its_own_credentials_and_keeps_its_path() {
        let url = Url::parse("https://admin:p%3Ass@mq.example.com/rabbitmq").unwrap();
        let api = ApiTarget::new("amqp://guest:guest@127.0.0.1:5672/%2f", Some(url)).unwrap();
        assert_eq!(api.base.as_str(), "https://mq.example.com/rabbitmq/");
        assert_eq!(api.user, "admin");
        assert_eq!(api.password.expose_secret(), "p:ss");
    }

    #[test]
    fn the_table_shows_missing_queues_and_says_why_ages_are_unknown() {
        let queues = vec![
            ("herald.email".to_owned(), "work".to_owned()),
            ("herald.email.retry.5s".to_owned(), "retry 5s".to_owned()),
            ("herald.email.dead".to_owned(), "dead letters".to_owned()),
        ];
        let stats = vec![
            Some(QueueStats {
                messages: 3,
                consumers: 2,
            }),
            None,
            Some(QueueStats {
                messages: 1,
                consumers: 0,
            }),
        ];
        let api = Url::parse("http://127.0.0.1:15672/").unwrap();
        let down: Heads = Err("connection refused".into());
        let text = render(&queues, &stats, &down, &api, 1_000);
        assert!(text.contains("herald.email.retry.5s"), "{text}");
        assert!(text.contains("missing"), "{text}");
        assert!(text.contains("rabbitmq_management"), "{text}");

        let up: Heads = Ok(HashMap::from([
            ("herald.email".to_owned(), Some(880)),
            ("herald.email.dead".to_owned(), None),
        ]));
        let text = render(&queues, &stats, &up, &api, 1_000);
        assert!(text.contains(" 2m\n"), "{text}");
        assert!(text.contains("head_message_timestamp"), "{text}");
        assert!(!text.contains("rabbitmq_management"), "{text}");
    }
}
