//! The deployment files stay in step with the code: the Grafana dashboard only queries metrics
//! Herald exports, and docker-compose.yml only sets variables Herald reads.

use std::collections::BTreeSet;

const DASHBOARD: &str = include_str!("../../../deploy/grafana/dashboards/herald.json");
const COMPOSE: &str = include_str!("../../../docker-compose.yml");
const PROMETHEUS: &str = include_str!("../../../deploy/prometheus/prometheus.yml");
const SETTINGS_SOURCE: &str = include_str!("../../app/src/settings.rs");

fn herald_metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("herald_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(base.to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_only_queries_metrics_herald_exports() {
    let dashboard: serde_json::Value =
        serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 10, "the dashboard has its panels");
    use herald_worker::metrics as m;
    let exported: BTreeSet<&str> = [
        m::JOBS_TOTAL,
        m::DEAD_LETTERS_TOTAL,
        m::JOB_ATTEMPTS,
        m::SEND_DURATION_SECONDS,
        m::RENDER_DURATION_SECONDS,
        m::TICKETS_ISSUED_TOTAL,
        m::TICKETS_REDEEMED_TOTAL,
        m::SMTP_POOL_CONNECTIONS,
        m::QUEUE_MESSAGES,
        m::QUEUE_CONSUMERS,
        m::QUEUE_OLDEST_MESSAGE_AGE_SECONDS,
        m::BUILD_INFO,
        herald_observe::http::HTTP_REQUESTS_TOTAL,
        herald_observe::http::HTTP_REQUEST_DURATION_SECONDS,
    ]
    .into_iter()
    .collect();
    for expr in exprs {
        for name in herald_metric_names(expr) {
            assert!(
                exported.contains(name.as_str()),
                "the dashboard queries {name}, which Herald does not export ({expr})"
            );
        }
    }
}

#[test]
fn compose_sets_only_variables_herald_reads() {
    let vars: Vec<&str> = COMPOSE
        .lines()
        .filter_map(|l| l.trim().split(':').next())
        .filter(|k| k.starts_with("HERALD_"))
        .collect();
    assert!(vars.len() >= 5, "compose configures Herald");
    for var in vars {
        assert!(
            SETTINGS_SOURCE.contains(&format!("\"{var}\"")),
            "docker-compose.yml sets {var}, which Settings never reads"
        );
    }
}

#[test]
fn prometheus_scrapes_the_worker_and_rabbitmq() {
    assert!(PROMETHEUS.contains("worker:9464"));
    assert!(PROMETHEUS.contains("serve:8080"));
    assert!(COMPOSE.contains("HERALD_HTTP_ADDR: 0.0.0.0:8080"));
    assert!(PROMETHEUS.contains("rabbitmq:15692"));
    assert!(COMPOSE.contains("HERALD_METRICS_ADDR: 0.0.0.0:9464"));
}
