//! The one-time code an `mfa_code_email` job carries: exactly six ASCII digits, and a secret for
//! its few minutes of life, so neither it nor its unchecked wire form ever shows in `Debug`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A validated one-time code: exactly [`OneTimeCode::LENGTH`] ASCII digits.
///
/// Its `Debug` output is redacted, so an `EmailJob` or a `JobSpec` can be logged or printed in
/// a test failure without the code; [`OneTimeCode::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimeCode(String);

impl OneTimeCode {
    /// How many digits a code has (Auth0's email codes have six too).
    pub const LENGTH: usize = 6;

    /// Accepts exactly six ASCII digits (`0`-`9`): no spaces, signs or other numerals. The error
    /// never repeats the value, which may be a code.
    pub fn parse(raw: &str) -> Result<Self, CodeError> {
        if raw.len() == Self::LENGTH && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(CodeError)
        }
    }

    /// The digits, for the one place that needs them: the email.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeCode(<redacted>)")
    }
}

/// Why a code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be exactly {} ASCII digits (0-9)", OneTimeCode::LENGTH)]
pub struct CodeError;

/// The `code` field as it travels, before validation: any string, with a redacted `Debug`, so
/// a `WireJob` (and the builder that holds one) does not show it either.
///
/// Anything but a JSON string is refused with a message naming `code` and not repeating the
/// value (a number would also lose a code's leading zeros).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WireCode(String);

impl<'de> Deserialize<'de> for WireCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(s) => Ok(Self(s)),
            _ => Err(serde::de::Error::custom(
                "code must be a JSON string of six ASCII digits, such as \"042917\"",
            )),
        }
    }
}

impl WireCode {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&OneTimeCode> for WireCode {
    fn from(code: &OneTimeCode) -> Self {
        Self(code.0.clone())
    }
}

impl fmt::Debug for WireCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WireCode(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_six_ascii_digits_are_a_code() {
        assert_eq!(OneTimeCode::parse("042917").unwrap().expose(), "042917");
        for bad in [
            "",
            "12345",
            "1234567",
            "12 456",
            " 123456",
            "123456 ",
            "12345a",
            "+12345",
            "-12345",
            "١٢٣٤٥٦",
            "１２３４５６",
            "12345\n",
            "1234.5",
        ] {
            assert_eq!(OneTimeCode::parse(bad), Err(CodeError), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_digits() {
        let code = OneTimeCode::parse("987654").unwrap();
        assert!(!format!("{code:?}").contains("987654"));
        assert!(!format!("{:?}", WireCode::new("987654")).contains("987654"));
        assert!(!CodeError.to_string().contains("987654"));
    }
}
