//! Request metrics in Prometheus text format, and who may read them.
//!
//! Requests are counted by the route pattern they matched (`/admin/users/{id}/disable`),
//! never by the raw path, and all unmatched paths share one label, so the
//! number of series is bounded by the route table however many odd paths are
//! asked for. `/metrics` answers only the configured addresses or a bearer of
//! `METRICS_TOKEN`; anyone else gets the ordinary 404 page, as for a page that
//! does not exist, so a scan learns nothing. The same rule opens the details of
//! `/healthz` ([`Access::admits`]).

use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::config::{Config, MetricsToken, TrustedProxies};
use crate::web::client_addr::{self, canonical};
use crate::web::errors::AppError;

/// The label of every request that matched no route.
pub const UNMATCHED: &str = "unmatched";

const NAMESPACE: &str = "mask_reservation";

/// The request counters of one application (a registry of its own, so that
/// several applications in one process, as in the tests, do not collide).
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    durations: HistogramVec,
}

#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let labels = ["endpoint", "method", "status"];
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered").namespace(NAMESPACE),
            &labels,
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "http_requests_duration_seconds",
                "Time from request to response head",
            )
            .namespace(NAMESPACE)
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &labels,
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(durations.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            durations,
        })
    }

    /// Counts one answered request. `route` is the matched pattern, if any.
    pub fn observe(
        &self,
        method: &Method,
        route: Option<&str>,
        status: StatusCode,
        took: Duration,
    ) {
        let labels = [
            route.unwrap_or(UNMATCHED),
            method_label(method),
            status.as_str(),
        ];
        self.requests.with_label_values(&labels).inc();
        self.durations
            .with_label_values(&labels)
            .observe(took.as_secs_f64());
    }

    /// The gauges of the open-data snapshot's freshness: when it was last
    /// checked against the database and when its data was read (Unix seconds;
    /// its age is `time() - …`).
    pub fn stock_freshness(&self) -> Result<crate::opendata::snapshot::Freshness, MetricsError> {
        let gauge = |name: &str, help: &str| -> Result<prometheus::Gauge, MetricsError> {
            let g = prometheus::Gauge::with_opts(Opts::new(name, help).namespace(NAMESPACE))?;
            self.registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        Ok(crate::opendata::snapshot::Freshness {
            checked: gauge(
                "opendata_snapshot_checked_timestamp_seconds",
                "When the open-data snapshot was last checked against the database",
            )?,
            taken: gauge(
                "opendata_snapshot_taken_timestamp_seconds",
                "When the data of the open-data snapshot in force was read",
            )?,
        })
    }

    /// The waiting room's counters: held requests in flight, tickets waiting,
    /// and how each held request was answered.
    pub fn waiting_room(&self) -> Result<crate::web::waiting_room::RoomMetrics, MetricsError> {
        let gauge = |name: &str, help: &str| -> Result<prometheus::IntGauge, MetricsError> {
            let g = prometheus::IntGauge::with_opts(Opts::new(name, help).namespace(NAMESPACE))?;
            self.registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str, help: &str| -> Result<prometheus::IntCounter, MetricsError> {
            let c = prometheus::IntCounter::with_opts(Opts::new(name, help).namespace(NAMESPACE))?;
            self.registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(crate::web::waiting_room::RoomMetrics {
            in_flight: gauge(
                "waiting_room_in_flight",
                "Held requests (login, store page, booking) being served",
            )?,
            waiting: gauge("waiting_room_waiting", "Tickets in this instance's line")?,
            admitted: counter("waiting_room_admitted_total", "Held requests let in")?,
            told_to_wait: counter(
                "waiting_room_told_to_wait_total",
                "Held requests answered with the waiting page (503)",
            )?,
            too_many: counter(
                "waiting_room_too_many_total",
                "Held requests refused as a flood (429)",
            )?,
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Result<String, MetricsError> {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Methods outside the standard set share a label: a client may send any token
/// as a method, and each would otherwise become a series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Who may read `/metrics`: the part of the configuration that says so.
pub struct Access {
    allow: Vec<IpAddr>,
    token: Option<MetricsToken>,
    proxies: TrustedProxies,
}

impl Access {
    pub fn from_config(config: &Config) -> Access {
        Access {
            allow: config.metrics_allow.clone(),
            token: config.metrics_token.clone(),
            proxies: config.trusted_proxies.clone(),
        }
    }

    /// Who sends `req`, as the rule sees them.
    pub fn asker<'r>(&self, req: &'r HttpRequest) -> Asker<'r> {
        let client = client_addr::of(req, &self.proxies);
        Asker {
            address: client.address,
            relayed_untrusted: client.relayed_untrusted,
            bearer: bearer(req.headers()),
        }
    }

    /// Whether `asker` may read the metrics ([`may_read`]).
    pub fn lets_in(&self, asker: &Asker<'_>) -> bool {
        may_read(asker, &self.allow, self.token.as_ref())
    }

    /// Whether `req` passes the rule: what `/metrics` and the details of
    /// `/healthz` ask.
    pub fn admits(&self, req: &HttpRequest) -> bool {
        self.lets_in(&self.asker(req))
    }
}

/// Who asks for `/metrics`, as far as the access rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asker<'a> {
    /// The client's address ([`client_addr`]).
    pub address: Option<IpAddr>,
    /// The request says a proxy relayed it, and its peer is no trusted proxy
    /// ([`client_addr::Client::relayed_untrusted`]): the peer's address says
    /// nothing of the client.
    pub relayed_untrusted: bool,
    /// The bearer token sent in `Authorization`, if any.
    pub bearer: Option<&'a str>,
}

/// Whether `asker` may read the metrics: a matching bearer token from anywhere,
/// or no token needed from an allowed address reached directly.
pub fn may_read(asker: &Asker<'_>, allow: &[IpAddr], token: Option<&MetricsToken>) -> bool {
    if let (Some(token), Some(bearer)) = (token, asker.bearer) {
        return token.matches(bearer);
    }
    !asker.relayed_untrusted && asker.address.is_some_and(|a| allow.contains(&canonical(a)))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `GET /metrics`.
pub async fn serve(
    req: HttpRequest,
    access: web::Data<Access>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, AppError> {
    let asker = access.asker(&req);
    if !access.lets_in(&asker) {
        tracing::info!(
            address = %asker.address.map_or_else(|| "unknown".to_owned(), |a| a.to_string()),
            token_sent = asker.bearer.is_some(),
            "refused /metrics"
        );
        return Err(AppError::NotFound);
    }
    let text = metrics.render().map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> MetricsToken {
        MetricsToken::parse("a-long-enough-token").unwrap()
    }

    fn ip(a: &str) -> Option<IpAddr> {
        Some(a.parse().unwrap())
    }

    #[test]
    fn an_allowed_address_reached_directly_needs_no_token() {
        let allow = crate::config::loopback();
        let direct = |address| Asker {
            address,
            relayed_untrusted: false,
            bearer: None,
        };
        assert!(may_read(&direct(ip("127.0.0.1")), &allow, None));
        assert!(may_read(&direct(ip("::1")), &allow, None));
        assert!(may_read(&direct(ip("::ffff:127.0.0.1")), &allow, None));
        assert!(!may_read(&direct(ip("10.1.2.3")), &allow, None));
        assert!(!may_read(&direct(None), &allow, None));
        assert!(!may_read(&direct(ip("127.0.0.1")), &[], None));
    }

    #[test]
    fn a_request_relayed_by_an_untrusted_proxy_is_not_admitted_by_address() {
        let asker = Asker {
            address: ip("127.0.0.1"),
            relayed_untrusted: true,
            bearer: None,
        };
        assert!(!may_read(&asker, &crate::config::loopback(), None));
    }

    #[test]
    fn the_token_opens_from_anywhere_and_a_wrong_one_closes_even_an_allowed_address() {
        let allow = crate::config::loopback();
        let with = |bearer| Asker {
            address: ip("203.0.113.9"),
            relayed_untrusted: true,
            bearer,
        };
        assert!(may_read(
            &with(Some("a-long-enough-token")),
            &allow,
            Some(&token())
        ));
        assert!(!may_read(
            &with(Some("a-long-enough-tokeN")),
            &allow,
            Some(&token())
        ));
        assert!(!may_read(&with(None), &allow, Some(&token())));
        let wrong_from_loopback = Asker {
            address: ip("127.0.0.1"),
            relayed_untrusted: false,
            bearer: Some("guess"),
        };
        assert!(!may_read(&wrong_from_loopback, &allow, Some(&token())));
    }

    #[test]
    fn the_bearer_token_is_read_from_the_authorization_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer abc def".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc def"));
        headers.insert(header::AUTHORIZATION, "bearer  xyz ".parse().unwrap());
        assert_eq!(bearer(&headers), Some("xyz"));
        headers.insert(header::AUTHORIZATION, "Basic eHl6".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn odd_methods_and_unmatched_paths_share_one_label_each() {
        let m = Metrics::new().unwrap();
        for method in ["FOO", "BAR", "BAZ"] {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            m.observe(
                &method,
                None,
                StatusCode::NOT_FOUND,
                Duration::from_millis(1),
            );
        }
        m.observe(
            &Method::GET,
            Some("/admin/users/{id}/disable"),
            StatusCode::OK,
            Duration::from_millis(1),
        );
        let text = m.render().unwrap();
        assert!(
            text.contains(
                "mask_reservation_http_requests_total{endpoint=\"unmatched\",method=\"other\",status=\"404\"} 3"
            ),
            "{text}"
        );
        assert!(
            text.contains("endpoint=\"/admin/users/{id}/disable\""),
            "{text}"
        );
    }
}
