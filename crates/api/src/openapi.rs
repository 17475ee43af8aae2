//! The OpenAPI 3.1 document of the Management API: which paths, bodies, parameters, answers and
//! errors of `/api/v2` it lists, generated from the handlers' `#[utoipa::path]` annotations and
//! their types, and served without authentication at `GET /api/v2/openapi.json` (it is
//! documentation: it holds nothing about the tenant). A copy is checked in as
//! `schemas/management-api.openapi.json`; `tests/openapi.rs` fails when the two differ.
//!
//! To document another endpoint, annotate its handler with `#[utoipa::path]`, derive `ToSchema`
//! on its body and answer types, and list them in [`ManagementApi`] below, next to the others of
//! its resource. The errors every authenticated operation can answer (401, 403, 429, 503) are
//! added by [`CommonResponses`], with 413 and 415 for those with a body; list the others (400,
//! 404, 409) on the handler.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Required, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorAttributes, ErrorBody};
use crate::{email_templates, enrollments, jobs, registry, tickets, users};

/// The security scheme every operation names: `Authorization: Bearer <token>`.
pub const BEARER: &str = "bearerAuth";

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Herald Management API",
        description = "The email and ticket part of Auth0's Management API v2, served by \
                       `herald serve`: same paths, bodies, scopes, error bodies and rate-limit \
                       headers. Bodies may be JSON or `application/x-www-form-urlencoded` (an \
                       object property is then given as a JSON string).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/api/v2", description = "This server")),
    paths(
        // Users
        users::create,
        users::get,
        users::update,
        users::delete,
        users::by_email,
        enrollments::list,
        // Organizations and clients
        registry::create_org,
        registry::get_org,
        registry::get_org_by_name,
        registry::update_org,
        registry::delete_org,
        registry::create_client,
        registry::get_client,
        registry::update_client,
        registry::delete_client,
        // Jobs
        jobs::verification_email,
        jobs::get,
        // Tickets
        tickets::email_verification,
        tickets::password_change,
        tickets::enrollment,
        // MFA enrollments
        enrollments::delete,
        enrollments::verify_otp,
        // Email templates
        email_templates::create,
        email_templates::get,
        email_templates::update,
        email_templates::replace,
    ),
    components(schemas(
        ErrorBody,
        ErrorAttributes,
        HttpUrl,
        // Users
        users::CreateUser,
        users::UpdateUser,
        users::User,
        users::UserIdentity,
        // Organizations and clients
        registry::CreateOrgBody,
        registry::OrgBody,
        registry::OrganizationOut,
        registry::OrgBranding,
        registry::Colors,
        registry::CreateClientBody,
        registry::ClientBody,
        registry::ClientOut,
        // Jobs and tickets
        jobs::VerificationEmailJob,
        jobs::Job,
        tickets::Identity,
        tickets::VerifyEmailTicket,
        tickets::PasswordChangeTicket,
        tickets::EnrollmentTicket,
        tickets::Ticket,
        tickets::EnrollmentTicketIssued,
        // MFA enrollments
        enrollments::UserEnrollment,
        enrollments::OtpVerification,
        enrollments::OtpVerificationResult,
        // Email templates
        email_templates::TemplateBody,
        email_templates::SetEmailTemplate,
        email_templates::EmailTemplateOut,
        email_templates::TemplateNameEnum,
        email_templates::SyntaxEnum,
    )),
    modifiers(&BearerScheme, &CommonResponses),
    tags(
        (name = "users"),
        (name = "organizations"),
        (name = "clients"),
        (name = "jobs"),
        (name = "tickets"),
        (name = "guardian"),
        (name = "email-templates"),
        (name = "x-herald", description = "Herald's extensions: not part of Auth0's API."),
    ),
)]
pub struct ManagementApi;

/// An absolute http(s) URL, as the API accepts one (`result_url`, `logo_url`, a client's URLs):
/// a host name that starts with a letter, then an optional path, query or fragment.
#[derive(Debug, utoipa::ToSchema)]
#[schema(
    pattern = "^https?://[A-Za-z][A-Za-z0-9-]*(\\.[A-Za-z][A-Za-z0-9-]*)*([/?#][^\\s\\u0000-\\u001F\\u007F-\\u009F]*)?$",
    max_length = 2000,
    example = "https://app.example.com/welcome"
)]
pub struct HttpUrl(#[allow(dead_code)] String);

/// Declares the bearer scheme the operations' `security` names, so clients (and schemathesis'
/// `ignored_auth` check) know every operation needs a token.
#[derive(Debug)]
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An opaque token of `herald token create`, or a JWT access token when \
                         HERALD_JWT_* is set. Scopes as in Auth0.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds the answers the authentication middleware and the store give on every operation (and
/// the body extractor on every operation with a body), and marks the body of a PATCH optional.
#[derive(Debug)]
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error = || {
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name("Error"))))
                .build()
        };
        let integer = || {
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                .build()
        };
        let common = [
            (
                "401",
                ResponseBuilder::new()
                    .description("The token is missing, unknown, revoked or expired.")
                    .header("www-authenticate", HeaderBuilder::new().build())
                    .content("application/json", error())
                    .build(),
            ),
            (
                "403",
                ResponseBuilder::new()
                    .description("The token lacks the operation's scope.")
                    .content("application/json", error())
                    .build(),
            ),
            (
                "429",
                ResponseBuilder::new()
                    .description("The token's rate limit (HERALD_API_RATE_LIMIT) is used up.")
                    .header("retry-after", integer())
                    .header("x-ratelimit-limit", integer())
                    .header("x-ratelimit-remaining", integer())
                    .header("x-ratelimit-reset", integer())
                    .content("application/json", error())
                    .build(),
            ),
            (
                "503",
                ResponseBuilder::new()
                    .description("The database or the broker is unavailable; try again.")
                    .content("application/json", error())
                    .build(),
            ),
        ];
        // What `Payload` answers for any body.
        let body_errors = [
            (
                "413",
                ResponseBuilder::new()
                    .description("The body is larger than HERALD_API_MAX_BODY_BYTES.")
                    .content("application/json", error())
                    .build(),
            ),
            (
                "415",
                ResponseBuilder::new()
                    .description("The body is neither JSON nor form-encoded.")
                    .content("application/json", error())
                    .build(),
            ),
        ];
        for item in openapi.paths.paths.values_mut() {
            // A PATCH without a body changes nothing (an empty body reads as `{}`).
            if let Some(patch) = item.patch.as_mut()
                && let Some(RefOr::T(body)) = patch.request_body.as_mut()
            {
                body.required = Some(Required::False);
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let with_body = operation.request_body.is_some();
                let extra = body_errors.iter().filter(|_| with_body);
                for (status, response) in common.iter().chain(extra) {
                    operation
                        .responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| RefOr::T(response.clone()));
                }
            }
        }
    }
}

/// The document, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut doc =
        serde_json::to_value(ManagementApi::openapi()).expect("the OpenAPI document serializes");
    add_rules(&mut doc);
    serde_json::to_string_pretty(&doc).expect("the OpenAPI document serializes")
});

/// Rules between properties that utoipa's attributes cannot state.
fn add_rules(doc: &mut serde_json::Value) {
    let schemas = &mut doc["components"]["schemas"];
    // Herald enrolls these two of Auth0's factors; the others are refused with a 400.
    schemas["EnrollmentTicket"]["properties"]["factor"]["enum"] =
        serde_json::json!(["otp", "email", null]);
    // As in Auth0, result_url is for the classic experience: a verification ticket refuses it
    // beside client_id or organization_id, a password-change ticket beside organization_id.
    let result_url_given = serde_json::json!({
        "required": ["result_url"],
        "properties": {"result_url": {"type": "string"}}
    });
    schemas["VerifyEmailTicket"]["if"] = result_url_given.clone();
    schemas["VerifyEmailTicket"]["then"] = serde_json::json!({
        "properties": {"client_id": {"type": "null"}, "organization_id": {"type": "null"}}
    });
    schemas["PasswordChangeTicket"]["if"] = result_url_given;
    schemas["PasswordChangeTicket"]["then"] = serde_json::json!({
        "properties": {"organization_id": {"type": "null"}}
    });
    // POST /tickets/password-change names the user by user_id, or by email and connection_id,
    // never both ways (a null property counts as left out).
    schemas["PasswordChangeTicket"]["oneOf"] = serde_json::json!([
        {
            "required": ["user_id"],
            "properties": {
                "user_id": {"type": "string"},
                "email": {"type": "null"},
                "connection_id": {"type": "null"}
            }
        },
        {
            "required": ["email", "connection_id"],
            "properties": {
                "user_id": {"type": "null"},
                "email": {"type": "string"},
                "connection_id": {"type": "string"}
            }
        }
    ]);
}

/// The document as pretty-printed JSON (keys in a stable order), as checked in under `schemas/`.
pub fn document() -> &'static str {
    &DOCUMENT
}

/// `GET /api/v2/openapi.json`: the document, without authentication.
pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}
