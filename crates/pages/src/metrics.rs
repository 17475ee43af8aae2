//! What the pages add to `herald serve`'s Prometheus metrics: `herald_tickets_redeemed_total`,
//! by purpose, once the transaction that used a ticket has committed. (The name and help text
//! are registered with every Herald process's metrics, in `herald_worker::metrics`; refused and
//! failed answers show in `herald_http_requests_total` by route and status.)

use herald_domain::TicketPurpose;

/// `herald_worker::metrics::TICKETS_REDEEMED_TOTAL` (this crate does not depend on the worker;
/// `tests/metrics.rs` reads the series back from `/metrics`).
const TICKETS_REDEEMED_TOTAL: &str = "herald_tickets_redeemed_total";

/// Counts one redeemed ticket of `purpose`.
pub(crate) fn redeemed(purpose: TicketPurpose) {
    metrics::counter!(TICKETS_REDEEMED_TOTAL, "purpose" => purpose.as_str()).increment(1);
}
