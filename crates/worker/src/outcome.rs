//! The one place that decides what a failure means: retry later, or dead-letter now and why.

use std::time::Duration;

use herald_domain::JobError;
use herald_render::RenderError;
use herald_smtp::{FailureClass, SendError};
use herald_store::StoreError;
use time::OffsetDateTime;

/// Everything that can stop a job from being delivered on this attempt.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("{0}")]
    CustomDomainNotAllowed(String),
    #[error("The organization does not exist: {0}")]
    UnknownOrganization(String),
    #[error("The client does not exist: {0}")]
    UnknownClient(String),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("rendering failed: {0}")]
    Render(#[from] RenderError),
    #[error("the email could not be built: {0}")]
    Compose(String),
    #[error("SMTP: {0}")]
    Send(#[from] SendError),
    #[error("SMTP: no answer within {0:?}")]
    SendTimeout(Duration),
    #[error("the ticket expired before the email could be delivered")]
    TicketExpired,
    /// The ledger holds a different job (another payload) under this job's id.
    #[error("a different job is already recorded under this id; this one was not sent")]
    IdConflict,
}

/// Transient failures are retried from a delay queue; permanent ones are dead-lettered at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Transient,
    Permanent { reason: &'static str },
}

/// Classifies a failure. SMTP 4xx, refused connections, timeouts and an unreachable database are
/// transient; SMTP 5xx and anything wrong with the job itself are permanent.
pub fn classify(failure: &Failure) -> Class {
    use Class::{Permanent, Transient};
    match failure {
        Failure::Job(e) => Permanent { reason: e.reason() },
        Failure::CustomDomainNotAllowed(_) => Permanent {
            reason: "custom_domain_not_allowed",
        },
        Failure::UnknownOrganization(_) => Permanent {
            reason: "unknown_organization",
        },
        Failure::UnknownClient(_) => Permanent {
            reason: "unknown_client",
        },
        Failure::Store(e) if e.is_transient() => Transient,
        Failure::Store(_) => Permanent {
            reason: "store_error",
        },
        Failure::Render(_) => Permanent {
            reason: "render_failed",
        },
        Failure::Compose(_) => Permanent {
            reason: "invalid_message",
        },
        Failure::Send(e) => match e.class() {
            FailureClass::Transient => Transient,
            FailureClass::Permanent => Permanent {
                reason: "smtp_permanent",
            },
        },
        Failure::SendTimeout(_) => Transient,
        Failure::TicketExpired => Permanent {
            reason: "ticket_expired",
        },
        Failure::IdConflict => Permanent {
            reason: "id_conflict",
        },
    }
}

/// What the consumer does with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered: ack.
    Sent { attempt: u32 },
    /// A duplicate delivery of a finished job: ack, send nothing.
    Duplicate,
    /// Not sent because the tenant disabled the template of its kind (`enabled: false`);
    /// recorded as skipped: ack.
    Skipped,
    /// Failed transiently: copy to the retry queue for `attempt`, then ack.
    Retry { attempt: u32, error: String },
    /// Another delivery of the job holds its lease: park a copy on the defer queue for `wait`
    /// (what that lease has left), then ack.
    Defer { attempts: u32, wait: Duration },
    /// Failed for good: copy to the dead-letter queue with the reason, then ack.
    DeadLetter {
        reason: &'static str,
        error: String,
        attempts: u32,
    },
}

/// Every dead-letter reason the worker gives, as the ledger and the `x-herald-reason` header
/// spell it.
pub const REASONS: &[&str] = &[
    "body_too_large",
    "malformed_json",
    "unknown_type",
    "invalid_job",
    "custom_domain_not_allowed",
    "unknown_organization",
    "unknown_client",
    "store_error",
    "render_failed",
    "invalid_message",
    "smtp_permanent",
    "ticket_expired",
    "id_conflict",
    "max_attempts",
];

/// The reason as one of [`REASONS`] (a reason read back from the ledger), or `"unknown"`.
pub fn known_reason(reason: &str) -> &'static str {
    REASONS
        .iter()
        .find(|known| **known == reason)
        .copied()
        .unwrap_or("unknown")
}

/// Turns the failure of attempt number `attempt` into the next step. A transient failure is
/// retried only while attempts remain and the job's ticket will still be valid after the delay.
pub fn decide(
    failure: &Failure,
    attempt: u32,
    max_attempts: u32,
    retry_delay: Duration,
    ticket_expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Outcome {
    let error = failure.to_string();
    match classify(failure) {
        Class::Permanent { reason } => Outcome::DeadLetter {
            reason,
            error,
            attempts: attempt,
        },
        Class::Transient if attempt >= max_attempts => Outcome::DeadLetter {
            reason: "max_attempts",
            error: format!("gave up after {attempt} attempts; last error: {error}"),
            attempts: attempt,
        },
        Class::Transient if ticket_expires_at.is_some_and(|expiry| now + retry_delay >= expiry) => {
            Outcome::DeadLetter {
                reason: "ticket_expired",
                error: format!(
                    "the ticket expires before the next attempt could run; last error: {error}"
                ),
                attempts: attempt,
            }
        }
        Class::Transient => Outcome::Retry { attempt, error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_error() -> Failure {
        Failure::Job(JobError::MalformedJson("eof".into()))
    }

    #[test]
    fn classification_table() {
        let cases: Vec<(Failure, Class)> = vec![
            (
                job_error(),
                Class::Permanent {
                    reason: "malformed_json",
                },
            ),
            (
                Failure::Job(JobError::UnknownType("sms".into())),
                Class::Permanent {
                    reason: "unknown_type",
                },
            ),
            (
                Failure::CustomDomainNotAllowed("x".into()),
                Class::Permanent {
                    reason: "custom_domain_not_allowed",
                },
            ),
            (
                Failure::UnknownOrganization("org_x".into()),
                Class::Permanent {
                    reason: "unknown_organization",
                },
            ),
            (
                Failure::UnknownClient("c".into()),
                Class::Permanent {
                    reason: "unknown_client",
                },
            ),
            (
                Failure::SendTimeout(Duration::from_secs(1)),
                Class::Transient,
            ),
            (
                Failure::TicketExpired,
                Class::Permanent {
                    reason: "ticket_expired",
                },
            ),
            (
                Failure::Compose("bad".into()),
                Class::Permanent {
                    reason: "invalid_message",
                },
            ),
            (
                Failure::IdConflict,
                Class::Permanent {
                    reason: "id_conflict",
                },
            ),
        ];
        for (failure, want) in cases {
            assert_eq!(classify(&failure), want, "{failure:?}");
        }
    }

    #[test]
    fn every_reason_classify_gives_is_a_known_reason() {
        let failures = [
            job_error(),
            Failure::Job(JobError::UnknownType("x".into())),
            Failure::Job(JobError::Invalid("x".into())),
            Failure::Job(JobError::TooLarge { size: 2, limit: 1 }),
            Failure::CustomDomainNotAllowed("x".into()),
            Failure::UnknownOrganization("x".into()),
            Failure::UnknownClient("x".into()),
            Failure::Compose("x".into()),
            Failure::TicketExpired,
            Failure::IdConflict,
        ];
        for failure in failures {
            if let Class::Permanent { reason } = classify(&failure) {
                assert_eq!(known_reason(reason), reason);
            }
        }
        assert_eq!(known_reason("max_attempts"), "max_attempts");
        assert_eq!(known_reason("something else"), "unknown");
    }

    #[test]
    fn transient_failures_retry_until_the_attempts_run_out() {
        let now = OffsetDateTime::now_utc();
        let timeout = Failure::SendTimeout(Duration::from_secs(1));
        let d = Duration::from_secs(30);
        assert!(matches!(
            decide(&timeout, 1, 10, d, None, now),
            Outcome::Retry { attempt: 1, .. }
        ));
        assert!(matches!(
            decide(&timeout, 9, 10, d, None, now),
            Outcome::Retry { attempt: 9, .. }
        ));
        assert!(matches!(
            decide(&timeout, 10, 10, d, None, now),
            Outcome::DeadLetter {
                reason: "max_attempts",
                attempts: 10,
                ..
            }
        ));
    }

    #[test]
    fn no_retry_is_scheduled_past_the_tickets_expiry() {
        let now = OffsetDateTime::now_utc();
        let timeout = Failure::SendTimeout(Duration::from_secs(1));
        let expiry = now + Duration::from_secs(60);
        assert!(matches!(
            decide(&timeout, 1, 10, Duration::from_secs(30), Some(expiry), now),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            decide(&timeout, 1, 10, Duration::from_secs(120), Some(expiry), now),
            Outcome::DeadLetter {
                reason: "ticket_expired",
                ..
            }
        ));
    }

    #[test]
    fn permanent_failures_are_dead_lettered_on_the_first_attempt() {
        let now = OffsetDateTime::now_utc();
        assert!(matches!(
            decide(&job_error(), 1, 10, Duration::from_secs(5), None, now),
            Outcome::DeadLetter {
                reason: "malformed_json",
                attempts: 1,
                ..
            }
        ));
    }
}
