//! The mailer against a real SMTP server on 127.0.0.1: the in-process mail sink.

use std::time::Duration;

use herald_mailsink::{FaultPlan, MailSink, SinkOptions};
use herald_smtp::{Delivered, FailureClass, Mailer, MailerOptions, SendError, Stage};
use lettre::Message;
use lettre::message::MultiPart;

const WAIT: Duration = Duration::from_secs(10);

fn options() -> MailerOptions {
    MailerOptions {
        timeout: WAIT,
        ..MailerOptions::default()
    }
}

fn mailer(sink: &MailSink) -> Mailer {
    Mailer::from_url(&sink.url(), options()).unwrap()
}

fn message(to: &str, id: &str) -> Message {
    Message::builder()
        .from("Herald <noreply@herald.test>".parse().unwrap())
        .to(to.parse().unwrap())
        .subject(format!("Olá {id}"))
        .message_id(Some(format!("<{id}@herald.test>")))
        .multipart(MultiPart::alternative_plain_html(
            format!("Your code is {id}."),
            format!("<p>Your code is <b>{id}</b>.</p>"),
        ))
        .unwrap()
}

#[test]
fn the_mailer_is_clone_send_and_sync() {
    fn assert_shared<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}
    assert_shared::<Mailer>();
    assert_error::<SendError>();
    assert_error::<herald_smtp::ConfigError>();
}

#[tokio::test]
async fn a_multipart_message_is_delivered_and_parses_back() {
    let sink = MailSink::start().await.unwrap();
    let mailer = mailer(&sink);

    let delivered = mailer
        .send(&message("ana@example.org", "m1"))
        .await
        .unwrap();
    let Delivered::Smtp { reply } = delivered else {
        panic!("expected an SMTP delivery, got {delivered:?}");
    };
    assert!(reply.starts_with("250 "), "{reply}");

    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].mail_from, "noreply@herald.test");
    assert_eq!(mails[0].rcpt_to, vec!["ana@example.org"]);
    let parsed = mails[0].parsed();
    assert_eq!(parsed.subject().as_deref(), Some("Olá m1"));
    assert_eq!(parsed.message_id().as_deref(), Some("m1@herald.test"));
    assert_eq!(
        parsed.content_type().as_deref(),
        Some("multipart/alternative")
    );
    assert_eq!(
        parsed.text().as_deref().map(str::trim_end),
        Some("Your code is m1.")
    );
    assert_eq!(
        parsed.html().as_deref().map(str::trim_end),
        Some("<p>Your code is <b>m1</b>.</p>")
    );
    assert_eq!((mailer.in_use(), mailer.idle()), (0, 1));
}

#[tokio::test]
async fn non_ascii_addresses_go_through_with_smtputf8() {
    let sink = MailSink::start().await.unwrap();
    mailer(&sink)
        .send(&message("josé@example.org", "utf8"))
        .await
        .unwrap();
    assert_eq!(
        sink.wait_for(1, WAIT).await[0].rcpt_to,
        vec!["josé@example.org"]
    );
}

#[tokio::test]
async fn a_4xx_reply_is_transient_and_the_connection_is_kept() {
    let sink = MailSink::start().await.unwrap();
    sink.set_faults(FaultPlan::reject_next(1, 451, "4.3.0 Try again later"));
    let mailer = mailer(&sink);

    let error = mailer
        .send(&message("a@example.org", "x"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), FailureClass::Transient, "{error}");
    assert_eq!(error.code(), Some(451));
    assert_eq!(error.stage(), Some(Stage::Message));
    assert!(
        error.to_string().contains("4.3.0 Try again later"),
        "{error}"
    );

    mailer.send(&message("a@example.org", "y")).await.unwrap();
    assert_eq!(sink.count(), 1);
    assert_eq!(
        sink.connections(),
        1,
        "a rejection does not cost the connection"
    );
}

#[tokio::test]
async fn a_5xx_reply_is_permanent_at_rcpt_and_after_data() {
    let sink = MailSink::start().await.unwrap();
    let mailer = mailer(&sink);

    sink.set_faults(
        FaultPlan::reject_all(550, "5.1.1 No such user")
            .at_rcpt()
            .when_recipient_contains("nobody"),
    );
    let error = mailer
        .send(&message("nobody@example.org", "x"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), FailureClass::Permanent, "{error}");
    assert_eq!(error.code(), Some(550));
    assert_eq!(error.stage(), Some(Stage::RcptTo));

    // After RSET the same connection carries the next message.
    mailer
        .send(&message("somebody@example.org", "y"))
        .await
        .unwrap();

    sink.set_faults(FaultPlan::reject_all(554, "5.7.1 Rejected"));
    let error = mailer
        .send(&message("a@example.org", "z"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), FailureClass::Permanent, "{error}");
    assert_eq!(error.code(), Some(554));
    assert_eq!(error.stage(), Some(Stage::Message));

    assert_eq!(sink.count(), 1);
    assert_eq!(sink.connections(), 1);
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mailer = Mailer::from_url(&format!("smtp://127.0.0.1:{port}"), options()).unwrap();

    let error = mailer
        .send(&message("a@example.org", "x"))
        .await
        .unwrap_err();
    assert!(matches!(error, SendError::Connect { .. }), "{error:?}");
    assert_eq!(error.class(), FailureClass::Transient);
    assert_eq!(error.code(), None);
    assert!(mailer.check().await.is_err());
    assert_eq!((mailer.in_use(), mailer.idle()), (0, 0));
}

#[tokio::test]
async fn a_server_that_stops_answering_times_out_as_transient() {
    let sink = MailSink::start().await.unwrap();
    sink.set_faults(FaultPlan::delay_all(Duration::from_secs(30)));
    let mailer = Mailer::from_url(
        &sink.url(),
        MailerOptions {
            timeout: Duration::from_millis(300),
            ..MailerOptions::default()
        },
    )
    .unwrap();

    let error = mailer
        .send(&message("a@example.org", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            SendError::Timeout {
                stage: Stage::Message,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.class(), FailureClass::Transient);
    assert_eq!(mailer.idle(), 0, "a timed-out connection is not reused");
}

#[tokio::test]
async fn a_connection_dropped_after_data_is_transient_and_not_retried() {
    let sink = MailSink::start().await.unwrap();
    let mailer = mailer(&sink);
    mailer
        .send(&message("a@example.org", "warm"))
        .await
        .unwrap();
    sink.set_faults(FaultPlan::disconnect_next(1));

    let error = mailer
        .send(&message("a@example.org", "x"))
        .await
        .unwrap_err();
    assert_eq!(error.class(), FailureClass::Transient, "{error:?}");
    assert_eq!(error.stage(), Some(Stage::Message));
    // The server may or may not have kept it: repeating it here could duplicate the message,
    // so the mailer leaves that to the caller's retry policy.
    assert_eq!(sink.count(), 1);
    assert_eq!(sink.transactions_rejected(), 1);
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_server_is_replaced_once() {
    let sink = MailSink::start().await.unwrap();
    let mailer = mailer(&sink);
    mailer
        .send(&message("a@example.org", "before"))
        .await
        .unwrap();
    assert_eq!(mailer.idle(), 1);

    sink.disconnect_all();
    for _ in 0..500 {
        if sink.open_connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.open_connections(), 0);

    mailer
        .send(&message("a@example.org", "after"))
        .await
        .unwrap();
    assert_eq!(sink.count(), 2);
    assert_eq!(sink.connections(), 2);
    mailer.check().await.unwrap();
}

#[tokio::test]
async fn credentials_in_the_url_authenticate() {
    let sink = MailSink::start_with(SinkOptions {
        credentials: Some(("herald".to_owned(), "p@ss:word".to_owned())),
        ..SinkOptions::default()
    })
    .await
    .unwrap();
    let port = sink.addr().port();

    let url = format!("smtp://herald:p%40ss%3Aword@127.0.0.1:{port}");
    let mailer = Mailer::from_url(&url, options()).unwrap();
    assert_eq!(
        mailer.describe(),
        format!("smtp://herald@127.0.0.1:{port} (pool 8)")
    );
    assert!(!format!("{mailer:?}").contains("word"));
    mailer
        .send(&message("a@example.org", "authed"))
        .await
        .unwrap();
    mailer.check().await.unwrap();
    assert_eq!(sink.count(), 1);

    // A wrong password is a configuration problem, not this message's: transient.
    let wrong =
        Mailer::from_url(&format!("smtp://herald:nope@127.0.0.1:{port}"), options()).unwrap();
    let error = wrong
        .send(&message("a@example.org", "x"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.stage()),
        (Some(535), Some(Stage::Auth)),
        "{error}"
    );
    assert_eq!(error.class(), FailureClass::Transient);
    assert!(!error.to_string().contains("nope"), "{error}");

    let anonymous = mailer_for_port(port);
    let error = anonymous
        .send(&message("a@example.org", "x"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(530), "{error}");
}

fn mailer_for_port(port: u16) -> Mailer {
    Mailer::from_url(&format!("smtp://127.0.0.1:{port}"), options()).unwrap()
}

#[tokio::test]
async fn many_sends_reuse_few_connections() {
    let sink = MailSink::start().await.unwrap();
    let mailer = Mailer::from_url(
        &sink.url(),
        MailerOptions {
            pool_size: 4,
            ..options()
        },
    )
    .unwrap();

    for n in 0..50 {
        mailer
            .send(&message("a@example.org", &format!("seq{n}")))
            .await
            .unwrap();
    }
    assert_eq!(
        sink.connections(),
        1,
        "sequential sends share one connection"
    );

    let mut tasks = Vec::new();
    for n in 0..100 {
        let mailer = mailer.clone();
        tasks.push(tokio::spawn(async move {
            mailer
                .send(&message("b@example.org", &format!("par{n}")))
                .await
                .map(|_| mailer.in_use())
        }));
    }
    for task in tasks {
        let in_use = task.await.unwrap().unwrap();
        assert!(in_use <= 4, "{in_use} connections in use");
    }
    assert_eq!(sink.count(), 150);
    assert!(
        sink.connections() <= 4,
        "{} connections",
        sink.connections()
    );
    assert_eq!(mailer.in_use(), 0);
    assert!(mailer.idle() <= 4);

    mailer.close().await;
    assert_eq!(mailer.idle(), 0);
}

#[tokio::test]
async fn idle_connections_past_the_idle_timeout_are_not_reused() {
    let sink = MailSink::start().await.unwrap();
    let mailer = Mailer::from_url(
        &sink.url(),
        MailerOptions {
            idle_timeout: Duration::from_millis(1),
            ..options()
        },
    )
    .unwrap();
    mailer.send(&message("a@example.org", "one")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    mailer.send(&message("a@example.org", "two")).await.unwrap();
    assert_eq!(sink.connections(), 2);
}

#[tokio::test]
async fn tls_that_cannot_be_had_is_a_transient_failure() {
    let sink = MailSink::start().await.unwrap();
    let port = sink.addr().port();

    // smtps:// against a plain-text server: the handshake fails.
    let implicit = Mailer::from_url(&format!("smtps://127.0.0.1:{port}"), options()).unwrap();
    let error = implicit
        .send(&message("a@example.org", "x"))
        .await
        .unwrap_err();
    assert!(matches!(error, SendError::TlsHandshake { .. }), "{error:?}");
    assert_eq!(error.class(), FailureClass::Transient);

    // tls=required against a server without STARTTLS.
    let required =
        Mailer::from_url(&format!("smtp://127.0.0.1:{port}?tls=required"), options()).unwrap();
    let error = required
        .send(&message("a@example.org", "x"))
        .await
        .unwrap_err();
    assert_eq!(error.stage(), Some(Stage::StartTls), "{error:?}");
    assert_eq!(error.class(), FailureClass::Transient);

    // tls=opportunistic falls back to plain text.
    let opportunistic = Mailer::from_url(
        &format!("smtp://127.0.0.1:{port}?tls=opportunistic"),
        options(),
    )
    .unwrap();
    opportunistic
        .send(&message("a@example.org", "plain"))
        .await
        .unwrap();
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn the_file_outbox_writes_one_eml_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let url = format!("file://{}", outbox.display());
    let mailer = Mailer::from_url(&url, options()).unwrap();
    assert_eq!(mailer.describe(), url);
    mailer.check().await.unwrap();

    let first = message("a@example.org", "job-1");
    let Delivered::File { path } = mailer.send(&first).await.unwrap() else {
        panic!("expected a file delivery");
    };
    assert_eq!(path.parent(), Some(outbox.as_path()));
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let (millis, rest) = name.split_once('-').unwrap();
    assert!(millis.parse::<u128>().is_ok(), "{name}");
    assert_eq!(rest, "job-1@herald.test.eml");
    assert_eq!(std::fs::read(&path).unwrap(), first.formatted());

    // The same message twice never overwrites.
    let Delivered::File { path: again } = mailer.send(&first).await.unwrap() else {
        panic!("expected a file delivery");
    };
    assert_ne!(path, again);
    let files = std::fs::read_dir(&outbox).unwrap().count();
    assert_eq!(files, 2, "no temporary files are left");
}

#[tokio::test]
async fn a_file_outbox_that_cannot_be_written_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let mailer = Mailer::from_url(&format!("file://{}/sub", blocker.display()), options()).unwrap();
    let error = mailer
        .send(&message("a@example.org", "x"))
        .await
        .unwrap_err();
    assert!(matches!(error, SendError::File { .. }), "{error:?}");
    assert_eq!(error.class(), FailureClass::Transient);
    assert!(mailer.check().await.is_err());
}
