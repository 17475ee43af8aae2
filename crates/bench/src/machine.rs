//! Facts about the machine and the services, printed with the results so figures can be compared.

use std::str::FromStr;

use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use url::Url;

/// Where the figures were measured.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub rabbitmq: String,
    pub postgresql: String,
}

impl Machine {
    /// Reads `/proc`, asks `rabbitmq-diagnostics` for the server version and PostgreSQL (through
    /// its `postgres` database) for its own. A fact that cannot be read is `"unknown"`.
    pub async fn describe(database_server: &Url) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            memory_gib: memory_kib / (1024.0 * 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned()),
            rabbitmq: rabbitmq_version().await,
            postgresql: postgres_version(database_server).await,
        }
    }
}

async fn rabbitmq_version() -> String {
    let output = tokio::process::Command::new("rabbitmq-diagnostics")
        .args(["-q", "server_version"])
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    match output {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => "unknown".to_owned(),
    }
}

async fn postgres_version(server: &Url) -> String {
    let version = async {
        let options = PgConnectOptions::from_str(server.as_str())?.database("postgres");
        let mut conn = options.connect().await?;
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok::<_, sqlx::Error>(version)
    };
    version.await.unwrap_or_else(|_| "unknown".to_owned())
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut values = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [(); 3].map(|()| values.next().unwrap_or(0.0))
}
