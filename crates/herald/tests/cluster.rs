//! A three-node RabbitMQ cluster on loopback (quorum queues) losing one node at a time under
//! load: first a node the worker is not connected to (the work queue's leader when it can be),
//! then the node the worker and the producer are connected to. Both are given all three nodes in
//! one comma-separated URL and must carry on through the survivors; no confirmed job may be lost.
//!
//! The cluster is private (`herald_testkit::services::PrivateCluster`, ports from 5701); the
//! shared broker on :5672 is never touched. Like `faults.rs`, `scripts/chaos.sh` runs this binary
//! with `HERALD_CHAOS_SCALE` (more jobs, three fault cycles instead of one) and
//! `HERALD_CHAOS_REPORT` (the file the scenario's row is appended to).

mod chaos;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_mailsink::{FaultPlan, MailSink};
use herald_producer::Producer;
use herald_testkit::db::TestDb;
use herald_testkit::env::TestEnv;
use herald_testkit::services::{PRIVATE_SERVICES, PrivateCluster};

use chaos::*;

/// The name the worker gives its consuming connection (`herald_worker`'s session).
const WORKER_CONNECTION: &str = "herald-worker (consume)";
const PRODUCER_CONNECTION: &str = "herald-producer";
const WORK_QUEUE: &str = "herald.email";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_losing_a_node_loses_no_job_and_clients_fail_over_to_the_survivors() {
    init_logs();
    let _serial = PRIVATE_SERVICES.lock().await;
    let started = Instant::now();
    let mut cluster = PrivateCluster::start().await.unwrap();
    let booted = started.elapsed();
    let all_nodes = cluster.combined_url();

    // Declared through the last node, the queues' leaders start there (RabbitMQ places a new
    // quorum queue's leader on the declaring client's node), away from the worker and the
    // producer, which connect to the first node of the list that accepts: node 0.
    declare_topology(&cluster.url(2)).await;
    wait_for_members(&cluster, "the work queue's members on all three nodes").await;

    let db = TestDb::new().await.unwrap();
    let sink = MailSink::start().await.unwrap();
    // Slow enough that a backlog is still being worked through when its node stops (the chaos
    // run's backlogs are ten times longer, so they can go faster).
    sink.set_faults(FaultPlan::delay_all(if scale() > 1 {
        ms(50)
    } else {
        ms(200)
    }));
    let mut worker = WorkerProcess::spawn(&all_nodes, &db.url, &sink.url(), &[]);
    let producer = Arc::new(
        Producer::connect_with(&all_nodes, TestEnv::topology())
            .await
            .unwrap(),
    );
    let publishers = Publishers::start(producer.clone(), "live", 1, ms(100));

    let cycles = if scale() > 1 { 3 } else { 1 };
    let batch = 400 * scale();
    let mut backlog = Vec::new();
    let mut notes = Vec::new();
    let backlog_run = BacklogRun {
        url: &all_nodes,
        sink: &sink,
        publishers: &publishers,
        batch,
    };
    for cycle in 0..cycles {
        // 1. A node the worker is not connected to, the leader if possible: `stop_app` (the
        //    broker on it stops, its queue members too; the Erlang node stays, which makes the
        //    way back quicker).
        let worker_node = connected_node(&cluster, WORKER_CONNECTION).await;
        let leader = cluster.queue_leader(WORK_QUEUE).await.unwrap();
        let victim = if leader == worker_node {
            (0..PrivateCluster::NODES)
                .find(|n| *n != worker_node)
                .unwrap()
        } else {
            leader
        };
        let (ids, pending_at_stop, down) = backlog_run
            .stop_midway(&mut cluster, victim, Stop::App, &format!("c{cycle}away"))
            .await;
        if victim == leader {
            wait_until("a new leader for the work queue", secs(60), || async {
                cluster
                    .queue_leader(WORK_QUEUE)
                    .await
                    .is_ok_and(|l| l != victim)
            })
            .await;
        }
        let elected = down.elapsed();
        wait_delivered(&sink, &ids, "the backlog, with a node down").await;
        assert_eq!(
            connected_node(&cluster, WORKER_CONNECTION).await,
            worker_node,
            "the worker moved although its node stayed up"
        );
        cluster.start_app(victim).await.unwrap();
        wait_for_members(&cluster, "the restarted node back in the work queue").await;
        backlog.extend(ids);
        notes.push(format!(
            "stop_app on node {victim} ({}) with {pending_at_stop}/{batch} of a backlog \
             undelivered, new leader after {elected:.1?}",
            if victim == leader {
                "the leader"
            } else {
                "not the leader"
            }
        ));

        // 2. The node the worker (and, on the first cycle, the producer) is connected to: the
        //    whole node stops, and stays down unless another cycle follows.
        let worker_node = connected_node(&cluster, WORKER_CONNECTION).await;
        let producer_node = connected_node(&cluster, PRODUCER_CONNECTION).await;
        let (ids, pending_at_stop, down) = backlog_run
            .stop_midway(
                &mut cluster,
                worker_node,
                Stop::Node,
                &format!("c{cycle}here"),
            )
            .await;
        wait_delivered(&sink, &ids, "the backlog after the worker's node stopped").await;
        let caught_up = down.elapsed();
        let moved_to = connected_node(&cluster, WORKER_CONNECTION).await;
        assert_ne!(moved_to, worker_node);
        if producer_node == worker_node {
            assert!(
                publishers.wait_ok_after_now(secs(60)).await,
                "the producer did not publish again after its node stopped"
            );
            let producer_moved_to = connected_node(&cluster, PRODUCER_CONNECTION).await;
            assert_ne!(producer_moved_to, worker_node);
        }
        if cycle + 1 < cycles {
            cluster.start_node(worker_node).await.unwrap();
            wait_for_members(&cluster, "the restarted node back in the work queue").await;
        }
        backlog.extend(ids);
        notes.push(format!(
            "node {worker_node} (the worker's{}) stopped with {pending_at_stop}/{batch} \
             undelivered, worker on node {moved_to}, backlog done {caught_up:.1?} later",
            if producer_node == worker_node {
                " and the producer's"
            } else {
                ""
            }
        ));
    }

    // The long-lived producer publishes again (its connection moved to a surviving node).
    let producer_back = publishers.wait_ok_after_now(secs(60)).await;
    let outcomes = publishers.stop().await;
    close(producer).await;
    let mut confirmed: Vec<String> = outcomes
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(id, _)| id.clone())
        .collect();
    let refused: Vec<String> = outcomes
        .iter()
        .filter(|(_, ok)| !*ok)
        .map(|(id, _)| id.clone())
        .collect();
    confirmed.extend(backlog.iter().cloned());
    wait_delivered(&sink, &confirmed, "every confirmed job").await;
    wait_all_sent(&db.store, confirmed.len(), secs(30)).await;

    assert!(
        worker.running(),
        "the worker gave up instead of failing over"
    );
    let consumers = consumers_on(&all_nodes, WORK_QUEUE).await;
    let exit = worker.terminate_and_wait(secs(20)).await;

    let tally = Tally::of(&sink);
    let row = Row {
        scenario: "3-node cluster, node stops",
        published: confirmed.len(),
        delivered: tally.delivered_of(&confirmed),
        dead: dead_letters_at(&all_nodes).await,
        lost: tally.lost(&confirmed),
        duplicated: tally.duplicates(),
        note: format!(
            "{}; {} publishes refused with an error ({} delivered anyway); producer publishing \
             again: {}; cluster booted in {booted:.1?}",
            notes.join("; "),
            refused.len(),
            tally.delivered_of(&refused),
            if producer_back { "yes" } else { "NO" }
        ),
    };
    row.report();
    assert!(exit.success(), "the worker exited with {exit}");
    assert_eq!(consumers, 1, "consumers on {WORK_QUEUE} at the end");
    row.assert_nothing_lost();
    assert_eq!(row.dead, 0, "a node stop dead-lettered jobs");
    assert!(producer_back, "the producer did not publish again");
    tally.assert_copies_identical();
    // Only the stop of the worker's own node cuts sends between SMTP and the ledger.
    assert!(row.duplicated <= cycles * usize::from(PREFETCH), "{row:?}");
    assert_ledger_all_sent_with_one_ticket(&db.store, &confirmed).await;
    drop(cluster);
}

/// Declares the topology with a connection to `url` alone.
async fn declare_topology(url: &str) {
    let conn = herald_queue::connect(url, "herald-cluster-test")
        .await
        .unwrap();
    TestEnv::topology()
        .declare(&conn.create_channel().await.unwrap())
        .await
        .unwrap();
    let _ = conn.close(200, "OK".into()).await;
}

/// How a node is stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// `rabbitmqctl stop_app`: the broker stops, the Erlang node stays.
    App,
    /// The whole node.
    Node,
}

/// What a fault in the middle of a backlog needs.
#[derive(Debug)]
struct BacklogRun<'a> {
    url: &'a str,
    sink: &'a MailSink,
    publishers: &'a Publishers,
    batch: usize,
}

impl BacklogRun<'_> {
    /// Publishes a backlog, stops `node` once the worker is busy with it, and waits until the
    /// long-lived producer has tried to publish during the outage. Returns the backlog's ids, how
    /// many of them were undelivered at the stop, and when the node was down.
    async fn stop_midway(
        &self,
        cluster: &mut PrivateCluster,
        node: usize,
        stop: Stop,
        prefix: &str,
    ) -> (Vec<String>, usize, Instant) {
        let ids = publish_backlog(self.url, prefix, self.batch).await;
        wait_busy(self.sink, &ids).await;
        match stop {
            Stop::App => cluster.stop_app(node).await.unwrap(),
            Stop::Node => cluster.stop_node(node).await.unwrap(),
        }
        let pending = undelivered(self.sink, &ids);
        let down = Instant::now();
        self.publishers.wait_attempts_after_now(2).await;
        (ids, pending, down)
    }
}

/// Publishes `n` jobs from 16 tasks sharing a producer of its own (closed before returning), so
/// that the backlog is queued faster than the worker sends it.
async fn publish_backlog(url: &str, prefix: &str, n: usize) -> Vec<String> {
    const TASKS: usize = 16;
    let producer = Arc::new(
        Producer::connect_with(url, TestEnv::topology())
            .await
            .unwrap(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let producer = producer.clone();
        let prefix = format!("{prefix}{t}");
        tasks.spawn(async move {
            publish_batch(&producer, &prefix, n / TASKS + usize::from(t < n % TASKS)).await
        });
    }
    let mut ids = Vec::with_capacity(n);
    while let Some(batch) = tasks.join_next().await {
        ids.extend(batch.unwrap());
    }
    close(producer).await;
    ids
}

/// Waits until the work queue has a running member on every node.
async fn wait_for_members(cluster: &PrivateCluster, what: &str) {
    wait_until(what, secs(60), || async {
        cluster
            .queue_members_online(WORK_QUEUE)
            .await
            .is_ok_and(|online| online.len() == PrivateCluster::NODES)
    })
    .await;
}

/// The node the one connection named `name` is open on, once there is exactly one.
async fn connected_node(cluster: &PrivateCluster, name: &str) -> usize {
    let deadline = Instant::now() + secs(60);
    loop {
        let found: Vec<usize> = cluster
            .connections()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|(n, _)| n == name)
            .map(|(_, node)| node)
            .collect();
        if let [node] = found[..] {
            return node;
        }
        assert!(
            Instant::now() < deadline,
            "no single connection named {name:?} after 60 s (nodes: {found:?})"
        );
        tokio::time::sleep(ms(100)).await;
    }
}

/// Waits until the worker is busy with a backlog: 10 of `ids` delivered.
async fn wait_busy(sink: &MailSink, ids: &[String]) {
    wait_until("the worker busy with the backlog", secs(60), || async {
        undelivered(sink, ids) <= ids.len() - 10
    })
    .await;
}

/// How many of `ids` the sink has no mail for yet.
fn undelivered(sink: &MailSink, ids: &[String]) -> usize {
    let delivered = delivered_ids(sink);
    ids.iter().filter(|id| !delivered.contains(*id)).count()
}

/// Waits until the sink has mail for every one of `ids`; panics naming a few missing ones.
async fn wait_delivered(sink: &MailSink, ids: &[String], what: &str) {
    let wanted: BTreeSet<String> = ids.iter().cloned().collect();
    let timeout = scaled(secs(90));
    let deadline = Instant::now() + timeout;
    loop {
        let delivered = delivered_ids(sink);
        if delivered.is_superset(&wanted) {
            return;
        }
        if Instant::now() > deadline {
            let missing: Vec<&String> = wanted.difference(&delivered).take(10).collect();
            panic!(
                "{what}: {} of {} jobs not delivered after {timeout:?}, e.g. {missing:?}",
                wanted.difference(&delivered).count(),
                wanted.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
