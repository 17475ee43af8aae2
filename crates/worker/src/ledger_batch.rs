//! Group commit for the worker's ledger writes: the deliveries in flight at the same moment share
//! one `begin_attempt` statement, and the ones that were just sent share one `mark_sent`.
//!
//! Nothing waits on purpose. A background task takes whatever requests are queued when a batch
//! slot is free (at most `max_batch`), runs them as one statement (`Store::begin_attempts`,
//! `Store::mark_sent_many`) and answers each caller. With little traffic every request goes
//! alone and at once; under load the requests that queued while the previous batches ran go
//! together, so the round trips and commits per job fall as the load rises. At most
//! [`BATCHES_IN_FLIGHT`] batches run at a time, leaving the rest of the pool to other queries.

use std::sync::Arc;

use herald_domain::TicketSecret;
use herald_store::{BeginOutcome, BeginRequest, Lease, SentRequest, Store, StoreError};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// How many batch statements may run at once.
pub const BATCHES_IN_FLIGHT: usize = 4;

enum Op {
    Begin(
        Box<BeginRequest>,
        oneshot::Sender<Result<BeginOutcome, StoreError>>,
    ),
    Sent(SentRequest, oneshot::Sender<Result<(), StoreError>>),
}

/// The handle the pipeline writes through. Dropping every handle ends the background task once
/// the queued requests are answered.
#[derive(Debug, Clone)]
pub struct LedgerBatcher {
    ops: mpsc::UnboundedSender<Op>,
}

impl LedgerBatcher {
    /// Starts the background task on the current Tokio runtime.
    pub fn spawn(store: Store, secret: TicketSecret, lease: Lease, max_batch: usize) -> Self {
        let (ops, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, secret, lease, max_batch.max(1), rx));
        LedgerBatcher { ops }
    }

    /// `Store::begin_attempt` for one delivery, batched with the others in flight.
    pub async fn begin(&self, request: BeginRequest) -> Result<BeginOutcome, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.ops
            .send(Op::Begin(Box::new(request), tx))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// `Store::mark_sent` for one delivery, batched with the others just sent.
    pub async fn mark_sent(&self, request: SentRequest) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.ops.send(Op::Sent(request, tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

/// The batcher stopped (its runtime is shutting down): as transient as a closed pool.
fn gone() -> StoreError {
    StoreError::closed()
}

async fn run(
    store: Store,
    secret: TicketSecret,
    lease: Lease,
    max_batch: usize,
    mut rx: mpsc::UnboundedReceiver<Op>,
) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    let secret = Arc::new(secret);
    loop {
        // Take a slot first, so the requests that arrive meanwhile join this batch.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut begins = Vec::new();
        let mut sents = Vec::new();
        let mut take = |op: Op| match op {
            Op::Begin(req, reply) => begins.push((*req, reply)),
            Op::Sent(req, reply) => sents.push((req, reply)),
        };
        take(first);
        let mut taken = 1;
        while taken < max_batch {
            match rx.try_recv() {
                Ok(op) => {
                    take(op);
                    taken += 1;
                }
                Err(_) => break,
            }
        }
        let (store, secret) = (store.clone(), Arc::clone(&secret));
        tokio::spawn(async move {
            tokio::join!(
                answer_begins(&store, &secret, lease, begins),
                answer_sents(&store, sents),
            );
            drop(slot);
        });
    }
}

type Waiting<R, T> = Vec<(R, oneshot::Sender<Result<T, StoreError>>)>;

async fn answer_begins(
    store: &Store,
    secret: &TicketSecret,
    lease: Lease,
    waiting: Waiting<BeginRequest, BeginOutcome>,
) {
    if waiting.is_empty() {
        return;
    }
    let (requests, replies): (Vec<_>, Vec<_>) = waiting.into_iter().unzip();
    crate::metrics::record_ledger_batch("begin", requests.len());
    let outcomes = store.begin_attempts(&requests, secret, lease).await;
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        // A caller that gave up (its delivery was dropped) needs no answer.
        let _ = reply.send(outcome);
    }
}

async fn answer_sents(store: &Store, waiting: Waiting<SentRequest, ()>) {
    if waiting.is_empty() {
        return;
    }
    let (requests, replies): (Vec<_>, Vec<_>) = waiting.into_iter().unzip();
    crate::metrics::record_ledger_batch("sent", requests.len());
    let outcomes = store.mark_sent_many(&requests).await;
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        let _ = reply.send(outcome);
    }
}
