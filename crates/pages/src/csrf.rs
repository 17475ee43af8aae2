//! The CSRF token of a page's form: an HMAC, under a key derived from the ticket secret, of a
//! random value kept in a `SameSite=Strict` cookie and of the ticket's hash. A POST must carry
//! both; a form copied to another site has no cookie to match, and a token from one ticket's
//! page does not fit another ticket.

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_domain::{TicketSecret, TokenHash};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use url::Url;

/// The key and the cookie's name.
pub(crate) struct CsrfKey {
    key: [u8; 32],
    cookie_name: &'static str,
    secure: bool,
}

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsrfKey")
            .field("cookie_name", &self.cookie_name)
            .finish_non_exhaustive()
    }
}

/// Bytes of randomness in the cookie.
const COOKIE_BYTES: usize = 32;

impl CsrfKey {
    /// The cookie is `__Host-herald-csrf` (`Secure`, host-only, `Path=/`) when the pages are
    /// served over https or on a loopback host (browsers treat those as secure), else
    /// `herald-csrf` without `Secure`, so a plain-http deployment still works.
    pub(crate) fn derive(secret: &TicketSecret, public_url: &Url) -> Self {
        let loopback = matches!(public_url.host(), Some(url::Host::Domain("localhost")))
            || matches!(public_url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
            || matches!(public_url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
        let secure = public_url.scheme() == "https" || loopback;
        CsrfKey {
            key: secret.derive_key(b"herald.csrf-key.v1"),
            cookie_name: if secure {
                "__Host-herald-csrf"
            } else {
                "herald-csrf"
            },
            secure,
        }
    }

    /// The browser's CSRF cookie value, and the jar that sets it when the browser had none
    /// (or a malformed one).
    pub(crate) fn cookie(&self, jar: CookieJar) -> (String, CookieJar) {
        if let Some(value) = jar.get(self.cookie_name).map(Cookie::value)
            && well_formed(value)
        {
            return (value.to_owned(), jar);
        }
        let mut bytes = [0u8; COOKIE_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let value = URL_SAFE_NO_PAD.encode(bytes);
        let cookie = Cookie::build((self.cookie_name, value.clone()))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Strict)
            .build();
        (value, jar.add(cookie))
    }

    /// The token for the form of `ticket`'s page in the browser holding `cookie`.
    pub(crate) fn token(&self, cookie: &str, ticket: &TokenHash) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(cookie, ticket).finalize().into_bytes())
    }

    /// Whether a POST's `token` fits its cookie and ticket (compared in constant time).
    pub(crate) fn check(&self, jar: &CookieJar, ticket: &TokenHash, token: &str) -> bool {
        let Some(cookie) = jar.get(self.cookie_name).map(Cookie::value) else {
            return false;
        };
        let Ok(presented) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        well_formed(cookie) && self.mac(cookie, ticket).verify_slice(&presented).is_ok()
    }

    fn mac(&self, cookie: &str, ticket: &TokenHash) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(cookie.as_bytes());
        mac.update(b":");
        mac.update(ticket.as_bytes());
        mac
    }
}

fn well_formed(value: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(value)
        .is_ok_and(|b| b.len() == COOKIE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::TicketToken;

    fn key(url: &str) -> CsrfKey {
        CsrfKey::derive(
            &TicketSecret::from_bytes(&[7; 32]).unwrap(),
            &Url::parse(url).unwrap(),
        )
    }

    #[test]
    fn a_token_fits_only_its_cookie_and_ticket() {
        let key = key("https://id.example.com/");
        let (cookie, jar) = key.cookie(CookieJar::new());
        let ticket = TicketToken::from_presented("t1").hash();
        let other = TicketToken::from_presented("t2").hash();
        let token = key.token(&cookie, &ticket);
        assert!(key.check(&jar, &ticket, &token));
        assert!(!key.check(&jar, &other, &token));
        assert!(!key.check(&CookieJar::new(), &ticket, &token));
        let (_, other_jar) = key.cookie(CookieJar::new());
        assert!(!key.check(&other_jar, &ticket, &token));
        assert!(!key.check(&jar, &ticket, "not base64!"));
    }

    #[test]
    fn the_cookie_is_host_only_and_secure_on_https_and_loopback() {
        for url in [
            "https://id.example.com/",
            "http://127.0.0.1:8080/",
            "http://localhost:8080/",
        ] {
            let (_, jar) = key(url).cookie(CookieJar::new());
            let cookie = jar.get("__Host-herald-csrf").expect(url);
            assert_eq!(cookie.secure(), Some(true));
            assert_eq!(cookie.http_only(), Some(true));
            assert_eq!(cookie.same_site(), Some(SameSite::Strict));
            assert_eq!(cookie.path(), Some("/"));
        }
        let (_, jar) = key("http://herald.internal:8080/").cookie(CookieJar::new());
        assert_eq!(jar.get("herald-csrf").unwrap().secure(), Some(false));
    }
}
