//! The command line: `herald <command>`. Parsing only; each command lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use herald_domain::{EnrollmentFactor, JobKind, TemplateName};

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: email jobs from RabbitMQ to SMTP, with tickets, localized branded templates, retries and dead letters.",
    after_help = "Configuration comes from HERALD_* environment variables; see the README."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume email jobs from RabbitMQ and deliver them (runs until SIGTERM or Ctrl-C).
    Worker,
    /// Serve the Auth0-compatible Management API on HERALD_HTTP_ADDR (runs until SIGTERM).
    Serve,
    /// Manage the Management API's opaque tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Publish one email job, with publisher confirms.
    Send(SendArgs),
    /// Create the database if it is missing and apply migrations.
    Migrate,
    /// Run Herald end to end on local defaults and show the delivered mail.
    Demo(DemoArgs),
    /// Manage organizations (display name, branding, default locale, From address).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage clients (applications).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage per-organization and per-client template overrides.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Show the work, retry and dead queues: ready messages, consumers and oldest message age.
    Queues(QueuesArgs),
    /// List, show, replay or purge dead letters (queue herald.email.dead).
    #[command(subcommand, after_help = DLQ_HELP)]
    Dlq(DlqCommand),
    /// Inspect jobs in the ledger.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// MFA keys: move stored secrets to the current HERALD_MFA_KEY after a key change.
    #[command(subcommand)]
    Mfa(MfaCommand),
    /// Measure throughput, latency and cost on fresh vhosts and databases (docs/benchmarks.md).
    // Only in a build with the `bench` feature: the shipped binary has no benchmark code.
    #[cfg(feature = "bench")]
    Bench(herald_bench::BenchOptions),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (only it) on stdout. Only its hash is stored.
    Create(TokenCreateArgs),
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by id or name.
    Revoke { id_or_name: String },
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Space- or comma-separated scopes, e.g. "update:users create:user_tickets".
    #[arg(long)]
    pub scopes: String,
    /// A name to recognise the token by in `herald token list`.
    #[arg(long)]
    pub name: Option<String>,
    /// Lifetime, e.g. 30d or 12h; no expiry when absent.
    #[arg(long)]
    pub expires_in: Option<humantime::Duration>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// verification-email | enrollment-email | password-change-email | welcome-email |
    /// mfa-code-email
    #[arg(value_parser = clap::value_parser!(KindArg))]
    pub kind: KindArg,
    #[arg(long)]
    pub user_id: String,
    #[arg(long)]
    pub email: String,
    /// The recipient's name.
    #[arg(long)]
    pub name: Option<String>,
    /// The email's locale (`email_locale`), e.g. fr or pt-BR.
    #[arg(long)]
    pub locale: Option<String>,
    /// The user's preferred locale (`user.locale`), used when --locale is absent.
    #[arg(long)]
    pub user_locale: Option<String>,
    /// The job id (idempotency key); a fresh one is generated otherwise.
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long)]
    pub client_id: Option<String>,
    #[arg(long = "org", alias = "organization-id")]
    pub organization_id: Option<String>,
    #[arg(long)]
    pub result_url: Option<String>,
    /// Ticket lifetime in seconds (0 = 432000, five days); for mfa-code-email, the code's
    /// lifetime (1 to 3600) for the "expires in" line.
    #[arg(long)]
    pub ttl_sec: Option<u64>,
    #[arg(long)]
    pub include_email_in_redirect: bool,
    #[arg(long)]
    pub custom_domain: Option<String>,
    /// Enrollment only: push-notification | phone | email | otp | webauthn-roaming | webauthn-platform
    #[arg(long)]
    pub factor: Option<EnrollmentFactor>,
    /// Enrollment only.
    #[arg(long)]
    pub allow_multiple_enrollments: bool,
    /// Password change only.
    #[arg(long)]
    pub mark_email_as_verified: bool,
    /// mfa-code-email only: the six-digit code to email (for trying the template; real codes
    /// come from the service that keeps their digest, not from a shell history).
    #[arg(long)]
    pub code: Option<String>,
}

/// A job kind as typed on the command line.
#[derive(Debug, Clone, Copy)]
pub struct KindArg(pub JobKind);

impl std::str::FromStr for KindArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(KindArg)
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the captured .eml files go when HERALD_SMTP_URL is unset.
    #[arg(long, default_value = "herald-outbox")]
    pub outbox: PathBuf,
    /// Stay up after the demo (its worker and `herald serve`), so that the links it prints can
    /// be opened in a browser; Ctrl-C stops it.
    #[arg(long)]
    pub keep_serving: bool,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create or update an organization.
    Set(OrgSetArgs),
    /// Show one organization.
    Show { id: String },
    /// List organizations.
    List,
    /// Delete an organization (and its template overrides).
    Delete { id: String },
}

#[derive(Debug, Args)]
pub struct OrgSetArgs {
    /// The organization id jobs refer to, e.g. org_acme.
    pub id: String,
    /// A short unique name, e.g. acme (defaults to the id).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub display_name: String,
    #[arg(long)]
    pub logo_url: Option<String>,
    /// #RRGGBB
    #[arg(long)]
    pub primary_color: Option<String>,
    /// #RRGGBB
    #[arg(long)]
    pub page_background: Option<String>,
    #[arg(long)]
    pub default_locale: Option<String>,
    /// e.g. "Acme <no-reply@acme.com>"
    #[arg(long = "from")]
    pub from_address: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create or update a client.
    Set {
        /// The client_id jobs refer to.
        id: String,
        #[arg(long)]
        name: String,
        /// The application's login route (Auth0's initiate_login_uri).
        #[arg(long)]
        login_uri: Option<String>,
    },
    Show {
        id: String,
    },
    List,
    Delete {
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct ScopeArgs {
    #[arg(
        long = "org",
        conflicts_with = "client",
        required_unless_present = "client"
    )]
    pub organization: Option<String>,
    #[arg(long)]
    pub client: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Store an override; it is compiled and test-rendered in every locale before it is saved.
    Set {
        #[command(flatten)]
        scope: ScopeArgs,
        /// verify_email | reset_email | enrollment_email | welcome_email | mfa_oob_code
        template: TemplateName,
        /// Only for this locale (default: every locale).
        #[arg(long)]
        locale: Option<String>,
        /// A handlebars subject, e.g. "{{brand.name}}: confirm your address".
        #[arg(long)]
        subject: Option<String>,
        /// A file with the handlebars HTML body.
        #[arg(long)]
        html_file: Option<PathBuf>,
        /// A file with the handlebars text body.
        #[arg(long)]
        text_file: Option<PathBuf>,
    },
    /// List overrides, optionally for one organization or client.
    List {
        #[arg(long = "org")]
        organization: Option<String>,
        #[arg(long)]
        client: Option<String>,
    },
    /// Remove an override.
    Remove {
        #[command(flatten)]
        scope: ScopeArgs,
        template: TemplateName,
        #[arg(long)]
        locale: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct QueuesArgs {}

const DLQ_HELP: &str = "\
list and show answer from the job ledger and leave herald.email.dead untouched. replay and purge \
browse the queue: they consume it with manual acks and put back every message they keep (nack \
with requeue). Nothing is lost, even if the command is killed, but RabbitMQ 3.10+ requeues at the \
back of a quorum queue, so browsing can change the order of the dead queue.

Reasons are the x-herald-reason codes (smtp_permanent, invalid_job, max_attempts, ...) or, for \
messages RabbitMQ dead-lettered itself, the x-death reason (delivery_limit, rejected).";

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters from the ledger: job id, type, reason, attempts, age and error.
    #[command(after_help = DLQ_HELP)]
    List {
        #[command(flatten)]
        filter: DlqFilter,
        /// Show at most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// Show one dead-lettered job from the ledger: reason, error, attempts and body.
    #[command(after_help = DLQ_HELP)]
    Show {
        /// The job id.
        job_id: String,
    },
    /// Publish dead letters back to herald.jobs so the worker attempts them again.
    ///
    /// Each job keeps its id, body and routing key, and is reopened in the ledger (its attempts
    /// and history are kept). A body that is not a valid job stays in the queue and is reported,
    /// and so does a job the ledger says was already sent. A dead copy is deleted only after the
    /// broker confirmed the replayed one.
    #[command(after_help = DLQ_HELP)]
    Replay {
        #[command(flatten)]
        select: DlqSelect,
        /// Show what would be replayed, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete dead letters for good (the ledger keeps their history).
    #[command(after_help = DLQ_HELP)]
    Purge {
        #[command(flatten)]
        select: DlqSelect,
        /// Really delete; without it, the command only shows what it would delete.
        #[arg(long)]
        yes: bool,
    },
}

/// Which dead letters a command applies to; every filter given must match.
#[derive(Debug, Clone, Default, Args)]
pub struct DlqFilter {
    /// The job type, e.g. verification_email or verification-email.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// The reason code, e.g. smtp_permanent.
    #[arg(long)]
    pub reason: Option<String>,
    /// Only letters dead-lettered at least this long ago, e.g. 10m or 2h.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub older_than: Option<std::time::Duration>,
}

/// The selection of `replay` and `purge`: filters and ids, or `--all`.
#[derive(Debug, Clone, Default, Args)]
pub struct DlqSelect {
    #[command(flatten)]
    pub filter: DlqFilter,
    /// Only this job id (repeatable).
    #[arg(long = "id", value_name = "JOB_ID")]
    pub ids: Vec<String>,
    /// Every dead letter (instead of filters or ids).
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum MfaCommand {
    /// Reseal every stored MFA secret under the current HERALD_MFA_KEY (opening it with
    /// HERALD_MFA_PREVIOUS_KEYS), so that the previous keys can be dropped. Safe while Herald runs.
    Reseal,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// A job's ledger row, its ticket (never the token) and its history.
    Show {
        /// The job id.
        id: String,
    },
}
