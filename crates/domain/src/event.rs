//! The events Herald publishes on `herald.events` when a ticket page changes a user (email
//! verified, password changed, MFA factor enrolled): their routing keys, JSON bodies and ids.
//!
//! An event carries what a subscriber needs to act, never a secret: the password change carries
//! the argon2id PHC string (so an identity service can adopt it), never the password; an
//! enrollment carries its id and factor, never the TOTP secret.

use serde::Serialize;

/// What happened, as the routing key on `herald.events` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    EmailVerified,
    PasswordChanged,
    MfaEnrolled,
}

impl EventKind {
    /// The routing key and the body's `type`.
    pub fn routing_key(self) -> &'static str {
        match self {
            EventKind::EmailVerified => "user.email_verified",
            EventKind::PasswordChanged => "user.password_changed",
            EventKind::MfaEnrolled => "user.mfa_enrolled",
        }
    }
}

/// One event. `id` is derived from what caused it (the redeemed ticket), so publishing the same
/// event again after an unconfirmed publish carries the same id and subscribers can drop it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// RFC 3339.
    pub occurred_at: String,
    pub user_id: String,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// What this kind of event adds (see [`EventData`]).
    #[serde(flatten)]
    pub data: EventData,
}

/// The part of an event that depends on its kind.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EventData {
    EmailVerified {},
    PasswordChanged {
        /// The argon2id PHC string of the new password.
        password_hash: String,
        /// Whether the change also verified the user's email (`mark_email_as_verified`).
        email_verified: bool,
    },
    MfaEnrolled {
        enrollment_id: String,
        /// `otp` or `email`.
        factor: String,
    },
}

impl std::fmt::Debug for EventData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventData::EmailVerified {} => f.write_str("EmailVerified"),
            EventData::PasswordChanged { email_verified, .. } => f
                .debug_struct("PasswordChanged")
                .field("email_verified", email_verified)
                .finish_non_exhaustive(),
            EventData::MfaEnrolled {
                enrollment_id,
                factor,
            } => f
                .debug_struct("MfaEnrolled")
                .field("enrollment_id", enrollment_id)
                .field("factor", factor)
                .finish(),
        }
    }
}

impl Event {
    /// The routing key it is published with.
    pub fn routing_key(&self) -> &'static str {
        self.kind
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an Event always serializes")
    }
}

/// The event id for `kind` caused by the ticket with id `ticket_id` (one event per redemption).
pub fn event_id(kind: EventKind, ticket_id: &str) -> String {
    format!(
        "evt_{}_{ticket_id}",
        kind.routing_key().trim_start_matches("user.")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: EventData, kind: EventKind) -> Event {
        Event {
            id: event_id(kind, "t1"),
            kind: kind.routing_key(),
            occurred_at: "2026-12-04T10:00:00Z".into(),
            user_id: "auth0|1".into(),
            email: "a@example.com".into(),
            organization_id: None,
            client_id: Some("c1".into()),
            data,
        }
    }

    #[test]
    fn bodies_name_their_type_and_leave_out_what_is_absent() {
        let e = event(EventData::EmailVerified {}, EventKind::EmailVerified);
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v["type"], "user.email_verified");
        assert_eq!(v["id"], "evt_email_verified_t1");
        assert_eq!(v["client_id"], "c1");
        assert!(v.get("organization_id").is_none());
        assert_eq!(e.routing_key(), "user.email_verified");
    }

    #[test]
    fn a_password_change_carries_the_hash_but_its_debug_output_does_not() {
        let e = event(
            EventData::PasswordChanged {
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                email_verified: true,
            },
            EventKind::PasswordChanged,
        );
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert!(
            v["password_hash"]
                .as_str()
                .unwrap()
                .starts_with("$argon2id$")
        );
        assert_eq!(v["email_verified"], true);
        assert!(!format!("{e:?}").contains("argon2id"));
    }
}
