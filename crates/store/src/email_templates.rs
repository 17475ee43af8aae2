//! Tenant-wide email templates (Auth0's `/email-templates/{templateName}`): one per template
//! Herald sends, in Liquid or handlebars, with the defaults of that kind's tickets and the switch
//! that stops its emails. They rank below the organization and client overrides.
//!
//! The store keeps what it is given; the Management API compiles and test-renders a template
//! (`herald_render`) before it saves one.

use std::fmt;
use std::str::FromStr;

use herald_domain::{TemplateName, TicketDefaults};
use herald_render::{ResultUrlApplication, render_result_url};
use sqlx::Row;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::{Client, Store};

/// The language a template is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TemplateSyntax {
    /// Auth0's: Liquid with Auth0's variables.
    #[default]
    Liquid,
    /// Herald's own: the handlebars of the built-in templates, with their helpers and partials.
    Handlebars,
}

impl TemplateSyntax {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateSyntax::Liquid => "liquid",
            TemplateSyntax::Handlebars => "handlebars",
        }
    }
}

impl fmt::Display for TemplateSyntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TemplateSyntax {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "liquid" => Ok(TemplateSyntax::Liquid),
            "handlebars" => Ok(TemplateSyntax::Handlebars),
            other => Err(format!(
                "syntax {other:?} is not supported; use \"liquid\" (Auth0's) or \"handlebars\" (Herald's)"
            )),
        }
    }
}

/// One tenant-wide template. Unset text fields keep the built-in template's part (the subject)
/// or the default value (the From address, the ticket defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailTemplate {
    pub template: TemplateName,
    pub syntax: TemplateSyntax,
    /// The HTML part; `None` keeps the built-in one.
    pub body: Option<String>,
    pub subject: Option<String>,
    /// The From mailbox (Liquid allowed when the syntax is Liquid).
    pub from: Option<String>,
    /// The default `result_url` of this kind's tickets.
    pub result_url: Option<String>,
    /// The default lifetime of this kind's tickets; `None` keeps Herald's (five days).
    pub url_lifetime_seconds: Option<u64>,
    /// The default of this kind's tickets' `include_email_in_redirect` (true, as in Auth0).
    pub include_email_in_redirect: bool,
    /// False: this kind's emails are not sent; their jobs are recorded as skipped.
    pub enabled: bool,
}

impl EmailTemplate {
    /// A template with nothing set: Liquid, disabled, as Auth0 creates one.
    pub fn new(template: TemplateName) -> Self {
        Self {
            template,
            syntax: TemplateSyntax::Liquid,
            body: None,
            subject: None,
            from: None,
            result_url: None,
            url_lifetime_seconds: None,
            include_email_in_redirect: true,
            enabled: false,
        }
    }
}

/// A stored template with its timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEmailTemplate {
    pub template: EmailTemplate,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The columns every query returns (a macro, so that queries stay string literals).
macro_rules! columns {
    () => {
        "template, syntax, body, subject, from_address, result_url, url_lifetime_seconds, \
         include_email_in_redirect, enabled, created_at, updated_at"
    };
}

impl Store {
    /// The defaults `template` sets for the tickets of its kind, for a job of `client`: Auth0's
    /// `resultUrl` (its Liquid rendered with the client's name, id and callback origin),
    /// `urlLifetimeInSeconds` and `includeEmailInRedirect`. A Liquid `resultUrl` that does not
    /// render to an http(s) URL for this client (no callback URL, say) is left out rather than
    /// failing the ticket. The Management API and the worker both use it.
    pub async fn ticket_defaults(
        &self,
        template: &EmailTemplate,
        client: Option<&Client>,
    ) -> Result<TicketDefaults, StoreError> {
        let result_url = match &template.result_url {
            None => None,
            Some(source) => {
                let callback_domain = match client {
                    Some(c) if source.contains("callback_domain") => self
                        .client_urls(&c.id)
                        .await?
                        .0
                        .first()
                        .and_then(|u| origin(u)),
                    _ => None,
                };
                let app = ResultUrlApplication {
                    name: client.map(|c| c.name.as_str()),
                    client_id: client.map(|c| c.id.as_str()),
                    callback_domain: callback_domain.as_deref(),
                };
                render_result_url(source, app)
                    .ok()
                    .and_then(|u| url::Url::parse(&u).ok())
            }
        };
        Ok(TicketDefaults {
            result_url,
            ttl_sec: template.url_lifetime_seconds,
            include_email_in_redirect: Some(template.include_email_in_redirect),
        })
    }

    /// The tenant-wide template for `template`, if one was created.
    pub async fn email_template(
        &self,
        template: TemplateName,
    ) -> Result<Option<StoredEmailTemplate>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM email_templates WHERE template = $1"
        ))
        .bind(template.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| from_row(&r)).transpose()
    }

    /// Every tenant-wide template, by name.
    pub async fn email_templates(&self) -> Result<Vec<StoredEmailTemplate>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM email_templates ORDER BY template"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Creates the template; [`StoreError::Conflict`] with Auth0's sentence when it exists.
    pub async fn create_email_template(
        &self,
        t: &EmailTemplate,
    ) -> Result<StoredEmailTemplate, StoreError> {
        let row = sqlx::query(concat!(
            "INSERT INTO email_templates (template, syntax, body, subject, from_address, \
             result_url, url_lifetime_seconds, include_email_in_redirect, enabled) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (template) DO NOTHING RETURNING ",
            columns!(),
            ""
        ));
        let row = bind(row, t).fetch_optional(self.pool()).await?;
        match row {
            Some(row) => from_row(&row),
            None => Err(StoreError::Conflict(format!(
                "Template {} already exists.",
                t.template
            ))),
        }
    }

    /// Replaces every field of an existing template; `None` when there is none.
    pub async fn replace_email_template(
        &self,
        t: &EmailTemplate,
    ) -> Result<Option<StoredEmailTemplate>, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE email_templates SET syntax = $2, body = $3, subject = $4, from_address = $5, \
             result_url = $6, url_lifetime_seconds = $7, include_email_in_redirect = $8, \
             enabled = $9, updated_at = now() \
             WHERE template = $1 RETURNING ",
            columns!(),
            ""
        ));
        let row = bind(row, t).fetch_optional(self.pool()).await?;
        row.map(|r| from_row(&r)).transpose()
    }
}

fn bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    t: &'q EmailTemplate,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(t.template.as_str())
        .bind(t.syntax.as_str())
        .bind(t.body.as_deref())
        .bind(t.subject.as_deref())
        .bind(t.from.as_deref())
        .bind(t.result_url.as_deref())
        .bind(
            t.url_lifetime_seconds
                .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        )
        .bind(t.include_email_in_redirect)
        .bind(t.enabled)
}

fn from_row(row: &sqlx::postgres::PgRow) -> Result<StoredEmailTemplate, StoreError> {
    let corrupt = |what: String| StoreError::Database(sqlx::Error::Decode(what.into()));
    let name: String = row.try_get("template")?;
    let syntax: String = row.try_get("syntax")?;
    let lifetime: Option<i64> = row.try_get("url_lifetime_seconds")?;
    Ok(StoredEmailTemplate {
        template: EmailTemplate {
            template: name
                .parse()
                .map_err(|e| corrupt(format!("a stored email template names {e}")))?,
            syntax: syntax.parse().map_err(corrupt)?,
            body: row.try_get("body")?,
            subject: row.try_get("subject")?,
            from: row.try_get("from_address")?,
            result_url: row.try_get("result_url")?,
            url_lifetime_seconds: lifetime.and_then(|s| u64::try_from(s).ok()),
            include_email_in_redirect: row.try_get("include_email_in_redirect")?,
            enabled: row.try_get("enabled")?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// `scheme://host[:port]` of an absolute http(s) URL.
fn origin(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}
