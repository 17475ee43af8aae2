//! Herald's metric names, help texts and the worker's recording helpers, in one place.
//!
//! Recording goes through the `metrics` facade, so the worker stays free of any exporter: until a
//! recorder is installed (`herald-observe` installs a Prometheus one) every call is a no-op.
//! Names follow Prometheus conventions: base units, `_total` counters, `_seconds` histograms.

use std::time::Duration;

use herald_domain::{TemplateName, TicketPurpose};
use herald_store::OverrideScope;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, histogram};

use crate::outcome::Outcome;

/// Deliveries settled, by job `type` and `outcome` (sent, duplicate, retry, deferred, dead).
pub const JOBS_TOTAL: &str = "herald_jobs_total";
/// Jobs dead-lettered, by `reason` (the `x-herald-reason` header).
pub const DEAD_LETTERS_TOTAL: &str = "herald_dead_letters_total";
/// The attempt number a job was delivered on, by job `type`.
pub const JOB_ATTEMPTS: &str = "herald_job_attempts";
/// One SMTP send (or `.eml` write), by `result` (ok, error, timeout).
pub const SEND_DURATION_SECONDS: &str = "herald_send_duration_seconds";
/// Rendering one email (templates, fluent, CSS inlining).
pub const RENDER_DURATION_SECONDS: &str = "herald_render_duration_seconds";
/// Emails whose template override failed to render and that got the built-in template instead,
/// by `template`, `scope` (organization, client, or tenant for `/email-templates`) and `scope_id`.
pub const TEMPLATE_OVERRIDE_FAILURES_TOTAL: &str = "herald_template_override_failures_total";
/// Tickets created, by `purpose`.
pub const TICKETS_ISSUED_TOTAL: &str = "herald_tickets_issued_total";
/// Tickets redeemed, by `purpose`.
pub const TICKETS_REDEEMED_TOTAL: &str = "herald_tickets_redeemed_total";
/// Pooled SMTP connections, by `state` (in_use, idle).
pub const SMTP_POOL_CONNECTIONS: &str = "herald_smtp_pool_connections";
/// Ready messages in a queue, by `queue`.
pub const QUEUE_MESSAGES: &str = "herald_queue_messages";
/// Consumers of a queue, by `queue`.
pub const QUEUE_CONSUMERS: &str = "herald_queue_consumers";
/// How long the oldest message of a queue has waited, by `queue` (see `herald-observe`'s poller
/// for where each queue's age comes from).
pub const QUEUE_OLDEST_MESSAGE_AGE_SECONDS: &str = "herald_queue_oldest_message_age_seconds";
/// Jobs per group-commit statement, by `statement` (begin, sent).
pub const LEDGER_BATCH_JOBS: &str = "herald_ledger_batch_jobs";
/// Always 1, with the running `version` as a label.
pub const BUILD_INFO: &str = "herald_build_info";

/// Buckets for the `_seconds` histograms: 1 ms to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets for [`JOB_ATTEMPTS`] (`HERALD_MAX_ATTEMPTS` is at most 100).
pub const ATTEMPT_BUCKETS: &[f64] = &[
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0,
];

/// Buckets for [`LEDGER_BATCH_JOBS`] (`HERALD_LEDGER_BATCH` is at most 1000).
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1000.0,
];

/// Every histogram with its buckets, for the exporter's configuration.
pub const HISTOGRAMS: &[(&str, &[f64])] = &[
    (JOB_ATTEMPTS, ATTEMPT_BUCKETS),
    (LEDGER_BATCH_JOBS, BATCH_BUCKETS),
    (SEND_DURATION_SECONDS, DURATION_BUCKETS),
    (RENDER_DURATION_SECONDS, DURATION_BUCKETS),
];

/// The `type` label of a delivery whose body is not a valid job.
pub const INVALID_TYPE: &str = "invalid";

/// Gives every metric its help text and unit, and creates the series that must be visible before
/// anything happens. Call it once, after the recorder is installed.
pub fn describe() {
    describe_counter!(
        JOBS_TOTAL,
        "Deliveries settled, by job type and outcome (sent, duplicate, retry, deferred, dead)."
    );
    describe_counter!(
        DEAD_LETTERS_TOTAL,
        "Jobs dead-lettered, by reason (the x-herald-reason header)."
    );
    describe_histogram!(
        JOB_ATTEMPTS,
        "The attempt number each job was delivered on, by job type."
    );
    describe_histogram!(
        SEND_DURATION_SECONDS,
        Unit::Seconds,
        "Time to hand one email to the SMTP server (or write it to the outbox), by result."
    );
    describe_histogram!(
        RENDER_DURATION_SECONDS,
        Unit::Seconds,
        "Time to render one email (templates, translations, CSS inlining)."
    );
    describe_counter!(
        TEMPLATE_OVERRIDE_FAILURES_TOTAL,
        "Emails whose template override failed to render and were sent with the built-in \
         template instead, by template, scope (organization, client, tenant) and scope_id."
    );
    describe_counter!(
        TICKETS_ISSUED_TOTAL,
        "Tickets created for jobs, by purpose."
    );
    describe_counter!(
        TICKETS_REDEEMED_TOTAL,
        "Tickets redeemed on `herald serve`'s ticket pages, by purpose (counted by herald serve)."
    );
    describe_gauge!(
        SMTP_POOL_CONNECTIONS,
        "Pooled SMTP connections, by state (in_use, idle)."
    );
    describe_gauge!(
        QUEUE_MESSAGES,
        "Ready messages in each Herald queue (unacked ones are not counted), every 5 s."
    );
    describe_gauge!(
        QUEUE_CONSUMERS,
        "Consumers of each Herald queue, every 5 s."
    );
    describe_gauge!(
        QUEUE_OLDEST_MESSAGE_AGE_SECONDS,
        Unit::Seconds,
        "Age of the oldest message in each Herald queue, every 5 s; 0 when it has no ready \
         messages. Retry tiers and the dead queue: from the job ledger. The work queue: an upper \
         bound, now minus the newest publish time this worker was delivered (NaN before any)."
    );
    describe_histogram!(
        LEDGER_BATCH_JOBS,
        "Jobs per ledger statement under group commit, by statement (begin, sent); none with \
         HERALD_LEDGER_BATCH=1."
    );
    describe_gauge!(BUILD_INFO, "Always 1; the version label names the build.");

    for purpose in TicketPurpose::ALL {
        counter!(TICKETS_REDEEMED_TOTAL, "purpose" => purpose.as_str()).absolute(0);
    }
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// The `outcome` label of a settled delivery.
pub fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Sent { .. } => "sent",
        Outcome::Duplicate => "duplicate",
        Outcome::Skipped => "skipped",
        Outcome::Retry { .. } => "retry",
        Outcome::Defer { .. } => "deferred",
        Outcome::DeadLetter { .. } => "dead",
    }
}

/// Records how a delivery of a job of type `kind` was settled. `copied` is false when its retry
/// or dead-letter copy was not confirmed and the delivery was rejected to the dead-letter
/// exchange instead: it then counts as dead with reason `copy_unconfirmed`.
pub fn record_outcome(outcome: &Outcome, kind: &'static str, copied: bool) {
    if !copied {
        counter!(JOBS_TOTAL, "type" => kind, "outcome" => "dead").increment(1);
        counter!(DEAD_LETTERS_TOTAL, "reason" => "copy_unconfirmed").increment(1);
        return;
    }
    counter!(JOBS_TOTAL, "type" => kind, "outcome" => outcome_label(outcome)).increment(1);
    match outcome {
        Outcome::Sent { attempt } => {
            histogram!(JOB_ATTEMPTS, "type" => kind).record(f64::from(*attempt));
        }
        Outcome::DeadLetter { reason, .. } => {
            counter!(DEAD_LETTERS_TOTAL, "reason" => *reason).increment(1);
        }
        Outcome::Duplicate | Outcome::Skipped | Outcome::Retry { .. } | Outcome::Defer { .. } => {}
    }
}

pub fn record_render(elapsed: Duration) {
    histogram!(RENDER_DURATION_SECONDS).record(elapsed.as_secs_f64());
}

/// `result` is `ok`, `error` or `timeout`.
pub fn record_send(elapsed: Duration, result: &'static str) {
    histogram!(SEND_DURATION_SECONDS, "result" => result).record(elapsed.as_secs_f64());
}

/// `statement` is `begin` or `sent`.
pub fn record_ledger_batch(statement: &'static str, jobs: usize) {
    histogram!(LEDGER_BATCH_JOBS, "statement" => statement).record(jobs as f64);
}

/// One email that fell back to the built-in `template` because the override of `scope` failed.
/// A tenant-wide template (`/email-templates`) that failed to render: `scope="tenant"`.
pub fn record_tenant_template_failure(template: TemplateName) {
    counter!(
        TEMPLATE_OVERRIDE_FAILURES_TOTAL,
        "template" => template.as_str(),
        "scope" => "tenant",
        "scope_id" => ""
    )
    .increment(1);
}

pub fn record_override_failure(template: TemplateName, scope: &OverrideScope) {
    let (kind, id) = match scope {
        OverrideScope::Organization(id) => ("organization", id),
        OverrideScope::Client(id) => ("client", id),
    };
    counter!(
        TEMPLATE_OVERRIDE_FAILURES_TOTAL,
        "template" => template.as_str(),
        "scope" => kind,
        "scope_id" => id.clone()
    )
    .increment(1);
}

pub fn record_ticket_issued(purpose: TicketPurpose) {
    counter!(TICKETS_ISSUED_TOTAL, "purpose" => purpose.as_str()).increment(1);
}

/// Sets the pool gauges from the mailer's current counts.
pub fn record_smtp_pool(mailer: &herald_smtp::Mailer) {
    metrics::gauge!(SMTP_POOL_CONNECTIONS, "state" => "in_use").set(mailer.in_use() as f64);
    metrics::gauge!(SMTP_POOL_CONNECTIONS, "state" => "idle").set(mailer.idle() as f64);
}

/// Sets a queue's gauges.
pub fn record_queue(queue: &str, messages: u32, consumers: u32) {
    metrics::gauge!(QUEUE_MESSAGES, "queue" => queue.to_owned()).set(f64::from(messages));
    metrics::gauge!(QUEUE_CONSUMERS, "queue" => queue.to_owned()).set(f64::from(consumers));
}

/// Sets a queue's oldest-message age, in seconds (NaN when it is not known).
pub fn record_queue_age(queue: &str, seconds: f64) {
    metrics::gauge!(QUEUE_OLDEST_MESSAGE_AGE_SECONDS, "queue" => queue.to_owned()).set(seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        for name in [
            JOBS_TOTAL,
            DEAD_LETTERS_TOTAL,
            TEMPLATE_OVERRIDE_FAILURES_TOTAL,
            TICKETS_ISSUED_TOTAL,
            TICKETS_REDEEMED_TOTAL,
        ] {
            assert!(
                name.starts_with("herald_") && name.ends_with("_total"),
                "{name}"
            );
        }
        for (name, buckets) in HISTOGRAMS {
            assert!(name.starts_with("herald_"), "{name}");
            assert!(buckets.windows(2).all(|w| w[0] < w[1]), "{name}");
        }
        assert_eq!(DURATION_BUCKETS.first(), Some(&0.001));
        assert_eq!(DURATION_BUCKETS.last(), Some(&10.0));
    }

    #[test]
    fn every_outcome_has_a_label() {
        let labels: Vec<_> = [
            Outcome::Sent { attempt: 1 },
            Outcome::Duplicate,
            Outcome::Skipped,
            Outcome::Retry {
                attempt: 1,
                error: String::new(),
            },
            Outcome::Defer {
                attempts: 1,
                wait: Duration::from_secs(1),
            },
            Outcome::DeadLetter {
                reason: "x",
                error: String::new(),
                attempts: 1,
            },
        ]
        .iter()
        .map(outcome_label)
        .collect();
        assert_eq!(
            labels,
            ["sent", "duplicate", "skipped", "retry", "deferred", "dead"]
        );
    }
}
