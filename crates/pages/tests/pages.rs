//! The ticket pages over HTTP against real services: a `herald serve` built as the binary builds
//! it, tickets issued through the Management API, a real worker delivering the emails, and a
//! subscriber queue on `herald.events`. (The browser walks through the same flows in
//! `browser.rs`.)

use std::time::Duration;

mod common;

use common::{Form, Setup, post_at, setup};
use herald_testkit::env::TestApi;
use herald_testkit::http::{Answer, request};
use serde_json::{Value, json};

impl Setup {
    /// An MFA enrollment ticket's link (`/u/mfa-enrollment?ticket=…`) for `body`.
    async fn enrollment_link(&self, body: Value) -> String {
        let answer = self
            .call("POST", "/api/v2/guardian/enrollments/ticket", body)
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let url = url::Url::parse(answer.json()["ticket_url"].as_str().unwrap()).unwrap();
        format!("{}?{}", url.path(), url.query().unwrap())
    }

    /// Opens `link` and sends its form with `fields` added, as a browser would (same cookie,
    /// `Sec-Fetch-Site: same-origin`).
    async fn submit(&self, link: &str, fields: &[(&str, &str)]) -> Answer {
        let page = self.get(link, &[]).await;
        assert_eq!(page.status, 200, "{page:?}");
        let form = Form::of(&page);
        self.post(&form, fields).await
    }

    async fn post(&self, form: &Form, fields: &[(&str, &str)]) -> Answer {
        self.post_via(form, fields, None).await
    }

    /// [`Setup::post`] through a proxy that says the client is `forwarded_for`.
    async fn post_via(
        &self,
        form: &Form,
        fields: &[(&str, &str)],
        forwarded_for: Option<&str>,
    ) -> Answer {
        post_at(self.api.addr, form, fields, forwarded_for).await
    }

    /// The next event on the `test.events` queue, with its AMQP message id.
    async fn event(&self, what: &str) -> (Value, Option<String>) {
        let (body, props) = self
            .env
            .broker
            .wait_get("test.events", Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no {what} event"));
        let event = serde_json::from_slice(&body).unwrap();
        (event, props.message_id().as_ref().map(|m| m.to_string()))
    }

    async fn user_json(&self, user_id: &str) -> Value {
        let path = format!("/api/v2/users/{}", urlencode(user_id));
        let answer = self.call("GET", &path, Value::Null).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.json()
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn ticket_used(api: &TestApi, link: &str) -> bool {
    let token = link.split("ticket=").nth(1).unwrap();
    let token = url::form_urlencoded::parse(format!("t={token}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    let hash = herald_domain::TicketToken::from_presented(token).hash();
    let used: Option<bool> =
        sqlx::query_scalar("SELECT used_at IS NOT NULL FROM tickets WHERE token_hash = $1")
            .bind(hash.as_bytes())
            .fetch_optional(api.store.pool())
            .await
            .unwrap();
    used.expect("the ticket exists")
}

#[tokio::test]
async fn a_verification_link_verifies_once_publishes_the_event_and_queues_one_welcome_email() {
    let s = setup(|_| {}).await;
    s.env.broker.subscribe_events("test.events", "user.#").await;
    let user_id = s.user("ana@example.com", json!({"name": "Ana"})).await;
    let link = s
        .ticket(
            "/api/v2/tickets/email-verification",
            json!({"user_id": user_id, "result_url": "https://app.example/verified#top",
                   "includeEmailInRedirect": true}),
        )
        .await;

    // Opening the link (twice, as a mail scanner and then the user would) uses nothing.
    for _ in 0..2 {
        let page = s.get(&link, &[]).await;
        assert_eq!(page.status, 200, "{page:?}");
        assert!(page.body.contains("ana@example.com"), "{}", page.body);
        assert!(page.body.contains("<form method=\"post\""), "{}", page.body);
        assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(page.header("cache-control"), Some("no-store"));
        assert_eq!(page.header("x-robots-tag"), Some("noindex, nofollow"));
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("script-src"), "{csp}");
        assert!(
            csp.contains("form-action 'self' https://app.example"),
            "{csp}"
        );
        assert!(!page.body.contains("<script"), "{}", page.body);
    }
    assert!(!ticket_used(&s.api, &link).await);

    // A POST without the page's cookie is refused and uses nothing.
    let page = s.get(&link, &[]).await;
    let form = Form::of(&page);
    let forged = Form {
        cookie: "__Host-herald-csrf=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        ..form.clone()
    };
    assert_eq!(s.post(&forged, &[]).await.status, 403);
    assert!(!ticket_used(&s.api, &link).await);

    let done = s.post(&form, &[]).await;
    assert_eq!(done.status, 303, "{done:?}");
    assert_eq!(
        done.header("location"),
        Some(
            "https://app.example/verified?email=ana%40example.com&message=Your%20email%20was%20\
             verified.%20You%20can%20continue%20using%20the%20application.&success=true#top"
        )
    );
    assert_eq!(s.user_json(&user_id).await["email_verified"], true);

    // The event, published with confirms before the ticket's transaction committed.
    let (event, message_id) = s.event("user.email_verified").await;
    assert_eq!(event["type"], "user.email_verified");
    assert_eq!(event["user_id"], user_id.as_str());
    assert_eq!(message_id.as_deref(), event["id"].as_str());

    // The link again: used (a redirect with Auth0's message, since it has a result_url).
    let again = s.get(&link, &[]).await;
    assert_eq!(again.status, 303, "{again:?}");
    assert!(
        again
            .header("location")
            .unwrap()
            .contains("message=This%20URL%20can%20be%20used%20only%20once&success=false"),
        "{again:?}"
    );
    let replay = s.post(&form, &[]).await;
    assert_eq!(replay.status, 303, "{replay:?}");
    assert!(replay.header("location").unwrap().contains("success=false"));

    // A second ticket of the same user: "already verified", and no second welcome email.
    let second = s
        .ticket(
            "/api/v2/tickets/email-verification",
            json!({"user_id": user_id}),
        )
        .await;
    let answer = s.submit(&second, &[]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer.body.contains("This account is already verified."),
        "{}",
        answer.body
    );

    let mails = s.env.expect_mail(1).await;
    assert_eq!(mails[0].rcpt_to, vec!["ana@example.com".to_owned()]);
    let subject = mails[0].parsed().subject().unwrap_or_default();
    assert!(subject.starts_with("Welcome"), "{subject:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.env.sink.count(), 1, "the welcome email arrives once");
    assert!(
        s.env
            .broker
            .wait_get("test.events", Duration::from_millis(300))
            .await
            .is_none(),
        "an already verified email publishes no second event"
    );
}

#[tokio::test]
async fn of_fifty_concurrent_posts_of_one_ticket_exactly_one_verifies() {
    let s = setup(|settings| settings.page_rate_limit = 1_000).await;
    let user_id = s.user("bo@example.com", json!({})).await;
    let link = s
        .ticket(
            "/api/v2/tickets/email-verification",
            json!({"user_id": user_id}),
        )
        .await;
    let form = Form::of(&s.get(&link, &[]).await);
    let answers = futures::future::join_all((0..50).map(|_| s.post(&form, &[]))).await;
    let verified = answers
        .iter()
        .filter(|a| {
            a.body
                .contains("Your email address was successfully verified.")
        })
        .count();
    let used = answers
        .iter()
        .filter(|a| a.status == 410 && a.body.contains("This link has already been used."))
        .count();
    assert_eq!(
        (verified, used),
        (1, 49),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    s.env.expect_mail(1).await;
}

#[tokio::test]
async fn a_password_change_follows_the_policy_and_uses_up_the_users_other_links() {
    let s = setup(|_| {}).await;
    s.env
        .broker
        .subscribe_events("test.events", "user.password_changed")
        .await;
    let user_id = s.user("cy@example.com", json!({})).await;
    let issue = || {
        s.ticket(
            "/api/v2/tickets/password-change",
            json!({"user_id": user_id, "mark_email_as_verified": true}),
        )
    };
    let older = issue().await;
    let link = issue().await;

    let page = s.get(&link, &[]).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body.contains("autocomplete=\"new-password\""),
        "{}",
        page.body
    );
    let form = Form::of(&page);

    // Refused: weak, too short, not confirmed; each shown on the form, nothing used.
    for (password, confirmation, expected) in [
        ("password123", "password123", "too easy to guess"),
        ("short", "short", "at least 10 characters"),
        (
            "correct horse battery staple",
            "correct horse battery",
            "do not match",
        ),
    ] {
        let answer = s
            .post(
                &form,
                &[("password", password), ("confirmation", confirmation)],
            )
            .await;
        assert_eq!(answer.status, 422, "{answer:?}");
        assert!(
            answer.body.contains(expected),
            "{expected:?} in {}",
            answer.body
        );
        assert!(!answer.body.contains(password) || password == "short");
    }
    assert!(!ticket_used(&s.api, &link).await);

    let done = s
        .post(
            &form,
            &[
                ("password", "correct horse battery staple"),
                ("confirmation", "correct horse battery staple"),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{done:?}");
    assert!(done.body.contains("You can now log in"), "{}", done.body);

    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE user_id = $1")
        .bind(&user_id)
        .fetch_one(s.api.store.pool())
        .await
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    assert_eq!(s.user_json(&user_id).await["email_verified"], true);

    let (event, _) = s.event("user.password_changed").await;
    assert_eq!(event["type"], "user.password_changed");
    assert_eq!(event["password_hash"], stored.as_str());
    assert!(!event.to_string().contains("correct horse"));

    // Both links now show the "used" page.
    for link in [&link, &older] {
        let answer = s.get(link, &[]).await;
        assert_eq!(answer.status, 410, "{answer:?}");
        assert!(
            answer.body.contains("This link has already been used."),
            "{}",
            answer.body
        );
    }
}

#[tokio::test]
async fn expired_tampered_unknown_and_hostile_tickets_get_a_page_and_use_nothing() {
    // More POSTs than one address may send in a minute: this test is about what they carry.
    let s = setup(|settings| settings.page_rate_limit = 1_000).await;
    let user_id = s.user("di@example.com", json!({})).await;
    let link = s
        .ticket(
            "/api/v2/tickets/email-verification",
            json!({"user_id": user_id}),
        )
        .await;
    let form = Form::of(&s.get(&link, &[]).await);

    let tampered = format!("{}x", link);
    for bad in [
        "/u/email-verification".to_owned(),
        "/u/email-verification?ticket=".to_owned(),
        tampered,
        format!("/u/email-verification?ticket={}", "A".repeat(5000)),
        "/u/email-verification?ticket=%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_owned(),
        "/u/email-verification?ticket=%0D%0ASet-Cookie:%20x=1".to_owned(),
        "/u/email-verification?ticket=%FF%FE".to_owned(),
        // The right ticket on another page is unknown there.
        link.replace("/u/email-verification", "/u/reset-password"),
    ] {
        let answer = s.get(&bad, &[]).await;
        assert_eq!(answer.status, 404, "{bad}: {answer:?}");
        assert!(
            answer.body.contains("This link is not valid."),
            "{}",
            answer.body
        );
        assert!(!answer.body.contains("<script>"), "{}", answer.body);
        assert!(answer.header("x-1").is_none() && answer.header("set-cookie").is_none());
    }

    // Hostile form fields: refused as an unknown link or a stale form, nothing used.
    for (field, value) in [
        ("ticket", "<img src=x onerror=alert(1)>"),
        ("csrf", "\r\nX-Injected: 1"),
        ("csrf", &"c".repeat(10_000)),
    ] {
        let mut hostile = form.clone();
        match field {
            "ticket" => hostile.ticket = value.to_owned(),
            _ => hostile.csrf = value.to_owned(),
        }
        let answer = s.post(&hostile, &[]).await;
        assert!([403, 404].contains(&answer.status), "{field}: {answer:?}");
        assert!(!answer.body.contains("<img src=x"), "{}", answer.body);
    }
    // Hostile passwords and codes: refused on the form, escaped, nothing used; a body over the
    // limit is refused before it is read.
    let reset = s
        .ticket(
            "/api/v2/tickets/password-change",
            json!({"user_id": user_id}),
        )
        .await;
    let reset_form = Form::of(&s.get(&reset, &[]).await);
    let long = "p".repeat(10_000);
    for (password, expected) in [
        (long.as_str(), "at most 128 characters"),
        ("<script>alert(1)</script>\r\n", "do not match"),
        ("\u{0}\u{7}\u{202e}ab", "at least 10 characters"),
    ] {
        let answer = s
            .post(
                &reset_form,
                &[("password", password), ("confirmation", "x")],
            )
            .await;
        assert_eq!(answer.status, 422, "{answer:?}");
        assert!(
            answer.body.contains(expected),
            "{expected:?} in {}",
            answer.body
        );
        assert!(!answer.body.contains("<script>alert"), "{}", answer.body);
    }
    let huge = "q".repeat(20_000);
    let answer = s
        .post(&reset_form, &[("password", &huge), ("confirmation", &huge)])
        .await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert!(!ticket_used(&s.api, &reset).await);
    let enroll = s.enrollment_link(json!({"user_id": user_id})).await;
    let enroll_form = Form::of(&s.get(&enroll, &[]).await);
    for code in ["<img src=x>", "12345678901234567890", "１２３４５６", ""] {
        let answer = s.post(&enroll_form, &[("code", code)]).await;
        assert_eq!(answer.status, 422, "{code:?}: {answer:?}");
        assert!(!answer.body.contains("<img src=x>"), "{}", answer.body);
    }
    assert!(!ticket_used(&s.api, &enroll).await);

    // A cross-site POST is refused before it is read.
    let cross = request(
        s.api.addr,
        "POST",
        "/u/email-verification",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &form.cookie),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        format!(
            "ticket={}&csrf={}",
            urlencode(&form.ticket),
            urlencode(&form.csrf)
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(cross.status, 403, "{cross:?}");
    assert!(!ticket_used(&s.api, &link).await);

    // Expired: the page says so, and the POST does not use it either.
    sqlx::query("UPDATE tickets SET expires_at = now() - interval '1 second'")
        .execute(s.api.store.pool())
        .await
        .unwrap();
    let answer = s.get(&link, &[]).await;
    assert_eq!(answer.status, 410, "{answer:?}");
    assert!(
        answer.body.contains("This link has expired."),
        "{}",
        answer.body
    );
    let answer = s.post(&form, &[]).await;
    assert_eq!(answer.status, 410, "{answer:?}");
    assert!(!ticket_used(&s.api, &link).await);
}

#[tokio::test]
async fn pages_speak_the_users_language_and_wear_the_organizations_brand() {
    let s = setup(|_| {}).await;
    let org = s
        .call(
            "POST",
            "/api/v2/organizations",
            json!({"name": "kumo", "display_name": "Kumo <Cloud> & Co",
                   "branding": {"logo_url": "https://kumo.example/logo.png",
                                "colors": {"primary": "#0f766e", "page_background": "#f1f5f9"}}}),
        )
        .await;
    assert_eq!(org.status, 201, "{org:?}");
    let org_id = org.json()["id"].as_str().unwrap().to_owned();
    let user_id = s
        .user("emi@example.com", json!({"user_metadata": {"lang": "ja"}}))
        .await;
    let link = s
        .ticket(
            "/api/v2/tickets/password-change",
            json!({"user_id": user_id, "organization_id": org_id}),
        )
        .await;
    let page = s
        .get(&link, &[("Accept-Language", "fr;q=0.9, en;q=0.8")])
        .await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("<html lang=\"ja\""), "{}", page.body);
    assert!(page.body.contains("パスワードを変更する"), "{}", page.body);
    assert!(
        page.body.contains("Kumo &lt;Cloud&gt; &amp; Co"),
        "{}",
        page.body
    );
    assert!(page.body.contains("#0f766e"), "{}", page.body);
    assert!(
        page.body.contains("src=\"https://kumo.example/logo.png\""),
        "{}",
        page.body
    );

    // Without a language of their own, the browser's (by q-value) decides.
    let plain = s.user("fu@example.com", json!({})).await;
    let link = s
        .ticket("/api/v2/tickets/password-change", json!({"user_id": plain}))
        .await;
    let page = s
        .get(&link, &[("Accept-Language", "de;q=0.5, fr;q=0.9, *;q=0.1")])
        .await;
    assert!(page.body.contains("<html lang=\"fr\""), "{}", page.body);
    assert!(
        page.body.contains("Changez votre mot de passe"),
        "{}",
        page.body
    );
}

/// Every log line of this test binary, at every level (the subscriber is global to the binary).
fn captured_logs() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOGS: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> =
        std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static std::sync::Mutex<Vec<u8>> =
            Box::leak(Box::new(std::sync::Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Capture(logs))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        logs
    })
}

struct Capture(&'static std::sync::Mutex<Vec<u8>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_ticket_token_or_password_reaches_a_log_line() {
    let logs = captured_logs();
    let s = setup(|_| {}).await;
    let user_id = s.user("gil@example.com", json!({})).await;
    let verify = s
        .ticket(
            "/api/v2/tickets/email-verification",
            json!({"user_id": user_id}),
        )
        .await;
    let reset = s
        .ticket(
            "/api/v2/tickets/password-change",
            json!({"user_id": user_id}),
        )
        .await;
    let mut secrets = Vec::new();
    for (link, fields) in [
        (&verify, vec![]),
        (
            &reset,
            vec![
                ("password", "tangerine submarine orchestra"),
                ("confirmation", "tangerine submarine orchestra"),
            ],
        ),
    ] {
        let page = s.get(link, &[]).await;
        let form = Form::of(&page);
        let answer = s.post(&form, &fields).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        secrets.push(form.ticket.clone());
        secrets.push(form.csrf.clone());
        secrets.push(form.cookie.split('=').nth(1).unwrap().to_owned());
        // Used links, opened again, are logged no more than fresh ones.
        assert_eq!(s.get(link, &[]).await.status, 410);
    }
    secrets.push("tangerine submarine orchestra".to_owned());
    secrets.push(s.token.clone());
    s.env.expect_mail(1).await;

    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        text.contains("Queued the user's welcome email.")
            && text.contains("Changed a user's password"),
        "the flow's own log lines were captured"
    );
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{secret:?} reached a log line"
        );
    }
    assert!(
        !text.contains("$argon2id$"),
        "a password hash reached a log line"
    );
}

/// The current TOTP code of a base32 key as shown on the page (groups of four), computed with
/// totp-rs directly (SHA-1, 6 digits, 30 s), as an authenticator app would.
fn authenticator_code(shown_key: &str, at_unix: u64) -> String {
    let key: String = shown_key.split_whitespace().collect();
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(totp_rs::Secret::try_from_base32(key).unwrap())
        .build()
        .unwrap()
        .generate(at_unix)
        .to_string()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_totp_enrollment_keeps_the_factor_only_for_a_code_that_verifies() {
    let s = setup(|_| {}).await;
    s.env
        .broker
        .subscribe_events("test.events", "user.mfa_enrolled")
        .await;
    let user_id = s.user("hana@example.com", json!({})).await;
    let link = s
        .enrollment_link(json!({"user_id": user_id, "factor": "otp"}))
        .await;

    let page = s.get(&link, &[]).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body.contains("src=\"data:image/svg+xml;base64,"),
        "{}",
        page.body
    );
    let shown = shown_secret(&page);
    // The same secret every time the link is opened (nothing is stored before a code).
    assert!(s.get(&link, &[]).await.body.contains(&shown));
    let form = Form::of(&page);

    let wrong = s.post(&form, &[("code", "000000")]).await;
    assert_eq!(wrong.status, 422, "{wrong:?}");
    assert!(
        wrong.body.contains("That code is not right."),
        "{}",
        wrong.body
    );
    assert!(!ticket_used(&s.api, &link).await);

    let code = authenticator_code(&shown, unix_now());
    let done = s.post(&form, &[("code", &code)]).await;
    assert_eq!(done.status, 200, "{done:?}");
    assert!(
        done.body.contains("Two-factor authentication is on"),
        "{}",
        done.body
    );

    let listed = s
        .call(
            "GET",
            &format!("/api/v2/users/{}/enrollments", urlencode(&user_id)),
            Value::Null,
        )
        .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let enrollments = listed.json();
    assert_eq!(enrollments.as_array().unwrap().len(), 1, "{enrollments}");
    let enrollment_id = enrollments[0]["id"].as_str().unwrap().to_owned();

    let (event, _) = s.event("user.mfa_enrolled").await;
    assert_eq!(event["enrollment_id"], enrollment_id.as_str());
    assert_eq!(event["factor"], "otp");
    let compact: String = shown.split_whitespace().collect();
    assert!(!event.to_string().contains(&compact), "{event}");

    // The sealed secret at rest is not the key.
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT secret_sealed FROM mfa_enrollments WHERE id = $1")
            .bind(&enrollment_id)
            .fetch_one(s.api.store.pool())
            .await
            .unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains(&compact));

    // The link is used; a new ticket finds the factor already there.
    assert_eq!(s.get(&link, &[]).await.status, 410);
    let again = s.enrollment_link(json!({"user_id": user_id})).await;
    let second = s.get(&again, &[]).await;
    assert_eq!(second.status, 409, "{second:?}");
    assert!(
        second
            .body
            .contains("Two-factor Verification has Already Been Enabled."),
        "{}",
        second.body
    );
}

/// The secret an enrollment page shows (groups of four).
fn shown_secret(page: &Answer) -> String {
    let start = page.body.find("<code class=\"secret\">").unwrap() + 21;
    page.body[start..start + page.body[start..].find("</code>").unwrap()].to_owned()
}

#[tokio::test]
async fn a_totp_page_opened_before_an_mfa_key_change_still_enrolls_under_the_new_key() {
    let old = herald_mfa::MfaKey::from_bytes(b"pages-tests-the-old-mfa-key-0123456789ab").unwrap();
    let new = herald_mfa::MfaKey::from_bytes(b"pages-tests-the-new-mfa-key-0123456789ab").unwrap();
    let s = setup(|settings| settings.mfa_key = Some(old.clone())).await;
    let user_id = s.user("ines@example.com", json!({})).await;
    let link = s
        .enrollment_link(json!({"user_id": user_id, "factor": "otp"}))
        .await;
    let page = s.get(&link, &[]).await;
    let scanned = shown_secret(&page);
    let form = Form::of(&page);

    // The key changes (the old one kept in HERALD_MFA_PREVIOUS_KEYS) before the person types
    // the code of what they scanned.
    let mut settings = s.env.settings();
    settings.ticket_secret = Some(common::ticket_secret());
    settings.mfa_key = Some(new.clone());
    settings.mfa_previous_keys = vec![old];
    let after = TestApi::start(settings).await;
    let reopened = request(after.addr, "GET", &link, &[], b"").await;
    assert_ne!(
        shown_secret(&reopened),
        scanned,
        "a new page shows the new key's secret"
    );

    let code = authenticator_code(&scanned, unix_now());
    let done = post_at(after.addr, &form, &[("code", &code)], None).await;
    assert_eq!(done.status, 200, "{done:?}");
    assert!(done.body.contains("Two-factor authentication is on"));
    let sealed: Vec<u8> = sqlx::query_scalar(
        "SELECT secret_sealed FROM mfa_enrollments WHERE user_id = $1 AND factor = 'otp'",
    )
    .bind(&user_id)
    .fetch_one(s.api.store.pool())
    .await
    .unwrap();
    assert!(herald_mfa::seal::is_sealed_under(&new, &sealed));
}

#[tokio::test]
async fn posts_past_the_limit_per_ticket_and_address_are_refused_and_use_nothing() {
    let s = setup(|settings| settings.page_rate_limit = 3).await;
    let user_id = s.user("ivo@example.com", json!({})).await;
    let link = s
        .ticket(
            "/api/v2/tickets/password-change",
            json!({"user_id": user_id}),
        )
        .await;
    let form = Form::of(&s.get(&link, &[]).await);
    let mut statuses = Vec::new();
    // No proxy is trusted here, so a client cannot pass for others with X-Forwarded-For.
    for i in 0..5 {
        let forged = format!("203.0.113.{i}");
        let answer = s
            .post_via(
                &form,
                &[("password", "guess"), ("confirmation", "guess")],
                Some(&forged),
            )
            .await;
        statuses.push(answer.status);
        if answer.status == 429 {
            assert_eq!(answer.header("retry-after"), Some("60"));
            assert!(
                answer.body.contains("Too many attempts."),
                "{}",
                answer.body
            );
        }
    }
    assert_eq!(statuses, vec![422, 422, 422, 429, 429]);
    // Within the limit, the right password would have been taken; past it, it is not even read.
    let answer = s
        .post(
            &form,
            &[
                ("password", "violet harbor seventeen lanterns"),
                ("confirmation", "violet harbor seventeen lanterns"),
            ],
        )
        .await;
    assert_eq!(answer.status, 429);
    assert!(!ticket_used(&s.api, &link).await);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let s = setup(|settings| {
        settings.page_rate_limit = 3;
        settings.trusted_proxies = herald_domain::TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    let user_id = s.user("una@example.com", json!({})).await;
    // A fresh link for every POST, so that only the per-address limit can refuse one.
    let mut forms = Vec::new();
    for _ in 0..10 {
        let link = s
            .ticket(
                "/api/v2/tickets/password-change",
                json!({"user_id": user_id}),
            )
            .await;
        forms.push(Form::of(&s.get(&link, &[]).await));
    }
    let mut forms = forms.into_iter();
    let fields = [("password", "guess"), ("confirmation", "guess")];
    let mut from = async |client: &str| {
        let form = forms.next().unwrap();
        s.post_via(&form, &fields, Some(client)).await.status
    };
    for _ in 0..3 {
        assert_eq!(from("198.51.100.7").await, 422);
    }
    assert_eq!(from("198.51.100.7").await, 429);
    // Another client behind the same proxy is not held back by the first one's tries.
    assert_eq!(from("198.51.100.8").await, 422);
    // What the client itself wrote to the left of what the proxy appended changes nothing.
    assert_eq!(from("192.0.2.1, 198.51.100.7").await, 429);
    // An IPv6 client is counted by its /64: a new address in it is the same client.
    for _ in 0..3 {
        assert_eq!(from("2001:db8:5:6::1").await, 422);
    }
    assert_eq!(from("2001:db8:5:6::ffff").await, 429);
}

#[tokio::test]
async fn no_request_can_choose_where_a_page_redirects() {
    let s = setup(|settings| settings.page_rate_limit = 1_000).await;
    let user_id = s.user("jo@example.com", json!({})).await;
    // A ticket's own target must be an absolute http(s) URL: the API refuses the rest.
    for bad in [
        "//evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "java%0ascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "\\\\evil.example",
    ] {
        let answer = request(
            s.api.addr,
            "POST",
            "/api/v2/tickets/email-verification",
            &[
                ("Authorization", &format!("Bearer {}", s.token)),
                ("Content-Type", "application/json"),
            ],
            json!({"user_id": user_id, "result_url": bad})
                .to_string()
                .as_bytes(),
        )
        .await;
        assert_eq!(answer.status, 400, "{bad:?} as result_url: {answer:?}");
    }
    let link = s
        .ticket(
            "/api/v2/tickets/email-verification",
            json!({"user_id": user_id, "result_url": "https://app.example/done"}),
        )
        .await;
    // Parameters in the link or the form that name other targets are ignored.
    let hostile = [
        ("result_url", "https://evil.example/"),
        ("redirect_uri", "//evil.example"),
        ("returnTo", "/\\evil.example"),
        ("continue", "https:%2F%2Fevil.example"),
    ];
    let mut tampered = link.clone();
    for (k, v) in hostile {
        tampered.push_str(&format!("&{k}={}", urlencode(v)));
    }
    let page = s.get(&tampered, &[]).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(!page.body.contains("evil.example"), "{}", page.body);
    let csp = page.header("content-security-policy").unwrap();
    assert!(!csp.contains("evil"), "{csp}");
    let form = Form::of(&page);
    let done = s.post(&form, &hostile).await;
    assert_eq!(done.status, 303, "{done:?}");
    let location = done.header("location").unwrap();
    assert!(
        location.starts_with("https://app.example/done?"),
        "{location}"
    );
    assert!(!location.contains("evil"), "{location}");
}

#[tokio::test]
async fn an_email_factor_is_enrolled_with_the_code_from_the_delivered_email() {
    let s = setup(|_| {}).await;
    let user_id = s.user("lea@example.com", json!({})).await;
    let link = s
        .enrollment_link(json!({"user_id": user_id, "factor": "email"}))
        .await;
    let page = s.get(&link, &[("Accept-Language", "fr")]).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body.contains("M&#x27;envoyer un code"),
        "{}",
        page.body
    );
    let form = Form::of(&page);

    let sent = s.post(&form, &[("step", "send")]).await;
    assert_eq!(sent.status, 200, "{sent:?}");
    assert!(sent.body.contains("lea@example.com"), "{}", sent.body);
    let mails = s.env.expect_mail(1).await;
    let text = mails[0].parsed().text().unwrap();
    let code: String = text
        .split_whitespace()
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in {text}"))
        .to_owned();
    // The ledger keeps no code; the store only its digest.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT code_digest FROM mfa_email_codes")
        .fetch_one(s.api.store.pool())
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains(&code));

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let answer = s.post(&form, &[("code", wrong)]).await;
    assert_eq!(answer.status, 422, "{answer:?}");
    assert!(!ticket_used(&s.api, &link).await);
    let done = s.post(&form, &[("code", &code)]).await;
    assert_eq!(done.status, 200, "{done:?}");
    assert!(ticket_used(&s.api, &link).await);
    let listed = s
        .call(
            "GET",
            &format!("/api/v2/users/{}/enrollments", urlencode(&user_id)),
            Value::Null,
        )
        .await
        .json();
    assert_eq!(listed[0]["type"], "email", "{listed}");
    assert_eq!(listed[0]["identifier"], "lea@example.com", "{listed}");
}
