//! `StoreError`, the store's one error type, and the single rule that says which failures are
//! transient (worth retrying once PostgreSQL is back) and which are not.

use sqlx::migrate::MigrateError;

/// Why a store operation failed. Every variant displays as a sentence fit for an operator.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// PostgreSQL could not be reached, or dropped the connection, or is restarting: retry later.
    #[error("{}", describe_unavailable(.0))]
    Unavailable(#[source] sqlx::Error),
    /// The caller passed a value the registry refuses; the sentence names the field.
    #[error("{0}")]
    Invalid(String),
    /// The caller referred to an organization or client that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The write would break a uniqueness rule, e.g. two organizations with one name.
    #[error("{0}")]
    Conflict(String),
    /// PostgreSQL refused the query for a reason retrying will not fix.
    #[error("{}", describe_database(.0))]
    Database(#[source] sqlx::Error),
    #[error("could not apply the database migrations: {0}")]
    Migrate(#[source] MigrateError),
}

impl StoreError {
    /// The store is shutting down (its pool or a task in front of it is gone): transient.
    pub fn closed() -> Self {
        StoreError::Unavailable(sqlx::Error::PoolClosed)
    }

    /// True when the same call may succeed later without anyone changing anything: PostgreSQL is
    /// unreachable, restarting or shutting down, or the transaction lost a serialization race.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Database(e) => is_transient_sqlx(e),
            StoreError::Migrate(
                MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _),
            ) => is_transient_sqlx(e),
            StoreError::Invalid(_)
            | StoreError::NotFound(_)
            | StoreError::Conflict(_)
            | StoreError::Migrate(_) => false,
        }
    }

    /// True when PostgreSQL refused the write because it would duplicate a unique key.
    pub fn is_unique_violation(&self) -> bool {
        self.sqlstate().as_deref() == Some("23505")
    }

    /// The SQLSTATE PostgreSQL returned, if this error came from the server.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            StoreError::Unavailable(e) | StoreError::Database(e) => sqlstate(e),
            StoreError::Migrate(
                MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _),
            ) => sqlstate(e),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_transient_sqlx(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Database(e)
        }
    }
}

impl From<MigrateError> for StoreError {
    fn from(e: MigrateError) -> Self {
        StoreError::Migrate(e)
    }
}

/// The classification rule, in one place: I/O and pool failures, and the SQLSTATEs that mean the
/// server is unreachable, restarting or out of connection slots, or that the transaction lost a
/// serialization race.
pub(crate) fn is_transient_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(_) => sqlstate(e).is_some_and(|code| is_transient_sqlstate(&code)),
        _ => false,
    }
}

fn is_transient_sqlstate(code: &str) -> bool {
    // 08xxx connection exceptions; 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03
    // cannot_connect_now; 53300 too_many_connections; 40001 serialization_failure; 40P01 deadlock.
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
        )
}

pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|db| db.code())
        .map(|c| c.into_owned())
}

/// The sentence a failed connection attempt is reported with. It travels inside the
/// `sqlx::Error::Io` it replaces, so `StoreError::Unavailable` keeps its documented shape.
#[derive(Debug)]
pub(crate) struct Unreachable(pub(crate) String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

fn describe_unavailable(e: &sqlx::Error) -> String {
    if let sqlx::Error::Io(io) = e
        && let Some(unreachable) = io.get_ref().and_then(|r| r.downcast_ref::<Unreachable>())
    {
        return unreachable.0.clone();
    }
    let cause = match e {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "no connection became available in time".to_owned(),
        sqlx::Error::PoolClosed => "the connection pool is closed".to_owned(),
        other => server_message(other),
    };
    format!("PostgreSQL is unavailable ({cause}); the operation can be retried once it is back")
}

fn describe_database(e: &sqlx::Error) -> String {
    format!("PostgreSQL refused the query: {}", server_message(e))
}

/// The server's own message and SQLSTATE when there is one, otherwise sqlx's description.
fn server_message(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_sqlstates_are_the_connection_shutdown_and_race_classes() {
        let table = [
            ("08006", true),
            ("08001", true),
            ("57P01", true),
            ("57P02", true),
            ("57P03", true),
            ("53300", true),
            ("40001", true),
            ("40P01", true),
            ("23505", false),
            ("23503", false),
            ("42P01", false),
            ("28P01", false),
            ("3D000", false),
        ];
        for (code, transient) in table {
            assert_eq!(is_transient_sqlstate(code), transient, "SQLSTATE {code}");
        }
    }

    #[test]
    fn io_and_pool_errors_are_transient_and_others_are_not() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(StoreError::from(sqlx::Error::Io(refused)).is_transient());
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_transient());
        assert!(StoreError::from(sqlx::Error::PoolClosed).is_transient());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_transient());
        assert!(!StoreError::Invalid("x".into()).is_transient());
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::Database(_)
        ));
    }
}
