//! The mail sink driven by lettre's own transport and by raw SMTP exchanges over TCP.

use std::time::Duration;

use herald_mailsink::{FaultPlan, MailSink, SinkOptions};
use lettre::message::MultiPart;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

fn transport(sink: &MailSink) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.addr().port())
        .timeout(Some(WAIT))
        .build()
}

fn message(to: &str, subject: &str) -> Message {
    Message::builder()
        .from("Herald <noreply@herald.test>".parse().unwrap())
        .to(to.parse().unwrap())
        .subject(subject)
        .message_id(Some(format!("<{subject}@herald.test>")))
        .multipart(MultiPart::alternative_plain_html(
            "Olá, texto".to_owned(),
            "<p>Olá, <b>html</b></p>".to_owned(),
        ))
        .unwrap()
}

/// A raw SMTP client for protocol-level tests.
struct Raw {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Raw {
    async fn connect(sink: &MailSink) -> Raw {
        let stream = TcpStream::connect(sink.addr()).await.unwrap();
        let (r, w) = stream.into_split();
        let mut raw = Raw {
            reader: BufReader::new(r),
            writer: w,
        };
        assert_eq!(raw.reply().await.0, 220);
        raw
    }

    async fn send(&mut self, bytes: &str) {
        self.writer.write_all(bytes.as_bytes()).await.unwrap();
    }

    /// Reads one (possibly multi-line) reply: its code and its lines' text.
    async fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
                .await
                .expect("the sink answers in time")
                .unwrap();
            assert!(
                n > 0,
                "the sink closed the connection; got so far: {text:?}"
            );
            assert!(line.len() >= 4, "short reply line {line:?}");
            text.push_str(line[4..].trim_end());
            text.push('\n');
            if line.as_bytes()[3] == b' ' {
                return (line[..3].parse().unwrap(), text);
            }
        }
    }

    async fn command(&mut self, line: &str) -> (u16, String) {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }

    async fn expect(&mut self, line: &str, code: u16) -> String {
        let (got, text) = self.command(line).await;
        assert_eq!(got, code, "{line} -> {got} {text}");
        text
    }

    async fn is_closed(&mut self) -> bool {
        let mut line = String::new();
        matches!(
            tokio::time::timeout(WAIT, self.reader.read_line(&mut line)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

#[tokio::test]
async fn lettre_delivers_a_multipart_message_that_parses_back() {
    let sink = MailSink::start().await.unwrap();
    transport(&sink)
        .send(message("Bo <bo@example.org>", "hello"))
        .await
        .unwrap();

    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].mail_from, "noreply@herald.test");
    assert_eq!(mails[0].rcpt_to, vec!["bo@example.org"]);
    assert_eq!(mails[0].path, None);
    let parsed = mails[0].parsed();
    assert_eq!(parsed.subject().as_deref(), Some("hello"));
    assert_eq!(parsed.message_id().as_deref(), Some("hello@herald.test"));
    assert_eq!(parsed.from().as_deref(), Some("noreply@herald.test"));
    assert_eq!(parsed.to(), vec!["bo@example.org"]);
    assert_eq!(
        parsed.content_type().as_deref(),
        Some("multipart/alternative")
    );
    assert_eq!(
        parsed.text().as_deref().map(str::trim_end),
        Some("Olá, texto")
    );
    assert_eq!(
        parsed.html().as_deref().map(str::trim_end),
        Some("<p>Olá, <b>html</b></p>")
    );
    assert!(sink.url().starts_with("smtp://127.0.0.1:"));
}

#[tokio::test]
async fn many_concurrent_connections_and_transactions_are_all_captured() {
    let sink = MailSink::start().await.unwrap();
    let mut tasks = Vec::new();
    for client in 0..16 {
        let transport = transport(&sink);
        tasks.push(tokio::spawn(async move {
            for n in 0..10 {
                let to = format!("user{client}-{n}@example.org");
                transport
                    .send(message(&to, &format!("m{client}-{n}")))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mails = sink.wait_for(160, WAIT).await;
    assert_eq!(mails.len(), 160);
    assert_eq!(sink.count(), 160);
    // lettre's pool keeps connections, so there are far fewer connections than messages.
    assert!(
        sink.connections() < 160,
        "{} connections",
        sink.connections()
    );
}

#[tokio::test]
async fn dot_stuffed_lines_are_unstuffed_and_the_terminator_is_not_stored() {
    let sink = MailSink::start().await.unwrap();
    let mut raw = Raw::connect(&sink).await;
    raw.expect("EHLO client.test", 250).await;
    raw.expect("MAIL FROM:<a@x.test>", 250).await;
    raw.expect("RCPT TO:<b@x.test>", 250).await;
    raw.expect("DATA", 354).await;
    raw.send("Subject: dots\r\n\r\n..leading dot\r\n...two\r\n.\r\n")
        .await;
    assert_eq!(raw.reply().await.0, 250);
    raw.expect("QUIT", 221).await;

    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(
        mails[0].data_lossy(),
        "Subject: dots\r\n\r\n.leading dot\r\n..two\r\n"
    );
}

#[tokio::test]
async fn the_terminator_is_found_when_split_across_reads() {
    let sink = MailSink::start().await.unwrap();
    let mut raw = Raw::connect(&sink).await;
    raw.expect("HELO client.test", 250).await;
    raw.expect("MAIL FROM:<a@x.test>", 250).await;
    raw.expect("RCPT TO:<b@x.test>", 250).await;
    raw.expect("DATA", 354).await;
    for piece in ["Subject: s\r\n\r\nbody\r", "\n", ".", "\r", "\n"] {
        raw.send(piece).await;
        raw.writer.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(raw.reply().await.0, 250);
    assert_eq!(
        sink.wait_for(1, WAIT).await[0].data_lossy(),
        "Subject: s\r\n\r\nbody\r\n"
    );
}

#[tokio::test]
async fn a_dot_after_a_bare_lf_does_not_end_the_message() {
    let sink = MailSink::start().await.unwrap();
    let mut raw = Raw::connect(&sink).await;
    raw.expect("EHLO c", 250).await;
    raw.expect("MAIL FROM:<a@x.test>", 250).await;
    raw.expect("RCPT TO:<b@x.test>", 250).await;
    raw.expect("DATA", 354).await;
    raw.send("Subject: smuggle\r\n\r\nx\n.\r\nMAIL FROM:<evil@x.test>\r\n.\r\n")
        .await;
    assert_eq!(raw.reply().await.0, 250);
    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].data_lossy().contains("MAIL FROM:<evil@x.test>"));
}

#[tokio::test]
async fn pipelined_commands_get_their_replies_in_order() {
    let sink = MailSink::start().await.unwrap();
    let mut raw = Raw::connect(&sink).await;
    let ehlo = raw.expect("EHLO client.test", 250).await;
    for ext in ["PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE"] {
        assert!(ehlo.contains(ext), "EHLO lacks {ext}: {ehlo}");
    }
    assert!(
        !ehlo.contains("AUTH"),
        "no AUTH without credentials: {ehlo}"
    );
    raw.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n")
        .await;
    for expected in [250, 250, 250, 354] {
        assert_eq!(raw.reply().await.0, expected);
    }
    raw.send("Subject: p\r\n\r\nhi\r\n.\r\nMAIL FROM:<d@x.test>\r\nRCPT TO:<e@x.test>\r\nDATA\r\n")
        .await;
    for expected in [250, 250, 250, 354] {
        assert_eq!(raw.reply().await.0, expected);
    }
    raw.send("Subject: q\r\n\r\nho\r\n.\r\nQUIT\r\n").await;
    assert_eq!(raw.reply().await.0, 250);
    assert_eq!(raw.reply().await.0, 221);

    let mails = sink.wait_for(2, WAIT).await;
    assert_eq!(mails[0].rcpt_to, vec!["b@x.test", "c@x.test"]);
    assert_eq!(mails[1].mail_from, "d@x.test");
}

#[tokio::test]
async fn rset_discards_the_transaction_in_progress() {
    let sink = MailSink::start().await.unwrap();
    let mut raw = Raw::connect(&sink).await;
    raw.expect("EHLO c", 250).await;
    raw.expect("MAIL FROM:<first@x.test>", 250).await;
    raw.expect("RCPT TO:<dropped@x.test>", 250).await;
    raw.expect("RSET", 250).await;
    raw.expect("DATA", 503).await;
    raw.expect("MAIL FROM:<second@x.test>", 250).await;
    raw.expect("RCPT TO:<kept@x.test>", 250).await;
    raw.expect("DATA", 354).await;
    raw.send("Subject: r\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(raw.reply().await.0, 250);

    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails[0].mail_from, "second@x.test");
    assert_eq!(mails[0].rcpt_to, vec!["kept@x.test"]);
}

#[tokio::test]
async fn commands_out_of_order_unknown_or_too_long_get_errors() {
    let sink = MailSink::start().await.unwrap();
    let mut raw = Raw::connect(&sink).await;
    raw.expect("MAIL FROM:<a@x.test>", 503).await;
    raw.expect("EHLO", 501).await;
    raw.expect("EHLO c", 250).await;
    raw.expect("RCPT TO:<b@x.test>", 503).await;
    raw.expect("DATA", 503).await;
    raw.expect("MAIL FROM:<a@x.test>", 250).await;
    raw.expect("MAIL FROM:<a@x.test>", 503).await;
    raw.expect("DATA", 503).await;
    raw.expect("RCPT TO:<>", 501).await;
    raw.expect("RCPT TO b@x.test", 501).await;
    raw.expect("RSET", 250).await;
    raw.expect("MAIL FROM:<a@x.test> FOO=1", 555).await;
    raw.expect("MAIL FROM:<a@x.test> SIZE=999999999999", 552)
        .await;
    raw.expect("VRFY someone", 252).await;
    raw.expect("NOOP", 250).await;
    raw.expect("AUTH PLAIN", 502).await;
    raw.expect("STARTTLS", 502).await;
    raw.expect("BOGUS", 502).await;
    raw.expect(&format!("NOOP {}", "x".repeat(10_000)), 500)
        .await;
    raw.expect("NOOP", 250).await;
    raw.expect("QUIT", 221).await;
    assert!(raw.is_closed().await);
}

#[tokio::test]
async fn a_client_making_too_many_errors_is_disconnected() {
    let sink = MailSink::start().await.unwrap();
    let mut raw = Raw::connect(&sink).await;
    for _ in 0..19 {
        raw.expect("BOGUS", 502).await;
    }
    raw.send("BOGUS\r\n").await;
    assert_eq!(raw.reply().await.0, 502);
    assert_eq!(raw.reply().await.0, 421);
    assert!(raw.is_closed().await);
}

#[tokio::test]
async fn rejected_next_transactions_get_the_planned_reply_then_mail_flows_again() {
    let sink = MailSink::start().await.unwrap();
    sink.set_faults(FaultPlan::reject_next(1, 451, "4.3.0 Try again later"));
    let transport = transport(&sink);

    let error = transport
        .send(message("a@example.org", "first"))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.status().map(u16::from), Some(451));

    transport
        .send(message("a@example.org", "second"))
        .await
        .unwrap();
    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].parsed().subject().as_deref(), Some("second"));
    assert_eq!(sink.transactions_rejected(), 1);
}

#[tokio::test]
async fn reject_all_refuses_every_transaction_permanently() {
    let sink = MailSink::start().await.unwrap();
    sink.set_faults(FaultPlan::reject_all(554, "5.7.1 Rejected"));
    let transport = transport(&sink);
    for n in 0..3 {
        let error = transport
            .send(message("a@example.org", &format!("m{n}")))
            .await
            .unwrap_err();
        assert!(error.is_permanent(), "{error}");
    }
    assert_eq!(sink.count(), 0);
    assert_eq!(sink.transactions_rejected(), 3);
    sink.set_faults(FaultPlan::none());
    transport
        .send(message("a@example.org", "ok"))
        .await
        .unwrap();
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn recipient_rules_reject_only_matching_recipients_at_rcpt() {
    let sink = MailSink::start().await.unwrap();
    sink.set_faults(
        FaultPlan::reject_all(550, "5.1.1 No such user")
            .at_rcpt()
            .when_recipient_contains("bounce"),
    );
    let mut raw = Raw::connect(&sink).await;
    raw.expect("EHLO c", 250).await;
    raw.expect("MAIL FROM:<a@x.test>", 250).await;
    let text = raw.expect("RCPT TO:<bounce@x.test>", 550).await;
    assert!(text.contains("5.1.1"), "{text}");
    raw.expect("RCPT TO:<fine@x.test>", 250).await;
    raw.expect("DATA", 354).await;
    raw.send("Subject: x\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(raw.reply().await.0, 250);
    assert_eq!(sink.wait_for(1, WAIT).await[0].rcpt_to, vec!["fine@x.test"]);
    assert_eq!(sink.transactions_rejected(), 1);
}

#[tokio::test]
async fn a_fault_at_mail_keeps_the_session_usable() {
    let sink = MailSink::start().await.unwrap();
    sink.set_faults(FaultPlan::reject_next(1, 421, "4.7.0 Busy").at_mail());
    let mut raw = Raw::connect(&sink).await;
    raw.expect("EHLO c", 250).await;
    raw.expect("MAIL FROM:<a@x.test>", 421).await;
    raw.expect("RCPT TO:<b@x.test>", 503).await;
    raw.expect("MAIL FROM:<a@x.test>", 250).await;
}

#[tokio::test]
async fn a_disconnect_fault_closes_the_connection_without_a_reply() {
    let sink = MailSink::start().await.unwrap();
    sink.set_faults(FaultPlan::disconnect_next(1));
    let mut raw = Raw::connect(&sink).await;
    raw.expect("EHLO c", 250).await;
    raw.expect("MAIL FROM:<a@x.test>", 250).await;
    raw.expect("RCPT TO:<b@x.test>", 250).await;
    raw.expect("DATA", 354).await;
    raw.send("Subject: x\r\n\r\nx\r\n.\r\n").await;
    assert!(raw.is_closed().await);
    assert_eq!(sink.count(), 0);
    assert_eq!(sink.transactions_rejected(), 1);
}

#[tokio::test]
async fn a_delay_fault_holds_the_reply_after_data() {
    let sink = MailSink::start().await.unwrap();
    sink.set_faults(FaultPlan::delay_all(Duration::from_millis(500)));
    let mut raw = Raw::connect(&sink).await;
    raw.expect("EHLO c", 250).await;
    raw.expect("MAIL FROM:<a@x.test>", 250).await;
    raw.expect("RCPT TO:<b@x.test>", 250).await;
    raw.expect("DATA", 354).await;
    raw.send("Subject: slow\r\n\r\nx\r\n.\r\n").await;
    let early = tokio::time::timeout(Duration::from_millis(100), raw.reply()).await;
    assert!(early.is_err(), "the reply came before the delay: {early:?}");
    assert_eq!(raw.reply().await.0, 250);
    assert_eq!(sink.count(), 1);
    assert_eq!(sink.transactions_rejected(), 0);
}

#[tokio::test]
async fn credentials_require_auth_plain_or_login_before_mail() {
    let sink = MailSink::start_with(SinkOptions {
        credentials: Some(("herald".to_owned(), "s3cret".to_owned())),
        ..SinkOptions::default()
    })
    .await
    .unwrap();

    // lettre picks AUTH PLAIN.
    let authed = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.addr().port())
        .credentials(Credentials::new("herald".to_owned(), "s3cret".to_owned()))
        .build();
    authed
        .send(message("a@example.org", "authed"))
        .await
        .unwrap();

    let wrong = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.addr().port())
        .credentials(Credentials::new("herald".to_owned(), "nope".to_owned()))
        .build();
    let error = wrong.send(message("a@example.org", "x")).await.unwrap_err();
    assert_eq!(error.status().map(u16::from), Some(535), "{error}");

    let error = transport(&sink)
        .send(message("a@example.org", "x"))
        .await
        .unwrap_err();
    assert_eq!(error.status().map(u16::from), Some(530), "{error}");

    // AUTH LOGIN by hand: "herald" / "s3cret" in base64.
    let mut raw = Raw::connect(&sink).await;
    let ehlo = raw.expect("EHLO c", 250).await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    raw.expect("AUTH LOGIN", 334).await;
    raw.expect("aGVyYWxk", 334).await;
    raw.expect("czNjcmV0", 235).await;
    raw.expect("AUTH LOGIN", 503).await;
    raw.expect("MAIL FROM:<a@x.test>", 250).await;

    let mut raw = Raw::connect(&sink).await;
    raw.expect("EHLO c", 250).await;
    raw.expect("AUTH PLAIN", 334).await;
    raw.expect("*", 501).await;
    raw.expect("AUTH CRAM-MD5", 504).await;

    assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn the_outbox_holds_one_eml_per_message_written_before_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let sink = MailSink::start_with(SinkOptions {
        outbox_dir: Some(outbox.clone()),
        ..SinkOptions::default()
    })
    .await
    .unwrap();
    let transport = transport(&sink);
    transport
        .send(message("a@example.org", "one"))
        .await
        .unwrap();
    transport
        .send(message("b@example.org", "two"))
        .await
        .unwrap();
    let mut raw = Raw::connect(&sink).await;
    raw.expect("EHLO c", 250).await;
    raw.expect("MAIL FROM:<>", 250).await;
    raw.expect("RCPT TO:<c@x.test>", 250).await;
    raw.expect("DATA", 354).await;
    raw.send("Subject: none\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(raw.reply().await.0, 250);

    // The 250 means stored: the files exist without waiting.
    let mails = sink.messages();
    let names: Vec<String> = mails
        .iter()
        .map(|m| {
            let path = m.path.as_ref().expect("a path per message");
            assert_eq!(std::fs::read(path).unwrap(), m.data);
            path.file_name().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "000001-one@herald.test.eml",
            "000002-two@herald.test.eml",
            "000003-nomsgid.eml"
        ]
    );
    assert_eq!(mails[2].mail_from, "");
    let mut listed: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, names, "no temporary files are left behind");
}

#[tokio::test]
async fn without_keep_in_memory_only_counts_are_kept() {
    let sink = MailSink::start_with(SinkOptions {
        keep_in_memory: false,
        ..SinkOptions::default()
    })
    .await
    .unwrap();
    transport(&sink)
        .send(message("a@example.org", "counted"))
        .await
        .unwrap();
    assert_eq!(sink.count(), 1);
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn recorded_acceptances_keep_the_message_id_size_and_time_of_each_250() {
    let sink = MailSink::start_with(SinkOptions {
        keep_in_memory: false,
        record_acceptances: true,
        ..SinkOptions::default()
    })
    .await
    .unwrap();
    let before = std::time::Instant::now();
    let transport = transport(&sink);
    transport
        .send(message("a@example.org", "first"))
        .await
        .unwrap();
    transport
        .send(message("b@example.org", "second"))
        .await
        .unwrap();
    let after = std::time::Instant::now();

    let acceptances = sink.take_acceptances();
    let ids: Vec<_> = acceptances
        .iter()
        .map(|a| a.message_id.as_deref())
        .collect();
    assert_eq!(
        ids,
        vec![Some("<first@herald.test>"), Some("<second@herald.test>")]
    );
    assert!(acceptances.iter().all(|a| a.bytes > 100));
    assert!(before <= acceptances[0].at && acceptances[0].at <= acceptances[1].at);
    assert!(acceptances[1].at <= after);
    assert!(sink.messages().is_empty());
    assert!(sink.take_acceptances().is_empty(), "taking drains them");
    assert_eq!(sink.count(), 2);
}

#[tokio::test]
async fn wait_for_returns_what_it_has_at_the_timeout() {
    let sink = MailSink::start().await.unwrap();
    let mails = sink.wait_for(1, Duration::from_millis(50)).await;
    assert!(mails.is_empty());
}

#[tokio::test]
async fn disconnect_all_closes_idle_connections_and_keeps_listening() {
    let sink = MailSink::start().await.unwrap();
    let mut raw = Raw::connect(&sink).await;
    raw.expect("EHLO c", 250).await;
    sink.disconnect_all();
    assert!(raw.is_closed().await);
    let mut again = Raw::connect(&sink).await;
    again.expect("EHLO c", 250).await;
    assert_eq!(sink.connections(), 2);
}

#[tokio::test]
async fn stopping_the_sink_closes_its_connections_and_its_port() {
    let sink = MailSink::start().await.unwrap();
    let addr = sink.addr();
    let mut raw = Raw::connect(&sink).await;
    raw.expect("EHLO c", 250).await;
    sink.stop().await;
    assert!(raw.is_closed().await);
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn dropping_the_sink_closes_its_port() {
    let sink = MailSink::start().await.unwrap();
    let addr = sink.addr();
    drop(sink);
    tokio::task::yield_now().await;
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the port still accepts connections after drop");
}
