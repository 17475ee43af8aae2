//! An isolated PostgreSQL database per test: created and migrated by `TestDb::new`, dropped when
//! the `TestDb` is dropped.

use herald_store::Store;

/// The server the tests use; trust auth, so the URL carries no password.
const SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432";
const START_HINT: &str =
    "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`";

/// A fresh, migrated database named `t_<uuid>` that lives as long as this value.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub store: Store,
}

impl TestDb {
    pub async fn new() -> anyhow::Result<TestDb> {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{SERVER_URL}/{name}");
        // `Store::connect` creates the missing database through the `postgres` database.
        let store = Store::connect_with(&url, 5).await.map_err(|e| {
            if e.is_transient() {
                anyhow::anyhow!(
                    "the tests need PostgreSQL on 127.0.0.1:5432 and it is not answering ({e}); \
                     {START_HINT}"
                )
            } else {
                anyhow::anyhow!("could not create the test database {name}: {e}")
            }
        })?;
        let db = TestDb { name, url, store };
        db.store
            .migrate()
            .await
            .map_err(|e| anyhow::anyhow!("could not migrate the test database {}: {e}", db.name))?;
        Ok(db)
    }
}

impl Drop for TestDb {
    /// Best effort: drops the database with `psql` on a plain thread (no async runtime is needed,
    /// and `WITH (FORCE)` ends the pool's open connections). It waits for `psql` so the database
    /// is gone before the test binary exits; failures are reported on stderr, never as a panic.
    fn drop(&mut self) {
        let sql = format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name.replace('"', "\"\"")
        );
        let name = self.name.clone();
        let dropper = std::thread::Builder::new()
            .name(format!("drop-{name}"))
            .spawn(move || {
                let status = std::process::Command::new("psql")
                    .args([
                        "-X",
                        "-q",
                        "-h",
                        "127.0.0.1",
                        "-U",
                        "postgres",
                        "-d",
                        "postgres",
                        "-c",
                        &sql,
                    ])
                    .env("PGCONNECT_TIMEOUT", "5")
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
                match status {
                    Ok(s) if s.success() => {}
                    Ok(s) => eprintln!("note: could not drop test database {name} (psql {s})"),
                    Err(e) => eprintln!("note: could not drop test database {name} (psql: {e})"),
                }
            });
        if let Ok(handle) = dropper {
            let _ = handle.join();
        }
    }
}
