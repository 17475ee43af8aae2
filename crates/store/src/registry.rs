//! The registry: organizations (with their branding), clients, and the template overrides either
//! one may set, plus the rule that picks which override an email uses.

use std::fmt;

use herald_domain::{Locale, TemplateName};
use herald_render::{Brand, CheckedOverride, TemplateSources};
use sqlx::error::ErrorKind;
use time::OffsetDateTime;

use crate::db::Store;
use crate::error::StoreError;

const MAX_ID_LEN: usize = 128;
/// Auth0 caps organization names at 50 characters; Herald keeps the same rule so ids map 1:1.
const MAX_ORG_NAME_LEN: usize = 50;
const MAX_TEXT_LEN: usize = 255;
const MAX_URL_LEN: usize = 2048;
const MAX_SUBJECT_LEN: usize = 998;
const MAX_BODY_LEN: usize = 512 * 1024;

/// A tenant whose emails carry its own name, colours, logo and sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    /// The short, URL-safe name (`acme`), unique across organizations.
    pub name: String,
    /// The name shown to people in emails (`Acme Corporation`).
    pub display_name: String,
    pub branding: Branding,
    /// Used when neither the job nor the user names a locale.
    pub default_locale: Option<String>,
    /// Replaces the default sender, e.g. `Acme <no-reply@acme.example>`.
    pub from_address: Option<String>,
}

impl Organization {
    /// The brand its emails and pages wear: its display name, logo and colours.
    pub fn brand(&self) -> Brand {
        Brand::of_organization(
            &self.display_name,
            self.branding.logo_url.as_deref(),
            self.branding.primary_color.as_deref(),
            self.branding.page_background.as_deref(),
        )
    }
}

/// How an organization's emails look; anything left `None` uses Herald's default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Branding {
    pub logo_url: Option<String>,
    /// `#RRGGBB`.
    pub primary_color: Option<String>,
    /// `#RRGGBB`.
    pub page_background: Option<String>,
}

/// An application that sends users to Herald's links and receives them back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: String,
    /// Where "back to the application" links point.
    pub login_uri: Option<String>,
}

/// Who a template override belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideScope {
    Organization(String),
    Client(String),
}

impl OverrideScope {
    fn organization_id(&self) -> Option<&str> {
        match self {
            OverrideScope::Organization(id) => Some(id),
            OverrideScope::Client(_) => None,
        }
    }

    fn client_id(&self) -> Option<&str> {
        match self {
            OverrideScope::Client(id) => Some(id),
            OverrideScope::Organization(_) => None,
        }
    }

    fn id(&self) -> &str {
        match self {
            OverrideScope::Organization(id) | OverrideScope::Client(id) => id,
        }
    }
}

impl fmt::Display for OverrideScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverrideScope::Organization(id) => write!(f, "organization {id:?}"),
            OverrideScope::Client(id) => write!(f, "client {id:?}"),
        }
    }
}

/// A stored replacement for some parts of a default template; a part left `None` keeps the
/// default. Saved only from a [`CheckedOverride`] (see [`Store::set_template_override`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateOverride {
    pub scope: OverrideScope,
    pub template: TemplateName,
    /// `None` applies to every locale. Stored in canonical BCP 47 form (`pt_BR` becomes `pt-BR`).
    pub locale: Option<String>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub health: OverrideHealth,
}

impl TemplateOverride {
    /// The parts, as the renderer takes them.
    pub fn sources(&self) -> TemplateSources {
        TemplateSources {
            subject: self.subject.clone(),
            html: self.html.clone(),
            text: self.text.clone(),
        }
    }
}

/// How a stored override has fared on real emails since it was last saved. An override that
/// fails to render is replaced by the built-in template for that email; this is what the
/// operator sees of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OverrideHealth {
    /// Emails that fell back to the built-in template.
    pub failures: u64,
    pub last_failure_at: Option<OffsetDateTime>,
    /// The render error of the last failure.
    pub last_failure: Option<String>,
}

impl Organization {
    /// Checks every field; the error is a sentence naming the first field that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        check_id("organization id", &self.id)?;
        check_slug("organization name", &self.name, MAX_ORG_NAME_LEN)?;
        check_text(
            "organization display_name",
            &self.display_name,
            MAX_TEXT_LEN,
        )?;
        if let Some(url) = &self.branding.logo_url {
            check_url("organization logo_url", url)?;
        }
        if let Some(colour) = &self.branding.primary_color {
            check_colour("organization primary_color", colour)?;
        }
        if let Some(colour) = &self.branding.page_background {
            check_colour("organization page_background", colour)?;
        }
        if let Some(locale) = &self.default_locale {
            check_locale("organization default_locale", locale)?;
        }
        if let Some(from) = &self.from_address {
            check_mailbox("organization from_address", from)?;
        }
        Ok(())
    }
}

impl Client {
    /// Checks every field; the error is a sentence naming the first field that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        check_id("client id", &self.id)?;
        check_text("client name", &self.name, MAX_TEXT_LEN)?;
        if let Some(uri) = &self.login_uri {
            check_url("client login_uri", uri)?;
        }
        Ok(())
    }
}

/// Checks the scope id, the locale and the parts of an override about to be saved.
fn validate_override(
    scope: &OverrideScope,
    locale: Option<&str>,
    sources: &TemplateSources,
) -> Result<(), String> {
    let field = match scope {
        OverrideScope::Organization(_) => "template override organization id",
        OverrideScope::Client(_) => "template override client id",
    };
    check_id(field, scope.id())?;
    if let Some(locale) = locale {
        check_locale("template override locale", locale)?;
    }
    if sources.subject.is_none() && sources.html.is_none() && sources.text.is_none() {
        return Err("a template override must set at least one of subject, html or text".into());
    }
    if let Some(subject) = &sources.subject {
        check_no_control("template override subject", subject)?;
        check_len("template override subject", subject, MAX_SUBJECT_LEN)?;
    }
    for (field, body) in [
        ("template override html", &sources.html),
        ("template override text", &sources.text),
    ] {
        if let Some(body) = body {
            if body.contains('\0') {
                return Err(format!("{field} must not contain NUL characters"));
            }
            check_len(field, body, MAX_BODY_LEN)?;
        }
    }
    Ok(())
}

/// The longest failure message kept on an override row.
const MAX_FAILURE_LEN: usize = 2000;

impl Store {
    /// Creates the organization or replaces every field of the one with the same id.
    pub async fn upsert_organization(&self, org: &Organization) -> Result<(), StoreError> {
        org.validate().map_err(StoreError::Invalid)?;
        let result = sqlx::query(
            "INSERT INTO organizations \
                 (id, name, display_name, logo_url, primary_color, page_background, default_locale, from_address) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET \
                 name = EXCLUDED.name, display_name = EXCLUDED.display_name, \
                 logo_url = EXCLUDED.logo_url, primary_color = EXCLUDED.primary_color, \
                 page_background = EXCLUDED.page_background, default_locale = EXCLUDED.default_locale, \
                 from_address = EXCLUDED.from_address, updated_at = now()",
        )
        .bind(&org.id)
        .bind(&org.name)
        .bind(&org.display_name)
        .bind(&org.branding.logo_url)
        .bind(&org.branding.primary_color)
        .bind(&org.branding.page_background)
        .bind(&org.default_locale)
        .bind(&org.from_address)
        .execute(self.pool())
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_kind(&e, ErrorKind::UniqueViolation) => {
                Err(StoreError::Conflict(format!(
                    "another organization already has the name {:?}; organization names are unique",
                    org.name
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_organization(&self, id: &str) -> Result<Option<Organization>, StoreError> {
        let row = sqlx::query_as::<_, OrganizationRow>(
            "SELECT id, name, display_name, logo_url, primary_color, page_background, default_locale, from_address \
             FROM organizations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(Organization::from))
    }

    /// Every organization, by id.
    pub async fn list_organizations(&self) -> Result<Vec<Organization>, StoreError> {
        let rows = sqlx::query_as::<_, OrganizationRow>(
            "SELECT id, name, display_name, logo_url, primary_color, page_background, default_locale, from_address \
             FROM organizations ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Organization::from).collect())
    }

    /// Deletes the organization and its template overrides; false if there was none.
    pub async fn delete_organization(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM organizations WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The organization called `name` (names are unique).
    pub async fn organization_by_name(
        &self,
        name: &str,
    ) -> Result<Option<Organization>, StoreError> {
        let row = sqlx::query_as::<_, OrganizationRow>(
            "SELECT id, name, display_name, logo_url, primary_color, page_background, default_locale, from_address \
             FROM organizations WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(Organization::from))
    }

    /// The organization's Auth0 metadata (string values), without Herald's own keys.
    pub async fn organization_metadata(&self, id: &str) -> Result<serde_json::Value, StoreError> {
        let value: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT metadata FROM organizations WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        Ok(value.unwrap_or_else(|| serde_json::json!({})))
    }

    /// Replaces the organization's Auth0 metadata.
    pub async fn set_organization_metadata(
        &self,
        id: &str,
        metadata: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE organizations SET metadata = $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(metadata)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The client's callback and logout URL lists.
    pub async fn client_urls(&self, id: &str) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let row: Option<(Vec<String>, Vec<String>)> =
            sqlx::query_as("SELECT callbacks, allowed_logout_urls FROM clients WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.unwrap_or_default())
    }

    /// Replaces the client's callback and logout URL lists.
    pub async fn set_client_urls(
        &self,
        id: &str,
        callbacks: &[String],
        allowed_logout_urls: &[String],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE clients SET callbacks = $2, allowed_logout_urls = $3, updated_at = now() \
             WHERE id = $1",
        )
        .bind(id)
        .bind(callbacks)
        .bind(allowed_logout_urls)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Creates the client or replaces every field of the one with the same id.
    pub async fn upsert_client(&self, client: &Client) -> Result<(), StoreError> {
        client.validate().map_err(StoreError::Invalid)?;
        sqlx::query(
            "INSERT INTO clients (id, name, login_uri) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET \
                 name = EXCLUDED.name, login_uri = EXCLUDED.login_uri, updated_at = now()",
        )
        .bind(&client.id)
        .bind(&client.name)
        .bind(&client.login_uri)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let row =
            sqlx::query_as::<_, ClientRow>("SELECT id, name, login_uri FROM clients WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(Client::from))
    }

    /// Every client, by id.
    pub async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows =
            sqlx::query_as::<_, ClientRow>("SELECT id, name, login_uri FROM clients ORDER BY id")
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().map(Client::from).collect())
    }

    /// Deletes the client and its template overrides; false if there was none.
    pub async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Creates the override or replaces the one with the same scope, template and locale (and
    /// clears its failures). Only a [`CheckedOverride`] is accepted: the renderer compiled and
    /// test-rendered it in every locale. An unknown organization or client is
    /// [`StoreError::NotFound`].
    pub async fn set_template_override(
        &self,
        scope: &OverrideScope,
        locale: Option<&str>,
        checked: &CheckedOverride,
    ) -> Result<(), StoreError> {
        let sources = checked.sources();
        validate_override(scope, locale, sources).map_err(StoreError::Invalid)?;
        let result = sqlx::query(
            "INSERT INTO template_overrides \
                 (organization_id, client_id, template, locale, subject, html, text) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (organization_id, client_id, template, locale) DO UPDATE SET \
                 subject = EXCLUDED.subject, html = EXCLUDED.html, text = EXCLUDED.text, \
                 failures = 0, last_failure_at = NULL, last_failure = NULL, updated_at = now()",
        )
        .bind(scope.organization_id())
        .bind(scope.client_id())
        .bind(checked.template().as_str())
        .bind(locale_key(locale))
        .bind(&sources.subject)
        .bind(&sources.html)
        .bind(&sources.text)
        .execute(self.pool())
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_kind(&e, ErrorKind::ForeignKeyViolation) => Err(StoreError::NotFound(
                format!("{scope} does not exist; register it before overriding its templates"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Counts one email for which `o` failed to render (and the built-in template was used),
    /// keeping the time and `message`; false if the override is gone.
    pub async fn record_override_failure(
        &self,
        o: &TemplateOverride,
        message: &str,
    ) -> Result<bool, StoreError> {
        let message: String = message.chars().take(MAX_FAILURE_LEN).collect();
        let done = sqlx::query(
            "UPDATE template_overrides \
             SET failures = failures + 1, last_failure_at = now(), last_failure = $5 \
             WHERE organization_id IS NOT DISTINCT FROM $1 AND client_id IS NOT DISTINCT FROM $2 \
               AND template = $3 AND locale = $4",
        )
        .bind(o.scope.organization_id())
        .bind(o.scope.client_id())
        .bind(o.template.as_str())
        .bind(locale_key(o.locale.as_deref()))
        .bind(message)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The overrides of one organization or client, or all of them; ordered by scope, template
    /// and locale (every-locale first).
    pub async fn list_template_overrides(
        &self,
        scope: Option<&OverrideScope>,
    ) -> Result<Vec<TemplateOverride>, StoreError> {
        let rows = sqlx::query_as::<_, OverrideRow>(
            "SELECT organization_id, client_id, template, locale, subject, html, text, \
                    failures, last_failure_at, last_failure \
             FROM template_overrides \
             WHERE ($1::text IS NULL OR organization_id = $1) \
               AND ($2::text IS NULL OR client_id = $2) \
             ORDER BY organization_id NULLS LAST, client_id NULLS LAST, template, locale",
        )
        .bind(scope.and_then(OverrideScope::organization_id))
        .bind(scope.and_then(OverrideScope::client_id))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(TemplateOverride::try_from).collect()
    }

    /// Deletes one override (`locale: None` is the every-locale one); false if there was none.
    pub async fn delete_template_override(
        &self,
        scope: &OverrideScope,
        template: TemplateName,
        locale: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM template_overrides \
             WHERE organization_id IS NOT DISTINCT FROM $1 AND client_id IS NOT DISTINCT FROM $2 \
               AND template = $3 AND locale = $4",
        )
        .bind(scope.organization_id())
        .bind(scope.client_id())
        .bind(template.as_str())
        .bind(locale_key(locale))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The override an email should use, or `None` for the default template.
    ///
    /// The organization's overrides come first, then the client's. Within one scope an override
    /// for exactly `locale` beats one for every locale. The first match wins as a whole: its unset
    /// parts fall back to the default template, not to a lower-ranked override.
    pub async fn resolve_template_override(
        &self,
        template: TemplateName,
        organization_id: Option<&str>,
        client_id: Option<&str>,
        locale: &str,
    ) -> Result<Option<TemplateOverride>, StoreError> {
        if organization_id.is_none() && client_id.is_none() {
            return Ok(None);
        }
        let row = sqlx::query_as::<_, OverrideRow>(
            "SELECT organization_id, client_id, template, locale, subject, html, text, \
                    failures, last_failure_at, last_failure \
             FROM template_overrides \
             WHERE template = $1 AND locale IN ($4, '') \
               AND (organization_id = $2 OR client_id = $3) \
             ORDER BY (organization_id IS NOT NULL) DESC, (locale = '') ASC \
             LIMIT 1",
        )
        .bind(template.as_str())
        .bind(organization_id)
        .bind(client_id)
        .bind(locale_key(Some(locale)))
        .fetch_optional(self.pool())
        .await?;
        row.map(TemplateOverride::try_from).transpose()
    }
}

#[derive(sqlx::FromRow)]
struct OrganizationRow {
    id: String,
    name: String,
    display_name: String,
    logo_url: Option<String>,
    primary_color: Option<String>,
    page_background: Option<String>,
    default_locale: Option<String>,
    from_address: Option<String>,
}

impl From<OrganizationRow> for Organization {
    fn from(row: OrganizationRow) -> Self {
        Organization {
            id: row.id,
            name: row.name,
            display_name: row.display_name,
            branding: Branding {
                logo_url: row.logo_url,
                primary_color: row.primary_color,
                page_background: row.page_background,
            },
            default_locale: row.default_locale,
            from_address: row.from_address,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: String,
    name: String,
    login_uri: Option<String>,
}

impl From<ClientRow> for Client {
    fn from(row: ClientRow) -> Self {
        Client {
            id: row.id,
            name: row.name,
            login_uri: row.login_uri,
        }
    }
}

#[derive(sqlx::FromRow)]
struct OverrideRow {
    organization_id: Option<String>,
    client_id: Option<String>,
    template: String,
    locale: String,
    subject: Option<String>,
    html: Option<String>,
    text: Option<String>,
    failures: i64,
    last_failure_at: Option<OffsetDateTime>,
    last_failure: Option<String>,
}

impl TryFrom<OverrideRow> for TemplateOverride {
    type Error = StoreError;

    fn try_from(row: OverrideRow) -> Result<Self, StoreError> {
        let corrupt = |what: String| StoreError::Database(sqlx::Error::Decode(what.into()));
        let scope = match (row.organization_id, row.client_id) {
            (Some(org), None) => OverrideScope::Organization(org),
            (None, Some(client)) => OverrideScope::Client(client),
            _ => {
                return Err(corrupt(
                    "a template override has neither or both scopes".into(),
                ));
            }
        };
        let template = row
            .template
            .parse::<TemplateName>()
            .map_err(|e| corrupt(format!("a stored template override names {e}")))?;
        Ok(TemplateOverride {
            scope,
            template,
            locale: (!row.locale.is_empty()).then_some(row.locale),
            subject: row.subject,
            html: row.html,
            text: row.text,
            health: OverrideHealth {
                failures: u64::try_from(row.failures).unwrap_or(0),
                last_failure_at: row.last_failure_at,
                last_failure: row.last_failure,
            },
        })
    }
}

/// The `locale` column value: '' for every locale, otherwise the canonical tag so `pt_BR` and
/// `pt-BR` name the same override.
fn locale_key(locale: Option<&str>) -> String {
    match locale.map(str::trim) {
        None | Some("") => String::new(),
        Some(tag) => Locale::parse(tag).map_or_else(|| tag.to_owned(), |l| l.to_string()),
    }
}

fn is_kind(e: &sqlx::Error, kind: ErrorKind) -> bool {
    e.as_database_error().is_some_and(|db| db.kind() == kind)
}

fn check_no_control(field: &str, value: &str) -> Result<(), String> {
    if value.chars().any(char::is_control) {
        return Err(format!(
            "{field} must not contain control characters such as line breaks"
        ));
    }
    Ok(())
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("{field} must be at most {max} bytes long"));
    }
    Ok(())
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    check_len(field, value, max)?;
    check_no_control(field, value)
}

/// Ids come from upstream systems (Auth0 uses mixed case, e.g. `org_W30lwzsNS9ttbJaG`), so
/// upper-case letters are allowed here but not in names.
fn check_id(field: &str, value: &str) -> Result<(), String> {
    check_text(field, value, MAX_ID_LEN)?;
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
    {
        return Err(format!(
            "{field} may only contain letters, digits, '_' and '-' (found {bad:?} in {value:?})"
        ));
    }
    Ok(())
}

fn check_slug(field: &str, value: &str, max: usize) -> Result<(), String> {
    check_text(field, value, max)?;
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')))
    {
        return Err(format!(
            "{field} may only contain a-z, 0-9, '_' and '-' (found {bad:?} in {value:?})"
        ));
    }
    Ok(())
}

fn check_url(field: &str, value: &str) -> Result<(), String> {
    check_text(field, value, MAX_URL_LEN)?;
    let url = url::Url::parse(value)
        .map_err(|e| format!("{field} must be an absolute http or https URL ({e}: {value:?})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "{field} must be an absolute http or https URL (got {value:?})"
        ));
    }
    Ok(())
}

fn check_colour(field: &str, value: &str) -> Result<(), String> {
    let ok = value.len() == 7
        && value.starts_with('#')
        && value[1..].chars().all(|c| c.is_ascii_hexdigit());
    if !ok {
        return Err(format!(
            "{field} must be a colour written #RRGGBB, e.g. #0059d6 (got {value:?})"
        ));
    }
    Ok(())
}

fn check_locale(field: &str, value: &str) -> Result<(), String> {
    check_text(field, value, 35)?;
    if Locale::parse(value).is_none() {
        return Err(format!(
            "{field} must be a BCP 47 language tag such as en or pt-BR (got {value:?})"
        ));
    }
    Ok(())
}

/// A From mailbox (`Acme <no-reply@acme.example>` or a bare address), or why not, naming `field`.
pub fn check_mailbox(field: &str, value: &str) -> Result<(), String> {
    check_text(field, value, MAX_TEXT_LEN + 254)?;
    email_address::EmailAddress::parse_with_options(value, email_address::Options::default())
        .map_err(|e| {
            let problem = e.to_string();
            let problem = problem.trim_end_matches('.');
            format!(
                "{field} must be an address such as `Acme <no-reply@acme.example>` \
                 ({problem}; got {value:?})"
            )
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> Organization {
        Organization {
            id: "org_W30lwzsNS9ttbJaG".into(),
            name: "acme".into(),
            display_name: "Acme Corporation".into(),
            branding: Branding {
                logo_url: Some("https://acme.example/logo.png".into()),
                primary_color: Some("#0059D6".into()),
                page_background: Some("#ffffff".into()),
            },
            default_locale: Some("pt_BR".into()),
            from_address: Some("Acme <no-reply@acme.example>".into()),
        }
    }

    fn refused(change: impl FnOnce(&mut Organization)) -> String {
        let mut o = org();
        change(&mut o);
        o.validate().expect_err("should be refused")
    }

    #[test]
    fn a_complete_organization_is_valid() {
        org().validate().unwrap();
        let mut bare = org();
        bare.branding = Branding::default();
        bare.default_locale = None;
        bare.from_address = Some("no-reply@acme.example".into());
        bare.validate().unwrap();
    }

    #[test]
    fn each_refusal_names_its_field() {
        type Change = Box<dyn FnOnce(&mut Organization)>;
        let table: [(&str, Change); 12] = [
            ("organization id", Box::new(|o| o.id = String::new())),
            ("organization id", Box::new(|o| o.id = "a b".into())),
            ("organization name", Box::new(|o| o.name = "Acme".into())),
            (
                "organization display_name",
                Box::new(|o| o.display_name = " ".into()),
            ),
            (
                "organization display_name",
                Box::new(|o| o.display_name = "A\r\nBcc: x".into()),
            ),
            (
                "logo_url",
                Box::new(|o| o.branding.logo_url = Some("/logo.png".into())),
            ),
            (
                "logo_url",
                Box::new(|o| o.branding.logo_url = Some("ftp://a.example/l".into())),
            ),
            (
                "primary_color",
                Box::new(|o| o.branding.primary_color = Some("red".into())),
            ),
            (
                "page_background",
                Box::new(|o| o.branding.page_background = Some("#fff".into())),
            ),
            (
                "default_locale",
                Box::new(|o| o.default_locale = Some("!!".into())),
            ),
            (
                "from_address",
                Box::new(|o| o.from_address = Some("not an address".into())),
            ),
            (
                "from_address",
                Box::new(|o| o.from_address = Some("A <a@b.c>\nBcc: x".into())),
            ),
        ];
        for (field, change) in table {
            let err = refused(change);
            assert!(err.contains(field), "{err:?} should name {field}");
        }
    }

    #[test]
    fn clients_and_overrides_are_checked_too() {
        let client = Client {
            id: "app_1".into(),
            name: "My App".into(),
            login_uri: None,
        };
        client.validate().unwrap();
        let bad = Client {
            login_uri: Some("javascript:alert(1)".into()),
            ..client
        };
        assert!(bad.validate().unwrap_err().contains("login_uri"));

        let scope = OverrideScope::Client("app_1".into());
        let none = TemplateSources::default();
        assert!(
            validate_override(&scope, None, &none)
                .unwrap_err()
                .contains("at least one")
        );
        let header = TemplateSources {
            subject: Some("Hi\r\nBcc: x".into()),
            ..none
        };
        assert!(
            validate_override(&scope, None, &header)
                .unwrap_err()
                .contains("subject")
        );
        let bad_scope = OverrideScope::Organization("a b".into());
        let fine = TemplateSources {
            subject: Some("Hi".into()),
            ..TemplateSources::default()
        };
        assert!(
            validate_override(&bad_scope, None, &fine)
                .unwrap_err()
                .contains("organization id")
        );
        assert!(
            validate_override(&scope, Some("!!"), &fine)
                .unwrap_err()
                .contains("locale")
        );
    }

    #[test]
    fn locale_keys_are_canonical() {
        assert_eq!(locale_key(None), "");
        assert_eq!(locale_key(Some(" ")), "");
        assert_eq!(locale_key(Some("pt_BR")), "pt-BR");
        assert_eq!(locale_key(Some("fr")), "fr");
    }
}
