//! The email-job contract v1: the JSON wire shape, and the rules that turn it into an [`EmailJob`].
//!
//! Parsing is strict, as Auth0's Management API is: unknown fields are refused, each field is
//! checked, and the cross-field rules Auth0 documents (e.g. no `result_url` together with
//! `client_id` or `organization_id` on a verification ticket) apply. Every refusal says which field
//! is wrong and why, so it can travel in a dead-letter header.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::code::{OneTimeCode, WireCode};
use crate::ids::{ClientId, EmailAddress, IdError, JobId, OrganizationId, UserId};
use crate::kind::JobKind;

/// A ticket lives this long when `ttl_sec` is absent or 0: five days, as in Auth0.
pub const DEFAULT_TTL_SEC: u64 = 432_000;
/// The longest ticket Herald issues (one year); longer requests are refused, not clamped.
pub const MAX_TTL_SEC: u64 = 31_536_000;
/// The longest a one-time code may live (one hour): the "expires in" line of an
/// `mfa_code_email` job states at most this.
pub const MAX_CODE_TTL_SEC: u64 = 3_600;
/// What the ledger keeps in place of an `mfa_code_email` job's code ([`EmailJob::to_record`]).
pub const REDACTED_CODE: &str = "<redacted>";
/// A job body as a dead letter keeps it: the same JSON object with its `code` member (an
/// `mfa_code_email` job's one-time code, or one a malformed job carried) replaced by
/// [`REDACTED_CODE`], so a code does not outlive its few minutes in the dead-letter queue. Such
/// a job is refused if replayed: a stale code is never sent. `None` when there is nothing to
/// redact (no `code`, or not a JSON object).
pub fn redact_code_in_body(body: &[u8]) -> Option<Vec<u8>> {
    let mut job: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    let code = job.get_mut("code")?;
    if code.as_str() == Some(REDACTED_CODE) {
        return None;
    }
    *code = serde_json::Value::String(REDACTED_CODE.to_owned());
    serde_json::to_vec(&job).ok()
}

/// The only schema version this crate reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Why a job body was refused. Each variant maps to one stable `reason` code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("the job body is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("the job body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error(
        "unknown job type {0:?}; expected verification_email, enrollment_email, password_change_email, welcome_email or mfa_code_email"
    )]
    UnknownType(String),
    #[error("{0}")]
    Invalid(String),
}

impl JobError {
    /// The machine-readable reason, as written in the `x-herald-reason` dead-letter header.
    pub fn reason(&self) -> &'static str {
        match self {
            JobError::TooLarge { .. } => "body_too_large",
            JobError::MalformedJson(_) => "malformed_json",
            JobError::UnknownType(_) => "unknown_type",
            JobError::Invalid(_) => "invalid_job",
        }
    }

    fn field(field: &str, message: impl std::fmt::Display) -> Self {
        JobError::Invalid(format!("{field} {message}"))
    }
}

impl From<IdError> for JobError {
    fn from(e: IdError) -> Self {
        JobError::Invalid(e.to_string())
    }
}

/// The JSON body exactly as it travels over AMQP (contract v1). Field names follow Auth0,
/// including its one camelCase field, `includeEmailInRedirect`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireJob {
    /// Schema version; absent means 1.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<u32>,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub user: WireUser,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub organization_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub email_locale: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub result_url: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl_sec: Option<u64>,
    #[serde(
        default,
        rename = "includeEmailInRedirect",
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub include_email_in_redirect: Option<bool>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub custom_domain: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub factor: Option<EnrollmentFactor>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_multiple_enrollments: Option<bool>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub mark_email_as_verified: Option<bool>,
    /// `mfa_code_email` only: the one-time code, six ASCII digits. Its `Debug` is redacted.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub code: Option<WireCode>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireUser {
    pub user_id: String,
    pub email: String,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub locale: Option<String>,
}

/// Reads an optional field that, when present, must hold a value: `null` is refused like any other
/// wrong type, as Auth0's schema validation does (an absent field stays `None` via `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(deserializer)? {
        Some(value) => Ok(Some(value)),
        None => Err(serde::de::Error::custom(
            "null is not a valid value; omit the field instead",
        )),
    }
}

/// The MFA factor an enrollment ticket is for (Auth0's `factor` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnrollmentFactor {
    PushNotification,
    Phone,
    Email,
    Otp,
    WebauthnRoaming,
    WebauthnPlatform,
}

impl EnrollmentFactor {
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentFactor::PushNotification => "push-notification",
            EnrollmentFactor::Phone => "phone",
            EnrollmentFactor::Email => "email",
            EnrollmentFactor::Otp => "otp",
            EnrollmentFactor::WebauthnRoaming => "webauthn-roaming",
            EnrollmentFactor::WebauthnPlatform => "webauthn-platform",
        }
    }
}

impl std::str::FromStr for EnrollmentFactor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
            format!(
                "unknown factor {s:?}; expected push-notification, phone, email, otp, webauthn-roaming or webauthn-platform"
            )
        })
    }
}

/// The recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub user_id: UserId,
    pub email: EmailAddress,
    /// Free text from upstream: untrusted, escaped wherever it is shown.
    pub name: Option<String>,
    /// The user's preferred locale as sent; negotiation decides whether it is usable.
    pub locale: Option<String>,
}

/// How the job's ticket behaves.
///
/// Equality compares the values, not whether they were given ([`Unset`]).
#[derive(Debug, Clone, Eq)]
pub struct TicketOptions {
    pub result_url: Option<Url>,
    pub ttl_sec: u64,
    pub include_email_in_redirect: bool,
    /// Which of these the job left out, so that they hold Herald's defaults and a tenant's
    /// email template may set them ([`EmailJob::apply_ticket_defaults`]).
    pub unset: Unset,
}

impl PartialEq for TicketOptions {
    fn eq(&self, other: &Self) -> bool {
        self.result_url == other.result_url
            && self.ttl_sec == other.ttl_sec
            && self.include_email_in_redirect == other.include_email_in_redirect
    }
}

/// The ticket fields a job left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unset {
    pub result_url: bool,
    pub ttl_sec: bool,
    pub include_email_in_redirect: bool,
}

/// Ticket defaults from a tenant's email template (Auth0's `resultUrl`,
/// `urlLifetimeInSeconds` and `includeEmailInRedirect`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketDefaults {
    pub result_url: Option<Url>,
    /// `None` or 0 keeps Herald's default lifetime.
    pub ttl_sec: Option<u64>,
    pub include_email_in_redirect: Option<bool>,
}

/// The kind-specific part of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSpec {
    Verification {
        ticket: TicketOptions,
    },
    Enrollment {
        ticket: TicketOptions,
        factor: Option<EnrollmentFactor>,
        allow_multiple_enrollments: bool,
    },
    PasswordChange {
        ticket: TicketOptions,
        mark_email_as_verified: bool,
    },
    Welcome,
    /// A one-time code for the MFA email factor; no ticket.
    MfaCode {
        /// The code to email (its `Debug` is redacted).
        code: OneTimeCode,
        /// How long the code lives, for the "expires in" line (1 to [`MAX_CODE_TTL_SEC`]);
        /// `None` leaves the line out. The job's `ttl_sec` on the wire.
        ttl_sec: Option<u64>,
    },
}

/// A validated email job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailJob {
    pub id: JobId,
    pub user: User,
    pub client_id: Option<ClientId>,
    pub organization_id: Option<OrganizationId>,
    /// The requested email locale as sent; negotiation decides whether it is usable.
    pub email_locale: Option<String>,
    /// A lowercase hostname; whether it is allowed is configuration, checked by the worker.
    pub custom_domain: Option<String>,
    pub spec: JobSpec,
}

impl EmailJob {
    /// Parses and validates a job body, refusing bodies over `max_bytes`.
    pub fn parse(body: &[u8], max_bytes: usize) -> Result<Self, JobError> {
        if body.len() > max_bytes {
            return Err(JobError::TooLarge {
                size: body.len(),
                limit: max_bytes,
            });
        }
        let wire: WireJob = serde_json::from_slice(body).map_err(|e| {
            // serde_json stops at the first problem, which may be a shape error before the bytes
            // that make the body invalid JSON (or a syntax error for a well-formed `null`), so
            // whether the body is JSON at all is decided separately.
            if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
                JobError::MalformedJson(e.to_string())
            } else {
                JobError::Invalid(e.to_string())
            }
        })?;
        Self::from_wire(wire)
    }

    /// Best-effort read of a job's `id` from a body that may be invalid, so even a refused job can
    /// be recorded under its idempotency key.
    pub fn peek_id(body: &[u8]) -> Option<JobId> {
        #[derive(Deserialize)]
        struct IdOnly {
            id: String,
        }
        let probe: IdOnly = serde_json::from_slice(body).ok()?;
        JobId::parse(probe.id).ok()
    }

    pub fn from_wire(wire: WireJob) -> Result<Self, JobError> {
        if let Some(v) = wire.version
            && v != SCHEMA_VERSION
        {
            return Err(JobError::field(
                "version",
                format!("{v} is not supported; this worker reads version {SCHEMA_VERSION}"),
            ));
        }
        let kind =
            JobKind::from_type_name(&wire.kind).ok_or(JobError::UnknownType(wire.kind.clone()))?;
        let id = JobId::parse(wire.id)?;
        let user = User {
            user_id: UserId::parse(wire.user.user_id)?,
            email: EmailAddress::parse(wire.user.email)?,
            name: display_name("user.name", wire.user.name, 300)?,
            locale: optional_text("user.locale", wire.user.locale, 64)?,
        };
        let client_id = wire.client_id.map(ClientId::parse).transpose()?;
        let organization_id = wire
            .organization_id
            .map(OrganizationId::parse)
            .transpose()?;
        let email_locale = optional_text("email_locale", wire.email_locale, 64)?;
        let custom_domain = wire.custom_domain.map(parse_domain).transpose()?;
        let result_url = wire.result_url.map(parse_result_url).transpose()?;

        let only_on = |present: bool, field: &str, allowed: JobKind| {
            if present && kind != allowed {
                Err(JobError::field(
                    field,
                    format!("is only allowed on {allowed} jobs, not on {kind}"),
                ))
            } else {
                Ok(())
            }
        };
        only_on(wire.factor.is_some(), "factor", JobKind::Enrollment)?;
        only_on(
            wire.allow_multiple_enrollments.is_some(),
            "allow_multiple_enrollments",
            JobKind::Enrollment,
        )?;
        only_on(
            wire.mark_email_as_verified.is_some(),
            "mark_email_as_verified",
            JobKind::PasswordChange,
        )?;
        only_on(wire.code.is_some(), "code", JobKind::MfaCode)?;

        // Auth0: result_url is for the classic experience only. A verification (and so, here, an
        // enrollment) ticket refuses it next to client_id or organization_id; a password-change
        // ticket refuses it next to organization_id only.
        if result_url.is_some() {
            let conflict = match kind {
                JobKind::Verification | JobKind::Enrollment => {
                    if client_id.is_some() {
                        Some("client_id")
                    } else if organization_id.is_some() {
                        Some("organization_id")
                    } else {
                        None
                    }
                }
                JobKind::PasswordChange => organization_id.is_some().then_some("organization_id"),
                // Refused below, as every ticket field is on these kinds.
                JobKind::Welcome | JobKind::MfaCode => None,
            };
            if let Some(other) = conflict {
                return Err(JobError::field(
                    "result_url",
                    format!("cannot be specified when using {other}"),
                ));
            }
        }

        let ttl_sec = match wire.ttl_sec {
            // A code's lifetime has its own rules, below.
            _ if kind == JobKind::MfaCode => DEFAULT_TTL_SEC,
            None | Some(0) => DEFAULT_TTL_SEC,
            Some(t) if t > MAX_TTL_SEC => {
                return Err(JobError::field(
                    "ttl_sec",
                    format!("must be at most {MAX_TTL_SEC} seconds (one year)"),
                ));
            }
            Some(t) => t,
        };
        let ticket = TicketOptions {
            unset: Unset {
                result_url: result_url.is_none(),
                ttl_sec: matches!(wire.ttl_sec, None | Some(0)),
                include_email_in_redirect: wire.include_email_in_redirect.is_none(),
            },
            result_url,
            ttl_sec,
            include_email_in_redirect: wire.include_email_in_redirect.unwrap_or(false),
        };

        let spec = match kind {
            JobKind::Verification => JobSpec::Verification { ticket },
            JobKind::Enrollment => JobSpec::Enrollment {
                ticket,
                factor: wire.factor,
                allow_multiple_enrollments: wire.allow_multiple_enrollments.unwrap_or(false),
            },
            JobKind::PasswordChange => JobSpec::PasswordChange {
                ticket,
                mark_email_as_verified: wire.mark_email_as_verified.unwrap_or(false),
            },
            JobKind::Welcome | JobKind::MfaCode => {
                // These carry no ticket, so ticket fields would be silently dropped. (A code
                // job's `ttl_sec` is the code's lifetime, checked below.)
                for (present, field) in [
                    (ticket.result_url.is_some(), "result_url"),
                    (
                        wire.ttl_sec.is_some() && kind == JobKind::Welcome,
                        "ttl_sec",
                    ),
                    (
                        wire.include_email_in_redirect.is_some(),
                        "includeEmailInRedirect",
                    ),
                ] {
                    if present {
                        return Err(JobError::field(
                            field,
                            format!("is not allowed on {kind} jobs, which carry no ticket"),
                        ));
                    }
                }
                if kind == JobKind::Welcome {
                    JobSpec::Welcome
                } else {
                    mfa_code_spec(wire.code, wire.ttl_sec)?
                }
            }
        };

        Ok(EmailJob {
            id,
            user,
            client_id,
            organization_id,
            email_locale,
            custom_domain,
            spec,
        })
    }

    pub fn kind(&self) -> JobKind {
        match self.spec {
            JobSpec::Verification { .. } => JobKind::Verification,
            JobSpec::Enrollment { .. } => JobKind::Enrollment,
            JobSpec::PasswordChange { .. } => JobKind::PasswordChange,
            JobSpec::Welcome => JobKind::Welcome,
            JobSpec::MfaCode { .. } => JobKind::MfaCode,
        }
    }

    /// The one-time code of an `mfa_code_email` job.
    pub fn code(&self) -> Option<&OneTimeCode> {
        match &self.spec {
            JobSpec::MfaCode { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Fills the ticket fields the job left out with a tenant template's defaults. A result URL
    /// given this way is not held to the rule that forbids a job's own `result_url` beside
    /// `client_id` or `organization_id`: it is the tenant's choice, not the caller's.
    pub fn apply_ticket_defaults(&mut self, defaults: &TicketDefaults) {
        let ticket = match &mut self.spec {
            JobSpec::Verification { ticket }
            | JobSpec::Enrollment { ticket, .. }
            | JobSpec::PasswordChange { ticket, .. } => ticket,
            JobSpec::Welcome | JobSpec::MfaCode { .. } => return,
        };
        if ticket.unset.result_url
            && let Some(url) = &defaults.result_url
        {
            ticket.result_url = Some(url.clone());
            ticket.unset.result_url = false;
        }
        if ticket.unset.ttl_sec
            && let Some(ttl) = defaults.ttl_sec.filter(|t| *t > 0)
        {
            ticket.ttl_sec = ttl.min(MAX_TTL_SEC);
            ticket.unset.ttl_sec = false;
        }
        if ticket.unset.include_email_in_redirect
            && let Some(include) = defaults.include_email_in_redirect
        {
            ticket.include_email_in_redirect = include;
            ticket.unset.include_email_in_redirect = false;
        }
    }

    /// The ticket settings, for kinds that issue a ticket.
    pub fn ticket(&self) -> Option<&TicketOptions> {
        match &self.spec {
            JobSpec::Verification { ticket }
            | JobSpec::Enrollment { ticket, .. }
            | JobSpec::PasswordChange { ticket, .. } => Some(ticket),
            JobSpec::Welcome | JobSpec::MfaCode { .. } => None,
        }
    }

    /// The wire form; `parse(to_json())` gives back an equal job.
    pub fn to_wire(&self) -> WireJob {
        let ticket = self.ticket();
        let mut wire = WireJob {
            version: None,
            id: self.id.to_string(),
            kind: self.kind().type_name().to_string(),
            user: WireUser {
                user_id: self.user.user_id.to_string(),
                email: self.user.email.to_string(),
                name: self.user.name.clone(),
                locale: self.user.locale.clone(),
            },
            client_id: self.client_id.as_ref().map(ToString::to_string),
            organization_id: self.organization_id.as_ref().map(ToString::to_string),
            email_locale: self.email_locale.clone(),
            result_url: ticket.and_then(|t| t.result_url.as_ref().map(ToString::to_string)),
            ttl_sec: ticket.map(|t| t.ttl_sec),
            include_email_in_redirect: ticket.map(|t| t.include_email_in_redirect),
            custom_domain: self.custom_domain.clone(),
            ..WireJob::default()
        };
        match &self.spec {
            JobSpec::Enrollment {
                factor,
                allow_multiple_enrollments,
                ..
            } => {
                wire.factor = *factor;
                wire.allow_multiple_enrollments = Some(*allow_multiple_enrollments);
            }
            JobSpec::PasswordChange {
                mark_email_as_verified,
                ..
            } => wire.mark_email_as_verified = Some(*mark_email_as_verified),
            JobSpec::MfaCode { code, ttl_sec } => {
                wire.code = Some(WireCode::from(code));
                wire.ttl_sec = *ttl_sec;
            }
            JobSpec::Verification { .. } | JobSpec::Welcome => {}
        }
        wire
    }

    /// The wire form as the job ledger keeps it: [`EmailJob::to_wire`] with an
    /// `mfa_code_email` job's code replaced by [`REDACTED_CODE`], so that the database holds
    /// only the code's keyed digest (kept by whoever made the code), never the code. Such a
    /// record no longer parses as a job: a code is never resent from the ledger.
    pub fn to_record(&self) -> WireJob {
        let mut wire = self.to_wire();
        if wire.code.is_some() {
            wire.code = Some(WireCode::new(REDACTED_CODE));
        }
        wire
    }

    /// The body a producer publishes: the wire form without the ticket fields the job left
    /// out, so that the worker can still fill them from the tenant's email template.
    /// `parse(to_json())` gives back an equal job with the same [`Unset`] fields. (The ledger
    /// keeps [`EmailJob::to_wire`], with Herald's defaults written in.)
    pub fn to_json(&self) -> Vec<u8> {
        let mut wire = self.to_wire();
        if let Some(ticket) = self.ticket() {
            if ticket.unset.ttl_sec {
                wire.ttl_sec = None;
            }
            if ticket.unset.include_email_in_redirect {
                wire.include_email_in_redirect = None;
            }
        }
        serde_json::to_vec(&wire).expect("a WireJob always serializes")
    }

    /// Starts a job of `kind` for a user; `build()` applies the same rules as [`EmailJob::parse`].
    pub fn builder(
        kind: JobKind,
        user_id: impl Into<String>,
        email: impl Into<String>,
    ) -> EmailJobBuilder {
        EmailJobBuilder {
            wire: WireJob {
                id: JobId::generate().to_string(),
                kind: kind.type_name().to_string(),
                user: WireUser {
                    user_id: user_id.into(),
                    email: email.into(),
                    ..WireUser::default()
                },
                ..WireJob::default()
            },
        }
    }
}

/// Builds an [`EmailJob`] field by field, for producers and the CLI.
#[derive(Debug, Clone)]
pub struct EmailJobBuilder {
    wire: WireJob,
}

impl EmailJobBuilder {
    /// Sets the idempotency key (a fresh `job_…` id is used otherwise).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.wire.id = id.into();
        self
    }
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.wire.user.name = Some(name.into());
        self
    }
    pub fn user_locale(mut self, locale: impl Into<String>) -> Self {
        self.wire.user.locale = Some(locale.into());
        self
    }
    pub fn email_locale(mut self, locale: impl Into<String>) -> Self {
        self.wire.email_locale = Some(locale.into());
        self
    }
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.wire.client_id = Some(id.into());
        self
    }
    pub fn organization_id(mut self, id: impl Into<String>) -> Self {
        self.wire.organization_id = Some(id.into());
        self
    }
    pub fn result_url(mut self, url: impl Into<String>) -> Self {
        self.wire.result_url = Some(url.into());
        self
    }
    pub fn ttl_sec(mut self, ttl: u64) -> Self {
        self.wire.ttl_sec = Some(ttl);
        self
    }
    pub fn include_email_in_redirect(mut self, yes: bool) -> Self {
        self.wire.include_email_in_redirect = Some(yes);
        self
    }
    pub fn custom_domain(mut self, domain: impl Into<String>) -> Self {
        self.wire.custom_domain = Some(domain.into());
        self
    }
    pub fn factor(mut self, factor: EnrollmentFactor) -> Self {
        self.wire.factor = Some(factor);
        self
    }
    pub fn allow_multiple_enrollments(mut self, yes: bool) -> Self {
        self.wire.allow_multiple_enrollments = Some(yes);
        self
    }
    pub fn mark_email_as_verified(mut self, yes: bool) -> Self {
        self.wire.mark_email_as_verified = Some(yes);
        self
    }
    /// `mfa_code_email` only: the one-time code (six ASCII digits, checked by `build()`).
    /// Its lifetime, for the "expires in" line, is [`EmailJobBuilder::ttl_sec`].
    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.wire.code = Some(WireCode::new(code));
        self
    }
    pub fn build(self) -> Result<EmailJob, JobError> {
        EmailJob::from_wire(self.wire)
    }
}

/// The spec of an `mfa_code_email` job: its code is required and must be six ASCII digits; its
/// `ttl_sec`, when given, is the code's lifetime, from 1 to [`MAX_CODE_TTL_SEC`] seconds (no
/// 0-means-default here: a code has no default lifetime Herald could state).
fn mfa_code_spec(code: Option<WireCode>, ttl_sec: Option<u64>) -> Result<JobSpec, JobError> {
    let Some(code) = code else {
        return Err(JobError::field(
            "code",
            "is required on mfa_code_email jobs (six ASCII digits)",
        ));
    };
    let code = OneTimeCode::parse(code.expose()).map_err(|e| JobError::field("code", e))?;
    if let Some(t) = ttl_sec
        && !(1..=MAX_CODE_TTL_SEC).contains(&t)
    {
        return Err(JobError::field(
            "ttl_sec",
            format!(
                "must be from 1 to {MAX_CODE_TTL_SEC} seconds on mfa_code_email jobs, where it \
                 is the code's lifetime"
            ),
        ));
    }
    Ok(JobSpec::MfaCode { code, ttl_sec })
}

fn optional_text(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, JobError> {
    match value {
        None => Ok(None),
        Some(v) if v.len() > max => Err(JobError::field(
            field,
            format!("must be at most {max} bytes long"),
        )),
        Some(v) if v.chars().any(char::is_control) => Err(JobError::field(
            field,
            "must not contain control characters",
        )),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => Ok(Some(v)),
    }
}

/// Free text shown to people, never an identifier: control characters (CR and LF above all) and
/// line or paragraph separators become spaces, runs of spaces collapse, and the ends are trimmed,
/// so a display name with a line break still gets its user the email. Headers stay safe: no
/// line break survives. The length limit applies to the text as sent.
fn display_name(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, JobError> {
    let Some(v) = value else { return Ok(None) };
    if v.len() > max {
        return Err(JobError::field(
            field,
            format!("must be at most {max} bytes long"),
        ));
    }
    let cleaned = v
        .split(|c: char| {
            c.is_control() || c.is_ascii_whitespace() || matches!(c, '\u{2028}' | '\u{2029}')
        })
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Ok((!cleaned.is_empty()).then_some(cleaned))
}

fn parse_result_url(raw: String) -> Result<Url, JobError> {
    // The URL parser would silently drop tabs and line breaks; a URL with them is refused.
    if raw.chars().any(char::is_control) {
        return Err(JobError::field(
            "result_url",
            "must not contain control characters",
        ));
    }
    let url = Url::parse(&raw)
        .map_err(|e| JobError::field("result_url", format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(JobError::field(
            "result_url",
            "must be an absolute http or https URL",
        ));
    }
    Ok(url)
}

/// A custom domain is a bare hostname, as Auth0's `auth0-custom-domain` header (3 to 255 chars).
fn parse_domain(raw: String) -> Result<String, JobError> {
    let domain = raw.trim().to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if domain.len() < 3
        || domain.len() > 255
        || !domain.contains('.')
        || !domain.split('.').all(label_ok)
    {
        return Err(JobError::field(
            "custom_domain",
            format!("{raw:?} is not a hostname such as login.example.com"),
        ));
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 64 * 1024;

    fn parse(json: &str) -> Result<EmailJob, JobError> {
        EmailJob::parse(json.as_bytes(), LIMIT)
    }

    fn reason(json: &str) -> &'static str {
        parse(json).unwrap_err().reason()
    }

    #[test]
    fn a_minimal_verification_job_gets_auth0_defaults() {
        let job = parse(r#"{"id":"j1","type":"verification_email","user":{"user_id":"u1","email":"a@example.com"}}"#).unwrap();
        assert_eq!(job.kind(), JobKind::Verification);
        let ticket = job.ticket().unwrap();
        assert_eq!(ticket.ttl_sec, DEFAULT_TTL_SEC);
        assert!(!ticket.include_email_in_redirect);
        assert!(ticket.result_url.is_none());
    }

    #[test]
    fn ttl_zero_means_the_default() {
        let job = parse(r#"{"id":"j1","type":"password_change_email","ttl_sec":0,"user":{"user_id":"u1","email":"a@example.com"}}"#).unwrap();
        assert_eq!(job.ticket().unwrap().ttl_sec, DEFAULT_TTL_SEC);
        let job = parse(r#"{"id":"j1","type":"password_change_email","ttl_sec":60,"user":{"user_id":"u1","email":"a@example.com"}}"#).unwrap();
        assert_eq!(job.ticket().unwrap().ttl_sec, 60);
    }

    #[test]
    fn every_kind_of_bad_input_has_its_reason() {
        assert_eq!(reason("{not json"), "malformed_json");
        assert_eq!(reason(""), "malformed_json");
        assert_eq!(
            reason(r#"{"id":"j1","type":"sms","user":{"user_id":"u1","email":"a@example.com"}}"#),
            "unknown_type"
        );
        assert_eq!(
            reason(r#"{"id":"j1","type":"welcome_email","user":{"user_id":"u1"}}"#),
            "invalid_job"
        );
        assert_eq!(
            reason(
                r#"{"id":"j1","type":"welcome_email","user":{"user_id":"u1","email":"a@example.com"},"ttl":5}"#
            ),
            "invalid_job"
        );
        let big = format!(
            r#"{{"id":"j1","type":"welcome_email","user":{{"user_id":"u1","email":"a@example.com","name":"{}"}}}}"#,
            "x".repeat(LIMIT)
        );
        assert_eq!(reason(&big), "body_too_large");
    }

    #[test]
    fn error_messages_name_the_field() {
        let err =
            parse(r#"{"id":"j1","type":"welcome_email","user":{"user_id":"u1"}}"#).unwrap_err();
        assert!(err.to_string().contains("email"), "{err}");
        let err = parse(r#"{"id":"j1","type":"welcome_email","user":{"user_id":"u1","email":"a@example.com"},"ttl":5}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `ttl`"), "{err}");
        let err =
            parse(r#"{"id":"j1","type":"welcome_email","user":{"user_id":"u1","email":"nope"}}"#)
                .unwrap_err();
        assert!(err.to_string().contains("user.email"), "{err}");
    }

    #[test]
    fn result_url_follows_auth0_rules() {
        let base = r#""user":{"user_id":"u1","email":"a@example.com"},"result_url":"https://app.test/done""#;
        let verify_with_client =
            format!(r#"{{"id":"j","type":"verification_email","client_id":"c1",{base}}}"#);
        assert!(
            parse(&verify_with_client)
                .unwrap_err()
                .to_string()
                .contains("cannot be specified when using client_id")
        );
        let verify_with_org =
            format!(r#"{{"id":"j","type":"verification_email","organization_id":"o1",{base}}}"#);
        assert!(
            parse(&verify_with_org)
                .unwrap_err()
                .to_string()
                .contains("organization_id")
        );
        let reset_with_client =
            format!(r#"{{"id":"j","type":"password_change_email","client_id":"c1",{base}}}"#);
        assert!(
            parse(&reset_with_client).is_ok(),
            "password change allows result_url with client_id"
        );
        let reset_with_org =
            format!(r#"{{"id":"j","type":"password_change_email","organization_id":"o1",{base}}}"#);
        assert!(parse(&reset_with_org).is_err());
        let relative = r#"{"id":"j","type":"verification_email","user":{"user_id":"u1","email":"a@example.com"},"result_url":"/done"}"#;
        assert!(parse(relative).is_err());
        let js = r#"{"id":"j","type":"verification_email","user":{"user_id":"u1","email":"a@example.com"},"result_url":"javascript:alert(1)"}"#;
        assert!(parse(js).is_err());
    }

    #[test]
    fn kind_specific_fields_stay_on_their_kind() {
        let user = r#""user":{"user_id":"u1","email":"a@example.com"}"#;
        assert!(parse(&format!(r#"{{"id":"j","type":"enrollment_email","factor":"webauthn-roaming","allow_multiple_enrollments":true,{user}}}"#)).is_ok());
        assert!(
            parse(&format!(
                r#"{{"id":"j","type":"enrollment_email","factor":"carrier-pigeon",{user}}}"#
            ))
            .is_err()
        );
        assert!(
            parse(&format!(
                r#"{{"id":"j","type":"verification_email","factor":"otp",{user}}}"#
            ))
            .is_err()
        );
        assert!(parse(&format!(r#"{{"id":"j","type":"password_change_email","mark_email_as_verified":true,{user}}}"#)).is_ok());
        assert!(
            parse(&format!(
                r#"{{"id":"j","type":"welcome_email","mark_email_as_verified":true,{user}}}"#
            ))
            .is_err()
        );
        assert!(
            parse(&format!(
                r#"{{"id":"j","type":"welcome_email","ttl_sec":5,{user}}}"#
            ))
            .is_err()
        );
    }

    #[test]
    fn custom_domains_must_be_hostnames() {
        let user = r#""user":{"user_id":"u1","email":"a@example.com"}"#;
        let job = parse(&format!(
            r#"{{"id":"j","type":"welcome_email","custom_domain":"Login.Acme.Test",{user}}}"#
        ))
        .unwrap();
        assert_eq!(job.custom_domain.as_deref(), Some("login.acme.test"));
        for bad in ["https://acme.test", "acme", "acme.test:443", "a b.test"] {
            assert!(
                parse(&format!(
                    r#"{{"id":"j","type":"welcome_email","custom_domain":"{bad}",{user}}}"#
                ))
                .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn hostile_names_are_kept_for_escaping_and_line_breaks_become_spaces() {
        let ok = parse(r#"{"id":"j","type":"welcome_email","user":{"user_id":"u1","email":"a@example.com","name":"<script>alert(1)</script>"}}"#).unwrap();
        assert_eq!(ok.user.name.as_deref(), Some("<script>alert(1)</script>"));
        let job = parse(r#"{"id":"j","type":"verification_email","user":{"user_id":"u1","email":"a@example.com","name":"Ana\r\nBcc: x@evil.example"}}"#).unwrap();
        assert_eq!(job.user.name.as_deref(), Some("Ana Bcc: x@evil.example"));
        let job = parse(r#"{"id":"j","type":"welcome_email","user":{"user_id":"u1","email":"a@example.com","name":" \t Ana\u0000\u2028Maria\u0085 "}}"#).unwrap();
        assert_eq!(job.user.name.as_deref(), Some("Ana Maria"));
        let job = parse(r#"{"id":"j","type":"welcome_email","user":{"user_id":"u1","email":"a@example.com","name":"\r\n"}}"#).unwrap();
        assert_eq!(
            job.user.name, None,
            "a name of control characters only is no name"
        );
        assert_eq!(
            job.to_wire().user.name,
            None,
            "what is stored and replayed is the cleaned name"
        );
    }

    #[test]
    fn ids_addresses_urls_and_locales_still_refuse_control_characters() {
        let base = |user: &str, extra: &str| {
            format!(r#"{{"id":"j","type":"verification_email","user":{user}{extra}}}"#)
        };
        let user = r#"{"user_id":"u1","email":"a@example.com"}"#;
        for (json, field) in [
            (
                base(r#"{"user_id":"u\n1","email":"a@example.com"}"#, ""),
                "user_id",
            ),
            (
                base(
                    r#"{"user_id":"u1","email":"a@example.com\r\nBcc: x@evil.example"}"#,
                    "",
                ),
                "email",
            ),
            (
                base(user, r#","result_url":"https://a.example/\r\nx""#),
                "result_url",
            ),
            (base(user, r#","email_locale":"fr\n""#), "email_locale"),
            (
                base(
                    r#"{"user_id":"u1","email":"a@example.com","locale":"fr\n"}"#,
                    "",
                ),
                "locale",
            ),
            (
                base(user, r#","organization_id":"org\n1""#),
                "organization_id",
            ),
        ] {
            let err = parse(&json).expect_err(field);
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
        assert!(
            parse(&format!(
                r#"{{"id":"j\n1","type":"welcome_email","user":{user}}}"#
            ))
            .is_err()
        );
    }

    #[test]
    fn the_wire_form_round_trips() {
        let job = EmailJob::builder(JobKind::Enrollment, "u1", "a@example.com")
            .id("job-1")
            .name("Ana")
            .email_locale("pt-BR")
            .organization_id("org_acme")
            .factor(EnrollmentFactor::Otp)
            .ttl_sec(600)
            .build()
            .unwrap();
        let again = EmailJob::parse(&job.to_json(), LIMIT).unwrap();
        assert_eq!(
            again.ticket().map(|t| t.unset),
            job.ticket().map(|t| t.unset)
        );
        assert_eq!(again, job);
        assert_eq!(EmailJob::peek_id(&job.to_json()).unwrap().as_str(), "job-1");
    }

    #[test]
    fn template_defaults_fill_only_what_the_job_left_out() {
        let defaults = TicketDefaults {
            result_url: Some(Url::parse("https://tenant.example/done").unwrap()),
            ttl_sec: Some(600),
            include_email_in_redirect: Some(true),
        };
        let mut bare = EmailJob::builder(JobKind::PasswordChange, "u1", "a@example.com")
            .build()
            .unwrap();
        bare.apply_ticket_defaults(&defaults);
        let t = bare.ticket().unwrap();
        assert_eq!(
            (
                t.result_url.as_ref().map(Url::as_str),
                t.ttl_sec,
                t.include_email_in_redirect
            ),
            (Some("https://tenant.example/done"), 600, true)
        );
        assert_eq!(t.unset, Unset::default(), "nothing is left to fill");

        let mut given = EmailJob::builder(JobKind::PasswordChange, "u1", "a@example.com")
            .result_url("https://mine.example/")
            .ttl_sec(60)
            .include_email_in_redirect(false)
            .build()
            .unwrap();
        let before = given.clone();
        given.apply_ticket_defaults(&defaults);
        assert_eq!(given.ticket().unwrap(), before.ticket().unwrap());
        assert_eq!(given.ticket().unwrap().ttl_sec, 60);

        // A lifetime of 0 keeps Herald's default, as a job's own 0 does.
        let mut zero = EmailJob::builder(JobKind::Verification, "u1", "a@example.com")
            .build()
            .unwrap();
        zero.apply_ticket_defaults(&TicketDefaults {
            ttl_sec: Some(0),
            ..TicketDefaults::default()
        });
        assert_eq!(zero.ticket().unwrap().ttl_sec, DEFAULT_TTL_SEC);
        assert!(zero.ticket().unwrap().unset.ttl_sec);
    }

    #[test]
    fn explicit_nulls_are_refused_not_read_as_absent() {
        let user = r#""user":{"user_id":"u1","email":"a@example.com"}"#;
        for field in [
            r#""factor":null"#,
            r#""ttl_sec":null"#,
            r#""client_id":null"#,
            r#""includeEmailInRedirect":null"#,
        ] {
            let err = parse(&format!(
                r#"{{"id":"j","type":"welcome_email",{field},{user}}}"#
            ))
            .unwrap_err();
            assert!(err.to_string().contains("null"), "{field}: {err}");
        }
        assert!(parse(r#"{"id":"j","type":"welcome_email","user":{"user_id":"u1","email":"a@example.com","name":null}}"#).is_err());
    }

    fn code_job(extra: &str) -> Result<EmailJob, JobError> {
        parse(&format!(
            r#"{{"id":"j","type":"mfa_code_email","user":{{"user_id":"u1","email":"a@example.com"}}{extra}}}"#
        ))
    }

    #[test]
    fn a_code_job_carries_six_digits_and_an_optional_lifetime() {
        let job = code_job(r#","code":"042917","ttl_sec":300"#).unwrap();
        assert_eq!(job.kind(), JobKind::MfaCode);
        assert_eq!(job.code().map(OneTimeCode::expose), Some("042917"));
        assert!(job.ticket().is_none());
        assert!(matches!(
            job.spec,
            JobSpec::MfaCode {
                ttl_sec: Some(300),
                ..
            }
        ));
        let job = code_job(r#","code":"000000""#).unwrap();
        assert!(matches!(job.spec, JobSpec::MfaCode { ttl_sec: None, .. }));
    }

    #[test]
    fn wrong_codes_are_refused_naming_the_field_but_not_the_value() {
        for bad in [
            r#""12345""#,
            r#""1234567""#,
            r#""12 456""#,
            r#""abcdef""#,
            r#""١٢٣٤٥٦""#,
            r#""""#,
            "123456",
            "[1,2,3,4,5,6]",
        ] {
            let err = code_job(&format!(r#","code":{bad}"#)).unwrap_err();
            assert_eq!(err.reason(), "invalid_job", "{bad}");
            assert!(err.to_string().starts_with("code "), "{bad}: {err}");
            assert!(!err.to_string().contains("12345"), "{bad}: {err}");
        }
        assert!(code_job(r#","code":null"#).is_err());
        let err = code_job(r#","code":"98765x""#).unwrap_err();
        assert_eq!(err.to_string(), "code must be exactly 6 ASCII digits (0-9)");
        let err = code_job("").unwrap_err();
        assert!(err.to_string().starts_with("code is required"), "{err}");
        for ttl in ["0", "3601"] {
            let err = code_job(&format!(r#","code":"123456","ttl_sec":{ttl}"#)).unwrap_err();
            assert!(
                err.to_string().starts_with("ttl_sec must be from 1"),
                "{err}"
            );
        }
        assert!(code_job(r#","code":"123456","ttl_sec":3600"#).is_ok());
    }

    #[test]
    fn ticket_fields_are_refused_on_a_code_job() {
        for (extra, field) in [
            (r#","result_url":"https://app.test/done""#, "result_url"),
            (
                r#","includeEmailInRedirect":true"#,
                "includeEmailInRedirect",
            ),
            (r#","factor":"email""#, "factor"),
            (
                r#","allow_multiple_enrollments":true"#,
                "allow_multiple_enrollments",
            ),
            (
                r#","mark_email_as_verified":true"#,
                "mark_email_as_verified",
            ),
        ] {
            let err = code_job(&format!(r#","code":"123456"{extra}"#)).unwrap_err();
            assert!(err.to_string().starts_with(field), "{field}: {err}");
        }
        // Branding and locale fields are what the email is made of.
        assert!(
            code_job(r#","code":"123456","organization_id":"org_acme","client_id":"c1","email_locale":"fr""#)
                .is_ok()
        );
    }

    #[test]
    fn a_code_on_any_other_kind_is_refused() {
        for kind in JobKind::ALL.into_iter().filter(|k| *k != JobKind::MfaCode) {
            let err = parse(&format!(
                r#"{{"id":"j","type":"{kind}","code":"123456","user":{{"user_id":"u1","email":"a@example.com"}}}}"#
            ))
            .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("code is only allowed on mfa_code_email jobs, not on {kind}")
            );
        }
    }

    #[test]
    fn debug_output_never_shows_the_code() {
        let builder = EmailJob::builder(JobKind::MfaCode, "u1", "a@example.com")
            .code("918273")
            .ttl_sec(600);
        assert!(!format!("{builder:?}").contains("918273"));
        let job = builder.build().unwrap();
        for shown in [
            format!("{job:?}"),
            format!("{job:#?}"),
            format!("{:?}", job.spec),
            format!("{:?}", job.to_wire()),
            format!("{:?}", job.code()),
        ] {
            assert!(!shown.contains("918273"), "{shown}");
            assert!(!shown.contains("918 273"), "{shown}");
        }
        assert!(format!("{:?}", job.spec).contains("MfaCode"));
    }

    #[test]
    fn a_code_job_round_trips_and_its_record_holds_no_code() {
        let job = EmailJob::builder(JobKind::MfaCode, "u1", "a@example.com")
            .id("mfa-1")
            .email_locale("fr")
            .organization_id("org_acme")
            .code("504132")
            .ttl_sec(600)
            .build()
            .unwrap();
        let json = job.to_json();
        let again = EmailJob::parse(&json, LIMIT).unwrap();
        assert_eq!(again, job);
        assert_eq!(again.code().unwrap().expose(), "504132");
        let body: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(body["code"], "504132");
        assert_eq!(body["ttl_sec"], 600);
        assert_eq!(body["type"], "mfa_code_email");

        let record = serde_json::to_string(&job.to_record()).unwrap();
        assert!(!record.contains("504132"), "{record}");
        assert!(record.contains(REDACTED_CODE), "{record}");
        assert!(EmailJob::from_wire(job.to_record()).is_err());
        // Jobs without a code are recorded as they travel.
        let welcome = EmailJob::builder(JobKind::Welcome, "u1", "a@example.com")
            .build()
            .unwrap();
        assert_eq!(welcome.to_record(), welcome.to_wire());

        // A dead letter keeps the job without its code, and the redacted job cannot be replayed.
        let dead = redact_code_in_body(&json).expect("a code to redact");
        let dead_text = String::from_utf8(dead.clone()).unwrap();
        assert!(!dead_text.contains("504132"), "{dead_text}");
        assert!(dead_text.contains(REDACTED_CODE), "{dead_text}");
        assert!(EmailJob::parse(&dead, LIMIT).is_err());
        assert_eq!(redact_code_in_body(&dead), None, "already redacted");
        // A malformed job's code goes too; bodies without one are kept byte for byte.
        let stray = br#"{"type":"welcome_email","c\u006fde":"771204"}"#;
        let redacted = redact_code_in_body(stray).unwrap();
        assert!(!String::from_utf8(redacted).unwrap().contains("771204"));
        assert_eq!(redact_code_in_body(&welcome.to_json()), None);
        assert_eq!(redact_code_in_body(b"{not json"), None);
    }

    #[test]
    fn unsupported_versions_are_refused() {
        assert!(parse(r#"{"version":1,"id":"j","type":"welcome_email","user":{"user_id":"u1","email":"a@example.com"}}"#).is_ok());
        assert!(parse(r#"{"version":2,"id":"j","type":"welcome_email","user":{"user_id":"u1","email":"a@example.com"}}"#).is_err());
    }
}
