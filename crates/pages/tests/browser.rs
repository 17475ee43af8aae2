//! The ticket pages in a real browser: Debian's headless Chromium, through WebDriver, clicks
//! through every flow from the link in the delivered email, as a person would, and axe-core
//! checks every page it sees. `HERALD_SCREENSHOTS=<dir>` also saves the README's screenshots.

use std::time::Duration;

mod common;

use common::Setup;
use herald_testkit::browser::Browser;
use serde_json::{Value, json};

async fn setup() -> Setup {
    common::setup(|_| {}).await
}

impl Setup {
    /// The link in the next delivered email (the `n`th of the sink) to `to`.
    async fn link_in_email(&self, n: usize, to: &str) -> String {
        let mails = self.env.expect_mail(n).await;
        let mail = mails
            .iter()
            .rev()
            .find(|m| m.rcpt_to.iter().any(|r| r == to))
            .unwrap_or_else(|| panic!("no email to {to}"));
        let text = mail.parsed().text().unwrap();
        text.split_whitespace()
            .find(|w| w.contains("/u/"))
            .unwrap_or_else(|| panic!("no link in {text}"))
            .to_owned()
    }

    fn base(&self) -> String {
        format!("http://{}", self.api.addr)
    }
}

async fn screenshot(browser: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("HERALD_SCREENSHOTS") {
        let path = std::path::Path::new(&dir).join(format!("{name}.png"));
        browser.screenshot_to(&path).await.unwrap();
    }
}

/// Types `password` twice on the password-change page and sends it.
async fn change_password(browser: &Browser, password: &str) {
    browser.fill("New password", password).await.unwrap();
    browser
        .fill("Confirm the new password", password)
        .await
        .unwrap();
    browser.submit("Change password").await.unwrap();
}

/// What `text` is, once its runs of white space are one space.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn a_person_verifies_their_email_changes_their_password_and_enrolls_totp_in_a_browser() {
    let s = setup().await;
    let browser = Browser::start().await.unwrap();

    // The application's login page is this server's /healthz: the redirect lands somewhere real.
    let login = format!("{}/healthz", s.base());
    let client = s
        .call_ok(
            "POST",
            "/api/v2/clients",
            json!({"name": "Kumo App", "initiate_login_uri": login}),
        )
        .await
        .json();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let user = s
        .call_ok(
            "POST",
            "/api/v2/users",
            json!({"connection": "Username-Password-Authentication", "email": "rio@example.com",
                   "name": "Rio", "verify_email": false}),
        )
        .await
        .json();
    let user_id = user["user_id"].as_str().unwrap().to_owned();

    // 1. Verify the email from the verification email's link.
    s.call_ok(
        "POST",
        "/api/v2/jobs/verification-email",
        json!({"user_id": user_id, "client_id": client_id}),
    )
    .await;
    let verify = s.link_in_email(1, "rio@example.com").await;
    browser.goto(&verify).await.unwrap();
    assert!(browser.text().await.unwrap().contains("rio@example.com"));
    browser
        .assert_accessible("the verification page")
        .await
        .unwrap();
    screenshot(&browser, "verify-email").await;
    browser.submit("Verify my email").await.unwrap();
    let landed = browser.url().await.unwrap();
    assert_eq!(landed.path(), "/healthz", "{landed}");
    let query: std::collections::HashMap<_, _> = landed.query_pairs().into_owned().collect();
    assert_eq!(
        query.get("success").map(String::as_str),
        Some("true"),
        "{landed}"
    );
    assert_eq!(
        query.get("message").map(String::as_str),
        Some("Your email was verified. You can continue using the application.")
    );
    // The welcome email arrives, once.
    let mails = s.env.expect_mail(2).await;
    let welcome = mails
        .iter()
        .filter(|m| {
            m.parsed()
                .subject()
                .is_some_and(|subject| subject.starts_with("Welcome"))
        })
        .count();
    assert_eq!(welcome, 1);
    // Opening the link again: the used page, or (with a target) a redirect that says so.
    browser.goto(&verify).await.unwrap();
    let again = browser.url().await.unwrap();
    assert!(
        again
            .query_pairs()
            .any(|(k, v)| k == "message" && v == "This URL can be used only once"),
        "{again}"
    );

    // 2. Change the password from a password-change link, with one weak password refused.
    let ticket = s
        .call_ok(
            "POST",
            "/api/v2/tickets/password-change",
            json!({"user_id": user_id}),
        )
        .await
        .json();
    let reset = ticket["ticket"].as_str().unwrap().to_owned();
    browser.goto(&reset).await.unwrap();
    browser
        .assert_accessible("the password page")
        .await
        .unwrap();
    screenshot(&browser, "reset-password").await;
    change_password(&browser, "password1234").await;
    let text = squeeze(&browser.text().await.unwrap());
    assert!(
        text.contains("This password is too easy to guess."),
        "{text}"
    );
    browser
        .assert_accessible("the password page with an error")
        .await
        .unwrap();
    screenshot(&browser, "reset-password-refused").await;
    let strong = "violet harbor seventeen lanterns";
    change_password(&browser, strong).await;
    let text = squeeze(&browser.text().await.unwrap());
    assert!(
        text.contains("You can now log in to the application with the new password."),
        "{text}"
    );
    browser
        .assert_accessible("the password result")
        .await
        .unwrap();
    browser.goto(&reset).await.unwrap();
    let text = squeeze(&browser.text().await.unwrap());
    assert!(text.contains("This link has already been used."), "{text}");
    browser
        .assert_accessible("the used-link page")
        .await
        .unwrap();
    screenshot(&browser, "used-link").await;
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE user_id = $1")
        .bind(&user_id)
        .fetch_one(s.api.store.pool())
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");

    // 3. Enroll TOTP from the enrollment email's link, with the code an authenticator computes.
    s.call_ok(
        "POST",
        "/api/v2/guardian/enrollments/ticket",
        json!({"user_id": user_id, "send_mail": true}),
    )
    .await;
    let enroll = s.link_in_email(3, "rio@example.com").await;
    browser.goto(&enroll).await.unwrap();
    browser.assert_accessible("the TOTP page").await.unwrap();
    screenshot(&browser, "mfa-totp").await;
    let key = browser
        .client()
        .find(fantoccini::Locator::Css("code.secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let code = authenticator_code(&key);
    browser.fill("Six-digit code", &code).await.unwrap();
    browser.submit("Verify and turn on").await.unwrap();
    let text = squeeze(&browser.text().await.unwrap());
    assert!(
        text.contains("Your account is now protected with two-factor authentication."),
        "{text}"
    );
    browser
        .assert_accessible("the enrollment result")
        .await
        .unwrap();
    let listed = s
        .call_ok(
            "GET",
            &format!(
                "/api/v2/users/{}/enrollments",
                url::form_urlencoded::byte_serialize(user_id.as_bytes()).collect::<String>()
            ),
            Value::Null,
        )
        .await
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    browser.goto(&enroll).await.unwrap();
    let text = squeeze(&browser.text().await.unwrap());
    assert!(text.contains("This link has already been used."), "{text}");

    browser.close().await.unwrap();
}

#[tokio::test]
async fn an_expired_link_and_a_japanese_branded_page_are_shown_accessibly() {
    let s = setup().await;
    let browser = Browser::start().await.unwrap();
    let org = s
        .call_ok(
            "POST",
            "/api/v2/organizations",
            json!({"name": "kumo", "display_name": "株式会社クモ",
                   "branding": {"colors": {"primary": "#0f766e", "page_background": "#ecfeff"}}}),
        )
        .await
        .json();
    let user = s
        .call_ok(
            "POST",
            "/api/v2/users",
            json!({"connection": "Username-Password-Authentication", "email": "yui@example.com",
                   "verify_email": false, "user_metadata": {"lang": "ja"}}),
        )
        .await
        .json();
    let ticket = s
        .call_ok(
            "POST",
            "/api/v2/tickets/password-change",
            json!({"user_id": user["user_id"], "organization_id": org["id"]}),
        )
        .await
        .json();
    let link = ticket["ticket"].as_str().unwrap().to_owned();
    browser.goto(&link).await.unwrap();
    let text = browser.text().await.unwrap();
    assert!(text.contains("パスワードを変更する"), "{text}");
    assert!(text.contains("株式会社クモ"), "{text}");
    browser
        .assert_accessible("the Japanese branded page")
        .await
        .unwrap();
    screenshot(&browser, "reset-password-ja-branded").await;

    sqlx::query("UPDATE tickets SET expires_at = now() - interval '1 second'")
        .execute(s.api.store.pool())
        .await
        .unwrap();
    // The same link again would only move to its `#` (no request): leave the page first.
    browser.goto("about:blank").await.unwrap();
    browser.goto(&link).await.unwrap();
    let text = squeeze(&browser.text().await.unwrap());
    assert!(text.contains("期限"), "{text}");
    browser.assert_accessible("the expired page").await.unwrap();

    let plain = s
        .call_ok(
            "POST",
            "/api/v2/users",
            json!({"connection": "Username-Password-Authentication", "email": "max@example.com",
                   "verify_email": false}),
        )
        .await
        .json();
    let ticket = s
        .call_ok(
            "POST",
            "/api/v2/tickets/email-verification",
            json!({"user_id": plain["user_id"], "ttl_sec": 1}),
        )
        .await
        .json();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    browser
        .goto(ticket["ticket"].as_str().unwrap())
        .await
        .unwrap();
    let text = squeeze(&browser.text().await.unwrap());
    assert!(text.contains("This link has expired."), "{text}");
    screenshot(&browser, "expired-link").await;
    browser.close().await.unwrap();
}

/// The current code of a key as the page shows it (groups of four), computed with totp-rs
/// directly, as an authenticator app would.
fn authenticator_code(shown_key: &str) -> String {
    let key: String = shown_key.split_whitespace().collect();
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(totp_rs::Secret::try_from_base32(key).unwrap())
        .build()
        .unwrap()
        .generate_current()
        .to_string()
}

#[tokio::test]
async fn a_person_enrolls_their_email_as_a_second_factor_with_the_emailed_code() {
    let s = setup().await;
    let browser = Browser::start().await.unwrap();
    let user = s
        .call_ok(
            "POST",
            "/api/v2/users",
            json!({"connection": "Username-Password-Authentication", "email": "ines@example.com",
                   "verify_email": false}),
        )
        .await
        .json();
    s.call_ok(
        "POST",
        "/api/v2/guardian/enrollments/ticket",
        json!({"user_id": user["user_id"], "factor": "email", "send_mail": true}),
    )
    .await;
    let link = s.link_in_email(1, "ines@example.com").await;
    browser.goto(&link).await.unwrap();
    browser
        .assert_accessible("the email-factor page")
        .await
        .unwrap();
    browser.submit("Email me a code").await.unwrap();
    let text = squeeze(&browser.text().await.unwrap());
    assert!(
        text.contains("We sent a code to ines@example.com."),
        "{text}"
    );
    browser.assert_accessible("the code field").await.unwrap();

    let mails = s.env.expect_mail(2).await;
    let code_mail = mails
        .iter()
        .rfind(|m| m.rcpt_to.iter().any(|r| r == "ines@example.com"))
        .unwrap();
    let body = code_mail.parsed().text().unwrap();
    let code = body
        .split_whitespace()
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in {body}"))
        .to_owned();
    browser.fill("Six-digit code", &code).await.unwrap();
    browser.submit("Verify and turn on").await.unwrap();
    let text = squeeze(&browser.text().await.unwrap());
    assert!(
        text.contains("Your account is now protected with two-factor authentication."),
        "{text}"
    );
    browser.close().await.unwrap();
}
