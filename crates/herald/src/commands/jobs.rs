//! `herald jobs show <id>`: one job as the ledger knows it: its row, its ticket (the hash's first
//! bytes, never the token) and its history as a timeline.

use std::fmt::Write as _;

use anyhow::bail;
use herald_store::{JobEvent, LedgerJob, StoredTicket};
use time::{OffsetDateTime, UtcOffset};

use crate::app;
use crate::cli::JobsCommand;
use crate::settings::Settings;

use super::queues::human_age;

/// How much of a ticket's SHA-256 is shown: enough to match it in the database, useless to redeem.
const HASH_PREFIX_BYTES: usize = 6;

pub async fn run(settings: &Settings, cmd: JobsCommand) -> anyhow::Result<()> {
    let store = app::store(settings).await?;
    match cmd {
        JobsCommand::Show { id } => {
            let Some(job) = store.job(&id).await? else {
                bail!(
                    "there is no job {id:?} in the ledger; a job is recorded when a worker first \
                     takes it (`herald dlq purge --id {id}` without --yes looks for it in the \
                     dead-letter queue)"
                );
            };
            let ticket = store.ticket_for_job(&id).await?;
            let events = store.job_events(&id).await?;
            print!(
                "{}",
                render(&job, ticket.as_ref(), &events, OffsetDateTime::now_utc())
            );
            Ok(())
        }
    }
}

fn render(
    job: &LedgerJob,
    ticket: Option<&StoredTicket>,
    events: &[JobEvent],
    now: OffsetDateTime,
) -> String {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut out = String::new();
    let _ = writeln!(out, "Job {}", job.id);
    let rows = [
        ("type", job.kind.clone()),
        ("status", job.status.clone()),
        ("attempts", job.attempts.to_string()),
        ("last error", show(&job.last_error)),
        ("dead reason", show(&job.dead_reason)),
        ("recipient", show(&job.recipient)),
        ("user", show(&job.user_id)),
        ("organization", show(&job.organization_id)),
        ("client", show(&job.client_id)),
        ("locale", show(&job.locale)),
        ("Message-ID", show(&job.message_id)),
        ("created", timestamp(job.created_at)),
        ("updated", timestamp(job.updated_at)),
        ("sent", job.sent_at.map_or_else(|| "-".into(), timestamp)),
    ];
    for (label, value) in rows {
        let _ = writeln!(out, "  {:<13} {value}", format!("{label}:"));
    }

    out.push_str("\nTicket\n");
    match ticket {
        None => out.push_str("  none (welcome emails have none, and invalid jobs get none)\n"),
        Some(t) => {
            let expires = if t.expires_at <= now {
                format!("{} (expired)", timestamp(t.expires_at))
            } else {
                let left = u64::try_from((t.expires_at - now).whole_seconds()).unwrap_or(0);
                format!("{} (in {})", timestamp(t.expires_at), human_age(left))
            };
            let rows = [
                ("id", t.id.to_string()),
                ("purpose", t.purpose.clone()),
                ("created", timestamp(t.created_at)),
                ("expires", expires),
                (
                    "used",
                    t.used_at.map_or_else(|| "not yet".into(), timestamp),
                ),
                ("token hash", hash_prefix(&t.token_hash)),
            ];
            for (label, value) in rows {
                let _ = writeln!(out, "  {:<13} {value}", format!("{label}:"));
            }
        }
    }

    out.push_str("\nHistory\n");
    if events.is_empty() {
        out.push_str("  no events\n");
    }
    let width = events.iter().map(|e| e.event.len()).max().unwrap_or(0);
    for e in events {
        let detail = e.detail.as_deref().unwrap_or("");
        let line = format!(
            "  {}  attempt {:<2}  {:<width$}  {detail}",
            timestamp(e.at),
            e.attempt,
            e.event,
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// `2026-11-23 14:05:09Z`: UTC, to the second.
pub(super) fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn hash_prefix(hash: &[u8]) -> String {
    let shown = &hash[..hash.len().min(HASH_PREFIX_BYTES)];
    format!(
        "{}… (SHA-256; the token is never stored)",
        hex::encode(shown)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    #[test]
    fn a_job_renders_with_its_ticket_hash_prefix_and_its_timeline() {
        let job = LedgerJob {
            id: "signup-1.verify".into(),
            kind: "verification_email".into(),
            status: "sent".into(),
            attempts: 2,
            last_error: None,
            dead_reason: None,
            recipient: Some("ana@example.com".into()),
            user_id: Some("u1".into()),
            organization_id: None,
            client_id: None,
            locale: Some("fr".into()),
            message_id: Some("<signup-1.verify@id.example.com>".into()),
            created_at: at(1_800_000_000),
            updated_at: at(1_800_000_100),
            sent_at: Some(at(1_800_000_100)),
        };
        let ticket = StoredTicket {
            id: "00000000-0000-0000-0000-000000000000".parse().unwrap(),
            job_id: Some(job.id.clone()),
            token_hash: (0u8..32).collect(),
            purpose: "email_verification".into(),
            user_id: "u1".into(),
            email: "ana@example.com".into(),
            client_id: None,
            organization_id: None,
            result_url: None,
            include_email_in_redirect: false,
            mark_email_as_verified: false,
            factor: None,
            allow_multiple_enrollments: false,
            custom_domain: None,
            created_at: at(1_800_000_000),
            expires_at: at(1_800_000_000 + 432_000),
            used_at: None,
        };
        let events = [
            JobEvent {
                attempt: 1,
                event: "dead".into(),
                detail: Some("smtp_permanent: 554".into()),
                at: at(1_800_000_001),
            },
            JobEvent {
                attempt: 1,
                event: "replayed".into(),
                detail: None,
                at: at(1_800_000_050),
            },
        ];
        let text = render(&job, Some(&ticket), &events, at(1_800_000_200));
        assert!(text.contains("status:       sent"), "{text}");
        assert!(text.contains("2027-01-15 08:00:00Z"), "{text}");
        assert!(text.contains("000102030405…"), "{text}");
        assert!(!text.contains("0607"), "only a prefix of the hash: {text}");
        assert!(text.contains("(in 4d 23h)"), "{text}");
        assert!(text.contains("dead      smtp_permanent: 554"), "{text}");
        assert!(text.contains("replayed"), "{text}");
    }
}
