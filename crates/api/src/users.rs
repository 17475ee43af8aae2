//! `/api/v2/users` and `/api/v2/users-by-email`: Auth0-shaped users, so that calls naming only a
//! `user_id` (tickets, verification jobs) resolve as they do in Auth0. Ids have Auth0's
//! `provider|id` form; a password is hashed with argon2id and never returned.

use axum::Extension;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_store::{NewUser, UserPatch, UserRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::payload::{FormFields, Payload};
use crate::state::ApiState;
use crate::text::PathParam;
use crate::text::{self, timestamp};

/// The connection users get when a request names none (Auth0's default database connection).
pub const DEFAULT_CONNECTION: &str = "Username-Password-Authentication";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    connection: String,
    email: Option<String>,
    email_verified: Option<bool>,
    verify_email: Option<bool>,
    user_id: Option<String>,
    password: Option<String>,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    nickname: Option<String>,
    picture: Option<String>,
    user_metadata: Option<Value>,
    app_metadata: Option<Value>,
    blocked: Option<bool>,
}

impl FormFields for CreateUser {
    const BOOLEANS: &'static [&'static str] = &["email_verified", "verify_email", "blocked"];
    const OBJECTS: &'static [&'static str] = &["user_metadata", "app_metadata"];
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    connection: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
    /// With `true` and a new `email`: the user's email becomes unverified and the verification
    /// email goes to the new address, as in Auth0. Otherwise a PATCH sends no email.
    verify_email: Option<bool>,
    password: Option<String>,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    nickname: Option<String>,
    picture: Option<String>,
    user_metadata: Option<Value>,
    app_metadata: Option<Value>,
    blocked: Option<bool>,
}

impl FormFields for UpdateUser {
    const BOOLEANS: &'static [&'static str] = &["email_verified", "verify_email", "blocked"];
    const OBJECTS: &'static [&'static str] = &["user_metadata", "app_metadata"];
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByEmail {
    email: String,
    /// Accepted as the SDKs send them; the whole user is always returned.
    #[allow(dead_code)]
    fields: Option<String>,
    #[allow(dead_code)]
    include_fields: Option<bool>,
}

/// `GET /users/{id}`'s query: Auth0's field selection, accepted and not applied (the whole user
/// is returned).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    #[allow(dead_code)]
    fields: Option<String>,
    #[allow(dead_code)]
    include_fields: Option<bool>,
}

/// A user as Auth0 returns it.
pub fn user_json(u: &UserRecord) -> Value {
    let (provider, id) = u.user_id.split_once('|').unwrap_or(("auth0", &u.user_id));
    json!({
        "user_id": u.user_id,
        "email": u.email,
        "email_verified": u.email_verified,
        "name": u.name,
        "given_name": u.given_name,
        "family_name": u.family_name,
        "nickname": u.nickname,
        "picture": u.picture,
        "user_metadata": u.user_metadata,
        "app_metadata": u.app_metadata,
        "blocked": u.blocked,
        "created_at": timestamp(u.created_at),
        "updated_at": timestamp(u.updated_at),
        "identities": [{
            "connection": u.connection,
            "user_id": id,
            "provider": provider,
            "isSocial": false,
        }],
    })
}

pub async fn create(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    Payload(body): Payload<CreateUser>,
) -> Result<Response, ApiError> {
    caller.require(&["create:users"])?;
    text::check("connection", &body.connection, 1, 128)?;
    let email = body
        .email
        .as_deref()
        .map(|e| text::email("email", e))
        .transpose()?;
    let local = match &body.user_id {
        Some(id) => {
            text::check("user_id", id, 1, 200)?;
            if id.contains('|') {
                return Err(ApiError::invalid_property(
                    "The id must not contain '|'; Herald adds the auth0| provider",
                    "user_id",
                ));
            }
            id.clone()
        }
        None => text::random_id(24),
    };
    let password_hash = match body.password {
        Some(password) => Some(crate::password::hash(password).await?),
        None => None,
    };
    let user = NewUser {
        user_id: format!("auth0|{local}"),
        email,
        email_verified: body.email_verified.unwrap_or(false),
        name: optional("name", body.name, 300)?,
        given_name: optional("given_name", body.given_name, 150)?,
        family_name: optional("family_name", body.family_name, 150)?,
        nickname: optional("nickname", body.nickname, 300)?,
        picture: optional("picture", body.picture, 2000)?,
        user_metadata: metadata("user_metadata", body.user_metadata)?,
        app_metadata: metadata("app_metadata", body.app_metadata)?,
        blocked: body.blocked.unwrap_or(false),
        connection: body.connection,
        password_hash,
    };
    // As Auth0 does for database connections: a new user with an unverified email gets the
    // verification email, unless the request says verify_email: false.
    let send_verification =
        user.email.is_some() && !user.email_verified && body.verify_email.unwrap_or(true);
    match state.store().create_user(&user).await {
        Ok(created) => {
            // The user exists either way; a verification email that could not be enqueued can
            // be asked for again (POST /jobs/verification-email).
            if send_verification
                && let Err(e) = crate::jobs::send_verification(&state, &created).await
            {
                tracing::warn!(error = %e.message, user_id = %created.user_id, "Could not enqueue the new user's verification email.");
            }
            Ok((StatusCode::CREATED, Json(user_json(&created))).into_response())
        }
        Err(e) if e.is_unique_violation() => Err(ApiError::conflict(
            "The user already exists.",
            Some("auth0_idp_error"),
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn get(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
    query: Result<Query<Fields>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&["read:users"])?;
    query.map_err(|e| ApiError::invalid_uri(e.body_text()))?;
    text::path_id("id", &id)?;
    let user = state
        .store()
        .get_user(&id)
        .await?
        .ok_or_else(no_such_user)?;
    Ok(Json(user_json(&user)))
}

pub async fn update(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
    Payload(body): Payload<UpdateUser>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&["update:users"])?;
    text::path_id("id", &id)?;
    if let Some(c) = &body.connection {
        text::check("connection", c, 1, 128)?;
    }
    let password_hash = match body.password {
        Some(password) => Some(crate::password::hash(password).await?),
        None => None,
    };
    let email = body
        .email
        .as_deref()
        .map(|e| text::email("email", e))
        .transpose()?;
    // Auth0: verify_email "overrides the behaviour of email_verified", so a changed address
    // that is to be verified is unverified until the new link is used.
    let verify_new_email = match &email {
        Some(new) if body.verify_email == Some(true) => {
            let current = state
                .store()
                .get_user(&id)
                .await?
                .ok_or_else(no_such_user)?;
            // A change of case only is the same mailbox (addresses are unique regardless of case).
            !current
                .email
                .is_some_and(|old| old.eq_ignore_ascii_case(new))
        }
        _ => false,
    };
    let patch = UserPatch {
        email,
        email_verified: if verify_new_email {
            Some(false)
        } else {
            body.email_verified
        },
        name: optional("name", body.name, 300)?,
        given_name: optional("given_name", body.given_name, 150)?,
        family_name: optional("family_name", body.family_name, 150)?,
        nickname: optional("nickname", body.nickname, 300)?,
        picture: optional("picture", body.picture, 2000)?,
        user_metadata: metadata("user_metadata", body.user_metadata)?,
        app_metadata: metadata("app_metadata", body.app_metadata)?,
        blocked: body.blocked,
        connection: body.connection,
        password_hash,
    };
    match state.store().update_user(&id, &patch).await {
        Ok(Some(user)) => {
            // As for a new user: the change is made either way, and a verification email that
            // could not be enqueued can be asked for again (POST /jobs/verification-email).
            if verify_new_email && let Err(e) = crate::jobs::send_verification(&state, &user).await
            {
                tracing::warn!(error = %e.message, user_id = %user.user_id, "Could not enqueue the verification email for a changed address.");
            }
            Ok(Json(user_json(&user)))
        }
        Ok(None) => Err(no_such_user()),
        Err(e) if e.is_unique_violation() => Err(ApiError::conflict(
            "The specified new email already exists",
            Some("auth0_idp_error"),
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn delete(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
) -> Result<StatusCode, ApiError> {
    caller.require(&["delete:users"])?;
    text::path_id("id", &id)?;
    // Auth0 answers 204 whether or not the user existed.
    state.store().delete_user(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn by_email(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    query: Result<Query<ByEmail>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&["read:users"])?;
    let Query(query) = query.map_err(|e| ApiError::invalid_uri(e.body_text()))?;
    let email = text::email("email", &query.email).map_err(|_| {
        ApiError::invalid_uri("Object didn't pass validation for format email: email")
    })?;
    let users = state.store().users_by_email(&email).await?;
    Ok(Json(Value::Array(users.iter().map(user_json).collect())))
}

/// Auth0's answer for an unknown user.
pub fn no_such_user() -> ApiError {
    ApiError::not_found("The user does not exist.", Some("inexistent_user"))
}

fn optional(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    if let Some(v) = &value {
        text::check(field, v, 1, max)?;
    }
    Ok(value)
}

fn metadata(field: &str, value: Option<Value>) -> Result<Option<Value>, ApiError> {
    match &value {
        None | Some(Value::Object(_)) => {}
        Some(_) => {
            return Err(ApiError::invalid_property("Expected type object", field));
        }
    }
    if let Some(v) = &value
        && v.to_string().len() > 16 * 1024
    {
        return Err(ApiError::invalid_property(
            "Metadata must be at most 16 KiB",
            field,
        ));
    }
    Ok(value)
}
