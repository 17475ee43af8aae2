//! The five kinds of email job: their wire names, routing keys, templates and ticket purposes.

use std::fmt;
use std::str::FromStr;

use crate::ticket::TicketPurpose;

/// What a job asks Herald to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKind {
    Verification,
    Enrollment,
    PasswordChange,
    Welcome,
    /// A one-time code for the MFA email factor (Auth0's `mfa_oob_code` email).
    MfaCode,
}

impl JobKind {
    pub const ALL: [JobKind; 5] = [
        JobKind::Verification,
        JobKind::Enrollment,
        JobKind::PasswordChange,
        JobKind::Welcome,
        JobKind::MfaCode,
    ];

    /// The `type` field of the job, as Auth0 names job types.
    pub fn type_name(self) -> &'static str {
        match self {
            JobKind::Verification => "verification_email",
            JobKind::Enrollment => "enrollment_email",
            JobKind::PasswordChange => "password_change_email",
            JobKind::Welcome => "welcome_email",
            JobKind::MfaCode => "mfa_code_email",
        }
    }

    /// The AMQP routing key on the `herald.jobs` exchange.
    pub fn routing_key(self) -> &'static str {
        match self {
            JobKind::Verification => "email.verification",
            JobKind::Enrollment => "email.enrollment",
            JobKind::PasswordChange => "email.password_change",
            JobKind::Welcome => "email.welcome",
            JobKind::MfaCode => "email.mfa_code",
        }
    }

    /// The shell spelling used by `herald send <kind>`.
    pub fn cli_name(self) -> &'static str {
        match self {
            JobKind::Verification => "verification-email",
            JobKind::Enrollment => "enrollment-email",
            JobKind::PasswordChange => "password-change-email",
            JobKind::Welcome => "welcome-email",
            JobKind::MfaCode => "mfa-code-email",
        }
    }

    pub fn template(self) -> TemplateName {
        match self {
            JobKind::Verification => TemplateName::VerifyEmail,
            JobKind::Enrollment => TemplateName::EnrollmentEmail,
            JobKind::PasswordChange => TemplateName::ResetEmail,
            JobKind::Welcome => TemplateName::WelcomeEmail,
            JobKind::MfaCode => TemplateName::MfaOobCode,
        }
    }

    /// The ticket this kind of job issues; a welcome email and a code email have none.
    pub fn ticket_purpose(self) -> Option<TicketPurpose> {
        match self {
            JobKind::Verification => Some(TicketPurpose::EmailVerification),
            JobKind::Enrollment => Some(TicketPurpose::MfaEnrollment),
            JobKind::PasswordChange => Some(TicketPurpose::PasswordChange),
            JobKind::Welcome | JobKind::MfaCode => None,
        }
    }

    pub fn from_type_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.type_name() == name)
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

impl FromStr for JobKind {
    type Err = String;

    /// Accepts the wire name (`verification_email`), the CLI name (`verification-email`) or the
    /// routing key (`email.verification`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.type_name() == s || k.cli_name() == s || k.routing_key() == s)
            .ok_or_else(|| {
                format!(
                    "unknown job type {s:?}; expected one of {}",
                    Self::ALL.map(|k| k.cli_name()).join(", ")
                )
            })
    }
}

/// A template, named as Auth0 names its email templates so the later email-templates API maps 1:1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TemplateName {
    VerifyEmail,
    EnrollmentEmail,
    ResetEmail,
    WelcomeEmail,
    /// Auth0's "MFA OOB code" email: a one-time code for the email factor.
    MfaOobCode,
}

impl TemplateName {
    pub const ALL: [TemplateName; 5] = [
        TemplateName::VerifyEmail,
        TemplateName::EnrollmentEmail,
        TemplateName::ResetEmail,
        TemplateName::WelcomeEmail,
        TemplateName::MfaOobCode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TemplateName::VerifyEmail => "verify_email",
            TemplateName::EnrollmentEmail => "enrollment_email",
            TemplateName::ResetEmail => "reset_email",
            TemplateName::WelcomeEmail => "welcome_email",
            TemplateName::MfaOobCode => "mfa_oob_code",
        }
    }
}

impl fmt::Display for TemplateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TemplateName {
    type Err = String;

    /// Accepts the template name (`verify_email`) or any spelling of the job kind that uses it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(t) = Self::ALL.into_iter().find(|t| t.as_str() == s) {
            return Ok(t);
        }
        s.parse::<JobKind>().map(JobKind::template).map_err(|_| {
            format!(
                "unknown template {s:?}; expected one of {}",
                Self::ALL.map(|t| t.as_str()).join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_kind_parses_back_to_it() {
        for kind in JobKind::ALL {
            assert_eq!(kind.type_name().parse::<JobKind>().unwrap(), kind);
            assert_eq!(kind.cli_name().parse::<JobKind>().unwrap(), kind);
            assert_eq!(kind.routing_key().parse::<JobKind>().unwrap(), kind);
            assert_eq!(
                kind.template().as_str().parse::<TemplateName>().unwrap(),
                kind.template()
            );
        }
        assert!("sms".parse::<JobKind>().is_err());
    }

    #[test]
    fn the_code_email_is_auth0s_mfa_oob_code_and_issues_no_ticket() {
        let kind: JobKind = "mfa-code-email".parse().unwrap();
        assert_eq!(kind, JobKind::MfaCode);
        assert_eq!(kind.type_name(), "mfa_code_email");
        assert_eq!(kind.routing_key(), "email.mfa_code");
        assert_eq!(kind.template().as_str(), "mfa_oob_code");
        assert_eq!(kind.ticket_purpose(), None);
        assert_eq!(
            "mfa_oob_code".parse::<TemplateName>(),
            Ok(TemplateName::MfaOobCode)
        );
    }

    #[test]
    fn routing_keys_match_the_work_queue_binding() {
        for kind in JobKind::ALL {
            assert!(kind.routing_key().starts_with("email."));
        }
    }
}
