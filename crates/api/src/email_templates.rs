//! `/api/v2/email-templates`: the tenant-wide templates of the four emails Herald sends, in
//! Auth0's shape. A template is compiled and test-rendered in every locale before it is saved
//! (Liquid, Auth0's syntax, or handlebars, Herald's own), so a broken one is a 400 that says
//! what is wrong rather than a failed email. Its `resultUrl`, `urlLifetimeInSeconds` and
//! `includeEmailInRedirect` become the defaults of that kind's tickets ([`ticket_defaults`]).

use axum::Extension;
use axum::Json;
use axum::extract::State;
use herald_domain::{EmailJob, TemplateName, TicketDefaults};
use herald_render::{
    EmailContext, LiquidExtras, LiquidSources, ResultUrlApplication, TemplateSources,
    render_result_url,
};
use herald_store::registry::check_mailbox;
use herald_store::{EmailTemplate, StoreError, StoredEmailTemplate, TemplateSyntax};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorBody;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::payload::{FormFields, Payload};
use crate::state::ApiState;
use crate::text::PathParam;

/// Auth0's template names (EmailTemplateNameEnum); Herald sends the first four and
/// `mfa_oob_code`.
const AUTH0_NAMES: [&str; 14] = [
    "verify_email",
    "reset_email",
    "welcome_email",
    "enrollment_email",
    "verify_email_by_code",
    "auth_email_by_code",
    "reset_email_by_code",
    "blocked_account",
    "stolen_credentials",
    "mfa_oob_code",
    "user_invitation",
    "change_password",
    "password_reset",
    "async_approval",
];

/// The longest `urlLifetimeInSeconds` accepted: a year, as for a job's `ttl_sec`.
const MAX_LIFETIME: u64 = herald_domain::MAX_TTL_SEC;

/// A POST, PUT or PATCH body. Every property may be `null` (Auth0's schema allows it), which
/// clears it; a property left out keeps its value on a PATCH. POST and PUT also need `body`,
/// `syntax` and `enabled` (and POST `template`), as Auth0's do ([`SetEmailTemplate`] documents
/// that shape).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UpdateEmailTemplate)]
pub struct TemplateBody {
    /// The template's name; on a PATCH or PUT it must be the one in the path.
    #[schema(value_type = Option<TemplateNameEnum>)]
    template: Option<String>,
    /// The HTML part (Liquid or handlebars, per `syntax`).
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>, nullable, max_length = 262144)]
    body: Option<Option<String>>,
    /// The From mailbox (`Acme <no-reply@acme.example>`); Liquid in Liquid templates.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>, nullable, max_length = 1024)]
    from: Option<Option<String>>,
    /// The subject; empty or null keeps Herald's localized one.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>, nullable, max_length = 1024)]
    subject: Option<Option<String>>,
    /// `liquid` (Auth0's) or `handlebars` (Herald's).
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<SyntaxEnum>, nullable)]
    syntax: Option<Option<String>>,
    /// The default `result_url` of this kind's tickets (Liquid: `application.name`,
    /// `application.clientID`, `application.callback_domain`).
    #[serde(default, rename = "resultUrl", deserialize_with = "given")]
    #[schema(value_type = Option<String>, nullable, max_length = 2048)]
    result_url: Option<Option<String>>,
    /// The default lifetime of this kind's tickets, in seconds (0: Herald's five days).
    #[serde(default, rename = "urlLifetimeInSeconds", deserialize_with = "given")]
    #[schema(value_type = Option<u64>, nullable, minimum = 0, maximum = 31536000)]
    url_lifetime_in_seconds: Option<Option<serde_json::Number>>,
    /// Whether this kind's ticket redirects carry the user's email (default true).
    #[serde(default, rename = "includeEmailInRedirect", deserialize_with = "given")]
    #[schema(value_type = Option<bool>, nullable)]
    include_email_in_redirect: Option<Option<bool>>,
    /// False: this kind's emails are not sent (their jobs are recorded as skipped).
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<bool>, nullable)]
    enabled: Option<Option<bool>>,
}

/// The body of `POST /email-templates` and `PUT /email-templates/{templateName}`: as
/// [`TemplateBody`], with Auth0's required properties. It documents that shape; the handlers
/// read a [`TemplateBody`] and refuse one without them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SetEmailTemplate {
    template: TemplateNameEnum,
    #[schema(required = true, nullable, max_length = 262144)]
    body: Option<String>,
    #[serde(default)]
    #[schema(nullable, max_length = 1024)]
    from: Option<String>,
    #[serde(default)]
    #[schema(nullable, max_length = 1024)]
    subject: Option<String>,
    #[schema(required = true, nullable)]
    syntax: Option<SyntaxEnum>,
    #[serde(default, rename = "resultUrl")]
    #[schema(nullable, max_length = 2048)]
    result_url: Option<String>,
    #[serde(default, rename = "urlLifetimeInSeconds")]
    #[schema(nullable, minimum = 0, maximum = 31536000)]
    url_lifetime_in_seconds: Option<u64>,
    #[serde(default, rename = "includeEmailInRedirect")]
    #[schema(nullable)]
    include_email_in_redirect: Option<bool>,
    #[schema(required = true, nullable)]
    enabled: Option<bool>,
}

/// The templates Herald sends.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(non_camel_case_types, dead_code)]
pub enum TemplateNameEnum {
    verify_email,
    reset_email,
    welcome_email,
    enrollment_email,
    mfa_oob_code,
}

/// A template's language.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(non_camel_case_types, dead_code)]
pub enum SyntaxEnum {
    liquid,
    handlebars,
}

/// A template, as Auth0 answers it (`urlLifetimeInSeconds` left out when unset).
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailTemplateOut {
    #[schema(value_type = TemplateNameEnum)]
    template: &'static str,
    body: Option<String>,
    from: Option<String>,
    #[serde(rename = "resultUrl")]
    result_url: Option<String>,
    subject: Option<String>,
    #[schema(value_type = SyntaxEnum)]
    syntax: &'static str,
    #[serde(
        rename = "urlLifetimeInSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(required = false)]
    url_lifetime_in_seconds: Option<u64>,
    #[serde(rename = "includeEmailInRedirect")]
    include_email_in_redirect: bool,
    enabled: bool,
}

/// The `{templateName}` of a path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TemplateNameParam {
    /// One of the templates Herald sends; Auth0's other names are a 400.
    #[param(value_type = TemplateNameEnum, rename = "templateName")]
    #[allow(dead_code)]
    template_name: String,
}

impl FormFields for TemplateBody {
    const BOOLEANS: &'static [&'static str] = &["includeEmailInRedirect", "enabled"];
    const INTEGERS: &'static [&'static str] = &["urlLifetimeInSeconds"];
}

/// Tells a property given as `null` (`Some(None)`) from one left out (`None`).
fn given<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `POST /email-templates`: 200 with the template (Auth0's status), 409 when it exists.
#[utoipa::path(
    post,
    path = "/email-templates",
    tag = "email-templates",
    operation_id = "post_email_templates",
    request_body(content(
        (SetEmailTemplate = "application/json"),
        (SetEmailTemplate = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "The template was created (Auth0 answers 200).", body = EmailTemplateOut),
        (status = 400, description = "The body breaks the schema, or the template does not compile or render (the message says where).", body = ErrorBody),
        (status = 409, description = "The template exists.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["create:email_templates"])),
)]
pub async fn create(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Payload(body): Payload<TemplateBody>,
) -> Result<Json<EmailTemplateOut>, ApiError> {
    caller.require(&["create:email_templates"])?;
    let name = body
        .template
        .as_deref()
        .ok_or_else(|| ApiError::invalid_body("Missing required property: template"))?;
    let template = template_name(name)?;
    let checked = checked(&state, apply(EmailTemplate::new(template), body, true)?)?;
    let stored = state
        .store()
        .create_email_template(&checked)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(m) => ApiError::conflict(m, None),
            other => other.into(),
        })?;
    Ok(Json(to_json(&stored)))
}

/// `GET /email-templates/{templateName}`.
#[utoipa::path(
    get,
    path = "/email-templates/{templateName}",
    tag = "email-templates",
    operation_id = "get_email_templates_by_template_name",
    params(TemplateNameParam),
    responses(
        (status = 200, description = "The template.", body = EmailTemplateOut),
        (status = 400, description = "Not a template Herald sends.", body = ErrorBody),
        (status = 404, description = "The template was never created.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["read:email_templates"])),
)]
pub async fn get(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(name): PathParam,
) -> Result<Json<EmailTemplateOut>, ApiError> {
    caller.require(&["read:email_templates"])?;
    let template = template_name(&name)?;
    let stored = state
        .store()
        .email_template(template)
        .await?
        .ok_or_else(|| ApiError::not_found("Template not found.", Some("inexistent_template")))?;
    Ok(Json(to_json(&stored)))
}

/// `PATCH /email-templates/{templateName}`: the given properties only.
#[utoipa::path(
    patch,
    path = "/email-templates/{templateName}",
    tag = "email-templates",
    operation_id = "patch_email_templates_by_template_name",
    params(TemplateNameParam),
    request_body(content(
        (TemplateBody = "application/json"),
        (TemplateBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "The updated template.", body = EmailTemplateOut),
        (status = 400, description = "The body breaks the schema, or the template does not compile or render.", body = ErrorBody),
        (status = 404, description = "The template was never created.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["update:email_templates"])),
)]
pub async fn update(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(name): PathParam,
    Payload(body): Payload<TemplateBody>,
) -> Result<Json<EmailTemplateOut>, ApiError> {
    caller.require(&["update:email_templates"])?;
    let template = template_name(&name)?;
    same_template(template, body.template.as_deref())?;
    let not_found = || {
        ApiError::not_found(
            "Template not found and cannot be updated.",
            Some("inexistent_template"),
        )
    };
    let current = state
        .store()
        .email_template(template)
        .await?
        .ok_or_else(not_found)?;
    let checked = checked(&state, apply(current.template, body, false)?)?;
    let stored = state
        .store()
        .replace_email_template(&checked)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(to_json(&stored)))
}

/// `PUT /email-templates/{templateName}`: every property (those left out take their defaults).
#[utoipa::path(
    put,
    path = "/email-templates/{templateName}",
    tag = "email-templates",
    operation_id = "put_email_templates_by_template_name",
    params(TemplateNameParam),
    request_body(content(
        (SetEmailTemplate = "application/json"),
        (SetEmailTemplate = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "The replaced template.", body = EmailTemplateOut),
        (status = 400, description = "The body breaks the schema, or the template does not compile or render.", body = ErrorBody),
        (status = 404, description = "The template was never created.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["update:email_templates"])),
)]
pub async fn replace(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(name): PathParam,
    Payload(body): Payload<TemplateBody>,
) -> Result<Json<EmailTemplateOut>, ApiError> {
    caller.require(&["update:email_templates"])?;
    let template = template_name(&name)?;
    if body.template.is_none() {
        return Err(ApiError::invalid_body(
            "Missing required property: template",
        ));
    }
    same_template(template, body.template.as_deref())?;
    let checked = checked(&state, apply(EmailTemplate::new(template), body, true)?)?;
    let stored = state
        .store()
        .replace_email_template(&checked)
        .await?
        .ok_or_else(|| ApiError::not_found("Template not found.", Some("inexistent_template")))?;
    Ok(Json(to_json(&stored)))
}

/// The defaults of the tenant's template of `job`'s kind for its ticket (none without one).
pub async fn ticket_defaults(state: &ApiState, job: &EmailJob) -> Result<TicketDefaults, ApiError> {
    let Some(stored) = state.store().email_template(job.kind().template()).await? else {
        return Ok(TicketDefaults::default());
    };
    let client = match &job.client_id {
        Some(id) => state.store().get_client(id.as_str()).await?,
        None => None,
    };
    Ok(state
        .store()
        .ticket_defaults(&stored.template, client.as_ref())
        .await?)
}

fn template_name(name: &str) -> Result<TemplateName, ApiError> {
    if let Ok(t) = name.parse::<TemplateName>() {
        return Ok(t);
    }
    if AUTH0_NAMES.contains(&name) {
        return Err(ApiError::bad_request(format!(
            "Herald does not send the {name} email; its templates are verify_email, \
             reset_email, welcome_email, enrollment_email and mfa_oob_code."
        )));
    }
    Err(ApiError::invalid_uri(format!(
        "Value must be one of: {}",
        AUTH0_NAMES.join(", ")
    )))
}

fn same_template(path: TemplateName, body: Option<&str>) -> Result<(), ApiError> {
    match body {
        Some(name) if name != path.as_str() => Err(ApiError::invalid_property(
            format!("The template name must be {path}, as in the path"),
            "template",
        )),
        _ => Ok(()),
    }
}

/// `body` applied to `t`. `full` (POST, PUT): Auth0's required properties must be there.
fn apply(mut t: EmailTemplate, body: TemplateBody, full: bool) -> Result<EmailTemplate, ApiError> {
    if full {
        for (present, name) in [
            (body.body.is_some(), "body"),
            (body.syntax.is_some(), "syntax"),
            (body.enabled.is_some(), "enabled"),
        ] {
            if !present {
                return Err(ApiError::invalid_body(format!(
                    "Missing required property: {name}"
                )));
            }
        }
    }
    if let Some(syntax) = body.syntax {
        t.syntax = match syntax.as_deref() {
            None => TemplateSyntax::Liquid,
            Some(s) => s
                .parse()
                .map_err(|e: String| ApiError::invalid_property(e, "syntax"))?,
        };
    }
    let text = |value: Option<String>, name: &str, max: usize| -> Result<_, ApiError> {
        match value {
            Some(v) if v.len() > max => Err(ApiError::invalid_property(
                format!("String is too long ({} chars), maximum {max}", v.len()),
                name,
            )),
            // An empty subject or From is Auth0's "use the default".
            Some(v) if v.trim().is_empty() => Ok(None),
            other => Ok(other),
        }
    };
    if let Some(v) = body.body {
        t.body = text(v, "body", herald_render::MAX_LIQUID_BYTES)?;
    }
    if let Some(v) = body.subject {
        t.subject = text(v, "subject", 1024)?;
    }
    if let Some(v) = body.from {
        t.from = text(v, "from", 1024)?;
    }
    if let Some(v) = body.result_url {
        t.result_url = text(v, "resultUrl", 2048)?;
    }
    if let Some(v) = body.url_lifetime_in_seconds {
        t.url_lifetime_seconds = match v {
            None => None,
            Some(n) => Some(lifetime(&n)?),
        };
    }
    if let Some(v) = body.include_email_in_redirect {
        t.include_email_in_redirect = v.unwrap_or(true);
    }
    if let Some(v) = body.enabled {
        t.enabled = v.unwrap_or(false);
    }
    Ok(t)
}

fn lifetime(n: &serde_json::Number) -> Result<u64, ApiError> {
    let invalid = |why: String| ApiError::invalid_property(why, "urlLifetimeInSeconds");
    let value = n
        .as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= MAX_LIFETIME as f64)
                .map(|f| f as u64)
        })
        .ok_or_else(|| {
            invalid(format!(
                "Expected a whole number of seconds from 0 to {MAX_LIFETIME}, got {n}"
            ))
        })?;
    if value > MAX_LIFETIME {
        return Err(invalid(format!(
            "Number is greater than maximum value ({value} > {MAX_LIFETIME})"
        )));
    }
    Ok(value)
}

/// The template after the renderer compiled and test-rendered it in every locale.
fn checked(state: &ApiState, t: EmailTemplate) -> Result<EmailTemplate, ApiError> {
    let refused = |e: herald_render::RenderError| {
        let property = match &e {
            herald_render::RenderError::Liquid { part, .. }
            | herald_render::RenderError::Compile { part, .. }
            | herald_render::RenderError::TooComplex { part, .. }
            | herald_render::RenderError::Unescaped { part, .. }
            | herald_render::RenderError::Template { part, .. }
            | herald_render::RenderError::Message { part, .. }
            | herald_render::RenderError::Empty { part, .. } => match part {
                herald_render::Part::Subject => "subject",
                herald_render::Part::From => "from",
                herald_render::Part::Html | herald_render::Part::Text => "body",
            },
            _ => "body",
        };
        ApiError::invalid_property(e, property)
    };
    let bad_from = |e: String| ApiError::invalid_property(e, "from");
    match t.syntax {
        TemplateSyntax::Liquid => {
            let sources = LiquidSources {
                subject: t.subject.clone(),
                body: t.body.clone(),
                from: t.from.clone(),
            };
            state
                .renderer()
                .check_liquid(t.template, &sources)
                .map_err(refused)?;
            // The From line must be a mailbox once rendered (checked with the full sample).
            let sample = state
                .renderer()
                .render_liquid(
                    t.template,
                    &herald_domain::Locale::english(),
                    &EmailContext::sample(t.template),
                    &LiquidExtras::sample(),
                    &sources,
                )
                .map_err(refused)?;
            if let Some(from) = &sample.from {
                check_mailbox("from", from).map_err(bad_from)?;
            }
        }
        TemplateSyntax::Handlebars => {
            if t.subject.is_some() || t.body.is_some() {
                state
                    .renderer()
                    .check_override(
                        t.template,
                        TemplateSources {
                            subject: t.subject.clone(),
                            html: t.body.clone(),
                            text: None,
                        },
                    )
                    .map_err(refused)?;
            }
            // Liquid is only read in Liquid templates: here the From is taken as it is.
            if let Some(from) = &t.from {
                check_mailbox("from", from).map_err(bad_from)?;
            }
        }
    }
    if let Some(url) = &t.result_url {
        let sample = ResultUrlApplication {
            name: Some("Example App"),
            client_id: Some("sample_client_id"),
            callback_domain: Some("https://app.example"),
        };
        render_result_url(url, sample)
            .map_err(|e| ApiError::invalid_property(format!("resultUrl: {e}"), "resultUrl"))?;
    }
    Ok(t)
}

/// The template in Auth0's shape.
fn to_json(stored: &StoredEmailTemplate) -> EmailTemplateOut {
    let t = &stored.template;
    EmailTemplateOut {
        template: t.template.as_str(),
        body: t.body.clone(),
        from: t.from.clone(),
        result_url: t.result_url.clone(),
        subject: t.subject.clone(),
        syntax: t.syntax.as_str(),
        url_lifetime_in_seconds: t.url_lifetime_seconds,
        include_email_in_redirect: t.include_email_in_redirect,
        enabled: t.enabled,
    }
}
