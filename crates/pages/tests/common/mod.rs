//! What the pages' HTTP tests (`pages.rs`) and browser tests (`browser.rs`) set up alike: a
//! `herald serve` whose ticket links open its own pages, a worker delivering the emails on the
//! same settings, a Management API token, and calls to the API with it.

use herald_testkit::env::{TestApi, TestEnv, TestWorker};
use herald_testkit::http::{Answer, request};
use serde_json::Value;

/// What the tests' tokens may do.
pub const SCOPES: &str = "read:users create:users update:users create:user_tickets \
                          create:guardian_enrollment_tickets create:organizations create:clients";

pub struct Setup {
    pub env: TestEnv,
    pub api: TestApi,
    _worker: TestWorker,
    pub token: String,
}

/// The tests' fixed ticket secret, so a second server started on the same database (a test
/// that changes another setting mid-flow) takes the first one's links and forms.
pub fn ticket_secret() -> herald_domain::TicketSecret {
    herald_domain::TicketSecret::from_bytes(b"pages-tests-ticket-secret-0123456789abcdef").unwrap()
}

/// Fresh services, with `configure` applied to the settings of both the server and the worker.
pub async fn setup(configure: impl FnOnce(&mut herald_app::Settings)) -> Setup {
    let env = TestEnv::new().await.unwrap();
    let mut settings = env.settings();
    settings.ticket_secret = Some(ticket_secret());
    configure(&mut settings);
    // The emailed links must open this serve's pages.
    let (api, settings) = TestApi::start_serving_links(settings).await;
    let worker = env.spawn_worker(settings).await;
    let token = api.token(SCOPES).await;
    Setup {
        env,
        api,
        _worker: worker,
        token,
    }
}

impl Setup {
    /// A Management API call with the test's token and a JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Value) -> Answer {
        let auth = format!("Bearer {}", self.token);
        let body = body.to_string();
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        request(self.api.addr, method, path, &headers, body.as_bytes()).await
    }

    /// [`Setup::call`], which must succeed.
    #[allow(dead_code, reason = "used by browser.rs only")]
    pub async fn call_ok(&self, method: &str, path: &str, body: Value) -> Answer {
        let answer = self.call(method, path, body).await;
        assert!(answer.status < 300, "{method} {path}: {answer:?}");
        answer
    }
}
