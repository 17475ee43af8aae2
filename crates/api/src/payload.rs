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
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// How a form-encoded body's strings become the JSON types of a payload.
pub trait FormFields {
    const BOOLEANS: &'static [&'static str] = &[];
    const INTEGERS: &'static [&'static str] = &[];
    /// Properties that are objects: given in a form as a JSON string.
    const OBJECTS: &'static [&'static str] = &[];
    /// Properties that are arrays of strings: given in a form as the key repeated, once per item.
    const ARRAYS: &'static [&'static str] = &[];
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
        } else if T::ARRAYS.contains(&key.as_str()) {
            if let Some(Value::Array(items)) = map.get_mut(&key) {
                items.push(Value::String(value));
                continue;
            }
            Value::Array(vec![Value::String(value)])
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

/// `deserialize_with` for a property that is a nested struct: only a JSON object (or null) will
/// do. serde's derived structs also accept an array of their fields in order, which the schema
/// does not allow.
pub fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Option::<Map<String, Value>>::deserialize(d)? {
        None => Ok(None),
        Some(map) => T::deserialize(Value::Object(map))
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// `deserialize_with` for an integer property. JSON Schema counts `60.0` as the integer 60, so it
/// is accepted as one; `60.5` is not.
pub fn integer<'de, D>(d: D) -> Result<Option<i64>, D::Error>
where
    D: Deserializer<'de>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_i64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => {
            Ok(Some(f as i64))
        }
        _ => Err(serde::de::Error::custom(format!(
            "Expected type integer but found {number}"
        ))),
    }
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
        urls: Option<Vec<String>>,
    }

    impl FormFields for Body {
        const BOOLEANS: &'static [&'static str] = &["includeEmailInRedirect"];
        const INTEGERS: &'static [&'static str] = &["ttl_sec"];
        const OBJECTS: &'static [&'static str] = &["meta"];
        const ARRAYS: &'static [&'static str] = &["urls"];
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
                urls: None,
            }
        );
        // A repeated array property collects its items, in order.
        assert_eq!(
            form("user_id=u&urls=https%3A%2F%2Fa.test&urls=https%3A%2F%2Fb.test")
                .unwrap()
                .urls,
            Some(vec!["https://a.test".into(), "https://b.test".into()])
        );
        assert_eq!(
            form("user_id=u&urls=x").unwrap().urls,
            Some(vec!["x".into()])
        );
        assert!(form("user_id=a&user_id=b").is_err());
        assert!(
            form("user_id=a&ttl_sec=soon")
                .unwrap_err()
                .message
                .contains("ttl_sec")
        );
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default, deserialize_with = "object")]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Ttl {
        #[serde(default, deserialize_with = "integer")]
        ttl: Option<i64>,
    }

    #[test]
    fn an_integer_may_be_written_with_a_zero_fraction() {
        let ttl = |v: Value| decode::<Ttl>(serde_json::json!({ "ttl": v })).map(|t| t.ttl);
        assert_eq!(ttl(serde_json::json!(60)).unwrap(), Some(60));
        assert_eq!(ttl(serde_json::json!(60.0)).unwrap(), Some(60));
        assert_eq!(ttl(serde_json::json!(-3.0)).unwrap(), Some(-3));
        assert_eq!(ttl(Value::Null).unwrap(), None);
        assert!(ttl(serde_json::json!(60.5)).is_err());
        assert!(ttl(serde_json::json!(1e300)).is_err());
        assert!(ttl(serde_json::json!("60")).is_err());
    }

    #[test]
    fn a_nested_struct_must_be_an_object() {
        let ok = decode::<Outer>(serde_json::json!({"inner": {"a": "x"}})).unwrap();
        assert_eq!(
            ok.inner,
            Some(Inner {
                a: Some("x".into())
            })
        );
        assert_eq!(
            decode::<Outer>(serde_json::json!({"inner": null}))
                .unwrap()
                .inner,
            None
        );
        assert_eq!(decode::<Outer>(serde_json::json!({})).unwrap().inner, None);
        // serde's derive alone would take [null] as Inner { a: None }.
        assert!(decode::<Outer>(serde_json::json!({"inner": [null]})).is_err());
        assert!(decode::<Outer>(serde_json::json!({"inner": {"b": 1}})).is_err());
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
