//! schemathesis (pinned in `tests/sdk/requirements.txt`) fuzzes `herald serve` against the OpenAPI
//! document it serves: examples, boundary and malformed values (the coverage phase) and random
//! valid and invalid requests, with every check on. No request may get a 5xx, every answer must
//! match the document, valid data must be accepted and invalid data refused.
//!
//! schemathesis lives in the SDK test's virtualenv, which `scripts/test.sh` (the README's test
//! command) creates and names in `HERALD_SDK_PYTHON`.

use std::process::Command;

use herald_testkit::env::{TestApi, TestEnv};

fn python() -> String {
    std::env::var("HERALD_SDK_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HERALD_SDK_PYTHON is not set: run the tests with scripts/test.sh (the README's test \
             command), which installs schemathesis into a virtualenv and sets it"
        )
    })
}

/// The hooks and settings of the run.
const SETTINGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let python = python();
    let env = TestEnv::new().await.unwrap();
    let mut settings = env.settings();
    // schemathesis sends requests back to back; the token's limit must not turn them into 429s.
    settings.api_rate_limit = 100_000;
    // The domain the hooks give the `auth0-custom-domain` header of valid requests.
    settings.allowed_custom_domains = vec!["id.custom.test".to_owned()];
    let api = TestApi::start(settings).await;
    // Every scope there is, so that every documented operation is reached.
    let token = api.token(&herald_domain::SCOPES.join(" ")).await;

    let base = format!("http://{}/api/v2", api.addr);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-m", "schemathesis.cli"])
            .args(["--config-file", &format!("{SETTINGS}/schemathesis.toml")])
            .arg("run")
            .arg(format!("{base}/openapi.json"))
            .args(["--url", &base])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["--checks", "all"])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args([
                "--max-examples",
                "25",
                "--seed",
                "1",
                "--request-timeout",
                "5",
            ])
            .args(["--generation-database", "none", "--no-color"])
            // schemathesis keeps a cache in its working directory: not in the source tree.
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .env("PYTHONPATH", SETTINGS)
            .env("SCHEMATHESIS_HOOKS", "herald_hooks")
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "schemathesis found problems (exit {:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    api.stop().await;
}
