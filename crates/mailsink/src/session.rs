//! One SMTP session: reads commands, enforces their order, receives DATA and applies faults.

use std::io;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::MAX_MESSAGE_BYTES;
use crate::faults::{Fault, FaultAction, FaultStage};
use crate::server::Shared;

/// Longest command line accepted, CRLF included. RFC 5321 asks for 512; AUTH PLAIN lines with
/// long credentials need more, and leniency costs nothing here.
const MAX_COMMAND_LINE: usize = 4096;
/// How much of a DATA line is read at once; longer lines are simply read in pieces.
const DATA_CHUNK: u64 = 64 * 1024;
/// Recipients per transaction before replying 452.
const MAX_RECIPIENTS: usize = 1000;
/// Bad commands per session before the sink gives up on the client.
const MAX_ERRORS: usize = 20;
/// A client silent for this long is disconnected with a 421.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const HOSTNAME: &str = "herald-mailsink";

/// Where the session is in the SMTP dialogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Greeted, waiting for EHLO/HELO.
    Connected,
    /// After EHLO/HELO (or RSET, or a finished transaction): MAIL may start a transaction.
    Ready,
    /// After MAIL FROM; RCPT TO expected.
    InTransaction,
}

/// What a finished command asks of the session loop.
enum Next {
    Continue,
    Close,
}

struct Session<'a> {
    shared: &'a Shared,
    reader: BufReader<OwnedReadHalf>,
    writer: BufWriter<OwnedWriteHalf>,
    state: State,
    authenticated: bool,
    mail_from: String,
    rcpt_to: Vec<String>,
    errors: usize,
    line: Vec<u8>,
}

/// Serves one connection until QUIT, EOF, a fatal error or a disconnect fault.
pub(crate) async fn run(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    // Replies are small and the client waits for each: without NODELAY, Nagle plus delayed ACK
    // can add ~40 ms per reply on loopback.
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut session = Session {
        shared,
        reader: BufReader::with_capacity(64 * 1024, read),
        writer: BufWriter::with_capacity(16 * 1024, write),
        state: State::Connected,
        authenticated: false,
        mail_from: String::new(),
        rcpt_to: Vec::new(),
        errors: 0,
        line: Vec::with_capacity(512),
    };
    session.serve().await
}

/// The result of reading one line.
enum Line {
    /// A complete line is in the buffer, LF included.
    Complete,
    /// The line was longer than the limit; it has been skipped up to and including its LF.
    TooLong,
    /// The peer closed the connection (possibly in the middle of a line).
    Eof,
}

/// Reads one LF-terminated line of at most `limit` bytes into `buf`.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Line> {
    buf.clear();
    let n = (&mut *reader)
        .take(limit as u64)
        .read_until(b'\n', buf)
        .await?;
    if buf.ends_with(b"\n") {
        return Ok(Line::Complete);
    }
    if n < limit {
        return Ok(Line::Eof);
    }
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        if let Some(i) = available.iter().position(|&b| b == b'\n') {
            reader.consume(i + 1);
            return Ok(Line::TooLong);
        }
        let len = available.len();
        reader.consume(len);
    }
}

impl Session<'_> {
    async fn serve(&mut self) -> io::Result<()> {
        let mut kick = self.shared.kick.subscribe();
        kick.mark_unchanged();
        self.reply(220, &format!("{HOSTNAME} ESMTP ready")).await?;
        loop {
            self.flush_unless_pipelined().await?;
            let line = tokio::select! {
                line = tokio::time::timeout(
                    IDLE_TIMEOUT,
                    read_line(&mut self.reader, &mut self.line, MAX_COMMAND_LINE),
                ) => line,
                _ = kick.changed() => return Ok(()),
            };
            let line = match line {
                Err(_elapsed) => {
                    self.reply(421, "4.4.2 Idle timeout, closing connection")
                        .await?;
                    return self.writer.flush().await;
                }
                Ok(line) => line?,
            };
            match line {
                Line::Eof => return Ok(()),
                Line::TooLong => {
                    self.error(500, "5.5.2 Line too long").await?;
                }
                Line::Complete => {
                    let command = std::mem::take(&mut self.line);
                    let next = self.command(&command).await;
                    self.line = command;
                    if let Next::Close = next? {
                        return self.writer.flush().await;
                    }
                }
            }
            if self.errors >= MAX_ERRORS {
                self.reply(421, "4.7.0 Too many errors, closing connection")
                    .await?;
                return self.writer.flush().await;
            }
        }
    }

    /// Replies are flushed once the client has no further complete command waiting in our
    /// buffer, so a pipelined batch gets its replies in one write (RFC 2920 §3.2).
    async fn flush_unless_pipelined(&mut self) -> io::Result<()> {
        if !self.reader.buffer().contains(&b'\n') {
            self.writer.flush().await?;
        }
        Ok(())
    }

    async fn reply(&mut self, code: u16, text: &str) -> io::Result<()> {
        let mut lines = text.lines().peekable();
        if lines.peek().is_none() {
            self.writer
                .write_all(format!("{code} \r\n").as_bytes())
                .await?;
        }
        while let Some(line) = lines.next() {
            let sep = if lines.peek().is_some() { '-' } else { ' ' };
            self.writer
                .write_all(format!("{code}{sep}{line}\r\n").as_bytes())
                .await?;
        }
        Ok(())
    }

    /// A reply to a bad command; counts towards [`MAX_ERRORS`].
    async fn error(&mut self, code: u16, text: &str) -> io::Result<()> {
        self.errors += 1;
        self.reply(code, text).await
    }

    fn reset_transaction(&mut self) {
        self.mail_from.clear();
        self.rcpt_to.clear();
        if self.state == State::InTransaction {
            self.state = State::Ready;
        }
    }

    async fn command(&mut self, raw: &[u8]) -> io::Result<Next> {
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(line) = std::str::from_utf8(raw) else {
            self.error(500, "5.5.2 Syntax error: the command is not UTF-8")
                .await?;
            return Ok(Next::Continue);
        };
        let (verb, arg) = match line.split_once(' ') {
            Some((verb, arg)) => (verb, arg.trim()),
            None => (line, ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => self.ehlo(arg).await?,
            "HELO" => self.helo(arg).await?,
            "MAIL" => return self.mail(arg).await,
            "RCPT" => return self.rcpt(arg).await,
            "DATA" => return self.data(arg).await,
            "RSET" => {
                self.reset_transaction();
                self.reply(250, "2.0.0 Ok").await?;
            }
            "NOOP" => self.reply(250, "2.0.0 Ok").await?,
            "VRFY" => {
                self.reply(252, "2.5.0 Cannot VRFY user, but will accept message")
                    .await?
            }
            "HELP" => {
                self.reply(
                    214,
                    "2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY QUIT AUTH",
                )
                .await?
            }
            "AUTH" => return self.auth(arg).await,
            "QUIT" => {
                self.reply(221, "2.0.0 Bye").await?;
                return Ok(Next::Close);
            }
            "" => self.error(500, "5.5.2 Syntax error: empty command").await?,
            _ => self.error(502, "5.5.2 Command not recognized").await?,
        }
        Ok(Next::Continue)
    }

    async fn ehlo(&mut self, arg: &str) -> io::Result<()> {
        if arg.is_empty() {
            return self.error(501, "5.5.4 EHLO needs a domain").await;
        }
        self.reset_transaction();
        self.state = State::Ready;
        let mut text = format!(
            "{HOSTNAME} greets {arg}\nPIPELINING\n8BITMIME\nSMTPUTF8\nENHANCEDSTATUSCODES\nSIZE {MAX_MESSAGE_BYTES}"
        );
        if self.shared.options.credentials.is_some() {
            text.push_str("\nAUTH PLAIN LOGIN");
        }
        self.reply(250, &text).await
    }

    async fn helo(&mut self, arg: &str) -> io::Result<()> {
        if arg.is_empty() {
            return self.error(501, "5.5.4 HELO needs a domain").await;
        }
        self.reset_transaction();
        self.state = State::Ready;
        self.reply(250, HOSTNAME).await
    }

    async fn mail(&mut self, arg: &str) -> io::Result<Next> {
        match self.state {
            State::Connected => {
                self.error(503, "5.5.1 Send EHLO or HELO first").await?;
                return Ok(Next::Continue);
            }
            State::InTransaction => {
                self.error(503, "5.5.1 Nested MAIL command").await?;
                return Ok(Next::Continue);
            }
            State::Ready => {}
        }
        if self.shared.options.credentials.is_some() && !self.authenticated {
            self.error(530, "5.7.0 Authentication required").await?;
            return Ok(Next::Continue);
        }
        let Some((address, params)) = parse_path(arg, "FROM:") else {
            self.error(501, "5.5.4 Syntax: MAIL FROM:<address>").await?;
            return Ok(Next::Continue);
        };
        for param in params.split_ascii_whitespace() {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<usize>() {
                    Ok(size) if size > MAX_MESSAGE_BYTES => {
                        self.error(552, "5.3.4 Message size exceeds fixed limit")
                            .await?;
                        return Ok(Next::Continue);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        self.error(501, "5.5.4 Bad SIZE parameter").await?;
                        return Ok(Next::Continue);
                    }
                },
                "BODY" | "SMTPUTF8" | "AUTH" | "RET" | "ENVID" => {}
                _ => {
                    self.error(555, "5.5.4 Unsupported MAIL parameter").await?;
                    return Ok(Next::Continue);
                }
            }
        }
        let address = address.to_owned();
        let applied = match self.shared.fault(FaultStage::Mail, std::iter::empty()) {
            Some(fault) => self.apply(fault, 250, "2.1.0 Ok").await?,
            None => {
                self.reply(250, "2.1.0 Ok").await?;
                Applied::Accepted
            }
        };
        if let Applied::Accepted = applied {
            self.mail_from = address;
            self.state = State::InTransaction;
        }
        Ok(applied.into())
    }

    async fn rcpt(&mut self, arg: &str) -> io::Result<Next> {
        if self.state != State::InTransaction {
            self.error(503, "5.5.1 Send MAIL first").await?;
            return Ok(Next::Continue);
        }
        let Some((address, _params)) = parse_path(arg, "TO:") else {
            self.error(501, "5.5.4 Syntax: RCPT TO:<address>").await?;
            return Ok(Next::Continue);
        };
        if address.is_empty() {
            self.error(501, "5.1.3 Empty recipient").await?;
            return Ok(Next::Continue);
        }
        if self.rcpt_to.len() >= MAX_RECIPIENTS {
            self.reply(452, "4.5.3 Too many recipients").await?;
            return Ok(Next::Continue);
        }
        let address = address.to_owned();
        let fault = self
            .shared
            .fault(FaultStage::Rcpt, std::iter::once(address.as_str()));
        let applied = match fault {
            Some(fault) => self.apply(fault, 250, "2.1.5 Ok").await?,
            None => {
                self.reply(250, "2.1.5 Ok").await?;
                Applied::Accepted
            }
        };
        if let Applied::Accepted = applied {
            self.rcpt_to.push(address);
        }
        Ok(applied.into())
    }

    async fn data(&mut self, arg: &str) -> io::Result<Next> {
        if !arg.is_empty() {
            self.error(501, "5.5.4 DATA takes no arguments").await?;
            return Ok(Next::Continue);
        }
        if self.state != State::InTransaction {
            self.error(503, "5.5.1 Send MAIL first").await?;
            return Ok(Next::Continue);
        }
        if self.rcpt_to.is_empty() {
            self.error(503, "5.5.1 No valid recipients").await?;
            return Ok(Next::Continue);
        }
        self.reply(354, "End data with <CR><LF>.<CR><LF>").await?;
        self.flush_unless_pipelined().await?;
        let Some(data) = self.read_data().await? else {
            // Too large: the whole body was read and dropped.
            self.reset_transaction();
            self.reply(552, "5.3.4 Message size exceeds fixed limit")
                .await?;
            return Ok(Next::Continue);
        };
        let mail_from = std::mem::take(&mut self.mail_from);
        let rcpt_to = std::mem::take(&mut self.rcpt_to);
        self.reset_transaction();
        let fault = self
            .shared
            .fault(FaultStage::DataEnd, rcpt_to.iter().map(String::as_str));
        if let Some(fault) = fault {
            if !matches!(fault.action, FaultAction::Accept) {
                return Ok(self.apply(fault, 250, "").await?.into());
            }
            tokio::time::sleep(fault.delay).await;
        }
        match self.shared.store(mail_from, rcpt_to, data).await {
            Ok(sequence) => {
                self.reply(250, &format!("2.0.0 Ok: queued as {sequence:06}"))
                    .await?
            }
            Err(error) => {
                tracing::warn!(%error, "Mail sink could not write a message to its outbox.");
                self.reply(451, "4.3.0 Could not store the message").await?;
            }
        }
        Ok(Next::Continue)
    }

    /// Reads the message after 354 up to the `CRLF.CRLF` terminator, undoing dot-stuffing.
    /// Returns `None` when it was larger than [`MAX_MESSAGE_BYTES`] (and was discarded).
    async fn read_data(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut data = Vec::with_capacity(8 * 1024);
        let mut too_large = false;
        // Only a line that follows a CRLF may be the terminator or be dot-stuffed: a bare LF
        // does not end a line (this is what keeps SMTP smuggling out).
        let mut at_line_start = true;
        loop {
            self.line.clear();
            let n = tokio::time::timeout(
                IDLE_TIMEOUT,
                (&mut self.reader)
                    .take(DATA_CHUNK)
                    .read_until(b'\n', &mut self.line),
            )
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle during DATA"))??;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed during DATA",
                ));
            }
            let mut content = &self.line[..];
            if at_line_start {
                if content == b".\r\n" {
                    break;
                }
                if content.starts_with(b".") {
                    content = &content[1..];
                }
            }
            at_line_start = content.ends_with(b"\r\n");
            if !too_large {
                if data.len() + content.len() > MAX_MESSAGE_BYTES {
                    too_large = true;
                    data = Vec::new();
                } else {
                    data.extend_from_slice(content);
                }
            }
        }
        Ok((!too_large).then_some(data))
    }

    async fn auth(&mut self, arg: &str) -> io::Result<Next> {
        let Some((user, password)) = self.shared.options.credentials.clone() else {
            self.error(502, "5.5.1 AUTH not available").await?;
            return Ok(Next::Continue);
        };
        if self.state == State::Connected {
            self.error(503, "5.5.1 Send EHLO first").await?;
            return Ok(Next::Continue);
        }
        if self.authenticated {
            self.error(503, "5.5.1 Already authenticated").await?;
            return Ok(Next::Continue);
        }
        if self.state == State::InTransaction {
            self.error(503, "5.5.1 AUTH not allowed during a mail transaction")
                .await?;
            return Ok(Next::Continue);
        }
        let (mechanism, initial) = match arg.split_once(' ') {
            Some((m, i)) => (m, Some(i.trim())),
            None => (arg, None),
        };
        let given = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(initial) => Some(initial.to_owned()),
                    None => self.challenge("").await?,
                };
                response
                    .as_deref()
                    .map(|r| decode_plain(r).ok_or(AuthFailure::Malformed))
            }
            "LOGIN" => {
                let username = match initial {
                    Some(initial) => Some(initial.to_owned()),
                    None => self.challenge("VXNlcm5hbWU6").await?,
                };
                match username {
                    None => None,
                    Some(username) => self.challenge("UGFzc3dvcmQ6").await?.map(|pass| {
                        match (decode_b64(&username), decode_b64(&pass)) {
                            (Some(u), Some(p)) => Ok((u, p)),
                            _ => Err(AuthFailure::Malformed),
                        }
                    }),
                }
            }
            "" => {
                self.error(501, "5.5.4 Syntax: AUTH mechanism").await?;
                return Ok(Next::Continue);
            }
            _ => {
                self.error(504, "5.5.4 Unrecognized authentication type")
                    .await?;
                return Ok(Next::Continue);
            }
        };
        match given {
            None => self.error(501, "5.7.0 Authentication cancelled").await?,
            Some(Err(AuthFailure::Malformed)) => {
                self.error(501, "5.5.2 Cannot decode the response").await?
            }
            Some(Ok((u, p))) if u == user && p == password => {
                self.authenticated = true;
                self.reply(235, "2.7.0 Authentication successful").await?;
            }
            Some(Ok(_)) => {
                self.error(535, "5.7.8 Authentication credentials invalid")
                    .await?
            }
        }
        Ok(Next::Continue)
    }

    /// Sends a 334 challenge and reads the client's answer; `None` when the client cancels
    /// with `*`, gives up, or sends too long a line.
    async fn challenge(&mut self, prompt: &str) -> io::Result<Option<String>> {
        self.reply(334, prompt).await?;
        self.writer.flush().await?;
        let line = tokio::time::timeout(
            IDLE_TIMEOUT,
            read_line(&mut self.reader, &mut self.line, MAX_COMMAND_LINE),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle during AUTH"))??;
        match line {
            Line::Eof => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed during AUTH",
            )),
            Line::TooLong => Ok(None),
            Line::Complete => {
                let text = String::from_utf8_lossy(&self.line).trim().to_owned();
                Ok((text != "*").then_some(text))
            }
        }
    }

    /// Acts on a fired fault: waits its delay, then replies `ok_code ok_text` (accept), the
    /// fault's reply, or closes the connection.
    async fn apply(&mut self, fault: Fault, ok_code: u16, ok_text: &str) -> io::Result<Applied> {
        if !fault.delay.is_zero() {
            self.writer.flush().await?;
            tokio::time::sleep(fault.delay).await;
        }
        match fault.action {
            FaultAction::Accept => {
                self.reply(ok_code, ok_text).await?;
                Ok(Applied::Accepted)
            }
            FaultAction::Reply { code, text } => {
                self.reply(code, &text).await?;
                Ok(Applied::Rejected)
            }
            FaultAction::Disconnect => {
                self.writer.flush().await?;
                Ok(Applied::Disconnect)
            }
        }
    }
}

/// The outcome of [`Session::apply`].
enum Applied {
    Accepted,
    Rejected,
    Disconnect,
}

impl From<Applied> for Next {
    fn from(applied: Applied) -> Self {
        match applied {
            Applied::Accepted | Applied::Rejected => Next::Continue,
            Applied::Disconnect => Next::Close,
        }
    }
}

enum AuthFailure {
    Malformed,
}

fn decode_b64(text: &str) -> Option<String> {
    String::from_utf8(BASE64.decode(text.trim()).ok()?).ok()
}

/// Decodes an AUTH PLAIN response, `authzid NUL authcid NUL password`, to (authcid, password).
fn decode_plain(text: &str) -> Option<(String, String)> {
    let decoded = decode_b64(text)?;
    let mut parts = decoded.split('\0');
    let (_authzid, user, pass) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((user.to_owned(), pass.to_owned()))
}

/// Parses `FROM:<addr> params` (or `TO:`) into the address without brackets and the parameters.
/// Accepts a space after the colon and a bare address without brackets, as many clients send.
fn parse_path<'a>(arg: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        let address = &inner[..end];
        // Drop an obsolete source route, "<@a,@b:user@c>".
        let address = match address.strip_prefix('@') {
            Some(_) => address.split_once(':').map_or(address, |(_, a)| a),
            None => address,
        };
        Some((address, inner[end + 1..].trim()))
    } else {
        let (address, params) = rest.split_once(' ').unwrap_or((rest, ""));
        (!address.is_empty()).then_some((address, params.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_with_and_without_brackets() {
        let cases = [
            ("FROM:<a@b.c>", "FROM:", Some(("a@b.c", ""))),
            (
                "from: <a@b.c> BODY=8BITMIME SMTPUTF8",
                "FROM:",
                Some(("a@b.c", "BODY=8BITMIME SMTPUTF8")),
            ),
            ("FROM:<>", "FROM:", Some(("", ""))),
            ("TO:<@relay.example:u@d.e>", "TO:", Some(("u@d.e", ""))),
            ("TO:u@d.e", "TO:", Some(("u@d.e", ""))),
            ("TO:<unterminated", "TO:", None),
            ("TO", "TO:", None),
            ("FROM:<x@y>", "TO:", None),
            ("é", "TO:", None),
        ];
        for (arg, keyword, expected) in cases {
            assert_eq!(parse_path(arg, keyword), expected, "{arg}");
        }
    }

    #[test]
    fn auth_plain_responses_decode() {
        let encoded = BASE64.encode("\0user\0pass");
        assert_eq!(
            decode_plain(&encoded),
            Some(("user".to_owned(), "pass".to_owned()))
        );
        assert_eq!(decode_plain("!!!"), None);
        assert_eq!(decode_plain(&BASE64.encode("nonul")), None);
    }
}
