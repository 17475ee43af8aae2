//! A whole isolated Herald for one test: its own database, broker vhost and SMTP sink, and
//! workers spawned in-process against them. Workers are built the way `herald worker` builds
//! them, by `herald_app::Application::build` from [`Settings`]: a test changes a field of
//! [`TestEnv::settings`] and spawns (or steps) a worker, it never assembles one.

use std::sync::Arc;
use std::time::Duration;

use herald_app::{Application, Settings};
use herald_mailsink::{CapturedMail, MailSink};
use herald_producer::Producer;
use herald_queue::Topology;
use herald_render::Renderer;
use herald_worker::{CancellationToken, Stepper, WorkerError};
use secrecy::SecretString;
use tokio::task::JoinHandle;

use crate::broker::TestBroker;
use crate::db::TestDb;

/// The public URL test workers build links under.
pub const TEST_PUBLIC_URL: &str = "https://id.herald.test/";
/// Retry tiers of 200 ms and 400 ms so retry tests finish quickly.
pub const TEST_RETRY_DELAYS: [Duration; 2] =
    [Duration::from_millis(200), Duration::from_millis(400)];

/// The settings of a test worker on the given services: [`Settings::local`] with quick retry
/// tiers, links under [`TEST_PUBLIC_URL`], 4 attempts, a 10 s send timeout and shutdown, and no
/// metrics endpoint.
pub fn test_settings(amqp_url: &str, database_url: &str, smtp_url: &str) -> Settings {
    let mut s = Settings::local();
    s.amqp_url = SecretString::from(amqp_url.to_string());
    s.database_url = SecretString::from(database_url.to_string());
    s.smtp_url = Some(SecretString::from(smtp_url.to_string()));
    s.retry_delays = TEST_RETRY_DELAYS.to_vec();
    s.public_url = url::Url::parse(TEST_PUBLIC_URL).expect("static URL");
    // The send timeout is HERALD_SMTP_TIMEOUT plus 5 s: 10 s.
    s.smtp_timeout = Duration::from_secs(5);
    s.shutdown_timeout = Duration::from_secs(10);
    s.max_attempts = 4;
    s.metrics_addr = None;
    s
}

/// Builds the application for `settings`, as `herald worker` does.
///
/// # Panics
/// If it cannot be built (the message says why).
pub async fn build_app(settings: Settings) -> Application {
    Application::build(settings)
        .await
        .unwrap_or_else(|e| panic!("building the test application: {:#}", anyhow::Error::new(e)))
}

/// Starts a worker built from `settings` in the background.
pub async fn spawn_worker(settings: Settings) -> TestWorker {
    let worker = build_app(settings).await.worker();
    let token = CancellationToken::new();
    let handle = tokio::spawn({
        let token = token.clone();
        async move { worker.run(token).await }
    });
    TestWorker { token, handle }
}

pub struct TestEnv {
    pub db: TestDb,
    pub broker: TestBroker,
    pub sink: MailSink,
    pub renderer: Arc<Renderer>,
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("db", &self.db.name)
            .field("vhost", &self.broker.vhost)
            .field("smtp", &self.sink.url())
            .finish()
    }
}

impl TestEnv {
    pub async fn new() -> anyhow::Result<TestEnv> {
        let (db, broker) = tokio::try_join!(TestDb::new(), TestBroker::new())?;
        let sink = MailSink::start().await?;
        let renderer = Arc::new(Renderer::embedded()?);
        Ok(TestEnv {
            db,
            broker,
            sink,
            renderer,
        })
    }

    /// Contract v1's names with [`TEST_RETRY_DELAYS`], as the test workers use them.
    pub fn topology() -> Topology {
        Topology::default().with_retry_delays(TEST_RETRY_DELAYS.to_vec())
    }

    /// [`test_settings`] on this test's vhost, database and sink.
    pub fn settings(&self) -> Settings {
        test_settings(&self.broker.url, &self.db.url, &self.sink.url())
    }

    /// Starts a worker built from `settings` (usually [`TestEnv::settings`], changed) in the
    /// background.
    pub async fn spawn_worker(&self, settings: Settings) -> TestWorker {
        spawn_worker(settings).await
    }

    /// A worker built from `settings` that processes one delivery per
    /// [`Stepper::process_next`] call.
    ///
    /// # Panics
    /// If the worker cannot connect.
    pub async fn stepper(&self, settings: Settings) -> Stepper {
        build_app(settings)
            .await
            .worker()
            .stepper()
            .await
            .unwrap_or_else(|e| panic!("opening a stepped worker session: {e}"))
    }

    pub async fn producer(&self) -> Producer {
        Producer::connect_with(&self.broker.url, Self::topology())
            .await
            .expect("the test producer connects")
    }

    /// Waits for `n` emails; fails the test with what did arrive if they do not.
    pub async fn expect_mail(&self, n: usize) -> Vec<CapturedMail> {
        let mails = self.sink.wait_for(n, Duration::from_secs(20)).await;
        assert!(
            mails.len() >= n,
            "expected {n} email(s), got {}: {:?}",
            mails.len(),
            mails
                .iter()
                .map(|m| m.parsed().subject())
                .collect::<Vec<_>>()
        );
        mails
    }

    /// Waits until the ledger shows `job_id` in `status`.
    pub async fn wait_status(&self, job_id: &str, status: &str) -> herald_store::LedgerJob {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let job = self.db.store.job(job_id).await.expect("ledger readable");
            if let Some(job) = &job
                && job.status == status
            {
                return job.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job_id} never reached {status}; ledger says {job:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A worker running in the background of a test.
#[derive(Debug)]
pub struct TestWorker {
    pub token: CancellationToken,
    handle: JoinHandle<Result<(), WorkerError>>,
}

impl TestWorker {
    /// True once the worker has returned (it gave up, or was stopped).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Stops the worker the way SIGTERM does and returns how it ended.
    pub async fn stop(self) -> Result<(), WorkerError> {
        self.token.cancel();
        self.handle.await.expect("the worker task does not panic")
    }
}

/// A `herald serve` running in the background on a free loopback port.
#[derive(Debug)]
pub struct TestApi {
    pub addr: std::net::SocketAddr,
    pub store: herald_store::Store,
    token: CancellationToken,
    handle: JoinHandle<std::io::Result<()>>,
}

impl TestApi {
    /// Starts the Management API and the ticket pages built from `settings`, as `herald serve`
    /// builds them.
    ///
    /// # Panics
    /// If it cannot be built or bound.
    pub async fn start(settings: Settings) -> TestApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        Self::serve(settings, listener).await
    }

    /// [`TestApi::start`] with `HERALD_PUBLIC_URL` pointing at this server, so that the links
    /// of its tickets (and of the emails a worker on the same settings sends) open its pages.
    /// Returns the settings it runs on, for that worker.
    pub async fn start_serving_links(mut settings: Settings) -> (TestApi, Settings) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        settings.public_url = url::Url::parse(&format!("http://{addr}/")).expect("a URL");
        (Self::serve(settings.clone(), listener).await, settings)
    }

    async fn serve(settings: Settings, listener: tokio::net::TcpListener) -> TestApi {
        let app = build_app(settings).await;
        let state = app.api().await.expect("the API's producer connects");
        let pages = app.pages(&state);
        let addr = listener.local_addr().expect("a bound address");
        let token = CancellationToken::new();
        let stop = token.clone();
        let handle = tokio::spawn(herald_api::serve(
            listener,
            state,
            pages,
            async move { stop.cancelled().await },
            Duration::from_secs(5),
        ));
        TestApi {
            addr,
            store: app.store().clone(),
            token,
            handle,
        }
    }

    /// A token with these scopes (space-separated), as `herald token create` makes one.
    pub async fn token(&self, scopes: &str) -> String {
        let token = herald_domain::ApiToken::generate();
        let scopes = herald_domain::parse_scopes(scopes).expect("valid scopes");
        self.store
            .create_api_token("test", &token.hash(), &scopes, None)
            .await
            .expect("storing a token");
        token.expose().to_owned()
    }

    /// Stops the server (draining requests) and waits for it.
    pub async fn stop(self) {
        self.token.cancel();
        let _ = self.handle.await;
    }
}
