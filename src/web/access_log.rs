//! The outermost layer of every request: a request id (echoed in
//! `x-request-id`), the request's metrics, and one access-log line at `info`
//! (target `access`) with the method, the matched route pattern, the status,
//! the duration and the id. Never the path as sent, its query string, a body
//! or a cookie: a query string can carry a reset token or a national ID.
//!
//! Written as a plain `Transform` rather than from several `from_fn` layers and
//! `tracing-actix-web`'s span: this runs for every static file and health
//! probe, so it does only what those need. Pages get a `tracing` span with the
//! id on top of it ([`request_span`]), so that what a handler logs can be
//! traced to its request.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest};
use tracing::Instrument;

use crate::web::metrics::{Metrics, UNMATCHED};

/// A request's id: 64 random bits, written as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(u64);

impl RequestId {
    pub fn new() -> RequestId {
        RequestId(rand::random())
    }

    fn header_value(self) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 16];
        for (i, d) in digits.iter_mut().enumerate() {
            *d = HEX[((self.0 >> (60 - 4 * i)) & 0xf) as usize];
        }
        HeaderValue::from_bytes(&digits)
            .unwrap_or_else(|_| unreachable!("hex digits are a valid header value"))
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The fields of one access-log line. Built from the route pattern the request
/// matched, never from its path, so nothing the client put in the URL beyond
/// the route's shape can reach the log.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLine {
    pub method: Method,
    pub route: String,
    pub status: u16,
    pub duration_ms: f64,
    pub request_id: RequestId,
}

impl AccessLine {
    pub fn of(req: &HttpRequest, status: StatusCode, took: Duration, id: RequestId) -> AccessLine {
        AccessLine {
            method: req.method().clone(),
            route: req.match_pattern().unwrap_or_else(|| UNMATCHED.to_owned()),
            status: status.as_u16(),
            duration_ms: millis(took),
            request_id: id,
        }
    }

    fn log(&self) {
        tracing::info!(
            target: "access",
            method = %self.method,
            route = %self.route,
            status = self.status,
            duration_ms = self.duration_ms,
            request_id = %self.request_id,
        );
    }
}

/// The middleware; see the module documentation.
#[derive(Clone)]
pub struct RequestLog {
    metrics: Arc<Metrics>,
}

impl RequestLog {
    pub fn new(metrics: Arc<Metrics>) -> RequestLog {
        RequestLog { metrics }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequestLog
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestLogService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestLogService {
            service: Rc::new(service),
            metrics: self.metrics.clone(),
        }))
    }
}

pub struct RequestLogService<S> {
    service: Rc<S>,
    metrics: Arc<Metrics>,
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl<S, B> Service<ServiceRequest> for RequestLogService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let start = Instant::now();
        let id = RequestId::new();
        req.extensions_mut().insert(id);
        let method = req.method().clone();
        let metrics = self.metrics.clone();
        let fut = self.service.call(req);
        Box::pin(async move {
            match fut.await {
                Ok(mut res) => {
                    let took = start.elapsed();
                    let line = AccessLine::of(res.request(), res.status(), took, id);
                    record(&metrics, &line, took);
                    res.headers_mut().insert(X_REQUEST_ID, id.header_value());
                    Ok(res)
                }
                Err(e) => {
                    // An error that escaped every layer: actix turns it into a
                    // response after this point, with this status.
                    let took = start.elapsed();
                    let line = AccessLine {
                        method,
                        route: UNMATCHED.to_owned(),
                        status: e.as_response_error().status_code().as_u16(),
                        duration_ms: millis(took),
                        request_id: id,
                    };
                    record(&metrics, &line, took);
                    Err(e)
                }
            }
        })
    }
}

fn millis(took: Duration) -> f64 {
    // Whole microseconds, so the figure prints short.
    took.as_micros() as f64 / 1000.0
}

fn record(metrics: &Metrics, line: &AccessLine, took: Duration) {
    let route = (line.route != UNMATCHED).then_some(line.route.as_str());
    let status = StatusCode::from_u16(line.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    metrics.observe(&line.method, route, status, took);
    line.log();
}

/// A `tracing` span around a page's handling, carrying the request id, so that a
/// handler's warning or error can be matched with its access-log line.
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .extensions()
        .get::<RequestId>()
        .copied()
        .unwrap_or_default();
    next.call(req)
        .instrument(tracing::info_span!("request", request_id = %id))
        .await
}

#[cfg(test)]
mod tests {
    use actix_web::http::header;
    use actix_web::test as http;
    use actix_web::{App, HttpResponse, web};

    use super::*;

    #[test]
    fn the_request_id_is_sixteen_hex_digits_in_the_header_and_the_log() {
        let id = RequestId(0x00ab_cdef_0123_4567);
        assert_eq!(id.to_string(), "00abcdef01234567");
        assert_eq!(id.header_value(), "00abcdef01234567");
        assert_ne!(RequestId::new(), RequestId::new());
    }

    #[actix_web::test]
    async fn the_access_line_names_the_route_pattern_and_nothing_the_client_sent() {
        let app = http::init_service(
            App::new()
                .route(
                    "/admin/users/{id}/disable",
                    web::post().to(HttpResponse::SeeOther),
                )
                .default_service(web::to(HttpResponse::NotFound)),
        )
        .await;
        let secret = "850101-1234568";
        let req = http::TestRequest::post()
            .uri(&format!(
                "/admin/users/42/disable?national_id={secret}&token=reset-me"
            ))
            .insert_header((header::COOKIE, "mr_session=cookie-secret"))
            .set_payload(format!("national_id={secret}"))
            .to_request();
        let res = http::call_service(&app, req).await;
        let id = RequestId(7);
        let line = AccessLine::of(res.request(), res.status(), Duration::from_micros(1500), id);
        assert_eq!(
            line,
            AccessLine {
                method: Method::POST,
                route: "/admin/users/{id}/disable".to_owned(),
                status: 303,
                duration_ms: 1.5,
                request_id: id,
            }
        );
        let printed = format!("{line:?}");
        for leak in [secret, "reset-me", "42", "cookie-secret", "?"] {
            assert!(!printed.contains(leak), "{leak} in {printed}");
        }

        let req = http::TestRequest::get()
            .uri("/random/path/9f8e?q=1")
            .to_request();
        let res = http::call_service(&app, req).await;
        let line = AccessLine::of(res.request(), res.status(), Duration::ZERO, id);
        assert_eq!(line.route, UNMATCHED);
        assert_eq!(line.status, 404);
    }
}
