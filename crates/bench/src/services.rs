//! Fresh, throw-away service state for one benchmark phase: a RabbitMQ vhost (made with
//! `rabbitmqctl`) and a PostgreSQL database, each removed when its guard is dropped, on error
//! paths too.

use std::process::Stdio;
use std::str::FromStr;

use anyhow::{Context, bail};
use herald_store::Store;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};
use url::Url;

/// A vhost `name` on the local RabbitMQ node, with the URL's user allowed everything in it.
#[derive(Debug)]
pub struct FreshVhost {
    pub name: String,
    /// The server URL with the vhost as its path.
    pub url: String,
    deleted: bool,
}

impl FreshVhost {
    /// Creates the vhost. `server` gives the host, port and user (`guest` when it has none).
    pub async fn create(server: &Url, name: String) -> anyhow::Result<FreshVhost> {
        let user = match server.username() {
            "" => "guest".to_owned(),
            user => user.to_owned(),
        };
        let mut url = server.clone();
        // Bench vhost names are letters, digits and dashes: nothing to percent-encode.
        url.set_path(&format!("/{name}"));
        rabbitmqctl(&["add_vhost", &name]).await?;
        let vhost = FreshVhost {
            name,
            url: url.to_string(),
            deleted: false,
        };
        // From here on, Drop deletes the vhost even if the grant fails.
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &vhost.name,
            &user,
            ".*",
            ".*",
            ".*",
        ])
        .await?;
        Ok(vhost)
    }

    /// Deletes the vhost (and so its queues and connections) now.
    pub async fn delete(mut self) -> anyhow::Result<()> {
        self.deleted = true;
        rabbitmqctl(&["delete_vhost", &self.name]).await
    }
}

impl Drop for FreshVhost {
    /// The error path: deletes the vhost synchronously, so it is gone before the process exits.
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        let status = std::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!(
                "note: could not delete vhost {}; remove it with `rabbitmqctl delete_vhost {}`",
                self.name, self.name
            );
        }
    }
}

/// Runs `rabbitmqctl -q <args>`, turning a missing tool or a failure into advice.
async fn rabbitmqctl(args: &[&str]) -> anyhow::Result<()> {
    let command = format!("rabbitmqctl {}", args.join(" "));
    let output = tokio::process::Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await;
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "herald bench needs `rabbitmqctl` to create a fresh vhost per phase, and it is not on \
             PATH; run the benchmark on the RabbitMQ host (the server packages ship rabbitmqctl)"
        ),
        Err(e) => return Err(e).with_context(|| format!("could not run `{command}`")),
    };
    if !output.status.success() {
        let said = format!(
            "{} {}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        bail!(
            "`{command}` failed ({}): {}; is RabbitMQ running on this machine \
             (`rabbitmq-diagnostics -q ping`)?",
            output.status,
            said.trim()
        );
    }
    Ok(())
}

/// A database `name` on the PostgreSQL server of the given URL, migrated; dropped with the guard.
#[derive(Debug)]
pub struct FreshDatabase {
    pub name: String,
    /// The server URL with the database as its path.
    pub url: String,
    /// A small pool for the benchmark's own queries (the ledger counts).
    pub store: Store,
    maintenance: PgConnectOptions,
    dropped: bool,
}

impl FreshDatabase {
    /// Creates and migrates the database. `server` names the server and the user; its own
    /// database, if any, is left alone.
    pub async fn create(server: &Url, name: String) -> anyhow::Result<FreshDatabase> {
        let mut url = server.clone();
        url.set_path(&format!("/{name}"));
        let url = url.to_string();
        let maintenance = PgConnectOptions::from_str(&url)
            .context("the database URL is not a PostgreSQL URL")?
            .database("postgres")
            // DROP DATABASE ... WITH (FORCE) is slow by nature; no warning for it.
            .disable_statement_logging();
        // `connect_with` creates the database; the guard is built as soon as it is connected,
        // so a failed migration drops it again.
        let store = Store::connect_with(&url, 2)
            .await
            .with_context(|| format!("creating the benchmark database {name}"))?;
        let database = FreshDatabase {
            name,
            url,
            store,
            maintenance,
            dropped: false,
        };
        database
            .store
            .migrate()
            .await
            .with_context(|| format!("migrating the benchmark database {}", database.name))?;
        Ok(database)
    }

    /// Closes the pool and drops the database now.
    pub async fn drop_now(mut self) -> anyhow::Result<()> {
        self.dropped = true;
        self.store.close().await;
        drop_database(&self.maintenance, &self.name).await
    }
}

impl Drop for FreshDatabase {
    /// The error path: drops the database from a thread of its own (no async runtime is needed
    /// here) and waits for it, so it is gone before the process exits.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let maintenance = self.maintenance.clone();
        let name = self.name.clone();
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(drop_database(&maintenance, &name))
        });
        if !matches!(dropper.join(), Ok(Ok(()))) {
            eprintln!(
                "note: could not drop database {0}; remove it with `DROP DATABASE \"{0}\"`",
                self.name
            );
        }
    }
}

async fn drop_database(maintenance: &PgConnectOptions, name: &str) -> anyhow::Result<()> {
    let mut conn = maintenance.connect().await?;
    // WITH (FORCE) ends connections a killed worker may have left behind.
    let sql = format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        name.replace('"', "\"\"")
    );
    sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await?;
    let _ = conn.close().await;
    Ok(())
}
