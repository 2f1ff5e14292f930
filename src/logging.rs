//! Log output: one line per event, whatever the event holds. The PostgreSQL
//! client's messages (and some errors' causes) carry line breaks; a line that
//! starts with a tab under an event is read by log shippers as an event of
//! its own, with no time and no level. The text format escapes them (`\n`,
//! `\r`) inside an event; `LOG_FORMAT=json` already does.

use std::borrow::Cow;
use std::io::{self, IsTerminal, Write};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// `event` (one formatted log event, ending in a line break) with every line
/// break inside it written as `\n` or `\r`: one line.
pub fn one_line(event: &[u8]) -> Cow<'_, [u8]> {
    let body = event.strip_suffix(b"\n").unwrap_or(event);
    if !body.iter().any(|b| matches!(b, b'\n' | b'\r')) {
        return Cow::Borrowed(event);
    }
    let mut out = Vec::with_capacity(event.len() + 8);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    if body.len() < event.len() {
        out.push(b'\n');
    }
    Cow::Owned(out)
}

/// A [`MakeWriter`] whose writers pass each event through [`one_line`]. The
/// formatter writes an event with one `write_all`, so each `write` is (the
/// rest of) one event.
#[derive(Debug, Clone)]
pub struct OneLine<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for OneLine<M> {
    type Writer = OneLineWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLineWriter(self.0.make_writer())
    }
}

pub struct OneLineWriter<W>(W);

impl<W: Write> Write for OneLineWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(&one_line(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Logs go to standard error through a thread of their own that writes them in
/// batches: with one access line per request, a system call per line would cost
/// more than serving a static file. Nothing is dropped; a full queue makes the
/// logging thread wait. `LOG` filters (default `info`, which includes the
/// access log), `LOG_FORMAT=json` writes JSON. `mask-reservation serve` and the
/// server `surge` starts both log through this, so the benchmark pays what
/// production pays.
pub fn init() -> WorkerGuard {
    let filter = EnvFilter::try_from_env("LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json");
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.with_writer(writer).json().init();
    } else {
        // One line per event, whatever its message holds (logging::one_line).
        builder.with_writer(OneLine(writer)).init();
    }
    guard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_with_line_breaks_becomes_one_line() {
        let event = b"2026-12-06T16:16:01Z ERROR r2d2: connection failed: refused\n\tIs the server running?\n";
        assert_eq!(
            one_line(event).as_ref(),
            b"2026-12-06T16:16:01Z ERROR r2d2: connection failed: refused\\n\tIs the server running?\n"
        );
        assert_eq!(one_line(b"a\r\nb\n").as_ref(), b"a\\r\\nb\n");
    }

    #[test]
    fn an_event_of_one_line_is_left_as_it_is() {
        let event = b"INFO served\n";
        assert!(matches!(one_line(event), Cow::Borrowed(_)));
        assert_eq!(one_line(b"no end").as_ref(), b"no end");
        assert_eq!(one_line(b"a\nno end").as_ref(), b"a\\nno end");
    }
}
