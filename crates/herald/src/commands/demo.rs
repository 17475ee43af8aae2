//! `herald demo`: Herald's main job on local defaults. It migrates, seeds a branded organization
//! and its users, runs a worker and `herald serve` in-process, publishes one job of each type in
//! several locales (plus one invalid job, to show dead-lettering), waits for every one to finish,
//! then clicks one verification link itself over HTTP (the user is verified, the welcome email
//! arrives once) and prints where each email is and the links to open. With `--keep-serving` it
//! stays up so that a person can open those links in a browser.
//!
//! The demo never touches real work: it runs on a vhost and a database of its own, derived from
//! the configured ones (`/` becomes `herald-demo`, `herald` becomes `herald_demo`) and created if
//! missing, so a job queued for the real worker is never consumed, and the real ledger and
//! organizations are never written.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use herald_app::Application;
use herald_domain::{EmailJob, EnrollmentFactor, JobKind};
use herald_mailsink::{MailSink, SinkOptions};
use herald_store::{Branding, Client, NewUser, Organization, Store};
use herald_worker::CancellationToken;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::cli::DemoArgs;
use crate::commands::demo_redeem::{self, Redeemed};
use crate::commands::{redact_amqp_urls, redact_url};
use crate::settings::Settings;

pub const DEMO_ORG: &str = "org_acme";
/// The demo clicks this user's verification link itself.
const CLICKED_USER: &str = "auth0|camille";
const CLICKED: &str = "Acme Corp (clicked)";
pub const DEMO_CLIENT: &str = "acme-portal";
/// The demo's vhost when the configured one is the default vhost `/`.
pub const DEMO_VHOST: &str = "herald-demo";

/// What happened to one demo job.
#[derive(Debug, Clone)]
pub struct DemoRow {
    pub job_id: String,
    pub kind: String,
    pub audience: String,
    pub status: String,
    pub locale: Option<String>,
    pub dead_reason: Option<String>,
    pub subject: Option<String>,
    pub link: Option<String>,
    pub eml: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DemoReport {
    pub rows: Vec<DemoRow>,
    /// Where the embedded SMTP server wrote the mail (None when HERALD_SMTP_URL was set).
    pub outbox: Option<PathBuf>,
    pub smtp: String,
    /// The demo's own RabbitMQ vhost (never the configured one).
    pub vhost: String,
    /// The demo's own database name (never the configured one).
    pub database: String,
    /// The demo's AMQP URL(s) and database URL, passwords redacted, for printing.
    pub amqp_shown: String,
    pub database_shown: String,
    /// Where the demo's `herald serve` listens (the links' host).
    pub serving: String,
    /// The demo's own click on Camille's verification link.
    pub redemption: Option<Redemption>,
}

/// What the demo's click on a verification link did.
#[derive(Debug, Clone)]
pub struct Redemption {
    pub user_id: String,
    pub http: Result<Redeemed, String>,
    /// The user's `email_verified` afterwards.
    pub verified: bool,
    /// Welcome emails the user received (1: once, as it must be).
    pub welcome_emails: usize,
}

/// The demo's running services, kept until [`Running::stop`].
struct Running {
    shutdown: CancellationToken,
    worker: tokio::task::JoinHandle<Result<(), herald_worker::WorkerError>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.worker.await {
            Ok(result) => result.context("the demo worker failed")?,
            Err(e) => anyhow::bail!("the demo worker panicked: {e}"),
        }
        match self.server.await {
            Ok(result) => result.context("the demo's herald serve failed")?,
            Err(e) => anyhow::bail!("the demo's herald serve panicked: {e}"),
        }
        Ok(())
    }
}

pub async fn run(settings: &Settings, args: DemoArgs) -> anyhow::Result<()> {
    let (report, running, sink) = start_demo(settings, &args.outbox).await?;
    print_report(&report);
    if args.keep_serving {
        println!();
        println!(
            "Serving the links above on {} until Ctrl-C (the worker keeps sending what they \
             trigger).",
            report.serving
        );
        crate::commands::worker::cancel_on_signal(running.shutdown.clone()).await;
    }
    running.stop().await?;
    if let Some(sink) = sink {
        sink.stop().await;
    }
    if let Some(redemption) = &report.redemption
        && (redemption.http.is_err() || !redemption.verified || redemption.welcome_emails != 1)
    {
        anyhow::bail!("the demo's own click on a verification link did not work; see above");
    }
    let failed = report
        .rows
        .iter()
        .filter(|r| r.status != "sent" && r.audience != "invalid on purpose")
        .count();
    if failed > 0 {
        anyhow::bail!("{failed} demo job(s) were not delivered; see the table above");
    }
    Ok(())
}

/// The demo's settings: `settings` moved to a vhost and a database of the demo's own (see the
/// module doc), with a short shutdown. Everything else (SMTP, templates, ...) is kept.
pub fn demo_settings(settings: &Settings) -> anyhow::Result<Settings> {
    let mut demo = settings.clone();
    demo.amqp_url = herald_queue::connect::split_urls(settings.amqp_url.expose_secret())
        .map(|node| {
            let mut url = Url::parse(node).context("HERALD_AMQP_URL is not a URL")?;
            let vhost = demo_vhost(&vhost_of(&url));
            url.set_path(&format!("/{}", encode(&vhost)));
            Ok(url.to_string())
        })
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(",")
        .into();
    let mut db = Url::parse(settings.database_url.expose_secret())
        .context("HERALD_DATABASE_URL is not a URL")?;
    let name = database_of(&db);
    db.set_path(&format!("/{}_demo", encode(&name)));
    demo.database_url = SecretString::from(db.to_string());
    demo.shutdown_timeout = Duration::from_secs(10);
    demo.metrics_addr = None;
    Ok(demo)
}

/// The vhost an AMQP URL names (`/` when its path is empty).
fn vhost_of(url: &Url) -> String {
    let path = url.path().strip_prefix('/').unwrap_or(url.path());
    let vhost = decode(path);
    if vhost.is_empty() { "/".into() } else { vhost }
}

fn demo_vhost(vhost: &str) -> String {
    if vhost == "/" {
        DEMO_VHOST.into()
    } else {
        format!("{vhost}-demo")
    }
}

fn database_of(url: &Url) -> String {
    decode(url.path().trim_start_matches('/'))
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Percent-encodes a URL path segment: everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// Makes sure the demo's vhost exists: it connects, and when that fails, creates the vhost with
/// `rabbitmqctl` (RabbitMQ on this machine) and grants the URL's user every permission on it.
async fn ensure_vhost(amqp_url: &str) -> anyhow::Result<()> {
    let refused =
        match herald_queue::connect::connect_without_recovery(amqp_url, "herald demo").await {
            Ok(conn) => {
                let _ = conn.close(200, "vhost checked".into()).await;
                return Ok(());
            }
            Err(e) => e,
        };
    let first = herald_queue::connect::split_urls(amqp_url)
        .next()
        .and_then(|u| Url::parse(u).ok())
        .context("HERALD_AMQP_URL is not a URL")?;
    let vhost = vhost_of(&first);
    let user = match decode(first.username()) {
        u if u.is_empty() => "guest".to_string(),
        u => u,
    };
    let created = tokio::task::spawn_blocking({
        let (vhost, user) = (vhost.clone(), user.clone());
        move || {
            rabbitmqctl(&["add_vhost", &vhost])?;
            rabbitmqctl(&["set_permissions", "-p", &vhost, &user, ".*", ".*", ".*"])
        }
    })
    .await
    .context("the rabbitmqctl task panicked")?;
    if let Err(why) = created {
        bail!(
            "the demo runs on a RabbitMQ vhost of its own, {vhost:?}, and could not reach it              ({refused}) nor create it ({why}). Create it with `rabbitmqctl add_vhost {vhost}` and              `rabbitmqctl set_permissions -p {vhost} {user} '.*' '.*' '.*'` (with Docker Compose:              `docker compose exec rabbitmq rabbitmqctl ...`), then run the demo again"
        );
    }
    println!("Created the demo's RabbitMQ vhost {vhost:?}.");
    Ok(())
}

fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "rabbitmqctl {} failed: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs the whole demo and stops its services (what the tests call).
pub async fn run_demo(settings: &Settings, outbox_root: &Path) -> anyhow::Result<DemoReport> {
    let (report, running, sink) = start_demo(settings, outbox_root).await?;
    running.stop().await?;
    if let Some(sink) = sink {
        sink.stop().await;
    }
    Ok(report)
}

/// Runs the demo and leaves its worker, `herald serve` and mail capture running.
async fn start_demo(
    settings: &Settings,
    outbox_root: &Path,
) -> anyhow::Result<(DemoReport, Running, Option<MailSink>)> {
    let mut demo = demo_settings(settings)?;
    ensure_vhost(demo.amqp_url.expose_secret()).await?;
    let listener = tokio::net::TcpListener::bind(demo.http_addr)
        .await
        .with_context(|| {
            format!(
                "HERALD_HTTP_ADDR {}: the demo's herald serve cannot listen there (is another \
                 herald serve running? stop it, or set HERALD_HTTP_ADDR and HERALD_PUBLIC_URL)",
                demo.http_addr
            )
        })?;
    let bound = listener.local_addr()?;
    if demo.http_addr.port() == 0 {
        // A free port was asked for: the links must point at the one given.
        demo.public_url = Url::parse(&format!("http://{bound}/"))?;
    }

    let (sink, outbox) = if demo.smtp_url.is_none() {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let dir = outbox_root.join(format!("run-{stamp}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let sink = MailSink::start_with(SinkOptions {
            outbox_dir: Some(dir.clone()),
            keep_in_memory: true,
            ..SinkOptions::default()
        })
        .await
        .context("starting the embedded SMTP server")?;
        demo.smtp_url = Some(SecretString::from(sink.url()));
        (Some(sink), Some(dir))
    } else {
        (None, None)
    };

    let app = Application::build(demo.clone()).await?;
    let store = app.store().clone();
    seed(&store).await?;
    let smtp = app.mailer().describe();
    let worker = app.worker();
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { worker.run(shutdown).await }
    });
    let api = app
        .api()
        .await
        .context("starting the demo's herald serve")?;
    let pages = app.pages(&api);
    let server = tokio::spawn({
        let shutdown = shutdown.clone();
        herald_api::serve(
            listener,
            api,
            pages,
            async move { shutdown.cancelled().await },
            Duration::from_secs(5),
        )
    });
    let running = Running {
        shutdown,
        worker,
        server,
    };

    let producer = app.producer().await.context("connecting to RabbitMQ")?;
    let mut planned = Vec::new();
    for (audience, job) in demo_jobs()? {
        producer
            .publish(&job)
            .await
            .context("publishing a demo job")?;
        planned.push((
            job.id.to_string(),
            job.kind().type_name().to_string(),
            audience,
        ));
    }
    let invalid_id = herald_domain::JobId::generate().to_string();
    let invalid = format!(
        r#"{{"id":"{invalid_id}","type":"welcome_email","user":{{"user_id":"demo|broken"}}}}"#
    );
    producer
        .publish_raw(
            JobKind::Welcome.routing_key(),
            &invalid_id,
            invalid.as_bytes(),
        )
        .await
        .context("publishing the invalid demo job")?;
    planned.push((
        invalid_id,
        "welcome_email".into(),
        "invalid on purpose".into(),
    ));
    producer.close().await;

    let deadline = Instant::now() + Duration::from_secs(90);
    let mut rows = Vec::new();
    for (job_id, kind, audience) in planned {
        let job = loop {
            let job = store.job(&job_id).await?;
            let done = job
                .as_ref()
                .is_some_and(|j| j.status == "sent" || j.status == "dead");
            if done || Instant::now() > deadline {
                break job;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        rows.push(DemoRow {
            job_id,
            kind,
            audience,
            status: job
                .as_ref()
                .map_or_else(|| "not seen".to_string(), |j| j.status.clone()),
            locale: job.as_ref().and_then(|j| j.locale.clone()),
            dead_reason: job.as_ref().and_then(|j| {
                j.dead_reason
                    .as_ref()
                    .map(|r| format!("{r}: {}", j.last_error.clone().unwrap_or_default()))
            }),
            subject: None,
            link: None,
            eml: None,
        });
    }

    if let Some(sink) = &sink {
        for mail in sink.messages() {
            let parsed = mail.parsed();
            let Some(job_id) = parsed.header("X-Herald-Job-Id") else {
                continue;
            };
            if let Some(row) = rows.iter_mut().find(|r| r.job_id == job_id.trim()) {
                row.subject = parsed.subject();
                row.link = parsed.text().as_deref().and_then(find_link);
                row.eml = mail.path.clone();
            }
        }
    }
    let redemption = match (&sink, rows.iter().find(|r| r.audience == CLICKED)) {
        (Some(sink), Some(row)) => Some(click(&store, sink, row).await?),
        _ => None,
    };
    let first = herald_queue::connect::split_urls(demo.amqp_url.expose_secret())
        .next()
        .and_then(|u| Url::parse(u).ok());
    let report = DemoReport {
        rows,
        outbox,
        smtp,
        vhost: first.as_ref().map(vhost_of).unwrap_or_default(),
        database: Url::parse(demo.database_url.expose_secret())
            .map(|u| database_of(&u))
            .unwrap_or_default(),
        amqp_shown: redact_amqp_urls(demo.amqp_url.expose_secret()),
        database_shown: redact_url(demo.database_url.expose_secret()),
        serving: demo.public_url.to_string(),
        redemption,
    };
    Ok((report, running, sink))
}

/// Clicks `row`'s verification link over HTTP, then checks what it did: the user is verified,
/// and the welcome email it queued arrives, once.
async fn click(store: &Store, sink: &MailSink, row: &DemoRow) -> anyhow::Result<Redemption> {
    let user_id = CLICKED_USER.to_owned();
    let http = match row.link.clone() {
        Some(link) => tokio::task::spawn_blocking(move || demo_redeem::redeem(&link))
            .await?
            .map_err(|e| format!("{e:#}")),
        None => Err("its email carried no link".to_owned()),
    };
    let welcome_id = herald_domain::JobId::welcome(&user_id).to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.is_ok() && Instant::now() < deadline {
        let sent = store
            .job(&welcome_id)
            .await?
            .is_some_and(|j| j.status == "sent");
        if sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let welcome_emails = sink
        .messages()
        .iter()
        .filter(|m| {
            m.parsed()
                .header("X-Herald-Job-Id")
                .is_some_and(|id| id.trim() == welcome_id)
        })
        .count();
    let verified = store
        .get_user(&user_id)
        .await?
        .is_some_and(|u| u.email_verified);
    Ok(Redemption {
        user_id,
        http,
        verified,
        welcome_emails,
    })
}

/// Upserts the demo's branded organization and its client.
async fn seed(store: &Store) -> anyhow::Result<()> {
    store
        .upsert_organization(&Organization {
            id: DEMO_ORG.into(),
            name: "acme".into(),
            display_name: "Acme Corp".into(),
            branding: Branding {
                logo_url: Some("https://acme.example/logo.png".into()),
                primary_color: Some("#e11d48".into()),
                page_background: Some("#fff1f2".into()),
            },
            default_locale: Some("fr".into()),
            from_address: Some("Acme Corp <no-reply@acme.example>".into()),
        })
        .await?;
    store
        .upsert_client(&Client {
            id: DEMO_CLIENT.into(),
            name: "Acme Portal".into(),
            login_uri: Some("https://portal.acme.example/login".into()),
        })
        .await?;
    // The jobs' users, afresh on every run (unverified, no password, no welcome email yet), so
    // that their links work, and the demo's click shows a first verification.
    for (_, job) in demo_jobs()? {
        let user_id = job.user.user_id.to_string();
        store.delete_user(&user_id).await?;
        store
            .create_user(&NewUser {
                user_id,
                email: Some(job.user.email.to_string()),
                name: job.user.name.clone(),
                connection: "Username-Password-Authentication".into(),
                ..NewUser::default()
            })
            .await?;
    }
    Ok(())
}

fn demo_jobs() -> anyhow::Result<Vec<(String, EmailJob)>> {
    use JobKind::*;
    let acme = "Acme Corp (branded)".to_string();
    let plain = "plain user".to_string();
    let jobs = vec![
        (
            CLICKED.to_owned(),
            EmailJob::builder(Verification, CLICKED_USER, "camille@acme.example")
                .name("Camille Dubois")
                .organization_id(DEMO_ORG)
                .build()?,
        ),
        (
            acme.clone(),
            EmailJob::builder(PasswordChange, "auth0|jonas", "jonas@acme.example")
                .name("Jonas Weber")
                .organization_id(DEMO_ORG)
                .email_locale("de")
                .mark_email_as_verified(true)
                .build()?,
        ),
        (
            acme.clone(),
            EmailJob::builder(Enrollment, "auth0|hanako", "hanako@acme.example")
                .name("山田 花子")
                .organization_id(DEMO_ORG)
                .user_locale("ja-JP")
                .factor(EnrollmentFactor::Otp)
                .build()?,
        ),
        (
            acme.clone(),
            EmailJob::builder(MfaCode, "auth0|camille", "camille@acme.example")
                .name("Camille Dubois")
                .organization_id(DEMO_ORG)
                .email_locale("fr")
                .code("042917")
                .ttl_sec(600)
                .build()?,
        ),
        (
            acme,
            EmailJob::builder(Welcome, "auth0|lucia", "lucia@acme.example")
                .name("Lucía García")
                .organization_id(DEMO_ORG)
                .client_id(DEMO_CLIENT)
                .email_locale("es")
                .build()?,
        ),
        (
            plain.clone(),
            EmailJob::builder(Verification, "auth0|joao", "joao@example.com")
                .name("João Silva")
                .email_locale("pt-BR")
                .result_url("https://app.example.com/verified")
                .build()?,
        ),
        (
            plain.clone(),
            EmailJob::builder(PasswordChange, "auth0|ana", "ana@example.com")
                .name("Ana Smith")
                .ttl_sec(3600)
                .build()?,
        ),
        (
            plain.clone(),
            EmailJob::builder(Enrollment, "auth0|marie", "marie@example.com")
                .email_locale("fr-CA")
                .factor(EnrollmentFactor::Email)
                .build()?,
        ),
        (
            plain.clone(),
            EmailJob::builder(Welcome, "auth0|sam", "sam@example.com")
                .name("Sam Taylor")
                .build()?,
        ),
        (
            plain,
            EmailJob::builder(MfaCode, "auth0|sam", "sam@example.com")
                .name("Sam Taylor")
                .code("318560")
                .build()?,
        ),
    ];
    Ok(jobs)
}

/// The first ticket or login link in a text body.
fn find_link(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|w| w.starts_with("http") && (w.contains("/u/") || w.contains("login")))
        .map(|w| w.trim_end_matches(['.', ',', ')', '>']).to_string())
}

fn print_report(report: &DemoReport) {
    println!();
    println!("Herald demo");
    println!(
        "  It runs on the vhost {:?} and the database {:?} of its own (created if missing), never \
         on the configured ones, so it cannot touch real queued work.",
        report.vhost, report.database
    );
    println!("  RabbitMQ:   {}", report.amqp_shown);
    println!("  PostgreSQL: {}", report.database_shown);
    match &report.outbox {
        Some(dir) => println!(
            "  SMTP:       {} (embedded capture; .eml files in {})",
            report.smtp,
            dir.display()
        ),
        None => println!("  SMTP:       {} (HERALD_SMTP_URL)", report.smtp),
    }
    println!();
    println!(
        "  {:<30} {:<22} {:<20} {:<6} {:<5}",
        "job", "type", "for", "locale", "status"
    );
    for r in &report.rows {
        println!(
            "  {:<30} {:<22} {:<20} {:<6} {:<5}",
            r.job_id,
            r.kind,
            r.audience,
            r.locale.as_deref().unwrap_or("-"),
            r.status
        );
        if let Some(s) = &r.subject {
            println!("      subject: {s}");
        }
        if let Some(l) = &r.link {
            println!("      link:    {l}");
        }
        if let Some(p) = &r.eml {
            println!("      email:   {}", p.display());
        }
        if let Some(reason) = &r.dead_reason {
            println!("      dead-lettered to herald.email.dead: {reason}");
        }
    }
    println!();
    if let Some(r) = &report.redemption {
        println!(
            "The demo opened {}'s verification link itself, over HTTP:",
            r.user_id
        );
        match &r.http {
            Ok(h) => {
                println!(
                    "  GET  -> {} (a page with a button; opening a link uses nothing)",
                    h.page_status
                );
                println!("  POST -> {} {:?}", h.post_status, h.outcome);
                println!(
                    "  GET again -> {} (a ticket is used once; the page says so)",
                    h.again_status
                );
            }
            Err(e) => println!("  it failed: {e}"),
        }
        println!(
            "  email_verified: {}; welcome emails received: {} (sent once per user, ever)",
            r.verified, r.welcome_emails
        );
        println!();
    }
    println!(
        "The links are served by the demo's herald serve at {}; the ticket pages are under /u/.",
        report.serving
    );
    println!(
        "Ticket links exist only in the emails: PostgreSQL keeps their SHA-256 (tickets.token_hash)."
    );
    if report.outbox.is_some() {
        println!("Open an .eml file in any mail client, or read it in a terminal with `cat`.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_jobs_cover_every_kind_and_several_locales() {
        let jobs = demo_jobs().unwrap();
        for kind in JobKind::ALL {
            assert!(
                jobs.iter().filter(|(_, j)| j.kind() == kind).count() >= 2,
                "{kind}"
            );
        }
        assert!(jobs.iter().any(|(_, j)| j.organization_id.is_some()));
        assert!(jobs.iter().any(|(_, j)| j.organization_id.is_none()));
    }

    #[test]
    fn the_demo_runs_on_a_vhost_and_a_database_of_its_own() {
        let local = Settings::local();
        let demo = demo_settings(&local).unwrap();
        assert_eq!(
            demo.amqp_url.expose_secret(),
            "amqp://guest:guest@127.0.0.1:5672/herald-demo"
        );
        assert_eq!(
            demo.database_url.expose_secret(),
            "postgres://postgres@127.0.0.1:5432/herald_demo"
        );

        let mut custom = Settings::local();
        custom.amqp_url = SecretString::from(
            "amqp://u:p@10.0.0.1:5672/prod%2Feu,amqp://u:p@10.0.0.2:5672/prod%2Feu",
        );
        custom.database_url = SecretString::from("postgres://h:pw@db:5432/herald".to_string());
        let demo = demo_settings(&custom).unwrap();
        let vhosts: Vec<String> = herald_queue::connect::split_urls(demo.amqp_url.expose_secret())
            .map(|u| vhost_of(&Url::parse(u).unwrap()))
            .collect();
        assert_eq!(vhosts, ["prod/eu-demo", "prod/eu-demo"]);
        assert!(
            demo.amqp_url.expose_secret().contains("u:p@10.0.0.2:5672"),
            "{}",
            demo.amqp_url.expose_secret()
        );
        assert_eq!(
            demo.database_url.expose_secret(),
            "postgres://h:pw@db:5432/herald_demo"
        );
    }

    #[test]
    fn links_are_found_in_text_bodies() {
        let text = "Hello,\nopen https://id.test/u/reset-password?ticket=abc.\nBye";
        assert_eq!(
            find_link(text).unwrap(),
            "https://id.test/u/reset-password?ticket=abc"
        );
        assert_eq!(find_link("no link here"), None);
    }
}
