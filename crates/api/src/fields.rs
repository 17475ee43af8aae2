//! Auth0's field selection on reads (`?fields=a,b&include_fields=true`): the query both GETs of a
//! user, an organization or a client accept, and the one place it is applied to an answer.

use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

/// `fields` and `include_fields`, as Auth0 reads them.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Fields {
    /// Comma-separated list of properties to include in (or, with `include_fields=false`,
    /// exclude from) the answer. Leave empty to get every property.
    pub fields: Option<String>,
    /// Whether `fields` lists the properties to include (true, the default) or to exclude.
    pub include_fields: Option<bool>,
}

impl Fields {
    /// Keeps (or, with `include_fields=false`, removes) the listed properties of `object`; names
    /// that are not properties are ignored, and an empty list keeps everything, as in Auth0.
    pub fn apply(&self, object: Value) -> Value {
        let names: Vec<&str> = self
            .fields
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        let Value::Object(mut map) = object else {
            return object;
        };
        if names.is_empty() {
            return Value::Object(map);
        }
        let include = self.include_fields.unwrap_or(true);
        map.retain(|key, _| names.contains(&key.as_str()) == include);
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn select(fields: Option<&str>, include: Option<bool>) -> Value {
        let user =
            json!({"user_id": "auth0|1", "email": "a@b.test", "name": null, "blocked": false});
        Fields {
            fields: fields.map(str::to_owned),
            include_fields: include,
        }
        .apply(user)
    }

    #[test]
    fn fields_include_by_default_and_exclude_when_asked() {
        assert_eq!(
            select(Some("user_id,email"), None),
            json!({"user_id": "auth0|1", "email": "a@b.test"})
        );
        assert_eq!(
            select(Some("user_id, email,nope"), Some(true)),
            json!({"user_id": "auth0|1", "email": "a@b.test"})
        );
        assert_eq!(
            select(Some("user_id,email"), Some(false)),
            json!({"name": null, "blocked": false})
        );
        // No list (or an empty one) keeps every property, whatever include_fields says.
        assert_eq!(select(None, Some(false)).as_object().unwrap().len(), 4);
        assert_eq!(select(Some(" , "), None).as_object().unwrap().len(), 4);
    }
}
