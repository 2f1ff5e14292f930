//! A minimal SMTP server for tests: enough of RFC 5321 for lettre's client (no TLS,
//! no AUTH), keeping every message it accepts so tests can read what was sent.
//! It can be slow (a delay before each answer, like a real MTA writing to disk),
//! refuse messages, or take them and never answer (a server whose answer is
//! lost), and it counts connections and messages in progress at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub recipients: Vec<String>,
    /// The message (headers and body) after dot-unstuffing, line endings as sent.
    pub data: String,
}

pub struct SmtpSink {
    pub port: u16,
    messages: Arc<Mutex<Vec<ReceivedMail>>>,
    up: Arc<AtomicBool>,
    script: Arc<Script>,
    accept: JoinHandle<()>,
}

/// What the sink does with the messages it is sent.
#[derive(Default)]
struct Script {
    /// Waited before answering each message it takes.
    delay: Mutex<Duration>,
    /// This many next messages are refused.
    refuse_next: AtomicUsize,
    /// Once it holds this many messages, every further one meets [`Then`].
    limit: Mutex<Option<(usize, Then)>>,
    refused: Mutex<Vec<ReceivedMail>>,
    connections: AtomicUsize,
    in_progress: AtomicUsize,
    most_in_progress: AtomicUsize,
    /// Set by [`SmtpSink::hang_up`]: the connections left without an answer close.
    hung_up: tokio::sync::watch::Sender<bool>,
}

/// What becomes of the messages past [`SmtpSink::accept_only`]'s limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Answered `451` (try again later) and not kept.
    Refuse,
    /// Kept, but the answer never comes (until [`SmtpSink::hang_up`]).
    Hang,
}

impl SmtpSink {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> SmtpSink {
        SmtpSink::start_with(true).await
    }

    /// A server that is out of service: it keeps its port (so nothing else can
    /// take it before it comes back) and answers every connection with
    /// `421 Service not available` until [`SmtpSink::come_back`].
    pub async fn start_down() -> SmtpSink {
        SmtpSink::start_with(false).await
    }

    /// From now on, connections are served.
    pub fn come_back(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// Waits `delay` before answering each message it takes.
    pub fn delay_each(&self, delay: Duration) {
        *self.script.delay.lock().unwrap() = delay;
    }

    /// Refuses the next `n` messages with `451`, keeping them in
    /// [`SmtpSink::refused`].
    pub fn refuse_next(&self, n: usize) {
        self.script.refuse_next.store(n, Ordering::SeqCst);
    }

    /// Takes `n` more messages; every one after them meets `then`.
    pub fn accept_only(&self, n: usize, then: Then) {
        let held = self.messages.lock().unwrap().len();
        *self.script.limit.lock().unwrap() = Some((held + n, then));
    }

    /// Takes every message again.
    pub fn accept_all(&self) {
        *self.script.limit.lock().unwrap() = None;
        self.script.refuse_next.store(0, Ordering::SeqCst);
    }

    /// Closes the connections whose message was taken but never answered.
    pub fn hang_up(&self) {
        self.script.hung_up.send_replace(true);
    }

    /// The messages answered with a refusal.
    pub fn refused(&self) -> Vec<ReceivedMail> {
        self.script.refused.lock().unwrap().clone()
    }

    /// How many connections were served.
    pub fn connections(&self) -> usize {
        self.script.connections.load(Ordering::SeqCst)
    }

    /// The most messages that were being transferred at one time (from DATA
    /// to its answer).
    pub fn most_at_once(&self) -> usize {
        self.script.most_in_progress.load(Ordering::SeqCst)
    }

    async fn start_with(up: bool) -> SmtpSink {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let up = Arc::new(AtomicBool::new(up));
        let script = Arc::new(Script::default());
        let (store, serving, plan) = (messages.clone(), up.clone(), script.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                if !serving.load(Ordering::SeqCst) {
                    let _ = stream
                        .write_all(b"421 sink.test Service not available\r\n")
                        .await;
                    continue;
                }
                let (store, plan) = (store.clone(), plan.clone());
                plan.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    // A client that hangs up mid-conversation is not the test's concern.
                    let _ = serve(stream, store, plan).await;
                });
            }
        });
        SmtpSink {
            port,
            messages,
            up,
            script,
            accept,
        }
    }

    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages have arrived, failing after 10 s.
    pub async fn wait_for(&self, n: usize) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} messages; {} arrived",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.accept.abort();
        self.hang_up();
    }
}

/// What the sink does with one message it has read.
enum Answer {
    Take,
    Refuse,
    Hang,
}

impl Script {
    /// Decides, and keeps the message where the decision says, in one step:
    /// connections sending at once each get their own place in the count.
    fn answer(&self, store: &Mutex<Vec<ReceivedMail>>, mail: ReceivedMail) -> Answer {
        let mut held = store.lock().unwrap();
        let refuse_one = self
            .refuse_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let past_limit = match *self.limit.lock().unwrap() {
            Some((limit, then)) if held.len() >= limit => Some(then),
            _ => None,
        };
        match (refuse_one, past_limit) {
            (true, _) | (false, Some(Then::Refuse)) => {
                self.refused.lock().unwrap().push(mail);
                Answer::Refuse
            }
            (false, Some(Then::Hang)) => {
                held.push(mail);
                Answer::Hang
            }
            (false, None) => {
                held.push(mail);
                Answer::Take
            }
        }
    }
}

async fn serve(
    stream: TcpStream,
    store: Arc<Mutex<Vec<ReceivedMail>>>,
    script: Arc<Script>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write
        .write_all(b"220 sink.test ESMTP test sink\r\n")
        .await?;
    let mut from = String::new();
    let mut recipients = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 sink.test\r\n",
            "MAIL" => {
                from = between_angles(&command);
                recipients.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                recipients.push(between_angles(&command));
                b"250 OK\r\n"
            }
            "DATA" => {
                let now = script.in_progress.fetch_add(1, Ordering::SeqCst) + 1;
                script.most_in_progress.fetch_max(now, Ordering::SeqCst);
                let answer = transfer(
                    &mut read,
                    &mut write,
                    &store,
                    &script,
                    ReceivedMail {
                        from: std::mem::take(&mut from),
                        recipients: std::mem::take(&mut recipients),
                        data: String::new(),
                    },
                )
                .await;
                script.in_progress.fetch_sub(1, Ordering::SeqCst);
                match answer? {
                    Some(reply) => reply,
                    None => return Ok(()),
                }
            }
            "RSET" => {
                from.clear();
                recipients.clear();
                b"250 OK\r\n"
            }
            "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// DATA: reads the message and decides its answer; `None` when the
/// conversation ends here (the client hung up, or the answer never comes).
async fn transfer(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    store: &Mutex<Vec<ReceivedMail>>,
    script: &Script,
    envelope: ReceivedMail,
) -> std::io::Result<Option<&'static [u8]>> {
    write
        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
        .await?;
    let Some(data) = read_data(read).await? else {
        return Ok(None);
    };
    // Stored before the reply, so a client that has its 250 finds the
    // message already here.
    let mail = ReceivedMail { data, ..envelope };
    match script.answer(store, mail) {
        Answer::Take => {
            let delay = *script.delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(Some(b"250 OK queued\r\n"))
        }
        Answer::Refuse => Ok(Some(b"451 4.3.0 Try again later\r\n")),
        Answer::Hang => {
            let mut hung_up = script.hung_up.subscribe();
            let _ = hung_up.wait_for(|closed| *closed).await;
            Ok(None)
        }
    }
}

/// Reads the message after DATA up to the line ".", undoing dot-stuffing.
/// `None` if the client hung up first.
async fn read_data(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<String>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(Some(String::from_utf8_lossy(&data).into_owned()));
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        data.extend_from_slice(unstuffed);
    }
}

fn between_angles(command: &str) -> String {
    match (command.find('<'), command.rfind('>')) {
        (Some(start), Some(end)) if start < end => command[start + 1..end].to_owned(),
        _ => String::new(),
    }
}

impl ReceivedMail {
    /// Reads a message as the file transport writes it (`.eml`): no envelope.
    pub fn from_eml(data: String) -> ReceivedMail {
        ReceivedMail {
            from: String::new(),
            recipients: Vec::new(),
            data,
        }
    }

    fn split(&self) -> (&str, &str) {
        for separator in ["\r\n\r\n", "\n\n"] {
            if let Some(at) = self.data.find(separator) {
                return (&self.data[..at], &self.data[at + separator.len()..]);
            }
        }
        (&self.data, "")
    }

    /// A header's value, unfolded, as sent (still encoded).
    pub fn header(&self, name: &str) -> Option<String> {
        let (headers, _) = self.split();
        let mut unfolded: Vec<String> = Vec::new();
        for line in headers.lines() {
            match unfolded.last_mut() {
                Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
                _ => unfolded.push(line.to_owned()),
            }
        }
        unfolded.into_iter().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    /// The subject, with RFC 2047 encoded words (`=?utf-8?b?…?=`) decoded.
    pub fn subject(&self) -> String {
        decode_encoded_words(&self.header("Subject").unwrap_or_default())
    }

    /// The body of a single-part message, with its transfer encoding (base64 or
    /// quoted-printable) undone and line endings as `\n`.
    pub fn text_body(&self) -> String {
        let (_, body) = self.split();
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let bytes = match encoding.as_str() {
            "base64" => decode_base64(body),
            "quoted-printable" => decode_quoted_printable(body),
            _ => body.as_bytes().to_vec(),
        };
        String::from_utf8(bytes)
            .expect("the body is UTF-8")
            .replace("\r\n", "\n")
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .expect("valid base64")
}

fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'=' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let rest = &bytes[i + 1..];
        if rest.starts_with(b"\r\n") {
            i += 3; // soft line break
        } else if rest.starts_with(b"\n") {
            i += 2;
        } else if let Some(byte) = rest
            .get(..2)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(b'=');
            i += 1;
        }
    }
    out
}

/// Decodes one `=?charset?B|Q?text?=` word into bytes (the charset is taken to be
/// UTF-8, which is all lettre writes).
fn decode_word(word: &str) -> Option<Vec<u8>> {
    let inner = word.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut parts = inner.splitn(3, '?');
    let (_charset, encoding, text) = (parts.next()?, parts.next()?, parts.next()?);
    match encoding {
        "B" | "b" => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        "Q" | "q" => Some(decode_quoted_printable(&text.replace('_', " "))),
        _ => None,
    }
}

/// Decodes a header value; the space between two adjacent encoded words is
/// folding, not text, and a character may be split across them.
fn decode_encoded_words(value: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut previous_encoded = false;
    for (i, token) in value.split(' ').enumerate() {
        match decode_word(token) {
            Some(bytes) => {
                if i > 0 && !previous_encoded {
                    out.push(' ');
                }
                pending.extend(bytes);
                previous_encoded = true;
            }
            None => {
                out.push_str(&String::from_utf8_lossy(&std::mem::take(&mut pending)));
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(token);
                previous_encoded = false;
            }
        }
    }
    out.push_str(&String::from_utf8_lossy(&pending));
    out
}
