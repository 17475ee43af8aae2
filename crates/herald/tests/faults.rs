//! Fault tolerance against real services: a worker SIGKILLed or SIGTERMed mid-batch, several
//! workers on one queue, RabbitMQ and PostgreSQL restarted under load, SMTP down, refusing or
//! slow. Each test proves that no published job is lost and counts (and bounds) duplicates.
//!
//! Broker and database restarts use private instances (`herald_testkit::services`), never the
//! shared services on :5672 and :5432. `scripts/chaos.sh` runs this same binary with
//! `HERALD_CHAOS_SCALE` (more jobs, more faults, longer outages) and `HERALD_CHAOS_REPORT` (a file
//! each scenario appends its `scenario|published|delivered|dead|lost|duplicated|note` row to).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_domain::{EmailJob, JobKind};
use herald_mailsink::{FaultPlan, MailSink, SinkOptions};
use herald_producer::Producer;
use herald_queue::Topology;
use herald_render::Renderer;
use herald_smtp::{Mailer, MailerOptions};
use herald_store::Store;
use herald_testkit::broker::TestBroker;
use herald_testkit::db::TestDb;
use herald_testkit::env::{TEST_PUBLIC_URL, TestEnv};
use herald_testkit::services::{PrivatePostgres, PrivateRabbit};
use herald_worker::{CancellationToken, Pipeline, Worker, WorkerConfig, WorkerError};
use tokio::task::JoinHandle;

const HERALD: &str = env!("CARGO_BIN_EXE_herald");
const SECRET: &str = "fault-tests-ticket-secret-0123456789abcdef";
const PREFETCH: u16 = 8;

/// Tests that start private RabbitMQ or PostgreSQL instances run one at a time: each boots a
/// server, and two at once on this two-core machine only slows both down.
static PRIVATE_SERVICES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------------
// 1. A worker process SIGKILLed mid-batch.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkilled_worker_loses_nothing_and_duplicates_at_most_its_prefetch() {
    init_logs();
    let env = TestEnv::new().await.unwrap();
    env.sink.set_faults(FaultPlan::delay_all(ms(30)));
    let n = 150 * scale();
    let kills = if scale() > 1 { 5 } else { 1 };
    let ids = publish_batch(&env.producer().await, "kill", n).await;

    // Jobs in `sending` at a kill are the only ones that can be sent twice.
    let mut in_flight = BTreeSet::new();
    for k in 1..=kills {
        let mut worker = WorkerProcess::spawn(&env.broker.url, &env.db.url, &env.sink.url(), &[]);
        let target = n * k / (kills + 1);
        wait_until("deliveries before the kill", secs(120), || async {
            env.sink.count() >= target
        })
        .await;
        worker.kill();
        let delivered = env.sink.count();
        assert!(
            delivered < n,
            "the batch finished before the kill ({delivered}/{n})"
        );
        let sending = ids_in_status(&env.db.store, &ids, "sending").await;
        let new = sending.difference(&in_flight).count();
        assert!(
            new <= usize::from(PREFETCH),
            "{new} jobs in flight in one worker"
        );
        in_flight.extend(sending);
    }
    let in_flight_at_kills = in_flight.len();

    let mut worker = WorkerProcess::spawn(&env.broker.url, &env.db.url, &env.sink.url(), &[]);
    wait_all_sent(&env.db.store, n, scaled(secs(120))).await;
    let exit = worker.terminate_and_wait(secs(20)).await;

    let tally = Tally::of(&env.sink);
    let row = Row {
        scenario: "worker SIGKILL mid-batch",
        published: n,
        delivered: tally.delivered_of(&ids),
        dead: dead_letters(&env.broker).await,
        lost: tally.lost(&ids),
        duplicated: tally.duplicates(),
        note: format!(
            "{kills} kill(s), prefetch {PREFETCH}, {in_flight_at_kills} in flight at the kills"
        ),
    };
    row.report();
    assert!(exit.success(), "the last worker exited with {exit}");
    row.assert_nothing_lost();
    tally.assert_copies_identical();
    for (id, copies) in &tally.copies {
        assert!(
            copies.len() == 1 || in_flight.contains(id),
            "{id} was sent {} times but was not in flight at a kill",
            copies.len()
        );
    }
    assert!(row.duplicated <= in_flight_at_kills);
    assert_ledger_all_sent_with_one_ticket(&env.db.store, &ids).await;
    assert_eq!(env.broker.depth("herald.email").await, 0);
}

// ---------------------------------------------------------------------------------------------
// 2. SIGTERM: stop consuming, finish and ack what is in flight, exit 0.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_in_flight_jobs_and_leaves_the_rest_queued() {
    init_logs();
    let env = TestEnv::new().await.unwrap();
    env.sink.set_faults(FaultPlan::delay_all(ms(200)));
    let n = 100 * scale();
    let ids = publish_batch(&env.producer().await, "term", n).await;

    let mut worker = WorkerProcess::spawn(
        &env.broker.url,
        &env.db.url,
        &env.sink.url(),
        &[("HERALD_SHUTDOWN_TIMEOUT", "10s")],
    );
    wait_until("the first deliveries", secs(60), || async {
        env.sink.count() >= 2 * usize::from(PREFETCH)
    })
    .await;
    let started = Instant::now();
    let exit = worker.terminate_and_wait(secs(20)).await;
    let took = started.elapsed();
    assert!(exit.success(), "exit status {exit}");
    assert!(
        took < secs(10),
        "the drain took {took:?}, over HERALD_SHUTDOWN_TIMEOUT"
    );

    // Everything the worker started was finished and acked; everything else is still queued.
    assert_eq!(status_count(&env.db.store, "sending").await, 0);
    let sent = status_count(&env.db.store, "sent").await;
    assert_eq!(env.sink.count(), sent, "one email per job marked sent");
    wait_until("the rest still queued", secs(10), || async {
        env.broker.depth("herald.email").await as usize == n - sent
    })
    .await;

    let mut worker = WorkerProcess::spawn(&env.broker.url, &env.db.url, &env.sink.url(), &[]);
    wait_all_sent(&env.db.store, n, scaled(secs(120))).await;
    let exit2 = worker.terminate_and_wait(secs(20)).await;

    let tally = Tally::of(&env.sink);
    let row = Row {
        scenario: "worker SIGTERM mid-batch",
        published: n,
        delivered: tally.delivered_of(&ids),
        dead: dead_letters(&env.broker).await,
        lost: tally.lost(&ids),
        duplicated: tally.duplicates(),
        note: format!("drained in {took:.1?}, {sent} sent before the stop"),
    };
    row.report();
    assert!(exit2.success());
    row.assert_nothing_lost();
    assert_eq!(row.duplicated, 0, "acked jobs were sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_past_the_shutdown_deadline_exits_and_the_abandoned_jobs_are_redelivered() {
    init_logs();
    let env = TestEnv::new().await.unwrap();
    // Every send hangs before MAIL is answered, longer than the shutdown deadline.
    env.sink.set_faults(FaultPlan::delay_all(secs(2)).at_mail());
    let n = 20;
    let ids = publish_batch(&env.producer().await, "deadline", n).await;
    let settings = [
        ("HERALD_SHUTDOWN_TIMEOUT", "500ms"),
        ("HERALD_SMTP_TIMEOUT", "3s"),
        ("HERALD_SEND_LEASE", "4s"),
    ];
    let mut worker = WorkerProcess::spawn(&env.broker.url, &env.db.url, &env.sink.url(), &settings);
    wait_until("a full prefetch in flight", secs(60), || async {
        status_count(&env.db.store, "sending").await == usize::from(PREFETCH)
    })
    .await;
    let started = Instant::now();
    let exit = worker.terminate_and_wait(secs(20)).await;
    let took = started.elapsed();
    assert!(exit.success(), "exit status {exit}");
    assert!(
        took < secs(2),
        "the worker took {took:?} to give up its in-flight jobs"
    );
    assert_eq!(env.sink.count(), 0);

    env.sink.set_faults(FaultPlan::none());
    let mut worker = WorkerProcess::spawn(&env.broker.url, &env.db.url, &env.sink.url(), &settings);
    wait_all_sent(&env.db.store, n, secs(60)).await;
    worker.terminate_and_wait(secs(20)).await;
    let tally = Tally::of(&env.sink);
    assert_eq!(tally.lost(&ids), 0);
    assert_eq!(tally.duplicates(), 0);
}

// ---------------------------------------------------------------------------------------------
// 3. Several workers on one queue, with jobs published twice at the same time.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_send_each_job_exactly_once_even_when_it_is_published_twice() {
    init_logs();
    let env = TestEnv::new().await.unwrap();
    env.sink.set_faults(FaultPlan::delay_all(ms(10)));
    let n = 300 * scale();
    let doubled = n / 5;
    let mut config = env.config();
    config.prefetch = PREFETCH;
    config.max_attempts = 50;
    let workers: Vec<_> = (0..3).map(|_| env.spawn_worker(config.clone())).collect();

    // Two producers publish the first `doubled` ids at the same time, so both copies are in the
    // queue together and usually reach two workers at once.
    let (a, b) = (env.producer().await, env.producer().await);
    let jobs: Vec<EmailJob> = (0..n).map(|i| job("multi", i)).collect();
    let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    tokio::join!(
        async {
            for job in &jobs {
                a.publish(job).await.unwrap();
            }
        },
        async {
            for job in &jobs[..doubled] {
                b.publish(job).await.unwrap();
            }
        }
    );

    wait_all_sent(&env.db.store, n, scaled(secs(120))).await;
    // Every second copy must have been recognised as a duplicate before we count mail.
    wait_until("every second copy settled", scaled(secs(60)), || async {
        let mut settled = 0;
        for id in &ids[..doubled] {
            let events = env.db.store.job_events(id).await.unwrap();
            settled += usize::from(events.iter().any(|e| e.event == "duplicate"));
        }
        settled == doubled
    })
    .await;
    for worker in workers {
        worker.stop().await.unwrap();
    }

    let tally = Tally::of(&env.sink);
    let row = Row {
        scenario: "3 workers, 1 queue, ids doubled",
        published: n,
        delivered: tally.delivered_of(&ids),
        dead: dead_letters(&env.broker).await,
        lost: tally.lost(&ids),
        duplicated: tally.duplicates(),
        note: format!("{n} ids, {doubled} published twice concurrently"),
    };
    row.report();
    row.assert_nothing_lost();
    assert_eq!(row.duplicated, 0, "a job was sent twice");
    assert_eq!(env.sink.count(), n);
    assert_ledger_all_sent_with_one_ticket(&env.db.store, &ids).await;
}

// ---------------------------------------------------------------------------------------------
// 4. RabbitMQ restarted under load (private node).

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_broker_loses_nothing_and_the_worker_reconnects_on_its_own() {
    init_logs();
    let _serial = PRIVATE_SERVICES.lock().await;
    let mut rabbit = PrivateRabbit::start().await.unwrap();
    let db = TestDb::new().await.unwrap();
    let sink = MailSink::start().await.unwrap();
    sink.set_faults(FaultPlan::delay_all(ms(50)));
    let mut config = test_config(&rabbit.url());
    config.max_attempts = 50;
    let worker = InProcessWorker::spawn(db.store.clone(), &sink, config);
    // A producer that lives through every outage, publishing all along.
    let producer = Arc::new(
        Producer::connect_with(&rabbit.url(), TestEnv::topology())
            .await
            .unwrap(),
    );
    let publishers = Publishers::start(producer.clone(), "live", 2, ms(20));

    let cycles = if scale() > 1 { 3 } else { 1 };
    let mut backlog = Vec::new();
    let mut slowest = Duration::ZERO;
    for k in 0..2 * cycles {
        // A backlog published just before the fault, by a producer closed at once: the worker
        // is busy with it when the broker goes, and must finish it after the restart.
        let batch = publish_fresh(&rabbit.url(), &format!("backlog{k}"), 400).await;
        let target = sink.count() + 40;
        wait_until("the worker busy with the backlog", secs(60), || async {
            sink.count() >= target
        })
        .await;
        if k % 2 == 0 {
            // stop_app: the broker closes every connection and stops listening; the node stays.
            rabbit.stop_app().await.unwrap();
            publishers.wait_attempts_after_now(2).await;
            rabbit.start_app().await.unwrap();
        } else {
            // A whole node stop and boot; the quorum queues come back from disk.
            rabbit.stop_node().await.unwrap();
            publishers.wait_attempts_after_now(2).await;
            rabbit.start_node().await.unwrap();
        }
        let back = Instant::now();
        wait_until(
            "the backlog delivered after the restart",
            secs(90),
            || async { delivered_ids(&sink).is_superset(&batch.iter().cloned().collect()) },
        )
        .await;
        slowest = slowest.max(back.elapsed());
        backlog.extend(batch);
    }
    // Whether the long-lived producer publishes again (lapin's own recovery; not asserted).
    let producer_back = publishers.wait_ok_after_now(secs(60)).await;
    let outcomes = publishers.stop().await;
    close(producer).await;
    let live: Vec<&(String, bool)> = outcomes.iter().collect();
    let mut confirmed: Vec<String> = live
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(id, _)| id.clone())
        .collect();
    let refused = live.len() - confirmed.len();
    confirmed.extend(backlog.iter().cloned());
    let wanted: BTreeSet<String> = confirmed.iter().cloned().collect();
    let deadline = Instant::now() + secs(90);
    while !delivered_ids(&sink).is_superset(&wanted) && Instant::now() < deadline {
        tokio::time::sleep(ms(50)).await;
    }
    let missing: Vec<String> = wanted.difference(&delivered_ids(&sink)).cloned().collect();
    if !missing.is_empty() {
        let mut ledger = Vec::new();
        for id in missing.iter().take(5) {
            ledger.push(
                db.store
                    .job(id)
                    .await
                    .unwrap()
                    .map(|j| (j.status, j.attempts)),
            );
        }
        let depth = consumers_and_depth(&rabbit.url(), "herald.email").await;
        let outcome_of: Vec<_> = live
            .iter()
            .filter(|(id, _)| missing.contains(id))
            .take(5)
            .collect();
        panic!(
            "{} confirmed jobs never delivered: {:?}; ledger {ledger:?}; herald.email (ready, \
             consumers) {depth:?}; publish outcomes {outcome_of:?}; worker finished: {}",
            missing.len(),
            &missing[..missing.len().min(10)],
            worker.finished()
        );
    }

    // One consumer: the worker's, rebuilt; no stale consumer left from an old session.
    let consumers = consumers_on(&rabbit.url(), "herald.email").await;
    assert!(
        !worker.finished(),
        "the worker gave up instead of reconnecting"
    );
    worker.stop().await.unwrap();

    let tally = Tally::of(&sink);
    let refused_ids: Vec<String> = live
        .iter()
        .filter(|(_, ok)| !*ok)
        .map(|(id, _)| id.clone())
        .collect();
    let row = Row {
        scenario: "RabbitMQ stop_app + node restart",
        published: confirmed.len(),
        delivered: tally.delivered_of(&confirmed),
        dead: dead_letters_at(&rabbit.url()).await,
        lost: tally.lost(&confirmed),
        duplicated: tally.duplicates(),
        note: format!(
            "{cycles}x (stop_app, node restart); worker caught up <= {slowest:.1?} after each; \
             {refused} publishes refused with an error ({} delivered anyway); \
             long-lived producer publishing again: {}",
            tally.delivered_of(&refused_ids),
            if producer_back { "yes" } else { "NO" }
        ),
    };
    row.report();
    assert_eq!(consumers, 1, "consumers on herald.email after the restarts");
    row.assert_nothing_lost();
    assert_eq!(row.dead, 0);
    tally.assert_copies_identical();
    // Each outage can cut at most a prefetch of sends between SMTP and the ledger.
    assert!(row.duplicated <= 2 * cycles * usize::from(PREFETCH));
    assert_ledger_all_sent_with_one_ticket(&db.store, &confirmed).await;
    drop(rabbit);
}

// ---------------------------------------------------------------------------------------------
// 5. PostgreSQL stopped and restarted under load (private server).

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_is_retried_from_the_delay_queues_and_leaves_the_ledger_consistent() {
    init_logs();
    let _serial = PRIVATE_SERVICES.lock().await;
    let mut pg = PrivatePostgres::start().await.unwrap();
    let store = Store::connect_with(&pg.url("herald"), 10).await.unwrap();
    store.migrate().await.unwrap();
    let broker = TestBroker::new().await.unwrap();
    let sink = MailSink::start().await.unwrap();
    sink.set_faults(FaultPlan::delay_all(ms(10)));
    let mut config = test_config(&broker.url);
    config.max_attempts = 100;
    let worker = InProcessWorker::spawn(store.clone(), &sink, config);
    let producer = Arc::new(
        Producer::connect_with(&broker.url, TestEnv::topology())
            .await
            .unwrap(),
    );
    let publishers = Publishers::start(producer.clone(), "db", 1, ms(40));
    wait_until("deliveries before the outage", secs(60), || async {
        sink.count() >= 40
    })
    .await;

    // A clean shutdown (clients are disconnected), then a crash (no shutdown checkpoint). Each
    // outage lasts until a job has been put on a retry queue because of it (a delivery waits up
    // to 10 s for a pooled connection, twice: to begin and to record the failure), and at least
    // HERALD_CHAOS_PG_DOWN (2 s by default).
    let min_outage = std::env::var("HERALD_CHAOS_PG_DOWN")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .unwrap_or(secs(2));
    let mut first_retry = Vec::new();
    let mut outages = Vec::new();
    for mode in ["fast", "immediate"] {
        let before = sink.count();
        pg.stop_server(mode).await.unwrap();
        let down = Instant::now();
        wait_until("a retry copy on a delay queue", secs(90), || async {
            retry_depth(&broker).await > 0
        })
        .await;
        first_retry.push(down.elapsed());
        tokio::time::sleep(min_outage.saturating_sub(down.elapsed())).await;
        pg.start_server().await.unwrap();
        outages.push(down.elapsed());
        wait_until("deliveries to resume", secs(120), || async {
            sink.count() >= before + 40
        })
        .await;
    }
    let outcomes = publishers.stop().await;
    close(producer).await;
    let ids: Vec<String> = outcomes.iter().map(|(id, _)| id.clone()).collect();
    assert!(outcomes.iter().all(|(_, ok)| *ok), "the broker was up");
    wait_until("every job delivered", secs(120), || async {
        delivered_ids(&sink).is_superset(&ids.iter().cloned().collect())
    })
    .await;
    // The ledger catches up with the mail (each delivery records itself once it can).
    let _ = all_sent_within(&store, ids.len(), secs(30)).await;
    assert!(!worker.finished());
    worker.stop().await.unwrap();

    let tally = Tally::of(&sink);
    let not_sent = ids.len() - ids_in_status(&store, &ids, "sent").await.len();
    let retried = {
        let mut retried = 0;
        for id in &ids {
            let job = store.job(id).await.unwrap().unwrap();
            retried += usize::from(job.attempts > 1);
        }
        retried
    };
    let row = Row {
        scenario: "PostgreSQL stop (fast, crash) + start",
        published: ids.len(),
        delivered: tally.delivered_of(&ids),
        dead: broker.depth("herald.email.dead").await as usize,
        lost: tally.lost(&ids),
        duplicated: tally.duplicates(),
        note: format!(
            "outages (fast, crash) {:.1?}, first retry copy after {:.1?}; {retried} jobs took \
             more than one attempt; {not_sent} delivered jobs not 'sent' in the ledger",
            outages, first_retry
        ),
    };
    row.report();
    row.assert_nothing_lost();
    tally.assert_copies_identical();
    assert_eq!(row.dead, 0, "a database outage dead-lettered jobs");
    assert!(retried > 0, "no job was retried: the outage did not bite");
    assert!(row.duplicated <= 2 * usize::from(PREFETCH));
    assert_ledger_all_sent_with_one_ticket(&store, &ids).await;
    store.close().await;
    drop(pg);
}

// ---------------------------------------------------------------------------------------------
// 6. SMTP down, refusing, or slower than the send timeout.

/// How long the SMTP server stays down: 3 s against retry tiers of 200 ms and 400 ms here, ten
/// minutes against the production tiers under `scripts/chaos.sh` (see docs/reliability.md).
fn smtp_outage() -> Duration {
    std::env::var("HERALD_CHAOS_SMTP_DOWN")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .unwrap_or(secs(3))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smtp_down_then_back_on_the_same_port_delivers_every_job() {
    init_logs();
    let mut env = TestEnv::new().await.unwrap();
    let production_tiers = std::env::var("HERALD_CHAOS_PRODUCTION_TIERS").is_ok();
    let mut config = env.config();
    config.prefetch = PREFETCH;
    config.max_attempts = 20;
    if production_tiers {
        config.topology = Topology::default();
        config.max_attempts = 10;
    }
    let producer = Producer::connect_with(&env.broker.url, config.topology.clone())
        .await
        .unwrap();
    let worker = env.spawn_worker(config.clone());
    let n = 100 * scale();
    let before = publish_batch(&producer, "warmup", 10).await;
    env.expect_mail(10).await;

    // The server goes away: connections are refused.
    let addr = env.sink.addr();
    let sink = std::mem::replace(&mut env.sink, MailSink::start().await.unwrap());
    sink.stop().await;
    let outage = smtp_outage();
    let down = Instant::now();
    let ids = publish_batch(&producer, "smtpdown", n).await;
    wait_until(
        "every job retried at least once",
        outage + secs(60),
        || async {
            let mut retried = 0;
            for id in &ids {
                if let Some(job) = env.db.store.job(id).await.unwrap() {
                    retried += usize::from(job.attempts >= 2);
                }
            }
            retried == n
        },
    )
    .await;
    tokio::time::sleep(outage.saturating_sub(down.elapsed())).await;
    env.sink = MailSink::start_with(SinkOptions {
        addr: Some(addr),
        ..SinkOptions::default()
    })
    .await
    .unwrap();
    let back = Instant::now();
    // The wait after the server is back is at most the retry tier a job is waiting in.
    wait_all_sent(&env.db.store, n + before.len(), outage + secs(120)).await;
    let catch_up = back.elapsed();
    worker.stop().await.unwrap();

    let tally = Tally::of(&env.sink);
    let max_attempts = max_attempts_of(&env.db.store, &ids).await;
    let row = Row {
        scenario: "SMTP down, back on the same port",
        published: n,
        delivered: tally.delivered_of(&ids),
        dead: dead_letters(&env.broker).await,
        lost: tally.lost(&ids),
        duplicated: tally.duplicates(),
        note: format!(
            "down {:.1?}, tiers {}, up to {max_attempts} attempts, all sent {catch_up:.1?} after",
            down.elapsed() - catch_up,
            tiers(&config.topology)
        ),
    };
    row.report();
    row.assert_nothing_lost();
    assert_eq!(row.dead, 0);
    assert_eq!(row.duplicated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smtp_421_replies_are_retried_until_the_server_accepts_again() {
    init_logs();
    let env = TestEnv::new().await.unwrap();
    let mut config = env.config();
    config.prefetch = PREFETCH;
    config.max_attempts = 20;
    let worker = env.spawn_worker(config);
    env.sink.set_faults(
        FaultPlan::reject_all(421, "4.3.2 Service not available, closing channel").at_mail(),
    );
    let n = 50 * scale();
    let ids = publish_batch(&env.producer().await, "smtp421", n).await;
    wait_until(
        "every job refused at least twice",
        scaled(secs(60)),
        || async {
            let mut refused = 0;
            for id in &ids {
                if let Some(job) = env.db.store.job(id).await.unwrap() {
                    refused += usize::from(job.attempts >= 2);
                }
            }
            refused == n
        },
    )
    .await;
    env.sink.set_faults(FaultPlan::none());
    wait_all_sent(&env.db.store, n, scaled(secs(60))).await;
    worker.stop().await.unwrap();

    let tally = Tally::of(&env.sink);
    let row = Row {
        scenario: "SMTP 421 at MAIL, then accepting",
        published: n,
        delivered: tally.delivered_of(&ids),
        dead: dead_letters(&env.broker).await,
        lost: tally.lost(&ids),
        duplicated: tally.duplicates(),
        note: format!("{} replies refused", env.sink.transactions_rejected()),
    };
    row.report();
    row.assert_nothing_lost();
    assert_eq!(row.dead, 0);
    assert_eq!(row.duplicated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smtp_slower_than_the_send_timeout_is_retried_and_duplicates_stay_within_the_attempts() {
    init_logs();
    let env = TestEnv::new().await.unwrap();
    let mut config = env.config();
    config.prefetch = PREFETCH;
    config.max_attempts = 50;
    config.send_timeout = ms(400);
    let worker = env.spawn_worker(config);
    // The reply after DATA comes after 1 s, past the 400 ms timeout; the sink stores the message
    // anyway, as a real server that took responsibility before answering would.
    env.sink.set_faults(FaultPlan::delay_all(secs(1)));
    let n = 30 * scale();
    let ids = publish_batch(&env.producer().await, "slow", n).await;
    wait_until(
        "every job timed out at least twice",
        scaled(secs(60)),
        || async {
            let mut retried = 0;
            for id in &ids {
                if let Some(job) = env.db.store.job(id).await.unwrap() {
                    retried += usize::from(job.attempts >= 3);
                }
            }
            retried == n
        },
    )
    .await;
    env.sink.set_faults(FaultPlan::none());
    wait_all_sent(&env.db.store, n, scaled(secs(60))).await;
    worker.stop().await.unwrap();
    // Sends abandoned by the timeout land up to the sink's delay later: wait for the sessions.
    wait_until("the sink's sessions to end", secs(10), || async {
        env.sink.open_connections() == 0
    })
    .await;

    let tally = Tally::of(&env.sink);
    let row = Row {
        scenario: "SMTP slower than the send timeout",
        published: n,
        delivered: tally.delivered_of(&ids),
        dead: dead_letters(&env.broker).await,
        lost: tally.lost(&ids),
        duplicated: tally.duplicates(),
        note: "reply after DATA 1 s, timeout 400 ms; copies <= attempts".into(),
    };
    row.report();
    row.assert_nothing_lost();
    assert_eq!(row.dead, 0);
    tally.assert_copies_identical();
    // Every copy comes from an attempt: a timed-out send the server accepted after all.
    for id in &ids {
        let attempts = env.db.store.job(id).await.unwrap().unwrap().attempts;
        let copies = tally.copies.get(id).map_or(0, Vec::len);
        assert!(
            copies as i32 <= attempts,
            "{id}: {copies} copies from {attempts} attempts"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smtp_hanging_before_data_times_out_and_is_retried_without_duplicates() {
    init_logs();
    let env = TestEnv::new().await.unwrap();
    let mut config = env.config();
    config.prefetch = PREFETCH;
    config.max_attempts = 50;
    config.send_timeout = ms(400);
    let worker = env.spawn_worker(config);
    env.sink.set_faults(FaultPlan::delay_all(secs(1)).at_mail());
    let n = 30 * scale();
    let ids = publish_batch(&env.producer().await, "hang", n).await;
    wait_until(
        "every job timed out at least twice",
        scaled(secs(60)),
        || async {
            let mut retried = 0;
            for id in &ids {
                if let Some(job) = env.db.store.job(id).await.unwrap() {
                    retried += usize::from(job.attempts >= 3);
                }
            }
            retried == n
        },
    )
    .await;
    env.sink.set_faults(FaultPlan::none());
    wait_all_sent(&env.db.store, n, scaled(secs(60))).await;
    worker.stop().await.unwrap();

    let tally = Tally::of(&env.sink);
    let row = Row {
        scenario: "SMTP hanging before DATA",
        published: n,
        delivered: tally.delivered_of(&ids),
        dead: dead_letters(&env.broker).await,
        lost: tally.lost(&ids),
        duplicated: tally.duplicates(),
        note: "MAIL answered after 1 s, timeout 400 ms".into(),
    };
    row.report();
    row.assert_nothing_lost();
    assert_eq!(row.dead, 0);
    assert_eq!(row.duplicated, 0);
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Logs to the test's captured output when `RUST_LOG` is set (shown for failing tests).
fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .with_ansi(false)
            .try_init();
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// 1 under `cargo test`; `HERALD_CHAOS_SCALE` under `scripts/chaos.sh`.
fn scale() -> usize {
    std::env::var("HERALD_CHAOS_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| *s >= 1)
        .unwrap_or(1)
}

/// A deadline stretched with the number of jobs.
fn scaled(timeout: Duration) -> Duration {
    timeout * u32::try_from(scale()).unwrap_or(u32::MAX)
}

/// A verification job (so it has a ticket) whose recipient's local part is its id.
fn job(prefix: &str, i: usize) -> EmailJob {
    let id = format!("{prefix}-{i:05}");
    EmailJob::builder(
        JobKind::Verification,
        format!("user|{id}"),
        format!("{id}@example.com"),
    )
    .id(id)
    .build()
    .expect("a valid job")
}

async fn publish_batch(producer: &Producer, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let job = job(prefix, i);
        producer.publish(&job).await.expect("the broker is up");
        ids.push(job.id.to_string());
    }
    ids
}

/// Publishes `n` jobs with a producer of its own, closed before returning.
async fn publish_fresh(amqp_url: &str, prefix: &str, n: usize) -> Vec<String> {
    let producer = Producer::connect_with(amqp_url, TestEnv::topology())
        .await
        .unwrap();
    let ids = publish_batch(&producer, prefix, n).await;
    producer.close().await;
    ids
}

/// The job ids the sink has mail for (from the envelope; cheap enough to poll).
fn delivered_ids(sink: &MailSink) -> BTreeSet<String> {
    sink.messages()
        .iter()
        .filter_map(|m| m.rcpt_to.first())
        .map(|r| r.split('@').next().unwrap_or_default().to_owned())
        .collect()
}

/// Polls `check` every 50 ms until it holds; panics with `what` after `timeout`.
async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(ms(50)).await;
    }
}

async fn status_count(store: &Store, status: &str) -> usize {
    store
        .job_status_counts()
        .await
        .unwrap()
        .into_iter()
        .find(|(s, _)| s == status)
        .map_or(0, |(_, n)| usize::try_from(n).unwrap())
}

/// Waits until the ledger shows `n` jobs sent; panics with the ledger's counts after `timeout`.
async fn wait_all_sent(store: &Store, n: usize, timeout: Duration) {
    if let Err(counts) = all_sent_within(store, n, timeout).await {
        panic!("not all {n} jobs sent after {timeout:?}; ledger: {counts:?}");
    }
}

/// Polls the ledger until `n` jobs are sent, or returns its counts after `timeout`.
async fn all_sent_within(
    store: &Store,
    n: usize,
    timeout: Duration,
) -> Result<(), Vec<(String, i64)>> {
    let deadline = Instant::now() + timeout;
    loop {
        let counts = store.job_status_counts().await.unwrap_or_default();
        let sent = counts
            .iter()
            .find(|(s, _)| s == "sent")
            .map_or(0, |(_, c)| usize::try_from(*c).unwrap_or(0));
        if sent >= n {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(counts);
        }
        tokio::time::sleep(ms(100)).await;
    }
}

async fn assert_ledger_all_sent_with_one_ticket(store: &Store, ids: &[String]) {
    for id in ids {
        let job = store
            .job(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} not in the ledger"));
        assert_eq!(job.status, "sent", "{id}: {job:?}");
        // tickets.job_id is UNIQUE, so "one" means "present".
        let ticket = store.ticket_for_job(id).await.unwrap();
        assert!(ticket.is_some(), "{id} was sent without a ticket");
        let sent_events = store
            .job_events(id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.event == "sent")
            .count();
        assert!(sent_events >= 1, "{id} has no 'sent' event");
    }
}

async fn ids_in_status(store: &Store, ids: &[String], status: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for id in ids {
        if let Some(job) = store.job(id).await.unwrap()
            && job.status == status
        {
            found.insert(id.clone());
        }
    }
    found
}

async fn max_attempts_of(store: &Store, ids: &[String]) -> i32 {
    let mut max = 0;
    for id in ids {
        if let Some(job) = store.job(id).await.unwrap() {
            max = max.max(job.attempts);
        }
    }
    max
}

async fn dead_letters(broker: &TestBroker) -> usize {
    broker.depth("herald.email.dead").await as usize
}

async fn dead_letters_at(url: &str) -> usize {
    let conn = herald_queue::connect(url, "herald-fault-test")
        .await
        .unwrap();
    let stats = herald_queue::queue_stats(&conn, "herald.email.dead")
        .await
        .unwrap();
    let _ = conn.close(200, "OK".into()).await;
    stats.messages as usize
}

async fn consumers_and_depth(url: &str, queue: &str) -> (u32, u32) {
    let conn = herald_queue::connect(url, "herald-fault-test")
        .await
        .unwrap();
    let stats = herald_queue::queue_stats(&conn, queue).await.unwrap();
    let _ = conn.close(200, "OK".into()).await;
    (stats.messages, stats.consumers)
}

async fn consumers_on(url: &str, queue: &str) -> u32 {
    let conn = herald_queue::connect(url, "herald-fault-test")
        .await
        .unwrap();
    let stats = herald_queue::queue_stats(&conn, queue).await.unwrap();
    let _ = conn.close(200, "OK".into()).await;
    stats.consumers
}

async fn retry_depth(broker: &TestBroker) -> u32 {
    let mut depth = 0;
    for queue in TestEnv::topology().retry_queues() {
        depth += broker.depth(&queue).await;
    }
    depth
}

fn tiers(topology: &Topology) -> String {
    topology
        .retry_delays
        .iter()
        .map(|d| herald_queue::topology::compact(*d))
        .collect::<Vec<_>>()
        .join(",")
}

/// Closes a producer whose publishing tasks have ended.
async fn close(producer: Arc<Producer>) {
    if let Ok(producer) = Arc::try_unwrap(producer) {
        producer.close().await;
    }
}

/// A worker config like `TestEnv::config` for a broker of our own.
fn test_config(amqp_url: &str) -> WorkerConfig {
    let mut config = WorkerConfig::local(amqp_url);
    config.topology = TestEnv::topology();
    config.public_url = url::Url::parse(TEST_PUBLIC_URL).unwrap();
    config.message_id_domain = "id.herald.test".into();
    config.send_timeout = secs(10);
    config.shutdown_timeout = secs(10);
    config.prefetch = PREFETCH;
    config
}

/// A worker running in this process against any store, broker and sink.
#[derive(Debug)]
struct InProcessWorker {
    token: CancellationToken,
    handle: JoinHandle<Result<(), WorkerError>>,
}

impl InProcessWorker {
    fn spawn(store: Store, sink: &MailSink, config: WorkerConfig) -> Self {
        let renderer = Arc::new(Renderer::embedded().unwrap());
        let mailer = Mailer::from_url(&sink.url(), MailerOptions::default()).unwrap();
        let worker = Worker::new(Pipeline::new(store, renderer, mailer, config));
        let token = CancellationToken::new();
        let handle = tokio::spawn({
            let token = token.clone();
            async move { worker.run(token).await }
        });
        InProcessWorker { token, handle }
    }

    fn finished(&self) -> bool {
        self.handle.is_finished()
    }

    async fn stop(self) -> Result<(), WorkerError> {
        self.token.cancel();
        self.handle.await.unwrap()
    }
}

/// `herald worker` as a child process, configured like the tests' in-process workers. Dropping
/// it SIGKILLs the process if it is still running.
#[derive(Debug)]
struct WorkerProcess {
    child: Child,
}

impl WorkerProcess {
    fn spawn(amqp: &str, db: &str, smtp: &str, extra: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(HERALD);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HERALD_AMQP_URL", amqp)
            .env("HERALD_DATABASE_URL", db)
            .env("HERALD_SMTP_URL", smtp)
            .env("HERALD_PUBLIC_URL", "https://id.herald.test")
            .env("HERALD_TICKET_SECRET", SECRET)
            .env("HERALD_PREFETCH", PREFETCH.to_string())
            .env("HERALD_RETRY_DELAYS", "200ms,400ms")
            .env("HERALD_MAX_ATTEMPTS", "50")
            .env("HERALD_SMTP_TIMEOUT", "2s")
            .env("HERALD_SEND_LEASE", "3s")
            .env("HERALD_METRICS_ADDR", "off")
            .env("RUST_LOG", "error");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd
            .arg("worker")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the herald binary starts");
        WorkerProcess { child }
    }

    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the worker");
        self.child.wait().expect("reap the worker");
    }

    /// Sends SIGTERM and waits for the exit.
    async fn terminate_and_wait(&mut self, timeout: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not exit after SIGTERM"
            );
            tokio::time::sleep(ms(20)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Tasks publishing fresh jobs back to back until stopped, recording each outcome.
#[derive(Debug)]
struct Publishers {
    stop: CancellationToken,
    attempts: Arc<AtomicUsize>,
    outcomes: Arc<Mutex<Vec<(String, bool)>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Publishers {
    fn start(producer: Arc<Producer>, prefix: &str, tasks: usize, pause: Duration) -> Self {
        let stop = CancellationToken::new();
        let attempts = Arc::new(AtomicUsize::new(0));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..tasks)
            .map(|t| {
                let (producer, stop) = (producer.clone(), stop.clone());
                let (attempts, outcomes) = (attempts.clone(), outcomes.clone());
                let prefix = format!("{prefix}{t}");
                tokio::spawn(async move {
                    let mut i = 0;
                    while !stop.is_cancelled() {
                        let job = job(&prefix, i);
                        i += 1;
                        attempts.fetch_add(1, Ordering::SeqCst);
                        let ok = producer.publish(&job).await.is_ok();
                        outcomes.lock().unwrap().push((job.id.to_string(), ok));
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Publishers {
            stop,
            attempts,
            outcomes,
            tasks,
        }
    }

    /// Waits until `n` more publishes have started (so some run during an outage).
    async fn wait_attempts_after_now(&self, n: usize) {
        let target = self.attempts.load(Ordering::SeqCst) + n;
        wait_until("publishes during the outage", secs(60), || async {
            self.attempts.load(Ordering::SeqCst) >= target
        })
        .await;
    }

    /// Whether a publish succeeds within `timeout` from now.
    async fn wait_ok_after_now(&self, timeout: Duration) -> bool {
        let ok = || {
            self.outcomes
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, ok)| *ok)
                .count()
        };
        let target = ok() + 1;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if ok() >= target {
                return true;
            }
            tokio::time::sleep(ms(50)).await;
        }
        false
    }

    async fn stop(self) -> Vec<(String, bool)> {
        self.stop.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
        std::mem::take(&mut *self.outcomes.lock().unwrap())
    }
}

/// One email as received: its Message-ID and its ticket link.
type MailCopy = (Option<String>, Option<String>);

/// What the sink received, per job id (the recipient's local part).
#[derive(Debug, Default)]
struct Tally {
    /// For each job: every copy's Message-ID and ticket link.
    copies: BTreeMap<String, Vec<MailCopy>>,
}

impl Tally {
    fn of(sink: &MailSink) -> Tally {
        let mut tally = Tally::default();
        for mail in sink.messages() {
            let rcpt = mail.rcpt_to.first().cloned().unwrap_or_default();
            let id = rcpt.split('@').next().unwrap_or_default().to_owned();
            let parsed = mail.parsed();
            let link = parsed.text().and_then(|text| {
                text.split_whitespace()
                    .find(|w| w.contains("/u/email-verification?ticket="))
                    .map(str::to_owned)
            });
            tally
                .copies
                .entry(id)
                .or_default()
                .push((parsed.message_id(), link));
        }
        tally
    }

    fn delivered_of(&self, ids: &[String]) -> usize {
        let ids: BTreeSet<&String> = ids.iter().collect();
        ids.iter()
            .filter(|id| self.copies.contains_key(**id))
            .count()
    }

    fn lost(&self, ids: &[String]) -> usize {
        let distinct: BTreeSet<&String> = ids.iter().collect();
        distinct.len() - self.delivered_of(ids)
    }

    /// Copies beyond the first, over every job.
    fn duplicates(&self) -> usize {
        self.copies.values().map(|c| c.len() - 1).sum()
    }

    /// A duplicate is the same email: same Message-ID and same ticket link.
    fn assert_copies_identical(&self) {
        for (id, copies) in &self.copies {
            let first = &copies[0];
            assert!(
                first.0.as_deref().is_some_and(|m| m.contains(id.as_str())),
                "{id}: Message-ID {:?}",
                first.0
            );
            for copy in &copies[1..] {
                assert_eq!(copy, first, "{id}: a duplicate differs from the first copy");
            }
        }
    }
}

/// One line of the chaos table.
#[derive(Debug)]
struct Row {
    scenario: &'static str,
    published: usize,
    delivered: usize,
    dead: usize,
    lost: usize,
    duplicated: usize,
    note: String,
}

impl Row {
    /// Prints the row and, under `scripts/chaos.sh`, appends it to `HERALD_CHAOS_REPORT`.
    fn report(&self) {
        let line = format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.scenario,
            self.published,
            self.delivered,
            self.dead,
            self.lost,
            self.duplicated,
            self.note
        );
        eprintln!("chaos row: {line}");
        if let Ok(path) = std::env::var("HERALD_CHAOS_REPORT") {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the chaos report");
            writeln!(file, "{line}").expect("write the chaos report");
        }
    }

    fn assert_nothing_lost(&self) {
        assert_eq!(self.lost, 0, "{self:?}");
        assert_eq!(self.delivered, self.published, "{self:?}");
    }
}
