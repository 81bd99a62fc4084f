//! A real SMTP server for tests: [`SmtpSink`] listens on a loopback port,
//! accepts whatever mail a client submits over plain SMTP, and keeps it in
//! memory for the test to inspect.
//!
//! It speaks the part of RFC 5321 a submission client needs without TLS or
//! authentication — the greeting, `EHLO`/`HELO`, `MAIL FROM`, `RCPT TO`,
//! `DATA` (with dot-stuffing undone), `RSET`, `NOOP`, `QUIT` — so services
//! are tested through their real mail client and a real socket. It can be
//! told to refuse mail with a temporary failure (`451` to `MAIL FROM`), to
//! test retries.
//!
//! ```text
//! let sink = SmtpSink::start().await;           // SMTP_HOST=127.0.0.1, SMTP_PORT=sink.port(), SMTP_TLS=none
//! … make the service send two messages …
//! let mail = sink.wait_for(2, Duration::from_secs(10)).await;
//! assert_eq!(mail[0].to, ["ada@example.com"]);
//! assert_eq!(mail[0].header("Subject").as_deref(), Some("Welcome back"));
//! assert!(mail[0].text_body().unwrap().contains("https://app.example.com/reactivate?token="));
//! ```

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::{JoinHandle, JoinSet},
};

/// The name the sink gives itself in its replies.
const SERVER_NAME: &str = "smtp-sink.test";

/// One message as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`), without angle brackets.
    pub from: String,
    /// The envelope recipients (`RCPT TO`), in the order given.
    pub to: Vec<String>,
    /// The message exactly as submitted after `DATA` — headers, blank line,
    /// body, with `\r\n` line ends — minus the terminating `.` line and with
    /// dot-stuffing undone. Bodies keep their transfer encoding: read them
    /// with [`ReceivedMail::text_body`] and [`ReceivedMail::html_body`].
    pub data: String,
}

impl ReceivedMail {
    /// The value of the first header called `name` (any case), with folded
    /// continuation lines joined. Encoded words (RFC 2047) are left as sent.
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(split_entity(&self.data).0, name)
    }

    /// The `text/plain` part (or the whole body of a plain message), with
    /// its transfer encoding (quoted-printable, base64) undone: what a
    /// reader sees, and where a test finds a link that quoted-printable
    /// would have split across lines.
    pub fn text_body(&self) -> Option<String> {
        find_part(&self.data, "text/plain")
    }

    /// The `text/html` part, with its transfer encoding undone.
    pub fn html_body(&self) -> Option<String> {
        find_part(&self.data, "text/html")
    }
}

/// The header block and the body of a MIME entity.
fn split_entity(entity: &str) -> (&str, &str) {
    if let Some(body) = entity.strip_prefix("\r\n") {
        return ("", body);
    }
    entity.split_once("\r\n\r\n").unwrap_or((entity, ""))
}

fn header_in(head: &str, name: &str) -> Option<String> {
    let mut lines = head.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        if !field.eq_ignore_ascii_case(name) {
            continue;
        }
        let mut value = value.trim().to_owned();
        while let Some(continuation) = lines.next_if(|next| next.starts_with([' ', '\t'])) {
            value.push(' ');
            value.push_str(continuation.trim());
        }
        return Some(value);
    }
    None
}

/// The decoded body of the first part of type `wanted` in `entity`,
/// looking inside nested multiparts.
fn find_part(entity: &str, wanted: &str) -> Option<String> {
    let (head, body) = split_entity(entity);
    let content_type = header_in(head, "Content-Type").unwrap_or_else(|| "text/plain".to_owned());
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media_type.starts_with("multipart/") {
        let boundary = content_type.split(';').skip(1).find_map(|parameter| {
            let (key, value) = parameter.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| value.trim().trim_matches('"').to_owned())
        })?;
        let delimiter = format!("--{boundary}");
        return body
            .split(delimiter.as_str())
            .skip(1)
            .take_while(|part| !part.starts_with("--"))
            .find_map(|part| {
                let part = part.strip_prefix("\r\n").unwrap_or(part);
                find_part(part.strip_suffix("\r\n").unwrap_or(part), wanted)
            });
    }
    if media_type != wanted {
        return None;
    }
    let encoding = header_in(head, "Content-Transfer-Encoding").unwrap_or_default();
    let bytes = match encoding.to_ascii_lowercase().as_str() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => {
            use base64::Engine as _;
            let compact: String = body.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD.decode(compact).ok()?
        }
        _ => body.as_bytes().to_vec(),
    };
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// RFC 2045 quoted-printable: `=` at a line end is a soft break, `=XX` a byte.
fn decode_quoted_printable(body: &str) -> Vec<u8> {
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'=')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    decoded
}

#[derive(Debug)]
struct Shared {
    received: watch::Sender<Vec<ReceivedMail>>,
    refusing: AtomicBool,
}

/// An SMTP server on `127.0.0.1:<port>` that keeps every message it accepts.
/// It stops, closing every connection, when dropped.
#[derive(Debug)]
pub struct SmtpSink {
    port: u16,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl SmtpSink {
    /// Starts a sink on a free loopback port, accepting mail.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP sink");
        let port = listener.local_addr().expect("a bound listener has an address").port();
        let shared = Arc::new(Shared {
            received: watch::Sender::new(Vec::new()),
            refusing: AtomicBool::new(false),
        });
        let server = tokio::spawn(accept(listener, Arc::clone(&shared)));
        Self { port, shared, server }
    }

    /// The port to point the client at (host `127.0.0.1`, no TLS).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// While `refusing` is true, every `MAIL FROM` is answered `451`, a
    /// temporary failure: nothing is accepted and clients should retry.
    pub fn refuse(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Every message accepted so far, in order of arrival.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.shared.received.borrow().clone()
    }

    /// Waits until at least `count` messages have arrived and returns all of
    /// them; panics, saying how many did arrive, after `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let mut receiver = self.shared.received.subscribe();
        let arrived = tokio::time::timeout(timeout, receiver.wait_for(|messages| messages.len() >= count)).await;
        match arrived {
            Ok(Ok(messages)) => messages.clone(),
            _ => panic!(
                "expected {count} message(s) at the SMTP sink within {timeout:?}, received {}",
                self.messages().len()
            ),
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Accepts connections until aborted; aborting drops the set of sessions,
/// which closes them too.
async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    sessions.spawn(session(stream, Arc::clone(&shared)));
                }
                Err(err) => tracing::warn!(error = %err, "SMTP sink cannot accept a connection"),
            },
            // Reap finished sessions so the set does not grow without bound.
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// One client connection, from greeting to `QUIT` or disconnection.
async fn session(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer
        .write_all(format!("220 {SERVER_NAME} ESMTP ready\r\n").as_bytes())
        .await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    while let Some(line) = read_line(&mut reader).await? {
        let line = String::from_utf8_lossy(&line).into_owned();
        let (verb, argument) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let reply = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                (from, to) = (None, Vec::new());
                format!("250-{SERVER_NAME} greets {argument}\r\n250-8BITMIME\r\n250 HELP\r\n")
            }
            "HELO" => {
                (from, to) = (None, Vec::new());
                format!("250 {SERVER_NAME}\r\n")
            }
            "MAIL" => match path_after(argument, "FROM:") {
                _ if shared.refusing.load(Ordering::SeqCst) => {
                    "451 4.3.0 Temporarily refusing mail, try again later\r\n".to_owned()
                }
                Some(path) => {
                    (from, to) = (Some(path), Vec::new());
                    "250 2.1.0 OK\r\n".to_owned()
                }
                None => "501 5.5.4 Syntax: MAIL FROM:<address>\r\n".to_owned(),
            },
            "RCPT" => match (&from, path_after(argument, "TO:")) {
                (None, _) => "503 5.5.1 MAIL first\r\n".to_owned(),
                (Some(_), Some(path)) if !path.is_empty() => {
                    to.push(path);
                    "250 2.1.5 OK\r\n".to_owned()
                }
                (Some(_), _) => "501 5.5.4 Syntax: RCPT TO:<address>\r\n".to_owned(),
            },
            "DATA" => match from.take() {
                Some(sender) if !to.is_empty() => {
                    writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                    let Some(data) = read_data(&mut reader).await? else {
                        return Ok(());
                    };
                    let mail = ReceivedMail {
                        from: sender,
                        to: std::mem::take(&mut to),
                        data,
                    };
                    shared.received.send_modify(|received| received.push(mail));
                    "250 2.0.0 OK: queued\r\n".to_owned()
                }
                sender => {
                    from = sender;
                    "503 5.5.1 RCPT first\r\n".to_owned()
                }
            },
            "RSET" => {
                (from, to) = (None, Vec::new());
                "250 2.0.0 OK\r\n".to_owned()
            }
            "NOOP" => "250 2.0.0 OK\r\n".to_owned(),
            "QUIT" => {
                writer.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 Command not implemented\r\n".to_owned(),
        };
        writer.write_all(reply.as_bytes()).await?;
    }
    Ok(())
}

/// The next line without its line end; `None` at end of stream.
async fn read_line(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).await? == 0 {
        return Ok(None);
    }
    if line.ends_with(b"\n") {
        line.pop();
    }
    if line.ends_with(b"\r") {
        line.pop();
    }
    Ok(Some(line))
}

/// The message after `DATA`, up to the line holding a single `.`; a leading
/// `.` that the client doubled (dot-stuffing) is removed. `None` if the
/// client hangs up first.
async fn read_data(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> io::Result<Option<String>> {
    let mut data = Vec::new();
    loop {
        let Some(line) = read_line(reader).await? else {
            return Ok(None);
        };
        if line == b"." {
            return Ok(Some(String::from_utf8_lossy(&data).into_owned()));
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(line);
        data.extend_from_slice(b"\r\n");
    }
}

/// The address in `FROM:<a@b> PARAMS` (or `TO:`), without brackets or
/// parameters; `None` when the keyword is missing.
fn path_after(argument: &str, keyword: &str) -> Option<String> {
    let argument = argument.trim_start();
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start();
    let path = match rest.strip_prefix('<') {
        Some(bracketed) => bracketed.split('>').next().unwrap_or_default(),
        None => rest.split_whitespace().next().unwrap_or_default(),
    };
    Some(path.to_owned())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

    use super::*;

    /// A hand-written SMTP client: sends each line and returns the reply,
    /// all lines of a multi-line one joined.
    struct Client {
        reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
        writer: tokio::net::tcp::OwnedWriteHalf,
    }

    impl Client {
        async fn connect(sink: &SmtpSink) -> (Self, String) {
            let stream = TcpStream::connect(("127.0.0.1", sink.port())).await.unwrap();
            let (reader, writer) = stream.into_split();
            let mut client = Self {
                reader: BufReader::new(reader),
                writer,
            };
            let greeting = client.reply().await;
            (client, greeting)
        }

        async fn reply(&mut self) -> String {
            let mut reply = String::new();
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line).await.unwrap();
                reply.push_str(&line);
                // "250-…" continues, "250 …" ends a reply.
                if line.as_bytes().get(3) != Some(&b'-') {
                    return reply;
                }
            }
        }

        async fn send(&mut self, line: &str) -> String {
            self.writer.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
            self.reply().await
        }
    }

    #[tokio::test]
    async fn a_submitted_message_is_recorded_with_its_envelope_and_unstuffed_data() {
        let sink = SmtpSink::start().await;
        let (mut client, greeting) = Client::connect(&sink).await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        let ehlo = client.send("EHLO client.test").await;
        assert!(ehlo.starts_with("250-") && ehlo.contains("\r\n250 "), "{ehlo}");
        assert!(
            client
                .send("MAIL FROM:<no-reply@example.com> BODY=8BITMIME")
                .await
                .starts_with("250")
        );
        assert!(client.send("RCPT TO:<ada@example.com>").await.starts_with("250"));
        assert!(client.send("RCPT TO:<bob@example.com>").await.starts_with("250"));
        assert!(client.send("DATA").await.starts_with("354"));
        let reply = client
            .send("Subject: Hello\r\n  again\r\n\r\n..leading dot\r\nsecond line\r\n.")
            .await;
        assert!(reply.starts_with("250"), "{reply}");
        assert!(client.send("QUIT").await.starts_with("221"));

        let mail = sink.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(mail.len(), 1);
        assert_eq!(mail[0].from, "no-reply@example.com");
        assert_eq!(mail[0].to, ["ada@example.com", "bob@example.com"]);
        assert_eq!(
            mail[0].data,
            "Subject: Hello\r\n  again\r\n\r\n.leading dot\r\nsecond line\r\n"
        );
        assert_eq!(mail[0].header("subject").as_deref(), Some("Hello again"));
        assert_eq!(mail[0].header("From"), None);
    }

    #[tokio::test]
    async fn a_refusing_sink_answers_a_temporary_failure_and_records_nothing() {
        let sink = SmtpSink::start().await;
        sink.refuse(true);
        let (mut client, _) = Client::connect(&sink).await;
        client.send("HELO client.test").await;
        assert!(client.send("MAIL FROM:<a@example.com>").await.starts_with("451"));
        assert!(client.send("RCPT TO:<b@example.com>").await.starts_with("503"));
        assert!(client.send("RSET").await.starts_with("250"));

        sink.refuse(false);
        assert!(client.send("MAIL FROM:<a@example.com>").await.starts_with("250"));
        assert!(client.send("NOOP").await.starts_with("250"));
        assert!(client.send("RCPT TO:<b@example.com>").await.starts_with("250"));
        client.send("DATA").await;
        client.send("Subject: x\r\n\r\nbody\r\n.").await;
        assert_eq!(sink.messages().len(), 1);
    }

    #[tokio::test]
    async fn commands_out_of_order_are_refused() {
        let sink = SmtpSink::start().await;
        let (mut client, _) = Client::connect(&sink).await;
        client.send("EHLO client.test").await;
        assert!(client.send("DATA").await.starts_with("503"));
        assert!(client.send("MAIL FROM:<a@example.com>").await.starts_with("250"));
        assert!(client.send("DATA").await.starts_with("503"));
        assert!(client.send("VRFY ada").await.starts_with("502"));
        assert!(sink.messages().is_empty());
    }

    #[test]
    fn bodies_are_found_in_multiparts_and_decoded() {
        let mail = ReceivedMail {
            from: "a@example.com".into(),
            to: vec!["b@example.com".into()],
            data: [
                "Subject: Hi",
                "MIME-Version: 1.0",
                "Content-Type: multipart/alternative;",
                " boundary=\"XYZ\"",
                "",
                "--XYZ",
                "Content-Type: text/plain; charset=utf-8",
                "Content-Transfer-Encoding: quoted-printable",
                "",
                "Open https://app.example.com/reactivate?token=3Dabc=",
                "def caf=C3=A9",
                "--XYZ",
                "Content-Type: text/html; charset=utf-8",
                "Content-Transfer-Encoding: base64",
                "",
                "PHA+SGk8L3A+",
                "--XYZ--",
                "",
            ]
            .join("\r\n"),
        };
        assert_eq!(
            mail.text_body().as_deref(),
            Some("Open https://app.example.com/reactivate?token=abcdef café")
        );
        assert_eq!(mail.html_body().as_deref(), Some("<p>Hi</p>"));
        let plain = ReceivedMail {
            data: "Subject: Hi\r\n\r\nJust text\r\n".into(),
            ..mail
        };
        assert_eq!(plain.text_body().as_deref(), Some("Just text\r\n"));
        assert_eq!(plain.html_body(), None);
    }

    #[tokio::test]
    #[should_panic(expected = "expected 1 message(s) at the SMTP sink")]
    async fn waiting_for_mail_that_never_comes_fails_the_test() {
        let sink = SmtpSink::start().await;
        sink.wait_for(1, Duration::from_millis(50)).await;
    }
}
