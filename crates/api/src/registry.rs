//! `/api/v2/organizations` and `/api/v2/clients`: the same organizations and clients that
//! `herald org` and `herald client` manage, in Auth0's shapes.
//!
//! Herald's own organization settings travel as Auth0-valid organization metadata (string
//! values): `herald_default_locale` (the organization's default email locale) and `herald_from`
//! (its From address, e.g. `Acme <no-reply@acme.test>`). A client's `initiate_login_uri` is the
//! login URI Herald links to.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_store::{Branding, Client, Organization, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::fields::Fields;
use crate::payload::{FormFields, Payload};
use crate::state::ApiState;
use crate::text;
use crate::text::{IdParam, PathParam};

const LOCALE_KEY: &str = "herald_default_locale";
const FROM_KEY: &str = "herald_from";

/// An organization's colours, `#RRGGBB`.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Colors {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#[0-9A-Fa-f]{6}$", example = "#0059d6")]
    primary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#[0-9A-Fa-f]{6}$", example = "#ffffff")]
    page_background: Option<String>,
}

/// An organization's branding; what is not set is left out of answers.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgBranding {
    /// An absolute http(s) URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::openapi::HttpUrl>)]
    logo_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default, deserialize_with = "crate::payload::object")]
    colors: Option<Colors>,
}

/// A PATCH of an organization: the given properties change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgBody {
    /// Lower-case letters, digits, `_` and `-`; unique.
    #[schema(
        min_length = 1,
        max_length = 50,
        pattern = "^[a-z0-9_-]+$",
        example = "acme"
    )]
    name: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$",
        example = "Acme Corporation"
    )]
    display_name: Option<String>,
    /// In a form body: a JSON string.
    #[serde(default, deserialize_with = "crate::payload::object")]
    branding: Option<OrgBranding>,
    /// String values (at most 25 properties); `null` removes one. Herald reads
    /// `herald_default_locale` (the emails' default language) and `herald_from` (their sender).
    /// In a form body: a JSON string.
    #[schema(value_type = Option<Object>, additional_properties = true)]
    metadata: Option<Map<String, Value>>,
}

impl FormFields for OrgBody {
    const OBJECTS: &'static [&'static str] = &["branding", "metadata"];
}

/// A new organization: as [`OrgBody`], with `name` required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgBody {
    /// Lower-case letters, digits, `_` and `-`; unique.
    #[schema(
        min_length = 1,
        max_length = 50,
        pattern = "^[a-z0-9_-]+$",
        example = "acme"
    )]
    name: String,
    /// Defaults to `name`.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$",
        example = "Acme Corporation"
    )]
    display_name: Option<String>,
    /// In a form body: a JSON string.
    #[serde(default, deserialize_with = "crate::payload::object")]
    branding: Option<OrgBranding>,
    /// As in [`OrgBody`]. In a form body: a JSON string.
    #[schema(value_type = Option<Object>, additional_properties = true)]
    metadata: Option<Map<String, Value>>,
}

impl FormFields for CreateOrgBody {
    const OBJECTS: &'static [&'static str] = OrgBody::OBJECTS;
}

impl From<CreateOrgBody> for OrgBody {
    fn from(b: CreateOrgBody) -> Self {
        OrgBody {
            name: Some(b.name),
            display_name: b.display_name,
            branding: b.branding,
            metadata: b.metadata,
        }
    }
}

/// An organization as Auth0 returns it. Every property is there unless `fields` leaves it out.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationOut {
    #[schema(required = false, example = "org_W30lwzsNS9ttbJaG")]
    id: String,
    #[schema(required = false)]
    name: String,
    #[schema(required = false)]
    display_name: String,
    #[schema(required = false)]
    branding: OrgBranding,
    /// String values, Herald's `herald_default_locale` and `herald_from` among them.
    #[schema(required = false)]
    metadata: Map<String, Value>,
}

/// A PATCH of a client: the given properties change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    name: Option<String>,
    /// Absolute http(s) URLs, at most 100.
    #[schema(max_items = 100, value_type = Option<Vec<crate::openapi::HttpUrl>>)]
    callbacks: Option<Vec<String>>,
    /// Where Herald's pages link back to the application: an absolute http(s) URL.
    #[schema(value_type = Option<crate::openapi::HttpUrl>)]
    initiate_login_uri: Option<String>,
    /// Absolute http(s) URLs, at most 100.
    #[schema(max_items = 100, value_type = Option<Vec<crate::openapi::HttpUrl>>)]
    allowed_logout_urls: Option<Vec<String>>,
}

impl FormFields for ClientBody {
    const ARRAYS: &'static [&'static str] = &["callbacks", "allowed_logout_urls"];
}

/// A new client: as [`ClientBody`], with `name` required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClientBody {
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$",
        example = "Acme App"
    )]
    name: String,
    #[schema(max_items = 100, value_type = Option<Vec<crate::openapi::HttpUrl>>)]
    callbacks: Option<Vec<String>>,
    #[schema(value_type = Option<crate::openapi::HttpUrl>)]
    initiate_login_uri: Option<String>,
    #[schema(max_items = 100, value_type = Option<Vec<crate::openapi::HttpUrl>>)]
    allowed_logout_urls: Option<Vec<String>>,
}

impl FormFields for CreateClientBody {
    const ARRAYS: &'static [&'static str] = ClientBody::ARRAYS;
}

impl From<CreateClientBody> for ClientBody {
    fn from(b: CreateClientBody) -> Self {
        ClientBody {
            name: Some(b.name),
            callbacks: b.callbacks,
            initiate_login_uri: b.initiate_login_uri,
            allowed_logout_urls: b.allowed_logout_urls,
        }
    }
}

/// A client (application) as Auth0 returns it. Every property is there unless `fields` leaves
/// it out.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientOut {
    #[schema(required = false)]
    client_id: String,
    #[schema(required = false)]
    name: String,
    #[schema(required = false)]
    callbacks: Vec<String>,
    #[schema(required = false)]
    initiate_login_uri: Option<String>,
    #[schema(required = false)]
    allowed_logout_urls: Vec<String>,
}

/// The path parameter of `/organizations/name/{name}`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NameParam {
    #[param(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    #[allow(dead_code)]
    name: String,
}

type QueryResult<T> = Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>;

/// The query of a GET, or Auth0's 400.
fn query<T>(q: QueryResult<T>) -> Result<T, ApiError> {
    q.map(|axum::extract::Query(q)| q)
        .map_err(|e| ApiError::invalid_uri(e.body_text()))
}

async fn org_json(state: &ApiState, org: &Organization) -> Result<Value, ApiError> {
    let mut metadata = match state.store().organization_metadata(&org.id).await? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if let Some(locale) = &org.default_locale {
        metadata.insert(LOCALE_KEY.into(), locale.clone().into());
    }
    if let Some(from) = &org.from_address {
        metadata.insert(FROM_KEY.into(), from.clone().into());
    }
    let colors = Colors {
        primary: org.branding.primary_color.clone(),
        page_background: org.branding.page_background.clone(),
    };
    let has_colors = colors.primary.is_some() || colors.page_background.is_some();
    let out = OrganizationOut {
        id: org.id.clone(),
        name: org.name.clone(),
        display_name: org.display_name.clone(),
        branding: OrgBranding {
            logo_url: org.branding.logo_url.clone(),
            colors: has_colors.then_some(colors),
        },
        metadata,
    };
    Ok(serde_json::to_value(out).unwrap_or_default())
}

/// Applies a body to an organization (all fields for a create, the given ones for a PATCH) and
/// returns the metadata to store (without Herald's keys).
fn apply_org(
    org: &mut Organization,
    body: OrgBody,
    stored: Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    if let Some(name) = body.name {
        org.name = name;
    }
    if let Some(display) = body.display_name {
        text::check("display_name", &display, 1, 255)?;
        org.display_name = display;
    }
    if let Some(branding) = body.branding {
        if let Some(logo) = branding.logo_url {
            org.branding.logo_url = Some(logo);
        }
        if let Some(colors) = branding.colors {
            if let Some(c) = colors.primary {
                org.branding.primary_color = Some(c);
            }
            if let Some(c) = colors.page_background {
                org.branding.page_background = Some(c);
            }
        }
    }
    let mut metadata = stored;
    if let Some(given) = body.metadata {
        for (key, value) in given {
            text::check("metadata", &key, 1, 255)?;
            match value {
                Value::Null => {
                    if key == LOCALE_KEY {
                        org.default_locale = None;
                    } else if key == FROM_KEY {
                        org.from_address = None;
                    }
                    metadata.remove(&key);
                }
                Value::String(v) => {
                    text::check("metadata", &v, 0, 255)?;
                    if key == LOCALE_KEY {
                        org.default_locale = Some(v);
                    } else if key == FROM_KEY {
                        org.from_address = Some(v);
                    } else {
                        metadata.insert(key, Value::String(v));
                    }
                }
                _ => {
                    return Err(ApiError::invalid_property(
                        "Metadata values must be strings",
                        "metadata",
                    ));
                }
            }
        }
    }
    if metadata.len() > 25 {
        return Err(ApiError::invalid_property(
            "Too many metadata properties (at most 25)",
            "metadata",
        ));
    }
    org.validate().map_err(ApiError::bad_request)?;
    Ok(metadata)
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) => ApiError::conflict(m, Some("conflict")),
        StoreError::Invalid(m) => ApiError::bad_request(m),
        other => other.into(),
    }
}

fn no_org() -> ApiError {
    ApiError::not_found(
        "No organization found by that id or name",
        Some("inexistent_organization"),
    )
}

/// Creates an organization.
#[utoipa::path(
    post,
    path = "/organizations",
    tag = "organizations",
    operation_id = "post_organizations",
    request_body(content(
        (CreateOrgBody = "application/json"),
        (CreateOrgBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 201, description = "The organization was created.", body = OrganizationOut),
        (status = 400, description = "The body breaks the schema or a rule.", body = ErrorBody),
        (status = 409, description = "An organization with this name exists.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["create:organizations"])),
)]
pub async fn create_org(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Payload(body): Payload<CreateOrgBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&["create:organizations"])?;
    let body = OrgBody::from(body);
    let name = body.name.clone().unwrap_or_default();
    if state.store().organization_by_name(&name).await?.is_some() {
        return Err(ApiError::conflict(
            "An organization with this name already exists.",
            Some("organization_conflict"),
        ));
    }
    let mut org = Organization {
        id: format!("org_{}", text::random_id(16)),
        name: name.clone(),
        display_name: body.display_name.clone().unwrap_or(name),
        branding: Branding::default(),
        default_locale: None,
        from_address: None,
    };
    let metadata = apply_org(&mut org, body, Map::new())?;
    state
        .store()
        .upsert_organization(&org)
        .await
        .map_err(store_error)?;
    state
        .store()
        .set_organization_metadata(&org.id, &Value::Object(metadata))
        .await?;
    Ok((StatusCode::CREATED, Json(org_json(&state, &org).await?)))
}

/// Reads an organization.
#[utoipa::path(
    get,
    path = "/organizations/{id}",
    tag = "organizations",
    operation_id = "get_organizations_by_id",
    params(IdParam, Fields),
    responses(
        (status = 200, description = "The organization (its `fields` only, when given).", body = OrganizationOut),
        (status = 400, description = "A path or query parameter breaks the schema.", body = ErrorBody),
        (status = 404, description = "No such organization.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["read:organizations"])),
)]
pub async fn get_org(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
    fields: QueryResult<Fields>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&["read:organizations"])?;
    let fields = query(fields)?;
    text::path_id("id", &id)?;
    let org = state
        .store()
        .get_organization(&id)
        .await?
        .ok_or_else(no_org)?;
    Ok(Json(fields.apply(org_json(&state, &org).await?)))
}

/// Reads the organization with this name.
#[utoipa::path(
    get,
    path = "/organizations/name/{name}",
    tag = "organizations",
    operation_id = "get_name_by_name",
    params(NameParam, Fields),
    responses(
        (status = 200, description = "The organization (its `fields` only, when given).", body = OrganizationOut),
        (status = 400, description = "A path or query parameter breaks the schema.", body = ErrorBody),
        (status = 404, description = "No such organization.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["read:organizations"])),
)]
pub async fn get_org_by_name(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(name): PathParam,
    fields: QueryResult<Fields>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&["read:organizations"])?;
    let fields = query(fields)?;
    text::path_id("name", &name)?;
    let org = state
        .store()
        .organization_by_name(&name)
        .await?
        .ok_or_else(no_org)?;
    Ok(Json(fields.apply(org_json(&state, &org).await?)))
}

/// Changes the given properties of an organization.
#[utoipa::path(
    patch,
    path = "/organizations/{id}",
    tag = "organizations",
    operation_id = "patch_organizations_by_id",
    params(IdParam),
    request_body(content(
        (OrgBody = "application/json"),
        (OrgBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "The organization as it now is.", body = OrganizationOut),
        (status = 400, description = "The body breaks the schema or a rule.", body = ErrorBody),
        (status = 404, description = "No such organization.", body = ErrorBody),
        (status = 409, description = "Another organization has the new name.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["update:organizations"])),
)]
pub async fn update_org(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
    Payload(body): Payload<OrgBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&["update:organizations"])?;
    text::path_id("id", &id)?;
    let mut org = state
        .store()
        .get_organization(&id)
        .await?
        .ok_or_else(no_org)?;
    let stored = match state.store().organization_metadata(&id).await? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let metadata = apply_org(&mut org, body, stored)?;
    state
        .store()
        .upsert_organization(&org)
        .await
        .map_err(store_error)?;
    state
        .store()
        .set_organization_metadata(&org.id, &Value::Object(metadata))
        .await?;
    Ok(Json(org_json(&state, &org).await?))
}

/// Deletes an organization (204 whether or not it existed).
#[utoipa::path(
    delete,
    path = "/organizations/{id}",
    tag = "organizations",
    operation_id = "delete_organizations_by_id",
    params(IdParam),
    responses(
        (status = 204, description = "The organization is gone."),
        (status = 400, description = "The id breaks the schema.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["delete:organizations"])),
)]
pub async fn delete_org(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
) -> Result<StatusCode, ApiError> {
    caller.require(&["delete:organizations"])?;
    text::path_id("id", &id)?;
    state.store().delete_organization(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn client_json(state: &ApiState, client: &Client) -> Result<Value, ApiError> {
    let (callbacks, logout) = state.store().client_urls(&client.id).await?;
    let out = ClientOut {
        client_id: client.id.clone(),
        name: client.name.clone(),
        callbacks,
        initiate_login_uri: client.login_uri.clone(),
        allowed_logout_urls: logout,
    };
    Ok(serde_json::to_value(out).unwrap_or_default())
}

fn urls(field: &str, list: &[String]) -> Result<(), ApiError> {
    if list.len() > 100 {
        return Err(ApiError::invalid_property("At most 100 URLs", field));
    }
    for u in list {
        text::check(field, u, 1, 2000)?;
        let ok = url::Url::parse(u)
            .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host_str().is_some());
        if !ok {
            return Err(ApiError::invalid_property(
                format!("{u:?} is not an absolute http(s) URL"),
                field,
            ));
        }
    }
    Ok(())
}

fn no_client() -> ApiError {
    ApiError::not_found("The client does not exist", Some("inexistent_client"))
}

/// Applies a body to a client and its URL lists, checking every field.
fn apply_client(
    client: &mut Client,
    lists: &mut (Vec<String>, Vec<String>),
    body: ClientBody,
) -> Result<(), ApiError> {
    if let Some(name) = body.name {
        text::check("name", &name, 1, 255)?;
        client.name = name;
    }
    if let Some(uri) = body.initiate_login_uri {
        client.login_uri = Some(uri);
    }
    if let Some(callbacks) = body.callbacks {
        urls("callbacks", &callbacks)?;
        lists.0 = callbacks;
    }
    if let Some(logout) = body.allowed_logout_urls {
        urls("allowed_logout_urls", &logout)?;
        lists.1 = logout;
    }
    client.validate().map_err(ApiError::bad_request)
}

/// Creates a client (application).
#[utoipa::path(
    post,
    path = "/clients",
    tag = "clients",
    operation_id = "post_clients",
    request_body(content(
        (CreateClientBody = "application/json"),
        (CreateClientBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 201, description = "The client was created.", body = ClientOut),
        (status = 400, description = "The body breaks the schema or a rule.", body = ErrorBody),
        (status = 409, description = "The client exists.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["create:clients"])),
)]
pub async fn create_client(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Payload(body): Payload<CreateClientBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&["create:clients"])?;
    let body = ClientBody::from(body);
    let mut client = Client {
        id: text::random_id(32),
        name: String::new(),
        login_uri: None,
    };
    let mut lists = (Vec::new(), Vec::new());
    apply_client(&mut client, &mut lists, body)?;
    state
        .store()
        .upsert_client(&client)
        .await
        .map_err(store_error)?;
    state
        .store()
        .set_client_urls(&client.id, &lists.0, &lists.1)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(client_json(&state, &client).await?),
    ))
}

/// Reads a client.
#[utoipa::path(
    get,
    path = "/clients/{id}",
    tag = "clients",
    operation_id = "get_clients_by_id",
    params(IdParam, Fields),
    responses(
        (status = 200, description = "The client (its `fields` only, when given).", body = ClientOut),
        (status = 400, description = "A path or query parameter breaks the schema.", body = ErrorBody),
        (status = 404, description = "No such client.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["read:clients"])),
)]
pub async fn get_client(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
    fields: QueryResult<Fields>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&["read:clients"])?;
    let fields = query(fields)?;
    text::path_id("id", &id)?;
    let client = state.store().get_client(&id).await?.ok_or_else(no_client)?;
    Ok(Json(fields.apply(client_json(&state, &client).await?)))
}

/// Changes the given properties of a client.
#[utoipa::path(
    patch,
    path = "/clients/{id}",
    tag = "clients",
    operation_id = "patch_clients_by_id",
    params(IdParam),
    request_body(content(
        (ClientBody = "application/json"),
        (ClientBody = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "The client as it now is.", body = ClientOut),
        (status = 400, description = "The body breaks the schema or a rule.", body = ErrorBody),
        (status = 404, description = "No such client.", body = ErrorBody),
        (status = 409, description = "The change conflicts with another client.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["update:clients"])),
)]
pub async fn update_client(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
    Payload(body): Payload<ClientBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&["update:clients"])?;
    text::path_id("id", &id)?;
    let mut client = state.store().get_client(&id).await?.ok_or_else(no_client)?;
    let mut lists = state.store().client_urls(&id).await?;
    apply_client(&mut client, &mut lists, body)?;
    state
        .store()
        .upsert_client(&client)
        .await
        .map_err(store_error)?;
    state
        .store()
        .set_client_urls(&client.id, &lists.0, &lists.1)
        .await?;
    Ok(Json(client_json(&state, &client).await?))
}

/// Deletes a client (204 whether or not it existed).
#[utoipa::path(
    delete,
    path = "/clients/{id}",
    tag = "clients",
    operation_id = "delete_clients_by_id",
    params(IdParam),
    responses(
        (status = 204, description = "The client is gone."),
        (status = 400, description = "The id breaks the schema.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["delete:clients"])),
)]
pub async fn delete_client(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
) -> Result<StatusCode, ApiError> {
    caller.require(&["delete:clients"])?;
    text::path_id("id", &id)?;
    state.store().delete_client(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
