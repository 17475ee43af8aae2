//! Logging: human-readable lines by default, JSON with HERALD_LOG_FORMAT=json; RUST_LOG filters.

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// `default_level` applies when RUST_LOG is unset (the demo keeps its table readable with `warn`).
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{default_level},lapin=warn,sqlx=warn,lettre=warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}
