-- Redeeming an email-verification ticket: the welcome email is sent once per user, ever. The
-- first verification claims it (in the transaction that uses the ticket and verifies the email),
-- so a second verification, or two tickets redeemed at once, cannot send it again.
ALTER TABLE users ADD COLUMN welcome_claimed_at timestamptz;
