//! Who is calling: the `Authorization: Bearer` token of every `/api/v2` request, resolved to a
//! [`Principal`] (an active opaque token of `herald token create`, or a JWT access token, see
//! `jwt`), and the scope checks the handlers make. A missing or bad token is a 401 with Auth0's
//! body and a `WWW-Authenticate` challenge; a missing scope is a 403 naming the scopes that
//! would do.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use herald_domain::ApiToken;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::ApiState;

/// The caller of a request: the token it presented and the scopes that token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: Uuid,
    pub scopes: Vec<String>,
}

impl Principal {
    /// Ok when the caller holds at least one of `any_of`.
    pub fn require(&self, any_of: &[&str]) -> Result<(), ApiError> {
        if any_of
            .iter()
            .any(|s| self.scopes.iter().any(|held| held == s))
        {
            Ok(())
        } else {
            Err(ApiError::insufficient_scope(any_of))
        }
    }
}

/// Middleware: resolves the bearer token, then applies the caller's rate limit. The
/// [`Principal`] is left in the request's extensions for the handlers.
pub async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map(str::to_owned).unwrap_or_default());
    let peer = request
        .extensions()
        .get::<herald_domain::ClientAddress>()
        .map(|c| herald_domain::limit_key(c.0));
    let principal = match principal(&state, header).await {
        Ok(p) => p,
        Err(e) => {
            // Failed authentications are limited per client address, so tokens cannot be
            // guessed at full speed.
            if let Some(ip) = peer
                && let Err(headers) = state.failed_auth_limiter().check(ip)
            {
                let mut response =
                    axum::response::IntoResponse::into_response(ApiError::too_many_requests());
                headers.apply(response.headers_mut());
                return Ok(response);
            }
            return Err(e);
        }
    };
    let decision = state.limiter().check(principal.token_id);
    request.extensions_mut().insert(principal);
    match decision {
        Ok(headers) => {
            let mut response = next.run(request).await;
            headers.apply(response.headers_mut());
            Ok(response)
        }
        Err(headers) => {
            let mut response =
                axum::response::IntoResponse::into_response(ApiError::too_many_requests());
            headers.apply(response.headers_mut());
            Ok(response)
        }
    }
}

async fn principal(state: &ApiState, header: Option<String>) -> Result<Principal, ApiError> {
    let Some(value) = header else {
        return Err(ApiError::unauthorized("Missing authentication"));
    };
    let presented = Some(value.as_str())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("Bad HTTP authentication header format"))?;
    if crate::jwt::looks_like_jwt(presented) {
        return match state.jwt() {
            Some(verifier) => verifier.verify(presented).await,
            None => Err(ApiError::unauthorized("Invalid token")),
        };
    }
    let token = ApiToken::from_presented(presented);
    let record = state
        .store()
        .api_token_by_hash(&token.hash())
        .await?
        .ok_or_else(|| ApiError::unauthorized("Invalid token"))?;
    let now = OffsetDateTime::now_utc();
    if record.revoked_at.is_some() {
        return Err(ApiError::unauthorized("Invalid token"));
    }
    if record.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::unauthorized(
            "Expired token received for JSON Web Token validation",
        ));
    }
    if let Err(e) = state.store().touch_api_token(record.id).await {
        tracing::debug!(error = %e, "Could not note the token's use.");
    }
    Ok(Principal {
        token_id: record.id,
        scopes: record.scopes,
    })
}
