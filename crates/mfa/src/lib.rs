//! Herald's MFA primitives, pure code with no I/O: the key MFA secrets are derived and sealed
//! with ([`MfaKey`]), TOTP secrets, codes and otpauth URLs ([`totp`]), the enrollment QR code as
//! inline SVG ([`qr`]), secrets encrypted at rest ([`seal`]) and the six-digit codes of the
//! email factor ([`email_code`]).
//!
//! The store keeps what these functions produce (sealed secrets, the last accepted time step,
//! digests of emailed codes); the pages and the Management API call them. No function here logs,
//! and no type here prints a secret in its `Debug` output.

pub mod email_code;
pub mod key;
pub mod qr;
pub mod seal;
pub mod totp;

pub use email_code::EmailCode;
pub use key::{KeyError, MfaKey, MfaKeys};
pub use qr::qr_svg;
pub use seal::SealError;
pub use totp::{CodeRefused, Issuer, TotpSecret};

/// The factor names Herald stores and seals secrets under (`otp` and `email`, Auth0's names).
pub mod factor {
    pub const OTP: &str = "otp";
    pub const EMAIL: &str = "email";
}
