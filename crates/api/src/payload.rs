//! [`Payload`]: the request body of every POST, PATCH and PUT, as Auth0 accepts it: JSON or
//! `application/x-www-form-urlencoded`, unknown properties refused, every error a 400 in
//! Auth0's words (`Payload validation error: '…'`).
//!
//! Form values are strings; the target type says which of its properties are booleans,
//! integers or JSON objects ([`FormFields`]), and those are converted before the body is
//! checked, so both encodings go through one schema.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// How a form-encoded body's strings become the JSON types of a payload.
pub trait FormFields {
    const BOOLEANS: &'static [&'static str] = &[];
    const INTEGERS: &'static [&'static str] = &[];
    /// Properties that are objects: given in a form as a JSON string.
    const OBJECTS: &'static [&'static str] = &[];
}

/// A checked request body.
#[derive(Debug, Clone)]
pub struct Payload<T>(pub T);

impl<S, T> FromRequest<S> for Payload<T>
where
    S: Send + Sync,
    T: DeserializeOwned + FormFields,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let media = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Payload too large.",
                    Some("payload_too_large"),
                )
            } else {
                ApiError::invalid_body("The request body could not be read")
            }
        })?;
        let value = match media.as_deref() {
            Some("application/json") | None => parse_json(&bytes)?,
            Some("application/x-www-form-urlencoded") => parse_form::<T>(&bytes)?,
            Some(other) => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "Unsupported Content-Type {other:?}; send application/json or \
                         application/x-www-form-urlencoded."
                    ),
                    Some("unsupported_media_type"),
                ));
            }
        };
        decode(value).map(Payload)
    }
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid_body(format!("Invalid JSON: {e}")))?;
    match value {
        Value::Object(_) => Ok(value),
        other => Err(ApiError::invalid_body(format!(
            "Expected type object but found type {}",
            type_name(&other)
        ))),
    }
}

fn parse_form<T: FormFields>(bytes: &[u8]) -> Result<Value, ApiError> {
    let mut map = Map::new();
    for (key, value) in url::form_urlencoded::parse(bytes) {
        let key = key.into_owned();
        let value = value.into_owned();
        let typed = if T::BOOLEANS.contains(&key.as_str()) {
            match value.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => {
                    return Err(ApiError::invalid_property(
                        "Expected type boolean but found type string",
                        &key,
                    ));
                }
            }
        } else if T::INTEGERS.contains(&key.as_str()) {
            match value.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    return Err(ApiError::invalid_property(
                        "Expected type integer but found type string",
                        &key,
                    ));
                }
            }
        } else if T::OBJECTS.contains(&key.as_str()) {
            serde_json::from_str(&value).map_err(|_| {
                ApiError::invalid_property("Expected type object (as a JSON string)", &key)
            })?
        } else {
            Value::String(value)
        };
        if map.insert(key.clone(), typed).is_some() {
            return Err(ApiError::invalid_body(format!(
                "Property {key} is given more than once"
            )));
        }
    }
    Ok(Value::Object(map))
}

/// Checks the body against `T`, naming the property at fault the way Auth0 does.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::invalid_body(describe(&e.to_string())))
}

/// serde's message in Auth0's words.
fn describe(serde: &str) -> String {
    if let Some(rest) = serde.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return format!("Additional properties not allowed: {name}");
    }
    if let Some(rest) = serde.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return format!("Missing required property: {name}");
    }
    serde.to_owned()
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        user_id: String,
        ttl_sec: Option<i64>,
        #[serde(rename = "includeEmailInRedirect")]
        include: Option<bool>,
        meta: Option<Value>,
    }

    impl FormFields for Body {
        const BOOLEANS: &'static [&'static str] = &["includeEmailInRedirect"];
        const INTEGERS: &'static [&'static str] = &["ttl_sec"];
        const OBJECTS: &'static [&'static str] = &["meta"];
    }

    fn form(s: &str) -> Result<Body, ApiError> {
        parse_form::<Body>(s.as_bytes()).and_then(decode)
    }

    #[test]
    fn a_form_body_gets_the_schemas_types() {
        assert_eq!(
            form("user_id=auth0%7C1&ttl_sec=60&includeEmailInRedirect=true&meta=%7B%22a%22%3A1%7D")
                .unwrap(),
            Body {
                user_id: "auth0|1".into(),
                ttl_sec: Some(60),
                include: Some(true),
                meta: Some(serde_json::json!({"a": 1})),
            }
        );
        assert!(form("user_id=a&user_id=b").is_err());
        assert!(
            form("user_id=a&ttl_sec=soon")
                .unwrap_err()
                .message
                .contains("ttl_sec")
        );
    }

    #[test]
    fn errors_read_like_auth0s() {
        let err = decode::<Body>(serde_json::json!({"user_id": "u", "ttl": 1})).unwrap_err();
        assert_eq!(
            err.message,
            "Payload validation error: 'Additional properties not allowed: ttl'."
        );
        assert_eq!(err.error_code, Some("invalid_body"));
        let err = decode::<Body>(serde_json::json!({})).unwrap_err();
        assert!(
            err.message.contains("Missing required property: user_id"),
            "{err:?}"
        );
        assert!(
            parse_json(b"[1]")
                .unwrap_err()
                .message
                .contains("found type array")
        );
        assert!(
            parse_json(b"{")
                .unwrap_err()
                .message
                .contains("Invalid JSON")
        );
    }
}
