//! Parsing `HERALD_SMTP_URL` and the mailer options into a validated delivery target.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::client::TlsParameters;
use lettre::transport::smtp::extension::ClientId;
use secrecy::SecretString;
use tokio_rustls::rustls;
use url::{Host, Url};

/// Tuning for a [`crate::Mailer`].
#[derive(Debug, Clone)]
pub struct MailerOptions {
    /// The most SMTP connections open at once (in use plus idle). Default 8.
    pub pool_size: usize,
    /// The limit for each step: connecting, the TLS handshake, each SMTP command and the message
    /// body. Default 30 s.
    pub timeout: Duration,
    /// Pooled connections idle longer than this are closed rather than reused; keep it below
    /// the server's own idle timeout. Default 30 s.
    pub idle_timeout: Duration,
    /// The name sent with EHLO. `None` uses the URL's path (`smtp://host/mx.example.com`, as
    /// lettre does), else this machine's hostname.
    pub hello_name: Option<String>,
    /// Accept a URL that would send its password over a connection that may stay unencrypted
    /// (`smtp://user:pass@host` or `?tls=opportunistic`) to a host that is not loopback. Off by
    /// default: anyone on the path could read the password. Default false.
    pub allow_plaintext_auth: bool,
}

impl Default for MailerOptions {
    fn default() -> Self {
        Self {
            pool_size: 8,
            timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            hello_name: None,
            allow_plaintext_auth: false,
        }
    }
}

/// Why an SMTP URL or the mailer options were refused. The messages never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not a URL at all.
    #[error(
        "the SMTP URL cannot be parsed as a URL ({reason}); expected smtp://[user:pass@]host[:port], smtps://... or file:///absolute/dir"
    )]
    Malformed {
        /// The parser's complaint, a fixed phrase that never quotes the input.
        reason: url::ParseError,
    },
    /// The URL parses but says something Herald cannot use. `url` has its password masked.
    #[error("the SMTP URL {url} {problem}")]
    Invalid {
        /// The URL with any password replaced by `***`.
        url: String,
        /// A sentence fragment saying what is wrong and what to write instead.
        problem: String,
    },
    /// The TLS client configuration could not be built for this host.
    #[error("the SMTP URL {url} names a host that TLS cannot verify")]
    Tls {
        /// The URL with any password replaced by `***`.
        url: String,
        /// lettre's error.
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// A [`MailerOptions`] value is out of range.
    #[error("the mailer options are invalid: {problem}")]
    Options {
        /// What is wrong.
        problem: String,
    },
}

/// Where mail goes.
#[derive(Debug)]
pub(crate) enum Target {
    Smtp(SmtpTarget),
    File(PathBuf),
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// `smtp://`: plain text.
    Plain,
    /// `smtp://...?tls=opportunistic`: STARTTLS when the server offers it.
    StartTlsOpportunistic,
    /// `smtp://...?tls=required`: STARTTLS or fail.
    StartTlsRequired,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

/// Where a valid SMTP URL sends mail, as far as checks made at startup need to know
/// (`HERALD_ENV=production` refuses plain text to a remote host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// `file:///dir`: `.eml` files in a local directory.
    Outbox,
    /// An SMTP server.
    Smtp {
        /// Every connection is encrypted: `smtps://` or `?tls=required`. Plain `smtp://` and
        /// `?tls=opportunistic` (which falls back to plain text) are not.
        encrypted: bool,
        /// The host is `localhost`, in 127.0.0.0/8 or `::1`.
        loopback: bool,
    },
}

/// Checks `url` and `opts` exactly as [`crate::Mailer::from_url`] does, without building a
/// mailer, and says where the mail would go.
pub fn check_url(url: &str, opts: &MailerOptions) -> Result<Destination, ConfigError> {
    Ok(match parse(url, opts)? {
        Target::File(_) => Destination::Outbox,
        Target::Smtp(target) => Destination::Smtp {
            encrypted: target.security.is_encrypted(),
            loopback: target.loopback,
        },
    })
}

impl Security {
    /// Whether every session is encrypted before AUTH and the mail transaction.
    fn is_encrypted(self) -> bool {
        matches!(self, Security::Implicit | Security::StartTlsRequired)
    }
}

/// Whether `host` is this machine: `localhost`, 127.0.0.0/8 or `::1`.
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        // `smtp://` is not a special scheme to the URL parser: an IPv4 host stays a "domain".
        Host::Domain(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// A validated SMTP server to deliver to.
pub(crate) struct SmtpTarget {
    /// The host to connect to and to verify in TLS; IPv6 without brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) security: Security,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<SecretString>,
    pub(crate) hello: ClientId,
    /// For STARTTLS (lettre upgrades the stream itself).
    pub(crate) starttls: Option<TlsParameters>,
    /// For `smtps://` (we wrap the stream ourselves to keep TCP_NODELAY).
    pub(crate) implicit_tls: Option<Arc<rustls::ClientConfig>>,
    /// `host:port` for messages, brackets around IPv6.
    pub(crate) server: String,
    /// The URL as `describe` shows it: no password.
    pub(crate) display: String,
    /// The host is this machine (see [`is_loopback`]).
    pub(crate) loopback: bool,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTarget")
            .field("url", &self.display)
            .field("hello", &self.hello)
            .finish_non_exhaustive()
    }
}

const SMTP_PORT: u16 = 25;
const SUBMISSION_PORT: u16 = 587;
const SUBMISSIONS_PORT: u16 = 465;

pub(crate) fn validate_options(opts: &MailerOptions) -> Result<(), ConfigError> {
    let problem = if opts.pool_size == 0 {
        "pool_size must be at least 1"
    } else if opts.timeout.is_zero() {
        "timeout must be longer than zero"
    } else if opts
        .hello_name
        .as_deref()
        .is_some_and(|name| !valid_hello(name))
    {
        "hello_name must be a domain name or an address literal, without spaces"
    } else {
        return Ok(());
    };
    Err(ConfigError::Options {
        problem: problem.to_owned(),
    })
}

fn valid_hello(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.bytes().all(|b| b.is_ascii_graphic())
}

/// The URL with its password masked, safe for messages and logs.
fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

fn invalid(url: &Url, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        url: redacted(url),
        problem: problem.into(),
    }
}

pub(crate) fn parse(raw: &str, opts: &MailerOptions) -> Result<Target, ConfigError> {
    validate_options(opts)?;
    let url = Url::parse(raw.trim()).map_err(|reason| ConfigError::Malformed { reason })?;
    match url.scheme() {
        "smtp" | "smtps" => parse_smtp(&url, opts).map(Target::Smtp),
        "file" => parse_file(&url).map(Target::File),
        other => Err(invalid(
            &url,
            format!("uses the scheme `{other}`; use smtp://, smtps:// or file://"),
        )),
    }
}

fn parse_file(url: &Url) -> Result<PathBuf, ConfigError> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(url, "must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(url, "must not have a query or fragment"));
    }
    match url.host_str() {
        None | Some("") | Some("localhost") => {}
        Some(_) => {
            return Err(invalid(
                url,
                "names a host; write an absolute path with three slashes, file:///var/herald/outbox",
            ));
        }
    }
    let path = url
        .to_file_path()
        .map_err(|()| invalid(url, "does not name an absolute local directory"))?;
    if path.as_os_str().len() <= 1 {
        return Err(invalid(
            url,
            "names the root directory; give a directory for the outbox",
        ));
    }
    Ok(path)
}

fn parse_smtp(url: &Url, opts: &MailerOptions) -> Result<SmtpTarget, ConfigError> {
    let host = match url.host() {
        Some(Host::Domain(domain)) if !domain.is_empty() => domain.to_owned(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(invalid(url, "has no host; write smtp://host:port")),
    };
    if url.fragment().is_some() {
        return Err(invalid(url, "must not have a #fragment"));
    }
    let mut tls = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "tls" if tls.is_none() => tls = Some(value.into_owned()),
            "tls" => return Err(invalid(url, "gives tls= more than once")),
            other => {
                return Err(invalid(
                    url,
                    format!("has the unknown parameter `{other}`; only tls= is understood"),
                ));
            }
        }
    }
    let (security, default_port) = match (url.scheme(), tls.as_deref()) {
        ("smtp", None) => (Security::Plain, SMTP_PORT),
        ("smtp", Some("opportunistic")) => (Security::StartTlsOpportunistic, SUBMISSION_PORT),
        ("smtp", Some("required")) => (Security::StartTlsRequired, SUBMISSION_PORT),
        ("smtp", Some(other)) => {
            return Err(invalid(
                url,
                format!(
                    "has tls={other}; use tls=required or tls=opportunistic (or smtps:// for implicit TLS)"
                ),
            ));
        }
        (_, None) => (Security::Implicit, SUBMISSIONS_PORT),
        (_, Some(_)) => {
            return Err(invalid(
                url,
                "combines smtps:// with tls=; smtps:// always uses implicit TLS, so drop tls=",
            ));
        }
    };
    let port = url.port().unwrap_or(default_port);
    if port == 0 {
        return Err(invalid(url, "has port 0"));
    }
    let loopback = url.host().is_some_and(|h| is_loopback(&h));

    let decode = |part: &str, what: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| {
                invalid(
                    url,
                    format!("has a {what} that is not valid UTF-8 once percent-decoded"),
                )
            })
    };
    let (username, password) = match (url.username(), url.password()) {
        ("", None) => (None, None),
        ("", Some(_)) => return Err(invalid(url, "has a password but no user name")),
        (_, None) => {
            return Err(invalid(
                url,
                "has a user name but no password; write smtp://user:password@host",
            ));
        }
        (user, Some(pass)) => (
            Some(decode(user, "user name")?),
            Some(SecretString::from(decode(pass, "password")?)),
        ),
    };

    let path_name = url.path().trim_matches('/');
    let hello = match (&opts.hello_name, path_name) {
        (Some(name), _) => ClientId::Domain(name.clone()),
        (None, "") => ClientId::default(),
        (None, name) => {
            let name = decode(name, "path")?;
            if !valid_hello(&name) || name.contains('/') {
                return Err(invalid(
                    url,
                    "has a path that is not a valid EHLO name; the path, if any, must be one domain name",
                ));
            }
            ClientId::Domain(name)
        }
    };

    if password.is_some() && !security.is_encrypted() && !loopback && !opts.allow_plaintext_auth {
        return Err(invalid(
            url,
            "would send its password to a remote host over a connection that may not be \
             encrypted; use smtps:// or ?tls=required, or allow plain-text AUTH explicitly \
             (HERALD_SMTP_ALLOW_PLAINTEXT_AUTH=true)",
        ));
    }

    let starttls = match security {
        Security::StartTlsOpportunistic | Security::StartTlsRequired => Some(
            TlsParameters::new(host.clone()).map_err(|source| ConfigError::Tls {
                url: redacted(url),
                source,
            })?,
        ),
        _ => None,
    };
    let implicit_tls = match security {
        Security::Implicit => Some(
            crate::connection::implicit_tls_config()
                .map_err(|problem| invalid(url, format!("cannot use TLS: {problem}")))?,
        ),
        _ => None,
    };

    let server = match url.host() {
        Some(Host::Ipv6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    };
    let mut display = format!("{}://", url.scheme());
    if !url.username().is_empty() {
        display.push_str(url.username());
        display.push('@');
    }
    display.push_str(&server);
    if let Some(tls) = &tls {
        display.push_str("?tls=");
        display.push_str(tls);
    }
    Ok(SmtpTarget {
        host,
        port,
        security,
        username,
        password,
        hello,
        starttls,
        implicit_tls,
        server,
        display,
        loopback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(raw: &str) -> SmtpTarget {
        match parse(raw, &MailerOptions::default()) {
            Ok(Target::Smtp(target)) => target,
            other => panic!("{raw}: {other:?}"),
        }
    }

    fn error(raw: &str) -> String {
        match parse(raw, &MailerOptions::default()) {
            Err(error) => error.to_string(),
            Ok(target) => panic!("{raw} was accepted: {target:?}"),
        }
    }

    #[test]
    fn ports_and_security_follow_lettres_conventions() {
        let cases = [
            ("smtp://mail.example.com", 25, Security::Plain),
            ("smtp://mail.example.com:2525", 2525, Security::Plain),
            (
                "smtp://mail.example.com?tls=required",
                587,
                Security::StartTlsRequired,
            ),
            (
                "smtp://mail.example.com?tls=opportunistic",
                587,
                Security::StartTlsOpportunistic,
            ),
            (
                "smtp://mail.example.com:25?tls=required",
                25,
                Security::StartTlsRequired,
            ),
            ("smtps://mail.example.com", 465, Security::Implicit),
            ("smtps://mail.example.com:2465", 2465, Security::Implicit),
            ("SMTP://127.0.0.1:1025", 1025, Security::Plain),
        ];
        for (raw, port, security) in cases {
            let target = smtp(raw);
            assert_eq!((target.port, target.security), (port, security), "{raw}");
        }
    }

    #[test]
    fn credentials_are_percent_decoded_and_never_displayed() {
        let target = smtp("smtp://us%40er:p%40ss%3Aw0rd@127.0.0.1:2525");
        assert_eq!(target.username.as_deref(), Some("us@er"));
        use secrecy::ExposeSecret;
        assert_eq!(
            target
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned()),
            Some("p@ss:w0rd".to_owned())
        );
        assert_eq!(target.display, "smtp://us%40er@127.0.0.1:2525");
        assert!(!format!("{target:?}").contains("w0rd"));
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets_only_for_display() {
        let target = smtp("smtp://[::1]:2525");
        assert_eq!(target.host, "::1");
        assert_eq!(target.server, "[::1]:2525");
    }

    #[test]
    fn the_url_path_names_the_ehlo_client_unless_options_do() {
        let target = smtp("smtp://127.0.0.1/mx.herald.test");
        assert_eq!(target.hello, ClientId::Domain("mx.herald.test".to_owned()));
        let opts = MailerOptions {
            hello_name: Some("opt.herald.test".to_owned()),
            ..MailerOptions::default()
        };
        let Ok(Target::Smtp(target)) = parse("smtp://127.0.0.1/mx.herald.test", &opts) else {
            panic!("accepted");
        };
        assert_eq!(target.hello, ClientId::Domain("opt.herald.test".to_owned()));
    }

    #[test]
    fn file_urls_name_an_absolute_directory() {
        let Ok(Target::File(path)) = parse("file:///tmp/herald-outbox", &MailerOptions::default())
        else {
            panic!("file URL refused");
        };
        assert_eq!(path, PathBuf::from("/tmp/herald-outbox"));
    }

    #[test]
    fn bad_urls_are_refused_with_a_sentence_and_no_password() {
        let cases = [
            ("not a url", "cannot be parsed"),
            ("http://host", "uses the scheme `http`"),
            ("smtp://", "has no host"),
            ("smtp://h?tls=yes", "has tls=yes"),
            ("smtp://h?tls=required&tls=required", "more than once"),
            ("smtp://h?pool=3", "unknown parameter `pool`"),
            ("smtps://h?tls=required", "drop tls="),
            ("smtp://h:0", "port 0"),
            ("smtp://:hunter2@h", "password but no user name"),
            ("smtp://user@h", "no password"),
            ("smtp://user:hunter2@h/a/b", "not a valid EHLO name"),
            ("smtp://user:hunter2@h?x=1", "smtp://user:***@h?x=1"),
            ("file://host/dir", "names a host"),
            ("file:///", "root directory"),
            ("file://user:hunter2@localhost/x", "cannot be parsed"),
            ("smtp://h:99999", "invalid port number"),
            ("file:///x?y=1", "query"),
        ];
        for (raw, expected) in cases {
            let message = error(raw);
            assert!(message.contains(expected), "{raw}: {message}");
            assert!(!message.contains("hunter2"), "{raw}: {message}");
        }
    }

    #[test]
    fn a_password_for_a_remote_host_needs_an_encrypted_connection() {
        for raw in [
            "smtp://user:hunter2@mail.example.com",
            "smtp://user:hunter2@mail.example.com:587?tls=opportunistic",
            "smtp://user:hunter2@10.0.0.5:2525",
            "smtp://user:hunter2@[2001:db8::1]:25",
        ] {
            let message = error(raw);
            assert!(message.contains("may not be encrypted"), "{raw}: {message}");
            assert!(
                message.contains("HERALD_SMTP_ALLOW_PLAINTEXT_AUTH"),
                "{message}"
            );
            assert!(!message.contains("hunter2"), "{raw}: {message}");
        }
        for raw in [
            "smtp://user:hunter2@mail.example.com?tls=required",
            "smtps://user:hunter2@mail.example.com",
            // Loopback: a local relay, nothing crosses the network.
            "smtp://user:hunter2@localhost:1025",
            "smtp://user:hunter2@127.0.0.2:1025",
            "smtp://user:hunter2@[::1]:1025",
            // No password, nothing to leak.
            "smtp://mail.example.com",
        ] {
            smtp(raw);
        }
    }

    #[test]
    fn plain_text_auth_to_a_remote_host_can_be_allowed_explicitly() {
        let opts = MailerOptions {
            allow_plaintext_auth: true,
            ..MailerOptions::default()
        };
        for raw in [
            "smtp://user:hunter2@mail.example.com",
            "smtp://user:hunter2@mail.example.com?tls=opportunistic",
        ] {
            assert!(parse(raw, &opts).is_ok(), "{raw}");
        }
    }

    #[test]
    fn check_url_says_whether_mail_leaves_the_machine_encrypted() {
        let check = |raw| check_url(raw, &MailerOptions::default()).unwrap();
        assert_eq!(check("file:///tmp/outbox"), Destination::Outbox);
        for (raw, encrypted, loopback) in [
            ("smtp://127.0.0.1:1025", false, true),
            ("smtp://localhost:1025", false, true),
            ("smtp://mail.example.com", false, false),
            ("smtp://mail.example.com?tls=opportunistic", false, false),
            ("smtp://mail.example.com?tls=required", true, false),
            ("smtps://[::1]", true, true),
        ] {
            assert_eq!(
                check(raw),
                Destination::Smtp {
                    encrypted,
                    loopback
                },
                "{raw}"
            );
        }
        assert!(check_url("smtp://h?tls=yes", &MailerOptions::default()).is_err());
    }

    #[test]
    fn options_out_of_range_are_refused() {
        let cases = [
            MailerOptions {
                pool_size: 0,
                ..MailerOptions::default()
            },
            MailerOptions {
                timeout: Duration::ZERO,
                ..MailerOptions::default()
            },
            MailerOptions {
                hello_name: Some("bad name\r\nRSET".to_owned()),
                ..MailerOptions::default()
            },
        ];
        for opts in cases {
            assert!(
                matches!(parse("smtp://h", &opts), Err(ConfigError::Options { .. })),
                "{opts:?}"
            );
        }
    }
}
