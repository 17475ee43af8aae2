//! Redeeming a ticket: the one atomic step that makes a ticket used, and, for a ticket that can
//! no longer be used, which of Auth0's answers applies (used, expired, or unknown). The pages
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
