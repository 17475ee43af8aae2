//! Herald's domain: the email-job contract (v1), its validation rules, locales and tickets,
//! events, and the rules the HTTP front ends share (API tokens, the client's address behind
//! trusted proxies).
//!
//! Everything here is pure: no I/O, no async runtime, no database or broker types. Other crates
//! parse at their edges into these types and pass them around.

pub mod api_token;
pub mod client_address;
pub mod code;
pub mod eml;
pub mod event;
pub mod ids;
pub mod job;
pub mod kind;
pub mod locale;
pub mod ticket;
pub mod trace;

pub use api_token::{ApiToken, SCOPES, parse_scopes};
pub use client_address::{ClientAddress, TrustedProxies, limit_key};
pub use code::{CodeError, OneTimeCode, WireCode};
pub use eml::eml_file_stem;
pub use event::{Event, EventData, EventKind, event_id};
pub use ids::{ClientId, EmailAddress, IdError, JobId, OrganizationId, UserId};
pub use job::{
    DEFAULT_TTL_SEC, EmailJob, EmailJobBuilder, EnrollmentFactor, JobError, JobSpec,
    MAX_CODE_TTL_SEC, MAX_TTL_SEC, REDACTED_CODE, TicketDefaults, TicketOptions, Unset, User,
    WireJob, redact_code_in_body,
};
pub use kind::{JobKind, TemplateName};
pub use locale::{Locale, negotiate};
pub use ticket::{TicketPurpose, TicketSecret, TicketToken, TokenHash, TokenSalt, ticket_base};
pub use trace::TraceParent;
