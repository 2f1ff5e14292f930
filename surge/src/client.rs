//! The load client: one HTTP/1.1 keep-alive connection per virtual user (hyper's
//! low-level client over a tokio `TcpStream`), a tiny cookie jar per user, and
//! what the phases read from answers (a form's CSRF token, `Retry-After`,
//! `Location`). Latencies are kept per row in a [`Recorder`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{
    CONTENT_TYPE, COOKIE, ETAG, HOST, HeaderName, HeaderValue, IF_NONE_MATCH, LOCATION,
    RETRY_AFTER, SET_COOKIE,
};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the connection closed")]
    Closed,
    #[error("request: {0}")]
    Request(#[from] hyper::http::Error),
}

/// An answer, its body read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
    pub retry_after: Option<Duration>,
    pub etag: Option<String>,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("")
    }
}

/// One virtual user's connection and cookies. A connection the server closed
/// is opened again on the next request.
pub struct Connection {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
    pub jar: Jar,
    /// The address the client says it speaks for (`X-Forwarded-For`, which
    /// the server started by surge trusts), sent with every request: each
    /// virtual citizen is a different person behind a different address.
    pub forwarded_for: Option<String>,
    /// Connections opened again after the server closed one.
    pub reconnects: u64,
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A distinct client address for the `n`th attempt or person: `first.x.y.z`.
pub fn address(first: u8, n: usize) -> String {
    format!("{first}.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

impl Connection {
    pub fn new(addr: SocketAddr) -> Connection {
        let host = HeaderValue::from_str(&addr.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Connection {
            addr,
            host,
            sender: None,
            jar: Jar::default(),
            forwarded_for: None,
            reconnects: 0,
        }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, ClientError> {
        let usable = match &mut self.sender {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            if self.sender.is_some() {
                self.reconnects += 1;
            }
            let stream =
                TcpStream::connect(self.addr)
                    .await
                    .map_err(|source| ClientError::Connect {
                        addr: self.addr,
                        source,
                    })?;
            // Small requests and answers: waiting to fill a segment only adds
            // latency.
            stream
                .set_nodelay(true)
                .map_err(|source| ClientError::Connect {
                    addr: self.addr,
                    source,
                })?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                // The connection ends when the server closes it or the
                // sender is dropped; either way the next request reconnects.
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        self.sender.as_mut().ok_or(ClientError::Closed)
    }

    pub async fn get(&mut self, path: &str) -> Result<Answer, ClientError> {
        self.send(Method::GET, path, None, None).await
    }

    /// A conditional GET: `304` with no body while the answer still has `etag`.
    pub async fn get_if_none_match(
        &mut self,
        path: &str,
        etag: Option<&str>,
    ) -> Result<Answer, ClientError> {
        self.send(Method::GET, path, None, etag).await
    }

    /// Posts a urlencoded form.
    pub async fn post_form(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Result<Answer, ClientError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(Method::POST, path, Some(body), None).await
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
        if_none_match: Option<&str>,
    ) -> Result<Answer, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone());
        if let Some(cookie) = self.jar.header() {
            builder = builder.header(COOKIE, cookie);
        }
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        if let Some(address) = &self.forwarded_for {
            builder = builder.header(X_FORWARDED_FOR, address);
        }
        if let Some(etag) = if_none_match {
            builder = builder.header(IF_NONE_MATCH, etag);
        }
        let request = builder.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let sender = self.sender().await?;
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        let (parts, body) = response.into_parts();
        for value in parts.headers.get_all(SET_COOKIE) {
            if let Ok(v) = value.to_str() {
                self.jar.set(v);
            }
        }
        let header = |name: &HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header(&LOCATION);
        let retry_after = header(&RETRY_AFTER).and_then(|v| parse_retry_after(&v));
        let etag = header(&ETAG);
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        Ok(Answer {
            status: parts.status,
            location,
            retry_after,
            etag,
            body,
        })
    }
}

/// The cookies a user holds: name → value, as the server last set them.
#[derive(Debug, Default, Clone)]
pub struct Jar {
    cookies: BTreeMap<String, String>,
}

impl Jar {
    /// Applies one `Set-Cookie` header: a new value, or removal when the server
    /// expires it (`Max-Age=0` or an empty value).
    pub fn set(&mut self, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        let expired = parts.any(|attr| {
            attr.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("max-age") && v.trim().starts_with(['0', '-'])
            })
        });
        if expired || value.is_empty() {
            self.cookies.remove(name);
        } else {
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
    }

    pub fn insert(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_owned(), value.to_owned());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    pub fn clear(&mut self) {
        self.cookies.clear();
    }

    /// The `Cookie` header to send, if there is anything to send.
    pub fn header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            return None;
        }
        Some(
            self.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

/// `Retry-After` in seconds (the server never sends an HTTP date).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The value of the page's first hidden `csrf_token` field.
pub fn csrf_token(page: &str) -> Option<&str> {
    hidden_values(page, "csrf_token").next()
}

/// The values of every `<input … name="NAME" value="…">` of a page, in order
/// (the attribute order the templates write).
pub fn hidden_values<'p>(page: &'p str, name: &str) -> impl Iterator<Item = &'p str> + 'p {
    let needle = format!("name=\"{name}\" value=\"");
    let mut rest = page;
    std::iter::from_fn(move || {
        let at = rest.find(&needle)?;
        let after = &rest[at + needle.len()..];
        let end = after.find('"')?;
        rest = &after[end..];
        Some(&after[..end])
    })
}

/// The reservation id of a `Location: /reservations/{id}`.
pub fn reservation_id(location: &str) -> Option<i64> {
    location.strip_prefix("/reservations/")?.parse().ok()
}

/// Latencies (µs) and status counts of one row of the report.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    pub micros: Vec<u32>,
    /// Status code (0: no answer) → count.
    pub statuses: BTreeMap<u16, u64>,
}

impl Recorder {
    pub fn record(&mut self, status: Option<StatusCode>, took: Duration) {
        self.micros
            .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        *self
            .statuses
            .entry(status.map_or(0, |s| s.as_u16()))
            .or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        self.micros.extend(other.micros);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
    }

    pub fn requests(&self) -> u64 {
        self.statuses.values().sum()
    }
}

/// The `p`-th percentile (0–100) of sorted values, nearest rank.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 95.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn the_csrf_token_and_window_ids_are_read_from_the_page() {
        let page = r#"<form><input type="hidden" name="csrf_token" value="abc-_1">
            <input type="hidden" name="window_id" value="17"></form>
            <form><input type="hidden" name="csrf_token" value="abc-_1">
            <input type="hidden" name="window_id" value="18"></form>"#;
        assert_eq!(csrf_token(page), Some("abc-_1"));
        let ids: Vec<&str> = hidden_values(page, "window_id").collect();
        assert_eq!(ids, ["17", "18"]);
        assert_eq!(csrf_token("<p>no form</p>"), None);
        assert_eq!(csrf_token(r#"name="csrf_token" value="unterminated"#), None);
    }

    #[test]
    fn cookies_are_set_replaced_and_expired() {
        let mut jar = Jar::default();
        assert_eq!(jar.header(), None);
        jar.set("mr_session=one; Path=/; HttpOnly; SameSite=Lax");
        jar.set("mr_device=dev; Max-Age=31536000");
        assert_eq!(
            jar.header().as_deref(),
            Some("mr_device=dev; mr_session=one")
        );
        jar.set("mr_session=two; Path=/");
        assert_eq!(jar.get("mr_session"), Some("two"));
        jar.set("mr_session=; Max-Age=0; Path=/");
        assert_eq!(jar.get("mr_session"), None);
        jar.set("mr_device=x; max-age=0");
        assert_eq!(jar.header(), None);
        jar.set("garbage");
        assert_eq!(jar.header(), None);
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        assert_eq!(parse_retry_after("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn a_reservation_id_comes_from_its_location() {
        assert_eq!(reservation_id("/reservations/42"), Some(42));
        assert_eq!(reservation_id("/reservations"), None);
        assert_eq!(reservation_id("/login"), None);
    }

    #[test]
    fn recorders_count_statuses_and_merge() {
        let mut a = Recorder::default();
        a.record(Some(StatusCode::OK), Duration::from_micros(10));
        a.record(None, Duration::from_micros(20));
        let mut b = Recorder::default();
        b.record(Some(StatusCode::OK), Duration::from_micros(30));
        a.merge(b);
        assert_eq!(a.requests(), 3);
        assert_eq!(a.statuses.get(&200), Some(&2));
        assert_eq!(a.statuses.get(&0), Some(&1));
        assert_eq!(a.micros.len(), 3);
    }
}
