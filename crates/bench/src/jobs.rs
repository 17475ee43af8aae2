//! The benchmark's job mix: every job type, six locales plus negotiation fallbacks, and a third
//! of the jobs for a branded organization and its client; and the seeding of that organization.

use herald_domain::{EmailJob, EnrollmentFactor, JobKind};
use herald_store::{Branding, Client, Organization, Store};

/// The branded organization a third of the jobs belong to.
pub const BENCH_ORG: &str = "org_bench";
/// The client those jobs name.
pub const BENCH_CLIENT: &str = "bench-portal";

/// `email_locale` per job, in turn; `None` leaves the choice to `user.locale` or the defaults.
const EMAIL_LOCALES: [Option<&str>; 8] = [
    Some("en"),
    Some("fr"),
    Some("de"),
    Some("ja"),
    Some("es"),
    Some("pt-BR"),
    Some("fr-CA"),
    None,
];

/// Recipients' names, some outside ASCII so headers need encoding as in real traffic.
const NAMES: [&str; 6] = [
    "Ana Souza",
    "Camille Dubois",
    "Jonas Weber",
    "山田 花子",
    "Lucía García",
    "Sam Taylor",
];

/// Job `index` of the mix, with id `{prefix}-{index}`. Deterministic: the same index always
/// gives the same job. Kinds cycle every 5 jobs, branding every 3 and locales every 40, so
/// every combination occurs within 120 jobs.
pub fn job(prefix: &str, index: usize) -> anyhow::Result<EmailJob> {
    let kind = JobKind::ALL[index % JobKind::ALL.len()];
    let branded = index.is_multiple_of(3);
    let mut builder = EmailJob::builder(
        kind,
        format!("auth0|bench{index}"),
        format!("user{index}@example.com"),
    )
    .id(format!("{prefix}-{index}"))
    .name(NAMES[index % NAMES.len()]);
    builder = match EMAIL_LOCALES[(index / JobKind::ALL.len()) % EMAIL_LOCALES.len()] {
        Some(locale) => builder.email_locale(locale),
        // Negotiation from user.locale: de-AT falls back to de.
        None if index.is_multiple_of(2) => builder.user_locale("de-AT"),
        None => builder,
    };
    if branded {
        builder = builder.organization_id(BENCH_ORG).client_id(BENCH_CLIENT);
    }
    builder = match kind {
        // Auth0 refuses result_url together with an organization or client on these two.
        JobKind::Verification if !branded => builder.result_url("https://app.example.com/verified"),
        JobKind::Enrollment => builder.factor(EnrollmentFactor::Otp),
        JobKind::PasswordChange => builder.mark_email_as_verified(true),
        JobKind::MfaCode => builder
            .code(format!("{:06}", index % 1_000_000))
            .ttl_sec(600),
        _ => builder,
    };
    Ok(builder.build()?)
}

/// Jobs `0..count` of the mix (see [`job`]).
pub fn jobs(prefix: &str, count: usize) -> anyhow::Result<Vec<EmailJob>> {
    (0..count).map(|index| job(prefix, index)).collect()
}

/// Registers [`BENCH_ORG`] with full branding (logo, colours, default locale, From address)
/// and [`BENCH_CLIENT`].
pub async fn seed(store: &Store) -> anyhow::Result<()> {
    let organization = Organization {
        id: BENCH_ORG.into(),
        name: "bench".into(),
        display_name: "Bench & Co".into(),
        branding: Branding {
            logo_url: Some("https://bench.example/logo.svg".into()),
            primary_color: Some("#0f766e".into()),
            page_background: Some("#f0fdfa".into()),
        },
        default_locale: Some("de".into()),
        from_address: Some("Bench & Co <no-reply@bench.example>".into()),
    };
    store.upsert_organization(&organization).await?;
    let client = Client {
        id: BENCH_CLIENT.into(),
        name: "Bench Portal".into(),
        login_uri: Some("https://portal.bench.example/login".into()),
    };
    store.upsert_client(&client).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_covers_every_kind_locale_and_audience() {
        let jobs = jobs("t", 120).unwrap();
        for kind in JobKind::ALL {
            let of_kind: Vec<_> = jobs.iter().filter(|j| j.kind() == kind).collect();
            assert_eq!(of_kind.len(), 24, "{kind}");
            assert!(
                of_kind.iter().any(|j| j.organization_id.is_some()),
                "{kind}"
            );
            assert!(
                of_kind.iter().any(|j| j.organization_id.is_none()),
                "{kind}"
            );
        }
        let branded = jobs.iter().filter(|j| j.organization_id.is_some()).count();
        assert_eq!(branded, 40);
        for locale in EMAIL_LOCALES.iter().flatten() {
            assert!(
                jobs.iter()
                    .any(|j| j.email_locale.as_deref() == Some(*locale)),
                "{locale}"
            );
        }
    }

    #[test]
    fn ids_are_unique_and_carry_the_prefix() {
        let jobs = jobs("bench-r1", 1000).unwrap();
        let ids: std::collections::HashSet<_> = jobs.iter().map(|j| j.id.to_string()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.contains("bench-r1-999"));
    }

    #[test]
    fn every_job_of_the_mix_is_a_valid_v1_job() {
        for job in jobs("bench-r1", 120).unwrap() {
            assert_eq!(EmailJob::parse(&job.to_json(), 64 * 1024).unwrap(), job);
        }
    }
}
