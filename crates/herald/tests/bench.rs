//! `herald bench` end to end with tiny numbers: every phase runs against the real broker,
//! database and a worker process, and the JSON report holds sane figures. Speed is not judged.

use std::process::Command;

use serde_json::Value;

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

fn number(value: &Value, pointer: &str) -> f64 {
    value
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} is not a number in {value:#}"))
}

#[test]
fn a_tiny_benchmark_measures_every_phase_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let output = Command::new(HERALD)
        .args([
            "bench",
            "--jobs",
            "300",
            "--runs",
            "1",
            "--rate",
            "100",
            "--rate-seconds",
            "2",
            "--smtp-messages",
            "200",
            "--json",
        ])
        .arg(&json)
        .env("HERALD_PREFETCH", "16")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "herald bench failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("end-to-end throughput"), "{stdout}");

    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["jobs"], 300);
    assert_eq!(
        report["settings"]["prefetch"], 16,
        "HERALD_PREFETCH reaches the worker"
    );
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    for phase in ["ceiling", "producer", "drain", "latency", "smtp"] {
        assert!(run[phase].is_object(), "phase {phase} is missing: {run:#}");
    }

    assert_eq!(run["ceiling"]["messages"], 300);
    assert_eq!(run["producer"]["jobs"], 300);
    let drain = &run["drain"];
    assert_eq!(drain["sent"], 300);
    assert_eq!(drain["accepted"], 300);
    assert_eq!(drain["distinct"], 300);
    assert_eq!(drain["duplicates"], 0);
    assert_eq!(drain["lost"], 0);
    assert_eq!(drain["dead"], 0);
    assert_eq!(drain["dead_letters"], 0);
    assert_eq!(drain["left_in_queue"], 0);
    assert_eq!(run["latency"]["jobs"], 200);
    assert_eq!(run["latency"]["publish_errors"], 0);
    assert_eq!(run["latency"]["lost"], 0);

    for pointer in [
        "/runs/0/ceiling/per_second",
        "/runs/0/producer/per_second",
        "/runs/0/drain/per_second",
        "/runs/0/drain/worker_cpu_seconds",
        "/runs/0/drain/peak_rss_bytes",
        "/runs/0/latency/offered_per_second",
        "/runs/0/smtp/per_second",
        "/runs/0/ratio_to_ceiling",
        "/median/e2e_per_second",
    ] {
        assert!(number(&report, pointer) > 0.0, "{pointer}: {report:#}");
    }
    let latency = |p: &str| number(run, &format!("/latency/latency_ms/{p}"));
    assert!(latency("p50") > 0.0);
    assert!(latency("p50") <= latency("p90"), "{run:#}");
    assert!(latency("p90") <= latency("p99"), "{run:#}");
    assert!(latency("p99") <= latency("max"), "{run:#}");
    assert_eq!(report["targets"].as_array().unwrap().len(), 6);
}
