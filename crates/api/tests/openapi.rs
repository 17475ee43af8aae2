//! The OpenAPI document of `/api/v2`: the copy checked in as `schemas/management-api.openapi.json`
//! is the one the code generates, `herald serve` serves it without a token, and every operation
//! it lists is routed (and wants a token).
//!
//! After changing an annotation, regenerate the checked-in copy with
//! `HERALD_UPDATE_SCHEMAS=1 cargo test -p herald-api --test openapi`.

use std::path::PathBuf;
use std::time::Duration;

use herald_testkit::env::{TestApi, TestEnv};
use herald_testkit::http::request;
use serde_json::Value;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/management-api.openapi.json")
}

/// The file's expected content: the generated document and a final newline.
fn generated() -> String {
    format!("{}\n", herald_api::openapi::document())
}

#[test]
fn the_checked_in_document_is_the_generated_one() {
    let path = checked_in();
    if std::env::var_os("HERALD_UPDATE_SCHEMAS").is_some_and(|v| v == "1") {
        std::fs::write(&path, generated())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != generated() {
        let line = on_disk
            .lines()
            .zip(generated().lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "its end".to_owned(), |n| format!("line {}", n + 1));
        panic!(
            "{} differs from the document the code generates (first at {line}). If the change \
             is intended, regenerate it with\n\n    HERALD_UPDATE_SCHEMAS=1 cargo test -p \
             herald-api --test openapi\n\nand commit the file.",
            path.display()
        );
    }
}

#[test]
fn the_document_is_openapi_3_with_a_bearer_scheme_and_every_resource() {
    let doc: Value = serde_json::from_str(herald_api::openapi::document()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/users/{id}"));
    assert!(paths.contains_key("/email-templates/{templateName}"));
    // Auth0 answers 200 to a created template, not 201.
    assert!(
        doc["paths"]["/email-templates"]["post"]["responses"]
            .get("200")
            .is_some()
    );
    // deny_unknown_fields is stated, so clients (and fuzzers) know unknown properties are refused.
    assert_eq!(
        doc["components"]["schemas"]["CreateUser"]["additionalProperties"],
        false
    );
    assert_eq!(
        doc["components"]["schemas"]["UpdateEmailTemplate"]["additionalProperties"],
        false
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served_without_a_token_and_every_operation_in_it_is_routed() {
    let env = TestEnv::new().await.unwrap();
    let api = TestApi::start(env.settings()).await;

    let served = request(api.addr, "GET", "/api/v2/openapi.json", &[], b"").await;
    assert_eq!(served.status, 200, "{served:?}");
    assert!(
        served
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{served:?}"
    );
    assert_eq!(served.body, herald_api::openapi::document());

    // Every documented operation exists (no 404 or 405) and wants a token.
    let doc = served.json();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "x").replace("{name}", "x");
            let answer = request(
                api.addr,
                &method.to_ascii_uppercase(),
                &format!("/api/v2{concrete}"),
                &[],
                b"",
            )
            .await;
            assert_eq!(
                answer.status, 401,
                "{method} {path} without a token: {answer:?}"
            );
            checked += 1;
            // Failed authentications are limited to 10 a second per address.
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
    }
    assert!(checked >= 19, "only {checked} operations documented");
    api.stop().await;
}
