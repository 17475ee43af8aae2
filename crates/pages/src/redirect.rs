//! Where a page sends the user afterwards, and with what: Auth0's classic query (`success`,
//! `message`, `email` when `includeEmailInRedirect`, and `organization_id`/`organization_name`
//! with an organization), inserted before any `#fragment`.
//!
//! The target is only ever the ticket's own `result_url` or its client's login URI, both set
//! through the Management API: nothing in the request can choose it, so there is no open
//! redirect. Either must still be an absolute http(s) URL with a host and no credentials.

use url::Url;

/// Auth0's redirect messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message {
    EmailVerified,
    AlreadyVerified,
    NoSuchUser,
    PasswordChanged,
    OperationFailed,
    Used,
    Expired,
}

impl Message {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Message::EmailVerified => {
                "Your email was verified. You can continue using the application."
            }
            Message::AlreadyVerified => "This account is already verified.",
            Message::NoSuchUser => "User account does not exist or verification code is invalid.",
            Message::PasswordChanged => {
                "You can now login to the application with the new password."
            }
            Message::OperationFailed => "The operation cannot be completed. Please try again.",
            Message::Used => "This URL can be used only once",
            Message::Expired => "Access expired.",
        }
    }

    pub(crate) fn success(self) -> bool {
        matches!(self, Message::EmailVerified | Message::PasswordChanged)
    }
}

/// A URL the user may be sent to: absolute http(s), with a host and without credentials.
pub(crate) fn safe_target(url: &str) -> Option<Url> {
    let url = Url::parse(url).ok()?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none();
    ok.then_some(url)
}

/// The ticket's redirect target: its `result_url`, else its client's login URI.
pub(crate) fn target(result_url: Option<&str>, client_login_uri: Option<&str>) -> Option<Url> {
    result_url
        .and_then(safe_target)
        .or_else(|| client_login_uri.and_then(safe_target))
}

/// `target` with the result in its query, before its fragment. Spaces are `%20`, as Auth0's.
pub(crate) fn with_result(
    target: &Url,
    message: Message,
    email: Option<&str>,
    organization: Option<(&str, &str)>,
) -> Url {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if let Some(email) = email {
        pairs.push(("email", email));
    }
    pairs.push(("message", message.text()));
    pairs.push(("success", if message.success() { "true" } else { "false" }));
    if let Some((id, name)) = organization {
        pairs.push(("organization_id", id));
        pairs.push(("organization_name", name));
    }
    let added = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut url = target.clone();
    let query = match url.query() {
        Some(q) if !q.is_empty() => format!("{q}&{added}"),
        _ => added,
    };
    url.set_query(Some(&query));
    url
}

fn encode(value: &str) -> String {
    // form_urlencoded writes a space as `+` and a literal `+` as `%2B`, so this is exact.
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_goes_before_the_fragment_with_auth0s_encoding() {
        let target = safe_target("http://localhost:3000/?supportSignUp=true#/register").unwrap();
        let url = with_result(
            &target,
            Message::EmailVerified,
            Some("ashish.dasnurkar+x@gmail.com"),
            None,
        );
        assert_eq!(
            url.as_str(),
            "http://localhost:3000/?supportSignUp=true&email=ashish.dasnurkar%2Bx%40gmail.com\
             &message=Your%20email%20was%20verified.%20You%20can%20continue%20using%20the%20application.\
             &success=true#/register"
        );
    }

    #[test]
    fn organizations_are_named_and_failures_say_so() {
        let target = safe_target("https://app.example/done").unwrap();
        let url = with_result(&target, Message::Used, None, Some(("org_1", "acme & co")));
        assert_eq!(
            url.as_str(),
            "https://app.example/done?message=This%20URL%20can%20be%20used%20only%20once\
             &success=false&organization_id=org_1&organization_name=acme%20%26%20co"
        );
    }

    #[test]
    fn only_absolute_http_urls_with_a_host_and_no_credentials_are_targets() {
        for bad in [
            "//evil.example",
            "/relative",
            "javascript:alert(1)",
            "data:text/html,hi",
            "https://user:pw@evil.example/",
            "ftp://files.example/",
            "",
        ] {
            assert!(safe_target(bad).is_none(), "{bad:?} is not a safe target");
        }
        assert_eq!(
            target(
                Some("javascript:alert(1)"),
                Some("https://app.example/login")
            )
            .unwrap()
            .as_str(),
            "https://app.example/login"
        );
        assert!(target(None, None).is_none());
    }
}
