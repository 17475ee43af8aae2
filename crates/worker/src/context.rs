//! Builds the render context of a job from the job, its organization and client, and its link
//! (or, for a code email, its one-time code).

use herald_domain::{EmailJob, JobSpec};
use herald_render::{ApplicationView, Brand, EmailContext, OrganizationView, UserView};
use herald_store::{Client, Organization};
use time::OffsetDateTime;

/// The context a job's email is rendered with. `url` is the ticket link (for a welcome email, the
/// client's login URI when it has one).
///
/// The "expires in" line states what the ticket has left at `now`: `ticket_expires_at` is the
/// ticket's own expiry, fixed when it was issued, so time spent on retries is not promised again.
/// Without one (a preview, or a job with no ticket) it is the job's `ttl_sec`; for a code email,
/// the code's lifetime as the job states it.
pub fn email_context(
    job: &EmailJob,
    organization: Option<&Organization>,
    client: Option<&Client>,
    url: Option<String>,
    ticket_expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
    friendly_name: &str,
) -> EmailContext {
    let brand = organization.map_or_else(|| Brand::neutral(friendly_name), Organization::brand);
    let factor = match &job.spec {
        JobSpec::Enrollment { factor, .. } => factor.map(|f| f.as_str().to_string()),
        _ => None,
    };
    EmailContext {
        user: UserView {
            user_id: job.user.user_id.to_string(),
            email: job.user.email.to_string(),
            name: job.user.name.clone(),
        },
        url,
        ttl_sec: match ticket_expires_at {
            Some(at) => Some(seconds_left(at, now)),
            None => match &job.spec {
                JobSpec::MfaCode { ttl_sec, .. } => *ttl_sec,
                _ => job.ticket().map(|t| t.ttl_sec),
            },
        },
        application: client.map(|c| ApplicationView {
            name: c.name.clone(),
            login_uri: c.login_uri.clone(),
        }),
        organization: organization.map(|o| OrganizationView {
            id: o.id.clone(),
            name: o.name.clone(),
            display_name: o.display_name.clone(),
        }),
        brand,
        friendly_name: friendly_name.to_string(),
        factor,
        code: job.code().map(|c| c.expose().to_owned()),
    }
}

/// Whole seconds from `now` to `expires_at`, rounded down; 0 once it has passed.
fn seconds_left(expires_at: OffsetDateTime, now: OffsetDateTime) -> u64 {
    u64::try_from((expires_at - now).whole_seconds()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::JobKind;
    use herald_store::Branding;

    fn org() -> Organization {
        Organization {
            id: "org_acme".into(),
            name: "acme".into(),
            display_name: "Acme Corp".into(),
            branding: Branding {
                logo_url: Some("https://cdn.acme.test/logo.png".into()),
                primary_color: Some("#ff6600".into()),
                page_background: None,
            },
            default_locale: Some("fr".into()),
            from_address: None,
        }
    }

    #[test]
    fn an_organizations_branding_is_applied_over_the_neutral_default() {
        let job = EmailJob::builder(JobKind::Verification, "u1", "a@example.com")
            .organization_id("org_acme")
            .build()
            .unwrap();
        let ctx = email_context(
            &job,
            Some(&org()),
            None,
            Some("https://x/u".into()),
            None,
            OffsetDateTime::now_utc(),
            "Herald",
        );
        assert_eq!(ctx.brand.name, "Acme Corp");
        assert_eq!(ctx.brand.primary_color, "#ff6600");
        assert_eq!(
            ctx.brand.page_background,
            Brand::neutral("x").page_background
        );
        assert_eq!(
            ctx.brand.logo_url.as_deref(),
            Some("https://cdn.acme.test/logo.png")
        );
        assert_eq!(ctx.organization.unwrap().display_name, "Acme Corp");
        assert_eq!(ctx.ttl_sec, Some(432_000));
    }

    #[test]
    fn a_plain_user_gets_the_neutral_brand() {
        let job = EmailJob::builder(JobKind::Welcome, "u1", "a@example.com")
            .build()
            .unwrap();
        let ctx = email_context(
            &job,
            None,
            None,
            None,
            None,
            OffsetDateTime::now_utc(),
            "Herald",
        );
        assert_eq!(ctx.brand, Brand::neutral("Herald"));
        assert!(ctx.organization.is_none());
        assert_eq!(ctx.ttl_sec, None);
    }

    #[test]
    fn the_expiry_is_what_the_ticket_has_left_not_the_jobs_ttl() {
        // A 5-day ticket issued 2 days and 1 hour ago, retried since: 2 days and 23 hours left.
        let job = EmailJob::builder(JobKind::PasswordChange, "u1", "a@example.com")
            .ttl_sec(432_000)
            .build()
            .unwrap();
        let now = OffsetDateTime::now_utc();
        let expires_at = now + time::Duration::seconds(2 * 86_400 + 23 * 3_600);
        let ctx = email_context(
            &job,
            None,
            None,
            Some("https://x/u".into()),
            Some(expires_at),
            now,
            "Herald",
        );
        assert_eq!(ctx.ttl_sec, Some(2 * 86_400 + 23 * 3_600));

        let rendered = herald_render::Renderer::embedded()
            .unwrap()
            .render(
                job.kind().template(),
                &herald_domain::Locale::english(),
                &ctx,
                None,
            )
            .unwrap();
        assert!(rendered.text.contains("2 days"), "{}", rendered.text);
        assert!(!rendered.text.contains("5 days"), "{}", rendered.text);

        let past = email_context(
            &job,
            None,
            None,
            Some("https://x/u".into()),
            Some(now - time::Duration::seconds(5)),
            now,
            "Herald",
        );
        assert_eq!(past.ttl_sec, Some(0));
    }
}
