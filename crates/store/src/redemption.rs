//! Redeeming a ticket: the one atomic step that makes a ticket used, and, for a ticket that can
//! no longer be used, which of Auth0's answers applies (used, expired, or unknown); and what the
//! tickets do: verify an email (and claim the welcome email once), store a new password. The pages
//! that redeem tickets call it inside their own transaction, so that what the ticket does (mark
//! an email verified, store a password) commits together with the ticket being used, or not at
//! all.

use herald_domain::{TicketPurpose, TokenHash};
use sqlx::PgConnection;

use crate::Store;
use crate::error::StoreError;
use crate::ledger::{StoredTicket, TICKET_COLUMNS};

/// What a presented ticket is worth.
#[derive(Debug, Clone)]
pub enum Redemption {
    /// Unused and unexpired: redeemed now (or, from [`Store::peek_ticket`], redeemable).
    Valid(Box<StoredTicket>),
    /// Used before: Auth0's "This URL can be used only once". The ticket says where to send
    /// the user with that message.
    Used(Box<StoredTicket>),
    /// Past its expiry: Auth0's "Access expired.".
    Expired(Box<StoredTicket>),
    /// No such ticket for this purpose (never issued, tampered with, or another page's).
    Unknown,
}

impl Store {
    /// Marks the ticket of `hash` used, if it is for `purpose`, unused and unexpired, in one
    /// statement on `conn` (the caller's transaction): of concurrent redemptions of one ticket,
    /// exactly one gets [`Redemption::Valid`]; the others wait for it and then get
    /// [`Redemption::Used`] (or [`Redemption::Valid`] if its transaction rolled back).
    pub async fn redeem_ticket(
        conn: &mut PgConnection,
        hash: &TokenHash,
        purpose: TicketPurpose,
    ) -> Result<Redemption, StoreError> {
        let sql = format!(
            "UPDATE tickets SET used_at = now() \
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now() \
             RETURNING {TICKET_COLUMNS}"
        );
        let redeemed = sqlx::query_as::<_, StoredTicket>(sqlx::AssertSqlSafe(sql))
            .bind(hash.as_bytes())
            .bind(purpose.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(ticket) = redeemed {
            return Ok(Redemption::Valid(Box::new(ticket)));
        }
        classify(&mut *conn, hash, purpose).await
    }

    /// What the ticket of `hash` is worth for `purpose`, without using it (a page's GET).
    pub async fn peek_ticket(
        &self,
        hash: &TokenHash,
        purpose: TicketPurpose,
    ) -> Result<Redemption, StoreError> {
        let mut conn = self.pool().acquire().await?;
        classify(&mut conn, hash, purpose).await
    }
}

async fn classify(
    conn: &mut PgConnection,
    hash: &TokenHash,
    purpose: TicketPurpose,
) -> Result<Redemption, StoreError> {
    let sql = format!(
        "SELECT {TICKET_COLUMNS}, expires_at <= now() AS expired FROM tickets \
         WHERE token_hash = $1 AND purpose = $2"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(hash.as_bytes())
        .bind(purpose.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(Redemption::Unknown);
    };
    use sqlx::{FromRow, Row};
    let ticket = StoredTicket::from_row(&row)?;
    let expired: bool = row.try_get("expired")?;
    let ticket = Box::new(ticket);
    Ok(if ticket.used_at.is_some() {
        Redemption::Used(ticket)
    } else if expired {
        Redemption::Expired(ticket)
    } else {
        Redemption::Valid(ticket)
    })
}

/// The answer to redeeming an email-verification ticket, in Auth0's cases.
#[derive(Debug, Clone)]
pub enum EmailVerification {
    /// The ticket was used and the user's email is now verified. `welcome` is true for the
    /// first verification of this user ever: the caller sends the welcome email (once).
    Verified {
        ticket: Box<StoredTicket>,
        welcome: bool,
        /// The user's name and `user_metadata.lang` (or `.locale`), for the welcome email.
        name: Option<String>,
        locale: Option<String>,
    },
    /// The ticket was used; the user's email was verified already ("This account is already
    /// verified.").
    AlreadyVerified(Box<StoredTicket>),
    /// The ticket was used, but no user in the registry has its address any more (never
    /// created through the API, deleted, or its email changed since): "User account does not
    /// exist or verification code is invalid."
    NoSuchUser(Box<StoredTicket>),
    /// The ticket could not be used (used, expired or unknown).
    Refused(Redemption),
}

impl Store {
    /// Redeems an email-verification ticket and verifies the user's email, in one transaction:
    /// the ticket is used, the user it was issued for is marked verified if their email is still
    /// the ticket's, and the first verification of a user claims their welcome email.
    pub async fn verify_email(&self, hash: &TokenHash) -> Result<EmailVerification, StoreError> {
        let mut tx = self.pool().begin().await?;
        let answer = Store::verify_email_in(&mut tx, hash).await?;
        tx.commit().await?;
        Ok(answer)
    }

    /// [`Store::verify_email`] inside the caller's transaction, so that the caller can publish
    /// what follows (the event, the welcome email) before it commits: a failed publish then
    /// rolls the redemption back and the user can try the link again.
    pub async fn verify_email_in(
        conn: &mut PgConnection,
        hash: &TokenHash,
    ) -> Result<EmailVerification, StoreError> {
        let ticket =
            match Store::redeem_ticket(&mut *conn, hash, TicketPurpose::EmailVerification).await? {
                Redemption::Valid(ticket) => ticket,
                other => return Ok(EmailVerification::Refused(other)),
            };
        // The row is locked, so two tickets of one user redeemed at once are taken in turn.
        let row: Option<(bool, bool, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT email_verified, welcome_claimed_at IS NULL, name, \
                    COALESCE(user_metadata->>'lang', user_metadata->>'locale') FROM users \
             WHERE user_id = $1 AND lower(email) = lower($2) FOR UPDATE",
        )
        .bind(&ticket.user_id)
        .bind(&ticket.email)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(match row {
            None => EmailVerification::NoSuchUser(ticket),
            Some((true, ..)) => EmailVerification::AlreadyVerified(ticket),
            Some((false, unclaimed, name, locale)) => {
                sqlx::query(
                    "UPDATE users SET email_verified = true, updated_at = now(), \
                     welcome_claimed_at = COALESCE(welcome_claimed_at, now()) \
                     WHERE user_id = $1",
                )
                .bind(&ticket.user_id)
                .execute(&mut *conn)
                .await?;
                EmailVerification::Verified {
                    ticket,
                    welcome: unclaimed,
                    name,
                    locale,
                }
            }
        })
    }

    /// Redeems a password-change ticket and stores `password_hash` (an argon2id PHC string) as
    /// the user's password, inside the caller's transaction. It also verifies the email when
    /// the ticket says `mark_email_as_verified`, and uses up every other unused password-change
    /// ticket of the user, so that an older link cannot set the password again.
    pub async fn change_password_in(
        conn: &mut PgConnection,
        hash: &TokenHash,
        password_hash: &str,
    ) -> Result<PasswordChange, StoreError> {
        let ticket =
            match Store::redeem_ticket(&mut *conn, hash, TicketPurpose::PasswordChange).await? {
                Redemption::Valid(ticket) => ticket,
                other => return Ok(PasswordChange::Refused(other)),
            };
        let verified: Option<bool> = sqlx::query_scalar(
            "UPDATE users SET password_hash = $2, updated_at = now(), \
             email_verified = email_verified OR ($3 AND lower(email) = lower($4)) \
             WHERE user_id = $1 RETURNING email_verified",
        )
        .bind(&ticket.user_id)
        .bind(password_hash)
        .bind(ticket.mark_email_as_verified)
        .bind(&ticket.email)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(email_verified) = verified else {
            return Ok(PasswordChange::NoSuchUser(ticket));
        };
        let others = sqlx::query(
            "UPDATE tickets SET used_at = now() \
             WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND id <> $3",
        )
        .bind(&ticket.user_id)
        .bind(TicketPurpose::PasswordChange.as_str())
        .bind(ticket.id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(PasswordChange::Changed {
            ticket,
            email_verified,
            revoked_tickets: others,
        })
    }

    /// What a page needs to pick a ticket's language: the locale its email was rendered in
    /// (when a job sent it) and the user's own (`user_metadata.lang` or `.locale`).
    pub async fn ticket_locale_hints(
        &self,
        ticket: &StoredTicket,
    ) -> Result<LocaleHints, StoreError> {
        let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT (SELECT locale FROM email_jobs WHERE id = $1), \
                    (SELECT COALESCE(user_metadata->>'lang', user_metadata->>'locale') \
                       FROM users WHERE user_id = $2)",
        )
        .bind(&ticket.job_id)
        .bind(&ticket.user_id)
        .fetch_optional(self.pool())
        .await?;
        let (email_locale, user_locale) = row.unwrap_or_default();
        Ok(LocaleHints {
            email_locale,
            user_locale,
        })
    }
}

/// The answer to redeeming a password-change ticket.
#[derive(Debug, Clone)]
pub enum PasswordChange {
    /// The password is stored. `email_verified` is the user's state afterwards; the other
    /// unused password-change tickets of the user (`revoked_tickets` of them) are used up.
    Changed {
        ticket: Box<StoredTicket>,
        email_verified: bool,
        revoked_tickets: u64,
    },
    /// The ticket was used, but no user in the registry has its id any more.
    NoSuchUser(Box<StoredTicket>),
    /// The ticket could not be used (used, expired or unknown).
    Refused(Redemption),
}

/// Where a ticket page's language can come from, besides the browser and the organization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocaleHints {
    /// The locale the ticket's email was rendered in.
    pub email_locale: Option<String>,
    /// The user's `user_metadata.lang` (or `.locale`).
    pub user_locale: Option<String>,
}
