//! The `herald` executable as the tests run it: a clean environment pointed at one test's
//! services, run off the async runtime's threads.

use std::ffi::OsStr;
use std::process::{Command, Output};

use crate::env::{TEST_PUBLIC_URL, TestEnv};

/// The ticket secret every `herald` process started by [`herald`] signs with.
pub const TEST_TICKET_SECRET: &str = "integration-test-secret-0123456789abcdef";

/// `herald` (the executable at `exe`: `env!("CARGO_BIN_EXE_herald")` in the herald crate's
/// tests) with nothing inherited but `PATH`, pointed at `env`'s broker vhost, database and SMTP
/// sink, with [`TestEnv::topology`]'s retry tiers, the tests' public URL and ticket secret, free
/// ports for `/metrics` and `herald serve`, and warnings-only logs. A later `.env(..)` replaces any of these; add the arguments.
pub fn herald(exe: impl AsRef<OsStr>, env: &TestEnv) -> Command {
    let retry_delays = TestEnv::topology()
        .retry_delays
        .iter()
        .map(|delay| format!("{}ms", delay.as_millis()))
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Command::new(exe);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HERALD_AMQP_URL", &env.broker.url)
        .env("HERALD_DATABASE_URL", &env.db.url)
        .env("HERALD_SMTP_URL", env.sink.url())
        .env("HERALD_RETRY_DELAYS", retry_delays)
        .env("HERALD_PUBLIC_URL", TEST_PUBLIC_URL)
        .env("HERALD_TICKET_SECRET", TEST_TICKET_SECRET)
        // Free ports, so that a worker or server started here never collides with another
        // process on the machine (a developer's `herald worker` holds 9464).
        .env("HERALD_METRICS_ADDR", "127.0.0.1:0")
        .env("HERALD_HTTP_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    cmd
}

/// Runs `cmd` to completion on a blocking thread, so the test's in-process workers and servers
/// keep going meanwhile, and returns what it printed and how it exited.
///
/// # Panics
/// If the executable cannot be started.
pub async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the command starts"))
        .await
        .expect("the command's thread finishes")
}

/// Runs `cmd` like [`output`] and returns its standard output.
///
/// # Panics
/// If it fails, with its standard error and output in the message.
pub async fn stdout_of_success(cmd: Command) -> String {
    let shown = format!("{cmd:?}");
    let out = output(cmd).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shown} failed ({}): {}\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
