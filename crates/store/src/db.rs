//! The connection pool: connecting (creating the database when it is missing), migrations and
//! the health check.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgPool};

use crate::error::{StoreError, Unreachable, sqlstate};

/// The migrations in `/migrations`, embedded at build time (`build.rs` reruns when they change).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// How long to wait for a connection before calling PostgreSQL unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// Handle to Herald's database; cheap to clone (it shares one pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects to `database_url` with a pool of up to 10 connections.
    ///
    /// If the database does not exist, it is created first through the `postgres` maintenance
    /// database on the same server. A server that refuses the connection or is still starting up
    /// is reported at once as [`StoreError::Unavailable`] (transient); this does not wait for it.
    pub async fn connect(database_url: &str) -> Result<Store, StoreError> {
        Self::connect_with(database_url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// [`Store::connect`] with a pool of at most `max_connections` (at least 1).
    pub async fn connect_with(
        database_url: &str,
        max_connections: u32,
    ) -> Result<Store, StoreError> {
        let options = parse_url(database_url)?;
        ensure_database(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(|e| connect_error(&options, e))?;
        tracing::debug!(
            server = %server(&options),
            database = database_name(&options),
            "Connected to PostgreSQL."
        );
        Ok(Store { pool })
    }

    /// Wraps a pool that is already open, e.g. one made by `#[sqlx::test]`.
    pub fn from_pool(pool: PgPool) -> Store {
        Store { pool }
    }

    /// Applies the embedded migrations that are not applied yet; running it again is a no-op.
    /// Concurrent callers are serialised by sqlx's advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(StoreError::Migrate)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `SELECT 1` on a pooled connection.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every pooled connection and waits for them to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn parse_url(database_url: &str) -> Result<PgConnectOptions, StoreError> {
    const EXPECTED: &str = "expected postgres://user[:password]@host[:port]/database";
    let scheme_ok = ["postgres://", "postgresql://"].iter().any(|s| {
        database_url
            .get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    });
    if !scheme_ok {
        return Err(StoreError::Invalid(format!(
            "the database URL must start with postgres:// or postgresql://; {EXPECTED}"
        )));
    }
    // Neither the URL nor the parse error is echoed whole: the URL may carry a password.
    PgConnectOptions::from_str(database_url).map_err(|e| {
        StoreError::Invalid(format!(
            "the database URL is not a valid PostgreSQL URL ({e}); {EXPECTED}"
        ))
    })
}

/// Opens one connection to check the server and the database; creates the database if it is the
/// only thing missing.
async fn ensure_database(options: &PgConnectOptions) -> Result<(), StoreError> {
    match open(options).await {
        Ok(conn) => {
            let _ = conn.close().await;
            Ok(())
        }
        // 3D000 invalid_catalog_name: the server is up but the database is not there yet.
        Err(e) if sqlstate(&e).as_deref() == Some("3D000") => create_database(options).await,
        Err(e) => Err(connect_error(options, e)),
    }
}

async fn create_database(options: &PgConnectOptions) -> Result<(), StoreError> {
    let name = database_name(options);
    let maintenance = options.clone().database("postgres");
    let mut conn = open(&maintenance)
        .await
        .map_err(|e| connect_error(&maintenance, e))?;
    let sql = format!("CREATE DATABASE {}", quote_ident(&name)?);
    let created = sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await;
    let _ = conn.close().await;
    match created {
        Ok(_) => {
            tracing::info!(server = %server(options), database = %name, "Created the database.");
            Ok(())
        }
        // Another process created it between our check and our CREATE: just as good.
        Err(e) if matches!(sqlstate(&e).as_deref(), Some("42P04" | "23505")) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn open(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::Io(std::io::ErrorKind::TimedOut.into())),
    }
}

/// Turns a failed connection attempt into a sentence that names the server (never the password)
/// and says how to get it running.
fn connect_error(options: &PgConnectOptions, e: sqlx::Error) -> StoreError {
    let reason = match &e {
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
            std::io::ErrorKind::TimedOut => {
                format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())
            }
            _ => io.to_string(),
        },
        sqlx::Error::PoolTimedOut => {
            format!("no connection within {}s", CONNECT_TIMEOUT.as_secs())
        }
        _ => return e.into(),
    };
    let hint = if is_local(options) {
        "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
         or your service manager"
    } else {
        "check that the server is running and reachable from this host"
    };
    let sentence = format!(
        "cannot reach PostgreSQL at {} ({reason}); {hint}",
        server(options)
    );
    let kind = match &e {
        sqlx::Error::Io(io) => io.kind(),
        _ => std::io::ErrorKind::TimedOut,
    };
    StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(
        kind,
        Unreachable(sentence),
    )))
}

fn server(options: &PgConnectOptions) -> String {
    if let Some(socket) = options.get_socket() {
        return socket.display().to_string();
    }
    let host = options.get_host();
    if host.contains(':') {
        format!("[{host}]:{}", options.get_port())
    } else {
        format!("{host}:{}", options.get_port())
    }
}

fn is_local(options: &PgConnectOptions) -> bool {
    options.get_socket().is_some()
        || matches!(options.get_host(), "localhost" | "127.0.0.1" | "::1")
        || options.get_host().starts_with('/')
}

/// PostgreSQL's default: a URL without a database names the user's own database.
fn database_name(options: &PgConnectOptions) -> String {
    options
        .get_database()
        .unwrap_or(options.get_username())
        .to_owned()
}

/// Quotes an identifier for PostgreSQL (`"` doubled); NUL cannot be quoted and is refused.
fn quote_ident(name: &str) -> Result<String, StoreError> {
    if name.is_empty() || name.contains('\0') {
        return Err(StoreError::Invalid(format!(
            "the database name {name:?} cannot be used; it must be non-empty and without NUL"
        )));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_doubled_quotes() {
        assert_eq!(quote_ident("herald").unwrap(), "\"herald\"");
        assert_eq!(quote_ident("a\"b; DROP").unwrap(), "\"a\"\"b; DROP\"");
        assert!(quote_ident("").is_err());
        assert!(quote_ident("a\0b").is_err());
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_the_password() {
        let err = parse_url("mysql://u:hunter2@h/db").unwrap_err().to_string();
        assert!(err.contains("postgres://"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse_url("postgres://u:hunter2@h:notaport/db")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
