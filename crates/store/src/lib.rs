//! Herald's PostgreSQL store: the connection pool and migrations, the registry of organizations,
//! clients, template overrides and tenant email templates, the job ledger and tickets, and MFA
//! enrollments.
//!
//! Queries are runtime-checked (`sqlx::query_as::<_, Row>`) and covered by integration tests against
//! a real PostgreSQL, so the build needs neither `DATABASE_URL` nor `.sqlx` offline data.

pub mod api_tokens;
pub mod batch;
pub mod db;
pub mod dead_letters;
pub mod email_templates;
pub mod enrollments;
pub mod error;
pub mod ledger;
pub mod queue_age;
pub mod redemption;
pub mod registry;
pub mod users;

pub use api_tokens::ApiTokenRecord;
pub use batch::{BeginRequest, SentRequest};
pub use db::Store;
pub use email_templates::{EmailTemplate, StoredEmailTemplate, TemplateSyntax};
pub use enrollments::{
    EmailCodeCheck, EmailCodeIssue, EmailCodeSpec, Enrollment, MfaFactor, NewEnrollment,
    OtpAttempt, OtpEnrollment, SealedSecret,
};
pub use error::StoreError;
pub use ledger::{
    BeginOutcome, IssuedTicket, JobEvent, JobRecord, JobStatus, Lease, LedgerJob, StoredTicket,
    TicketSpec,
};
pub use redemption::{EmailVerification, LocaleHints, PasswordChange, Redemption};
pub use registry::{
    Branding, Client, Organization, OverrideHealth, OverrideScope, TemplateOverride,
};
pub use users::{NewUser, UserPatch, UserRecord};
