//! The browser harness on a page of its own: a form under the ticket pages' strict headers is
//! filled and posted, its 303 followed, a `__Host-` cookie travels back over plain http, and
//! axe-core passes the page and catches an input without a label.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use herald_testkit::browser::{Browser, BrowserConfig};

/// The ticket pages' policy, minus what the test page does not use.
const CSP: &str =
    "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'";
const COOKIE: &str = "__Host-herald-test=k3y";

/// What the server saw of the form's POST.
#[derive(Debug, Default, Clone)]
struct Seen {
    cookie: Option<String>,
    origin: Option<String>,
    sec_fetch_site: Option<String>,
    accept_language: Option<String>,
}

type Shared = Arc<Mutex<Option<Seen>>>;

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         </head><body><main><h1>{title}</h1>{body}</main></body></html>"
    );
    let mut response = Html(html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn form() -> Response {
    let mut response = page(
        "Sign the guest book",
        "<form method=\"post\" action=\"/sign\">\
         <label for=\"name\">Your name</label> <input id=\"name\" name=\"name\" type=\"text\">\
         <button type=\"submit\">Sign</button></form>",
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{COOKIE}; Path=/; Secure; HttpOnly; SameSite=Strict"
        ))
        .expect("a valid header"),
    );
    response
}

#[derive(serde::Deserialize)]
struct Signed {
    name: String,
}

async fn sign(State(seen): State<Shared>, headers: HeaderMap, Form(f): Form<Signed>) -> Redirect {
    let header = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("(not text)").to_owned())
    };
    *seen.lock().expect("not poisoned") = Some(Seen {
        cookie: header(header::COOKIE),
        origin: header(header::ORIGIN),
        sec_fetch_site: headers
            .get("sec-fetch-site")
            .map(|v| v.to_str().unwrap_or("(not text)").to_owned()),
        accept_language: header(header::ACCEPT_LANGUAGE),
    });
    let name: String = url::form_urlencoded::byte_serialize(f.name.as_bytes()).collect();
    Redirect::to(&format!("/signed?name={name}"))
}

#[derive(serde::Deserialize)]
struct Name {
    name: String,
}

async fn signed(Query(q): Query<Name>) -> Response {
    let name = q
        .name
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;");
    page("Signed", &format!("<p>Thank you, {name}.</p>"))
}

async fn unlabelled() -> Response {
    page(
        "No label",
        "<form method=\"post\" action=\"/sign\"><input name=\"name\" type=\"text\">\
         <button type=\"submit\">Sign</button></form>",
    )
}

async fn serve() -> (SocketAddr, Shared) {
    let seen = Shared::default();
    let app = Router::new()
        .route("/", get(form))
        .route("/sign", axum::routing::post(sign))
        .route("/signed", get(signed))
        .route("/unlabelled", get(unlabelled))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a port");
    let addr = listener.local_addr().expect("a bound address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

#[tokio::test]
async fn a_form_under_a_strict_csp_is_filled_posted_and_redirected_in_a_real_browser() {
    let (addr, seen) = serve().await;
    let started = Instant::now();
    let browser = Browser::start().await.expect("the browser starts");
    eprintln!("cold browser start: {:?}", started.elapsed());

    browser.goto(&format!("http://{addr}/")).await.unwrap();
    assert_eq!(browser.title().await.unwrap(), "Sign the guest book");
    browser.assert_accessible("the form page").await.unwrap();
    browser.fill("Your name", "Zoë <O'Brien>").await.unwrap();
    browser.submit("Sign").await.unwrap();

    let url = browser.url().await.unwrap();
    assert_eq!(url.path(), "/signed", "the 303 was followed to {url}");
    let text = browser.text().await.unwrap();
    assert!(text.contains("Thank you, Zoë <O'Brien>."), "{text}");
    browser.assert_accessible("the result page").await.unwrap();

    let seen = seen.lock().unwrap().clone().expect("the form was posted");
    eprintln!("the POST carried: {seen:?}");
    assert_eq!(
        seen.cookie.as_deref(),
        Some(COOKIE),
        "Chromium sends a Secure __Host- cookie back over plain http://127.0.0.1"
    );
    assert_eq!(seen.sec_fetch_site.as_deref(), Some("same-origin"));
    assert_eq!(
        seen.origin.as_deref(),
        Some("null"),
        "Referrer-Policy: no-referrer makes Chromium send Origin: null on a same-origin POST"
    );
    assert_eq!(seen.accept_language.as_deref(), Some("en-US,en;q=0.9"));

    let shot = tempfile::tempdir().unwrap();
    let png = shot.path().join("pages/signed.png");
    browser.screenshot_to(&png).await.unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // The IHDR chunk's width and height: the configured window.
    let size = (
        u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
        u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
    );
    assert_eq!(size, BrowserConfig::default().window);

    browser.close().await.unwrap();
    eprintln!("whole browser flow: {:?}", started.elapsed());
}

#[tokio::test]
async fn axe_reports_an_input_without_a_label() {
    let (addr, _) = serve().await;
    let browser = Browser::start().await.expect("the browser starts");
    browser
        .goto(&format!("http://{addr}/unlabelled"))
        .await
        .unwrap();

    let violations = browser.axe_violations().await.unwrap();
    let ids: Vec<&str> = violations.iter().filter_map(|v| v["id"].as_str()).collect();
    assert!(ids.contains(&"label"), "axe found only {ids:?}");
    let failure = browser
        .assert_accessible("the unlabelled page")
        .await
        .expect_err("the check fails");
    let message = failure.to_string();
    assert!(message.contains("- label ("), "{message}");
    assert!(message.contains("input"), "{message}");

    // A missing field and button are named, not a bare WebDriver error.
    let missing = browser.fill("Your name", "x").await.expect_err("no label");
    assert!(
        missing
            .to_string()
            .contains("no field labelled or named \"Your name\""),
        "{missing}"
    );
    browser.close().await.unwrap();
}

#[tokio::test]
async fn the_browser_asks_for_the_configured_language() {
    let (addr, seen) = serve().await;
    let browser = Browser::start_with(BrowserConfig {
        accept_language: "ja".to_owned(),
        ..BrowserConfig::default()
    })
    .await
    .expect("the browser starts");
    browser.goto(&format!("http://{addr}/")).await.unwrap();
    browser.fill("name", "花子").await.unwrap();
    browser.submit("Sign").await.unwrap();
    assert!(browser.text().await.unwrap().contains("Thank you, 花子."));
    let seen = seen.lock().unwrap().clone().expect("the form was posted");
    assert_eq!(seen.accept_language.as_deref(), Some("ja"));
    browser.close().await.unwrap();
}
