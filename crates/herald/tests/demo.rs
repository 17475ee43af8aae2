//! `herald demo` against the real services: it delivers every kind of email, and it never
//! touches real work, because it runs on a vhost and a database of its own.

use std::path::Path;
use std::process::{Command, Stdio};

use herald::commands::{DemoReport, run_demo};
use herald::settings::Settings;
use herald_domain::{EmailJob, JobKind};
use herald_testkit::env::TestEnv;

/// The settings a user would have: the test's vhost and database, and no HERALD_SMTP_URL (the
/// demo then captures mail itself).
fn configured(env: &TestEnv) -> Settings {
    let mut settings = env.settings();
    settings.smtp_url = None;
    // The demo's herald serve on a free port (its links then point there).
    settings.http_addr = "127.0.0.1:0".parse().unwrap();
    settings
}

/// Deletes the vhost and database the demo created for `env`, even when the test fails.
struct DemoLeftovers {
    vhost: String,
    database: String,
}

impl DemoLeftovers {
    fn of(env: &TestEnv) -> Self {
        DemoLeftovers {
            vhost: format!("{}-demo", env.broker.vhost),
            database: format!("{}_demo", env.db.name),
        }
    }
}

impl Drop for DemoLeftovers {
    fn drop(&mut self) {
        let quiet = |cmd: &mut Command| {
            let _ = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet(Command::new("rabbitmqctl").args(["-q", "delete_vhost", &self.vhost]));
        quiet(Command::new("psql").args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database),
        ]));
    }
}

async fn demo(env: &TestEnv, outbox: &Path) -> (DemoReport, DemoLeftovers) {
    let leftovers = DemoLeftovers::of(env);
    let report = run_demo(&configured(env), outbox).await.unwrap();
    (report, leftovers)
}

#[tokio::test]
async fn the_demo_delivers_every_kind_in_several_locales_and_shows_where() {
    let env = TestEnv::new().await.unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let (report, _leftovers) = demo(&env, outbox.path()).await;

    let sent: Vec<_> = report.rows.iter().filter(|r| r.status == "sent").collect();
    assert_eq!(sent.len(), 10, "{:#?}", report.rows);
    let mut kinds: Vec<&str> = sent.iter().map(|r| r.kind.as_str()).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), 5, "every kind");
    let mut locales: Vec<&str> = sent.iter().filter_map(|r| r.locale.as_deref()).collect();
    locales.sort();
    locales.dedup();
    assert!(locales.len() >= 5, "several locales: {locales:?}");
    for row in &sent {
        let path = row
            .eml
            .as_ref()
            .unwrap_or_else(|| panic!("no .eml for {row:?}"));
        assert!(path.starts_with(outbox.path()) && path.exists(), "{path:?}");
        assert!(row.subject.is_some());
    }
    assert!(
        sent.iter()
            .filter(|r| r.kind != "welcome_email" && r.kind != "mfa_code_email")
            .all(|r| r.link.as_deref().is_some_and(|l| l.contains("/u/")))
    );
    // The demo's own click on a verification link, over HTTP: a page, then the verification,
    // then "used"; the user is verified and the welcome email arrived once.
    let redemption = report.redemption.as_ref().expect("the demo clicks a link");
    let http = redemption.http.as_ref().expect("the click works");
    assert_eq!(
        (http.page_status, http.post_status, http.again_status),
        (200, 200, 410),
        "{redemption:?}"
    );
    assert!(redemption.verified, "{redemption:?}");
    assert_eq!(redemption.welcome_emails, 1, "{redemption:?}");

    let dead: Vec<_> = report.rows.iter().filter(|r| r.status == "dead").collect();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .dead_reason
            .as_deref()
            .unwrap()
            .starts_with("invalid_job")
    );
}

#[tokio::test]
async fn a_job_queued_for_the_real_worker_is_untouched_by_a_demo_run() {
    let env = TestEnv::new().await.unwrap();
    // Real work waiting on the configured vhost, with no worker running.
    let real = EmailJob::builder(JobKind::Verification, "u-real", "real@example.com")
        .build()
        .unwrap();
    let producer = env.producer().await;
    producer.publish(&real).await.unwrap();
    producer.close().await;
    assert_eq!(env.broker.depth("herald.email").await, 1);

    let outbox = tempfile::tempdir().unwrap();
    let (report, leftovers) = demo(&env, outbox.path()).await;

    // The demo ran, on its own vhost and database.
    assert_eq!(
        report.rows.iter().filter(|r| r.status == "sent").count(),
        10,
        "{:#?}",
        report.rows
    );
    assert_eq!(report.vhost, leftovers.vhost);
    assert_eq!(report.database, leftovers.database);
    // The real job is still queued, unsent and unrecorded; the real database has no demo data.
    assert_eq!(env.broker.depth("herald.email").await, 1);
    assert!(env.db.store.job(real.id.as_str()).await.unwrap().is_none());
    assert!(
        env.db
            .store
            .get_organization("org_acme")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(env.sink.count(), 0);
    assert!(
        report
            .rows
            .iter()
            .all(|r| r.job_id != real.id.as_str() && r.eml.is_none() == (r.status != "sent"))
    );
}
