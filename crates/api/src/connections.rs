//! Connection ids. Herald's users carry a connection *name* (Auth0's `connection`), while
//! `POST /tickets/password-change` names a connection by id (`con_` and 16 letters or digits).
//! A connection's id is derived from its name: `con_` and the first 16 base62 digits of the
//! name's SHA-256, the same on every replica and stable across restarts.

use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::ApiState;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The id of the connection called `name`.
pub fn id_of(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let digits: String = digest
        .iter()
        .take(16)
        .map(|b| char::from(BASE62[usize::from(*b) % BASE62.len()]))
        .collect();
    format!("con_{digits}")
}

/// The name of the connection with this id, among the connections users have.
pub async fn by_id(state: &ApiState, id: &str) -> Result<Option<String>, ApiError> {
    let valid = id.len() == 20
        && id.starts_with("con_")
        && id[4..].bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid {
        return Err(ApiError::invalid_property(
            "String does not match pattern ^con_[A-Za-z0-9]{16}$",
            "connection_id",
        ));
    }
    let names = state.store().user_connections().await?;
    Ok(names.into_iter().find(|n| id_of(n) == id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_shaped_like_auth0s() {
        let id = id_of("Username-Password-Authentication");
        assert_eq!(id, id_of("Username-Password-Authentication"));
        assert_ne!(id, id_of("other"));
        assert_eq!(id.len(), 20);
        assert!(id[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
