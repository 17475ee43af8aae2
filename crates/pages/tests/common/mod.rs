//! What the pages' HTTP tests (`pages.rs`, `metrics.rs`) and browser tests (`browser.rs`) set up
//! alike: a `herald serve` whose ticket links open its own pages, a worker delivering the emails
//! on the same settings, a Management API token, calls to the API with it, and a page's form
//! posted as a browser would.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use herald_testkit::env::{TestApi, TestEnv, TestWorker};
use herald_testkit::http::{Answer, request};
use serde_json::{Value, json};

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

    /// A registry user with `email` (and the fields of `extra`) who got no email; their id.
    pub async fn user(&self, email: &str, extra: Value) -> String {
        let mut body = json!({"email": email, "connection": "Username-Password-Authentication",
                              "verify_email": false});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let answer = self.call("POST", "/api/v2/users", body).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.json()["user_id"].as_str().unwrap().to_owned()
    }

    /// A ticket link's path and query (`/u/…?ticket=…`).
    pub async fn ticket(&self, path: &str, body: Value) -> String {
        let answer = self.call("POST", path, body).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        let url = url::Url::parse(answer.json()["ticket"].as_str().unwrap()).unwrap();
        format!("{}?{}", url.path(), url.query().unwrap())
    }

    /// A GET of a page, with `headers`.
    pub async fn get(&self, link: &str, headers: &[(&str, &str)]) -> Answer {
        request(self.api.addr, "GET", link, headers, b"").await
    }

    /// [`Setup::call`], which must succeed.
    pub async fn call_ok(&self, method: &str, path: &str, body: Value) -> Answer {
        let answer = self.call(method, path, body).await;
        assert!(answer.status < 300, "{method} {path}: {answer:?}");
        answer
    }
}

/// Sends a page's form to the server at `addr` as a browser would (same cookie,
/// `Sec-Fetch-Site: same-origin`), through a proxy when `forwarded_for` names the client.
pub async fn post_at(
    addr: std::net::SocketAddr,
    form: &Form,
    fields: &[(&str, &str)],
    forwarded_for: Option<&str>,
) -> Answer {
    let mut pairs = url::form_urlencoded::Serializer::new(String::new());
    pairs.append_pair("ticket", &form.ticket);
    pairs.append_pair("csrf", &form.csrf);
    for (k, v) in fields {
        pairs.append_pair(k, v);
    }
    let body = pairs.finish();
    request(
        addr,
        "POST",
        &form.action,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &form.cookie),
            ("Sec-Fetch-Site", "same-origin"),
        ]
        .into_iter()
        .chain(forwarded_for.map(|a| ("X-Forwarded-For", a)))
        .collect::<Vec<_>>(),
        body.as_bytes(),
    )
    .await
}

/// A page's form: where it posts, its hidden fields and the cookie the page set.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub ticket: String,
    pub csrf: String,
    pub cookie: String,
}

impl Form {
    pub fn of(page: &Answer) -> Form {
        let cookie = page
            .headers
            .iter()
            .find(|(n, v)| n == "set-cookie" && v.starts_with("__Host-herald-csrf="))
            .map(|(_, v)| v.split(';').next().unwrap().to_owned())
            .expect("the page sets the CSRF cookie");
        Form {
            action: attribute(&page.body, "action"),
            ticket: hidden(&page.body, "ticket"),
            csrf: hidden(&page.body, "csrf"),
            cookie,
        }
    }
}

pub fn attribute(html: &str, name: &str) -> String {
    let start = html.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

pub fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no hidden {name} in {html}"));
    attribute(&html[at..], "value")
}
