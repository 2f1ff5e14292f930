//! A request body that stops arriving: every read of a body waits at most
//! `BODY_READ_TIMEOUT` (15 s by default) for its next bytes. Past it the read
//! fails, the request is answered `408` with the error page, and the
//! connection is closed — otherwise a client that announces a body and never
//! sends it holds a connection and whatever the reader holds for as long as it
//! likes. (`client_request_timeout` bounds only the request head.)
//!
//! The wait runs only while someone is reading and no bytes are there, and
//! starts afresh with each chunk: an upload that keeps coming, however slowly,
//! is never cut. A handler that never reads its body is not held by it either.
//! Every reader (the CSRF check, forms, uploads, actix's own extractors) reads
//! through the one stream set here, and however it reports the failed read,
//! the answer is the 408 of this layer.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::Sleep;

use crate::web::errors;

/// How long a body may go without bytes when `BODY_READ_TIMEOUT` is not set.
pub const DEFAULT: Duration = Duration::from_secs(15);

/// The middleware: `every` is the longest wait for a body's next bytes.
pub async fn guard(
    every: Duration,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    let body = req.take_payload();
    if matches!(body, Payload::None) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let stalled = Rc::new(Cell::new(false));
    req.set_payload(Payload::Stream {
        payload: Box::pin(Timed {
            body,
            every,
            waiting: None,
            stalled: stalled.clone(),
        }),
    });
    let res = next.call(req).await;
    if !stalled.get() {
        return res.map(ServiceResponse::map_into_left_body);
    }
    let closing = |mut res: actix_web::HttpResponse| {
        res.head_mut().set_connection_type(ConnectionType::Close);
        res
    };
    match res {
        Ok(res) => {
            let (req, _) = res.into_parts();
            let page = closing(errors::error_page(&req, StatusCode::REQUEST_TIMEOUT));
            Ok(ServiceResponse::new(req, page).map_into_right_body())
        }
        // An error with no request left to render a page for: the status alone.
        Err(e) => {
            tracing::debug!(error = %e, "a stalled body ended in an error");
            let res = closing(actix_web::HttpResponse::RequestTimeout().finish());
            Err(actix_web::error::InternalError::from_response(e, res).into())
        }
    }
}

/// A body whose reads fail once no bytes came for `every`.
struct Timed {
    body: Payload,
    every: Duration,
    /// Since when a reader waits for bytes; `None` between chunks.
    waiting: Option<Pin<Box<Sleep>>>,
    stalled: Rc<Cell<bool>>,
}

impl Stream for Timed {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.stalled.get() {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = this.body.poll_next_unpin(cx) {
            this.waiting = None;
            return Poll::Ready(item);
        }
        let every = this.every;
        let waiting = this
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
        match waiting.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.stalled.set(true);
                Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no bytes of the request body for {every:?}"),
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    /// A body fed by hand through the sender, read through [`Timed`].
    fn timed(every: Duration) -> (mpsc::UnboundedSender<Bytes>, Timed, Rc<Cell<bool>>) {
        let (sender, chunks) = mpsc::unbounded_channel::<Bytes>();
        let body = futures_util::stream::unfold(chunks, |mut chunks| async move {
            let chunk = chunks.recv().await?;
            Some((Ok(chunk), chunks))
        });
        let stalled = Rc::new(Cell::new(false));
        let timed = Timed {
            body: Payload::Stream {
                payload: Box::pin(body),
            },
            every,
            waiting: None,
            stalled: stalled.clone(),
        };
        (sender, timed, stalled)
    }

    async fn read_all(timed: &mut Timed) -> Result<Vec<u8>, PayloadError> {
        let mut read = Vec::new();
        while let Some(chunk) = timed.next().await {
            read.extend_from_slice(&chunk?);
        }
        Ok(read)
    }

    // The clock is paused: time moves only as far as the timers ask, the same
    // on every run however loaded the machine.
    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_coming_is_read_whole_however_long_it_takes() {
        let (sender, mut timed, stalled) = timed(Duration::from_secs(15));
        let slow_client = async move {
            // A chunk every 10 s for a minute: each wait is shorter than 15 s.
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_secs(10)).await;
                sender.send(Bytes::from_static(b"ab")).unwrap();
            }
        };
        let (read, ()) = tokio::join!(read_all(&mut timed), slow_client);
        assert_eq!(read.unwrap(), b"abababababab");
        assert!(!stalled.get());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_fails_the_read_once_and_then_ends() {
        let (sender, mut timed, stalled) = timed(Duration::from_secs(15));
        sender.send(Bytes::from_static(b"emai")).unwrap();
        assert_eq!(timed.next().await.unwrap().unwrap(), "emai");
        let started = tokio::time::Instant::now();
        let err = timed.next().await.unwrap().unwrap_err();
        assert!(
            matches!(&err, PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut),
            "{err}"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(15), "paused clock");
        assert!(stalled.get());
        assert!(timed.next().await.is_none(), "nothing after the failure");
        drop(sender);
    }
}
