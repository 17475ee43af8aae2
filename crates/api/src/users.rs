//! `/api/v2/users` and `/api/v2/users-by-email`: Auth0-shaped users, so that calls naming only a
//! `user_id` (tickets, verification jobs) resolve as they do in Auth0. Ids have Auth0's
//! `provider|id` form; a password is hashed with argon2id and never returned.

use axum::Extension;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_store::{NewUser, UserPatch, UserRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::fields::Fields;
use crate::payload::{FormFields, Payload};
use crate::state::ApiState;
use crate::text::PathParam;
use crate::text::{self, timestamp};

/// The connection users get when a request names none (Auth0's default database connection).
pub const DEFAULT_CONNECTION: &str = "Username-Password-Authentication";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// The connection the user belongs to (Herald keeps its name; there is no connection list).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$",
        example = "Username-Password-Authentication"
    )]
    connection: String,
    #[schema(format = Email, min_length = 3, max_length = 320)]
    email: Option<String>,
    email_verified: Option<bool>,
    /// Send the verification email to a new user with an unverified email (default true).
    verify_email: Option<bool>,
    /// The id after `auth0|` (made up when left out).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^|\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    user_id: Option<String>,
    /// 8 to 128 characters; stored as an argon2id hash, never returned.
    #[schema(min_length = 8, max_length = 128, write_only)]
    password: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 300,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    name: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 150,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    given_name: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 150,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    family_name: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 300,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    nickname: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    picture: Option<String>,
    /// At most 16 KiB as JSON. `user_metadata.lang` (or `.locale`) picks the emails' language.
    #[schema(value_type = Option<Object>)]
    user_metadata: Option<Value>,
    /// At most 16 KiB as JSON.
    #[schema(value_type = Option<Object>)]
    app_metadata: Option<Value>,
    blocked: Option<bool>,
}

impl FormFields for CreateUser {
    const BOOLEANS: &'static [&'static str] = &["email_verified", "verify_email", "blocked"];
    const OBJECTS: &'static [&'static str] = &["user_metadata", "app_metadata"];
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    connection: Option<String>,
    #[schema(format = Email, min_length = 3, max_length = 320)]
    email: Option<String>,
    email_verified: Option<bool>,
    /// With `true` and a new `email`: the user's email becomes unverified and the verification
    /// email goes to the new address, as in Auth0. Otherwise a PATCH sends no email.
    verify_email: Option<bool>,
    #[schema(min_length = 8, max_length = 128, write_only)]
    password: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 300,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    name: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 150,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    given_name: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 150,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    family_name: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 300,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    nickname: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    picture: Option<String>,
    /// Replaces the stored `user_metadata` (at most 16 KiB as JSON).
    #[schema(value_type = Option<Object>)]
    user_metadata: Option<Value>,
    /// Replaces the stored `app_metadata` (at most 16 KiB as JSON).
    #[schema(value_type = Option<Object>)]
    app_metadata: Option<Value>,
    blocked: Option<bool>,
}

impl FormFields for UpdateUser {
    const BOOLEANS: &'static [&'static str] = &["email_verified", "verify_email", "blocked"];
    const OBJECTS: &'static [&'static str] = &["user_metadata", "app_metadata"];
}

/// `GET /users-by-email`'s query. (`Deserialize` cannot flatten [`Fields`] into a query, so
/// its two properties are repeated here.)
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ByEmail {
    /// The address to look for (exact, case-insensitive).
    #[param(format = Email, min_length = 3, max_length = 320)]
    email: String,
    /// As for `GET /users/{id}`.
    fields: Option<String>,
    include_fields: Option<bool>,
}

impl ByEmail {
    fn fields(&self) -> Fields {
        Fields {
            fields: self.fields.clone(),
            include_fields: self.include_fields,
        }
    }
}

/// A user as Auth0 returns it. Every property is there unless `fields` leaves it out.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    #[schema(required = false, example = "auth0|5f7c8ec7c33c6c004bbafe82")]
    user_id: String,
    #[schema(required = false, format = Email)]
    email: Option<String>,
    #[schema(required = false)]
    email_verified: bool,
    #[schema(required = false)]
    name: Option<String>,
    #[schema(required = false)]
    given_name: Option<String>,
    #[schema(required = false)]
    family_name: Option<String>,
    #[schema(required = false)]
    nickname: Option<String>,
    #[schema(required = false)]
    picture: Option<String>,
    #[schema(required = false, value_type = Object)]
    user_metadata: Value,
    #[schema(required = false, value_type = Object)]
    app_metadata: Value,
    #[schema(required = false)]
    blocked: bool,
    #[schema(required = false, format = DateTime, example = "2023-04-18T19:25:53.189Z")]
    created_at: String,
    #[schema(required = false, format = DateTime)]
    updated_at: String,
    #[schema(required = false)]
    identities: Vec<UserIdentity>,
}

/// The user's one identity: Herald's users all live in a database connection.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserIdentity {
    connection: String,
    /// The id without its provider.
    user_id: String,
    #[schema(example = "auth0")]
    provider: String,
    #[serde(rename = "isSocial")]
    is_social: bool,
}

/// A user as Auth0 returns it.
pub fn user_json(u: &UserRecord) -> Value {
    let (provider, id) = u.user_id.split_once('|').unwrap_or(("auth0", &u.user_id));
    let user = User {
        user_id: u.user_id.clone(),
        email: u.email.clone(),
        email_verified: u.email_verified,
        name: u.name.clone(),
        given_name: u.given_name.clone(),
        family_name: u.family_name.clone(),
        nickname: u.nickname.clone(),
        picture: u.picture.clone(),
        user_metadata: u.user_metadata.clone(),
        app_metadata: u.app_metadata.clone(),
        blocked: u.blocked,
        created_at: timestamp(u.created_at),
        updated_at: timestamp(u.updated_at),
        identities: vec![UserIdentity {
            connection: u.connection.clone(),
            user_id: id.to_owned(),
            provider: provider.to_owned(),
            is_social: false,
        }],
    };
    serde_json::to_value(user).unwrap_or_default()
}

/// The path parameter of `/users/{id}`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserIdParam {
    /// The user's id, `auth0|…` (percent-encode the `|` as `%7C`).
    #[param(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    #[allow(dead_code)]
    id: String,
}

/// Creates a user.
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    operation_id = "post_users",
    request_body(content(
        (CreateUser = "application/json"),
        (CreateUser = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 201, description = "The user was created.", body = User),
        (status = 400, description = "The body breaks the schema or a rule.", body = ErrorBody),
        (status = 409, description = "The user already exists.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["create:users"])),
)]
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

/// Reads a user.
#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    operation_id = "get_users_by_id",
    params(UserIdParam, Fields),
    responses(
        (status = 200, description = "The user (its `fields` only, when given).", body = User),
        (status = 400, description = "A path or query parameter breaks the schema.", body = ErrorBody),
        (status = 404, description = "No such user.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["read:users"])),
)]
pub async fn get(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
    query: Result<Query<Fields>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&["read:users"])?;
    let Query(fields) = query.map_err(|e| ApiError::invalid_uri(e.body_text()))?;
    text::path_id("id", &id)?;
    let user = state
        .store()
        .get_user(&id)
        .await?
        .ok_or_else(no_such_user)?;
    Ok(Json(fields.apply(user_json(&user))))
}

/// Changes the given properties of a user.
#[utoipa::path(
    patch,
    path = "/users/{id}",
    tag = "users",
    operation_id = "patch_users_by_id",
    params(UserIdParam),
    request_body(content(
        (UpdateUser = "application/json"),
        (UpdateUser = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "The user as it now is.", body = User),
        (status = 400, description = "The body or the id breaks the schema or a rule.", body = ErrorBody),
        (status = 404, description = "No such user.", body = ErrorBody),
        (status = 409, description = "Another user has the new email.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["update:users"])),
)]
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

/// Deletes a user (204 whether or not it existed, as in Auth0).
#[utoipa::path(
    delete,
    path = "/users/{id}",
    tag = "users",
    operation_id = "delete_users_by_id",
    params(UserIdParam),
    responses(
        (status = 204, description = "The user is gone."),
        (status = 400, description = "The id breaks the schema.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["delete:users"])),
)]
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

/// The users with this email address.
#[utoipa::path(
    get,
    path = "/users-by-email",
    tag = "users",
    operation_id = "get_users_by_email",
    params(ByEmail),
    responses(
        (status = 200, description = "The users with that address (each with its `fields` only, when given).", body = Vec<User>),
        (status = 400, description = "A query parameter breaks the schema.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["read:users"])),
)]
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
    let fields = query.fields();
    let users = state.store().users_by_email(&email).await?;
    Ok(Json(Value::Array(
        users.iter().map(|u| fields.apply(user_json(u))).collect(),
    )))
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
        && has_nul(v)
    {
        // PostgreSQL's jsonb cannot hold U+0000, in a key or in a string.
        return Err(ApiError::invalid_property(
            "Metadata must not contain NUL characters",
            field,
        ));
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

/// Whether a key or a string anywhere in `value` holds U+0000.
fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn metadata_with_a_nul_anywhere_is_refused_before_the_database() {
        assert!(metadata("user_metadata", Some(json!({"a": ["x", {"b": "c"}]}))).is_ok());
        for bad in [
            json!({"a\u{0}": 1}),
            json!({"a": "x\u{0}"}),
            json!({"a": [{"b": "\u{0}"}]}),
        ] {
            let err = metadata("user_metadata", Some(bad)).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(err.message.contains("NUL"), "{err:?}");
        }
    }
}
