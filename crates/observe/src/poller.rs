//! The queue gauges: a background task that reads each Herald queue's depth and consumers with
//! a passive declare on its own AMQP connection.
//!
//! `herald_queue_oldest_message_age_seconds` is not exported: AMQP cannot peek at a quorum
//! queue's head without delivering it (a `basic.get` + requeue counts against the work queue's
//! `x-delivery-limit`), and the management plugin that reports `head_message_timestamp` is not
//! assumed to be enabled.

use std::time::Duration;

use herald_queue::{Topology, queue_stats};
use herald_worker::CancellationToken;
use lapin::Connection;
use tokio::task::JoinHandle;
use tracing::debug;

/// How often `herald worker` refreshes the queue gauges.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The queues worth watching: the work queue, each retry tier, and the dead-letter queue.
pub fn queues_of(topology: &Topology) -> Vec<String> {
    let mut queues = vec![topology.work_queue.clone()];
    queues.extend(topology.retry_queues());
    queues.push(topology.dead_queue.clone());
    queues
}

/// Sets `herald_queue_messages` and `herald_queue_consumers` for each queue every `every`,
/// until `shutdown`. A queue that cannot be read keeps its last values; a lost connection is
/// reopened on a later round.
pub fn spawn_queue_poller(
    amqp_url: String,
    queues: Vec<String>,
    every: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut conn: Option<Connection> = None;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if conn
                .as_ref()
                .is_some_and(|c| c.status().closed() || c.status().errored())
            {
                conn = None;
            }
            if conn.is_none() {
                match herald_queue::connect(&amqp_url, "herald-observe (queue stats)").await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        debug!(error = %e, "Queue stats: cannot connect to RabbitMQ yet.");
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_ref().filter(|c| c.status().connected()) else {
                continue; // lapin is recovering the connection
            };
            for queue in &queues {
                match queue_stats(c, queue).await {
                    Ok(stats) => {
                        herald_worker::metrics::record_queue(
                            queue,
                            stats.messages,
                            stats.consumers,
                        );
                    }
                    Err(e) => debug!(queue, error = %e, "Queue stats: could not read the queue."),
                }
            }
        }
        if let Some(c) = conn {
            let _ = c.close(200, "herald stopping".into()).await;
        }
    })
}
