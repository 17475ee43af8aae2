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
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::payload::{FormFields, Payload};
use crate::state::ApiState;
use crate::text;
use crate::text::PathParam;

const LOCALE_KEY: &str = "herald_default_locale";
const FROM_KEY: &str = "herald_from";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Colors {
    primary: Option<String>,
    page_background: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgBranding {
    logo_url: Option<String>,
    colors: Option<Colors>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgBody {
    name: Option<String>,
    display_name: Option<String>,
    branding: Option<OrgBranding>,
    metadata: Option<Map<String, Value>>,
}

impl FormFields for OrgBody {
    const OBJECTS: &'static [&'static str] = &["branding", "metadata"];
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    name: Option<String>,
    callbacks: Option<Vec<String>>,
    initiate_login_uri: Option<String>,
    allowed_logout_urls: Option<Vec<String>>,
}

impl FormFields for ClientBody {}

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
    let mut colors = Map::new();
    if let Some(c) = &org.branding.primary_color {
        colors.insert("primary".into(), c.clone().into());
    }
    if let Some(c) = &org.branding.page_background {
        colors.insert("page_background".into(), c.clone().into());
    }
    let mut branding = Map::new();
    if let Some(logo) = &org.branding.logo_url {
        branding.insert("logo_url".into(), logo.clone().into());
    }
    if !colors.is_empty() {
        branding.insert("colors".into(), Value::Object(colors));
    }
    Ok(json!({
        "id": org.id,
        "name": org.name,
        "display_name": org.display_name,
        "branding": branding,
        "metadata": metadata,
    }))
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

pub async fn create_org(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Payload(body): Payload<OrgBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&["create:organizations"])?;
    let Some(name) = body.name.clone() else {
        return Err(ApiError::invalid_body("Missing required property: name"));
    };
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

pub async fn get_org(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
) -> Result<Json<Value>, ApiError> {
    caller.require(&["read:organizations"])?;
    text::path_id("id", &id)?;
    let org = state
        .store()
        .get_organization(&id)
        .await?
        .ok_or_else(no_org)?;
    Ok(Json(org_json(&state, &org).await?))
}

pub async fn get_org_by_name(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(name): PathParam,
) -> Result<Json<Value>, ApiError> {
    caller.require(&["read:organizations"])?;
    text::path_id("name", &name)?;
    let org = state
        .store()
        .organization_by_name(&name)
        .await?
        .ok_or_else(no_org)?;
    Ok(Json(org_json(&state, &org).await?))
}

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
    Ok(json!({
        "client_id": client.id,
        "name": client.name,
        "callbacks": callbacks,
        "initiate_login_uri": client.login_uri,
        "allowed_logout_urls": logout,
    }))
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

pub async fn create_client(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Payload(body): Payload<ClientBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(&["create:clients"])?;
    if body.name.is_none() {
        return Err(ApiError::invalid_body("Missing required property: name"));
    }
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

pub async fn get_client(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
) -> Result<Json<Value>, ApiError> {
    caller.require(&["read:clients"])?;
    text::path_id("id", &id)?;
    let client = state.store().get_client(&id).await?.ok_or_else(no_client)?;
    Ok(Json(client_json(&state, &client).await?))
}

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
