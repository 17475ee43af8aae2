//! Redeeming a ticket: the one atomic step that makes a ticket used, and, for a ticket that can
//! no longer be used, which of Auth0's answers applies (used, expired, or unknown); and what an
//! email-verification ticket does with it (verify the email, claim the welcome email once). The pages
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
    /// Used before: Auth0's "This URL can be used only once".
    Used,
    /// Past its expiry: Auth0's "Access expired.".
    Expired,
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
    Ok(if ticket.used_at.is_some() {
        Redemption::Used
    } else if expired {
        Redemption::Expired
    } else {
        Redemption::Valid(Box::new(ticket))
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
        let ticket =
            match Store::redeem_ticket(&mut tx, hash, TicketPurpose::EmailVerification).await? {
                Redemption::Valid(ticket) => ticket,
                other => {
                    tx.rollback().await?;
                    return Ok(EmailVerification::Refused(other));
                }
            };
        // The row is locked, so two tickets of one user redeemed at once are taken in turn.
        let row: Option<(bool, bool)> = sqlx::query_as(
            "SELECT email_verified, welcome_claimed_at IS NULL FROM users \
             WHERE user_id = $1 AND lower(email) = lower($2) FOR UPDATE",
        )
        .bind(&ticket.user_id)
        .bind(&ticket.email)
        .fetch_optional(&mut *tx)
        .await?;
        let answer = match row {
            None => EmailVerification::NoSuchUser(ticket),
            Some((true, _)) => EmailVerification::AlreadyVerified(ticket),
            Some((false, unclaimed)) => {
                sqlx::query(
                    "UPDATE users SET email_verified = true, updated_at = now(), \
                     welcome_claimed_at = COALESCE(welcome_claimed_at, now()) \
                     WHERE user_id = $1",
                )
                .bind(&ticket.user_id)
                .execute(&mut *tx)
                .await?;
                EmailVerification::Verified {
                    ticket,
                    welcome: unclaimed,
                }
            }
        };
        tx.commit().await?;
        Ok(answer)
    }
}
