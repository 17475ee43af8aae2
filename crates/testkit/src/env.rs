//! A whole isolated Herald for one test: its own database, broker vhost and SMTP sink, and
//! workers spawned in-process against them.

use std::sync::Arc;
use std::time::Duration;

use herald_mailsink::{CapturedMail, MailSink};
use herald_producer::Producer;
use herald_queue::Topology;
use herald_render::Renderer;
use herald_smtp::{Mailer, MailerOptions};
use herald_worker::{CancellationToken, Pipeline, Worker, WorkerConfig, WorkerError};
use tokio::task::JoinHandle;

use crate::broker::TestBroker;
use crate::db::TestDb;

/// The public URL test workers build links under.
pub const TEST_PUBLIC_URL: &str = "https://id.herald.test/";

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

    /// Retry tiers of 200 ms and 400 ms so retry tests finish quickly.
    pub fn topology() -> Topology {
        Topology::default()
            .with_retry_delays(vec![Duration::from_millis(200), Duration::from_millis(400)])
    }

    pub fn config(&self) -> WorkerConfig {
        let mut config = WorkerConfig::local(self.broker.url.clone());
        config.topology = Self::topology();
        config.public_url = url::Url::parse(TEST_PUBLIC_URL).expect("static URL");
        config.message_id_domain = "id.herald.test".into();
        config.send_timeout = Duration::from_secs(10);
        config.shutdown_timeout = Duration::from_secs(10);
        config.max_attempts = 4;
        config
    }

    pub fn mailer(&self) -> Mailer {
        Mailer::from_url(&self.sink.url(), MailerOptions::default()).expect("sink URL is valid")
    }

    /// Starts a worker with `config` in the background.
    pub fn spawn_worker(&self, config: WorkerConfig) -> TestWorker {
        let worker = Worker::new(Pipeline::new(
            self.db.store.clone(),
            self.renderer.clone(),
            self.mailer(),
            config,
        ));
        let token = CancellationToken::new();
        let handle = tokio::spawn({
            let token = token.clone();
            async move { worker.run(token).await }
        });
        TestWorker { token, handle }
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
    /// Stops the worker the way SIGTERM does and returns how it ended.
    pub async fn stop(self) -> Result<(), WorkerError> {
        self.token.cancel();
        self.handle.await.expect("the worker task does not panic")
    }
}
