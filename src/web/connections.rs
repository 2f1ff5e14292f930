//! What one client connection may take of the server: how it is accepted,
//! how long its request head may take, how much of its answers it holds in
//! the process, and how long an answer may wait for it to read.
//!
//! The fault: a client that asks for large answers (`/opendata/stock.json`,
//! `stock.csv`, `sales/json?perPage=5000`, the map) and never reads them. The
//! HTTP/1 dispatcher copies each chunk a body yields into the connection's
//! write buffer, and a body held in memory is one chunk: every such
//! connection kept a private copy of a whole answer (1.4 MB for a country's
//! `stock.csv`) for as long as it stayed open, which was forever, since
//! nothing timed out a write. A thousand of them took an instance from 32 MB
//! to 1.41 GB.
//!
//! What bounds it now:
//! - **Answers in slices** ([`pace`]): a body that is in memory is handed to
//!   the connection [`SLICE`] bytes at a time, each slice a view of the same
//!   bytes (`Bytes::split_to`, no copy). The dispatcher asks for the next
//!   slice only while its write buffer is under 32 KB, so a connection whose
//!   socket does not drain holds at most that buffer and one slice of its own;
//!   the rest of an answer served from the open-data snapshot stays the one
//!   copy every reader shares. A page rendered for one client (the map's list,
//!   at most 200 stores) is still held whole until sent or dropped.
//!   An answer then leaves in several writes, so every socket has
//!   `TCP_NODELAY`: with Nagle's algorithm the kernel held each write's short
//!   tail until the client acknowledged the write before, which a client
//!   delays by up to 40 ms — `sales/json` (44 KB) fell from 51,000 to 2,900
//!   answers a second before it was set.
//! - **A send timeout** ([`on_connect`]): `TCP_USER_TIMEOUT` on every
//!   accepted socket, `SEND_TIMEOUT` (60 s by default, nginx's
//!   `send_timeout`). When data the server wrote stays unacknowledged, or
//!   unsent because the client's window stays shut (a client that does not
//!   read), for that long, the kernel ends the connection and the dispatcher's
//!   next write fails, which drops the connection and everything it held.
//!   actix-web has no write timeout of its own (a body is not even polled
//!   while the socket is full, so no body can time itself out); the kernel's
//!   is exact and costs nothing per write. Linux only: elsewhere the option
//!   is not set and a connection that never reads keeps its slice.
//! - **The request head** must arrive within [`REQUEST_HEAD_TIMEOUT`] of the
//!   connection's start (actix's `client_request_timeout`): a client that
//!   sends its head a byte at a time (slowloris) is answered 408 and closed.
//!   A body then has `BODY_READ_TIMEOUT` between bytes (`body_timeout.rs`),
//!   an idle kept-alive connection [`KEEP_ALIVE`].
//! - **The listen backlog** is [`BACKLOG`], not the 128 that the standard
//!   library's `TcpListener::bind` asks for, so that a thousand clients
//!   connecting at once are queued rather than made to retry their SYN a
//!   second later.
//!
//! The number of connections is left at actix's 25,000 per worker: a stuck
//! one costs about 100 KB here, and the open-file limit usually binds first.

use std::any::Any;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Bytes;

/// The most bytes of an answer handed to a connection's write buffer at once.
pub const SLICE: usize = 16 * 1024;

/// How long the request head may take from the connection's start.
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a kept-alive connection may stay idle between requests.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// How long written data may wait for the client when `SEND_TIMEOUT` is not set.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections waiting to be accepted.
pub const BACKLOG: i32 = 1024;

/// Binds the listening socket as `HttpServer::bind` would (address reuse, a
/// backlog of [`BACKLOG`]), for a server that is given its listener.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The hook run on every accepted connection: sets the send timeout
/// ([`set_send_timeout`]).
pub fn on_connect(send_timeout: Duration) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync {
    move |conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
            && let Err(e) = set_send_timeout(tcp, send_timeout)
        {
            tracing::debug!(error = %e, "send timeout not set on a connection");
        }
    }
}

/// `TCP_USER_TIMEOUT`: the kernel ends the connection once written data has
/// waited `timeout` for the client (unacknowledged, or unsent behind a shut
/// window).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn set_send_timeout(tcp: &impl std::os::fd::AsFd, timeout: Duration) -> std::io::Result<()> {
    socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(timeout))
}

/// Not available on this system: connections are left to the system's own
/// retransmission timeouts.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn set_send_timeout<T>(_tcp: &T, _timeout: Duration) -> std::io::Result<()> {
    Ok(())
}

/// The middleware: every answer whose body is in memory goes out in slices.
pub async fn pace(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    Ok(next.call(req).await?.map_body(|_, body| Sliced::of(body)))
}

pin_project_lite::pin_project! {
    /// A body handed out [`SLICE`] bytes at a time when it is in memory, or as
    /// it comes when it is a stream.
    #[project = SlicedProj]
    pub enum Sliced<B> {
        Stream { #[pin] body: B },
        Slices { bytes: Bytes },
    }
}

impl<B: MessageBody> Sliced<B> {
    pub fn of(body: B) -> Sliced<B> {
        match body.size() {
            BodySize::Sized(n) if n > SLICE as u64 => match body.try_into_bytes() {
                Ok(bytes) => Sliced::Slices { bytes },
                Err(body) => Sliced::Stream { body },
            },
            _ => Sliced::Stream { body },
        }
    }
}

impl<B: MessageBody> MessageBody for Sliced<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        match self {
            Sliced::Stream { body } => body.size(),
            Sliced::Slices { bytes } => BodySize::Sized(bytes.len() as u64),
        }
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        match self.project() {
            SlicedProj::Stream { body } => body.poll_next(cx),
            SlicedProj::Slices { bytes } if bytes.is_empty() => Poll::Ready(None),
            SlicedProj::Slices { bytes } => {
                let n = bytes.len().min(SLICE);
                Poll::Ready(Some(Ok(bytes.split_to(n))))
            }
        }
    }

    fn try_into_bytes(self) -> Result<Bytes, Self> {
        match self {
            Sliced::Stream { body } => body
                .try_into_bytes()
                .map_err(|body| Sliced::Stream { body }),
            Sliced::Slices { bytes } => Ok(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use actix_web::body::{BodyStream, to_bytes};
    use futures_util::stream;

    use super::*;

    async fn chunks<B: MessageBody + Unpin>(mut body: B) -> Vec<Bytes>
    where
        B::Error: std::fmt::Debug,
    {
        let mut out = Vec::new();
        while let Some(chunk) = poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await {
            out.push(chunk.unwrap());
        }
        out
    }

    #[actix_web::test]
    async fn a_large_answer_goes_in_slices_of_the_same_bytes_with_its_length_known() {
        let whole = Bytes::from((0..100_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let body = Sliced::of(whole.clone());
        assert_eq!(body.size(), BodySize::Sized(100_000));
        let slices = chunks(body).await;
        assert_eq!(slices.len(), 100_000usize.div_ceil(SLICE));
        assert!(slices.iter().all(|s| !s.is_empty() && s.len() <= SLICE));
        assert_eq!(slices.concat(), whole.to_vec());
        // Views into the one buffer: nothing was copied.
        let range = whole.as_ptr_range();
        for s in &slices {
            assert!(range.contains(&s.as_ptr()), "a slice outside the answer");
        }
    }

    #[actix_web::test]
    async fn a_rendered_page_is_sliced_too() {
        let page = "<p>약국</p>".repeat(10_000);
        let body = Sliced::of(page.clone());
        assert_eq!(body.size(), BodySize::Sized(page.len() as u64));
        let slices = chunks(body).await;
        assert!(slices.len() > 1);
        assert_eq!(slices.concat(), page.as_bytes());
    }

    #[actix_web::test]
    async fn a_small_answer_goes_whole() {
        let body = Sliced::of(Bytes::from_static(b"{\"status\":\"up\"}"));
        assert!(matches!(body, Sliced::Stream { .. }));
        assert_eq!(
            chunks(body).await,
            vec![Bytes::from_static(b"{\"status\":\"up\"}")]
        );
    }

    #[actix_web::test]
    async fn a_stream_goes_as_it_comes() {
        let parts = vec![
            Bytes::from(vec![1u8; 3 * SLICE]),
            Bytes::from_static(b"end"),
        ];
        let stream = stream::iter(parts.clone().into_iter().map(Ok::<_, std::io::Error>));
        let body = Sliced::of(BodyStream::new(stream));
        assert_eq!(body.size(), BodySize::Stream);
        assert_eq!(chunks(body).await, parts);
    }

    #[actix_web::test]
    async fn an_outer_layer_can_still_take_the_answer_whole() {
        let whole = Bytes::from(vec![7u8; 5 * SLICE]);
        let body = Sliced::of(whole.clone());
        assert_eq!(to_bytes(body).await.unwrap(), whole);
    }

    #[test]
    fn every_accepted_connection_gets_the_send_timeout() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        set_send_timeout(&accepted, Duration::from_secs(7)).unwrap();
        assert_eq!(
            socket2::SockRef::from(&accepted)
                .tcp_user_timeout()
                .unwrap(),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn the_listener_reuses_its_address_and_queues_a_crowd() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(socket2::SockRef::from(&listener).reuse_address().unwrap());
        // More than the standard library's 128 connect before any is
        // accepted (past a full queue, a connect would wait for its SYN to be
        // tried again, and time out here).
        let addr = listener.local_addr().unwrap();
        let waiting: Vec<_> = (0..300)
            .map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap())
            .collect();
        assert_eq!(waiting.len(), 300);
    }
}
