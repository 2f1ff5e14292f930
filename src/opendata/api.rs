//! `/corona19-masks/v1/…`: the 2020 public-mask API (SPEC §8), and
//! `/opendata/stock.csv`, `/opendata/stock.json` and `/opendata/openapi.json`.
//! All public, all read from the snapshot (`snapshot.rs`), never from the
//! database.
//!
//! These routes sit outside the pages' middleware (no session, CSRF or error
//! pages): every answer here, refusals included, is JSON (or CSV) as written.
//! A refusal's `message` is in the asker's language (the `lang` cookie, else
//! `Accept-Language`, else Korean), as on the pages.

use std::fmt::Write as _;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde_json::json;

use crate::i18n::{Catalog, Tr};
use crate::opendata::query::{AddressQuery, BadQuery, GeoQuery, PageQuery, Params};
use crate::opendata::snapshot::{Answer, AnswerKey, Snapshot, StockCache};
use crate::opendata::stock;
use crate::state::AppState;
use crate::web::language;

/// Where the API lives, as in 2020.
pub const API_PREFIX: &str = "/corona19-masks/v1";

/// How long a request waits for an instance's first snapshot.
const FIRST_LOAD_WAIT: Duration = Duration::from_secs(5);

/// The OpenAPI 3.0 description of everything here.
const OPENAPI: &str = include_str!("openapi.json");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(API_PREFIX)
            .service(resource("/stores/json").route(web::get().to(stores)))
            .service(resource("/sales/json").route(web::get().to(sales)))
            .service(resource("/storesByGeo/json").route(web::get().to(stores_by_geo)))
            .service(resource("/storesByAddr/json").route(web::get().to(stores_by_addr)))
            .default_service(web::to(not_found)),
    )
    .service(
        web::scope("/opendata")
            .service(resource("/stock.csv").route(web::get().to(stock_csv)))
            .service(resource("/stock.json").route(web::get().to(stock_json)))
            .service(resource("/openapi.json").route(web::get().to(openapi)))
            .default_service(web::to(not_found)),
    );
}

/// A resource that answers CORS preflights and a JSON 405 for other methods.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path)
        .route(web::method(Method::OPTIONS).to(preflight))
        .default_service(web::to(method_not_allowed))
}

/// `GET stores/json?page=&perPage=`.
async fn stores(req: HttpRequest, cache: web::Data<StockCache>) -> HttpResponse {
    paged(&req, &cache, Paged::Stores).await
}

/// `GET sales/json?page=&perPage=`.
async fn sales(req: HttpRequest, cache: web::Data<StockCache>) -> HttpResponse {
    paged(&req, &cache, Paged::Sales).await
}

#[derive(Debug, Clone, Copy)]
enum Paged {
    Stores,
    Sales,
}

async fn paged(req: &HttpRequest, cache: &StockCache, kind: Paged) -> HttpResponse {
    let page = match Params::parse(req.query_string()).and_then(|p| PageQuery::parse(&p)) {
        Ok(page) => page,
        Err(e) => return bad_request(req, e),
    };
    let Some(snapshot) = cache.get(FIRST_LOAD_WAIT).await else {
        return unavailable(req);
    };
    let (page_no, per_page) = (page.page, page.per_page);
    let key = match kind {
        Paged::Stores => AnswerKey::Stores {
            page: page_no,
            per_page,
        },
        Paged::Sales => AnswerKey::Sales {
            page: page_no,
            per_page,
        },
    };
    let answer = snapshot.answer(key, |s| page_body(s, page, kind));
    respond(req, answer, JSON)
}

/// A page of `stores/json` or `sales/json`: the stores by code.
fn page_body(s: &Snapshot, page: PageQuery, kind: Paged) -> String {
    let all = s.entries();
    let items = all.get(page.range(all.len())).unwrap_or_default();
    let (array, per_item) = match kind {
        Paged::Stores => ("storeInfos", 200),
        Paged::Sales => ("sales", 150),
    };
    let mut out = String::with_capacity(128 + items.len() * per_item);
    let _ = write!(
        out,
        "{{\"count\":{},\"page\":\"{}\",\"{array}\":[",
        items.len(),
        page.page
    );
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match kind {
            Paged::Stores => Snapshot::write_info(&mut out, e),
            Paged::Sales => s.write_sale(&mut out, e),
        }
    }
    let _ = write!(
        out,
        "],\"totalCount\":{},\"totalPages\":{}}}",
        all.len(),
        page.total_pages(all.len())
    );
    out
}

/// `GET storesByGeo/json?lat=&lng=&m=`: nearest first.
async fn stores_by_geo(req: HttpRequest, cache: web::Data<StockCache>) -> HttpResponse {
    let geo = match Params::parse(req.query_string()).and_then(|p| GeoQuery::parse(&p)) {
        Ok(geo) => geo,
        Err(e) => return bad_request(&req, e),
    };
    let Some(snapshot) = cache.get(FIRST_LOAD_WAIT).await else {
        return unavailable(&req);
    };
    let (lat, lng, m) = geo.key();
    let answer = snapshot.answer(AnswerKey::Geo(lat, lng, m), |s| {
        let near = s.near(geo.lat, geo.lng, geo.m);
        let mut out = String::with_capacity(64 + near.len() * 400);
        let _ = write!(out, "{{\"count\":{},\"stores\":[", near.len());
        for (i, (e, _)) in near.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            s.write_store(&mut out, e);
        }
        out.push_str("]}");
        out
    });
    respond(&req, answer, JSON)
}

/// `GET storesByAddr/json?address=`: stores whose address holds every word
/// of it, by code.
async fn stores_by_addr(req: HttpRequest, cache: web::Data<StockCache>) -> HttpResponse {
    let address = match Params::parse(req.query_string()).and_then(|p| AddressQuery::parse(&p)) {
        Ok(a) => a,
        Err(e) => return bad_request(&req, e),
    };
    let Some(snapshot) = cache.get(FIRST_LOAD_WAIT).await else {
        return unavailable(&req);
    };
    let answer = snapshot.answer(AnswerKey::Addr(address.as_str().to_owned()), |s| {
        let found = s.by_address(&address);
        let mut out = String::with_capacity(128 + found.len() * 400);
        let _ = write!(
            out,
            "{{\"address\":{},\"count\":{},\"stores\":[",
            json!(address.as_str()),
            found.len()
        );
        for (i, e) in found.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            s.write_store(&mut out, e);
        }
        out.push_str("]}");
        out
    });
    respond(&req, answer, JSON)
}

/// `GET /opendata/stock.csv`: every store's stock, one line each, by code.
async fn stock_csv(req: HttpRequest, cache: web::Data<StockCache>) -> HttpResponse {
    let Some(snapshot) = cache.get(FIRST_LOAD_WAIT).await else {
        return unavailable(&req);
    };
    let answer = snapshot.answer(AnswerKey::StockCsv, stock::csv);
    respond(&req, answer, CSV)
}

/// `GET /opendata/stock.json`: the same rows as `stock.csv`, from the same
/// snapshot, as JSON.
async fn stock_json(req: HttpRequest, cache: web::Data<StockCache>) -> HttpResponse {
    let Some(snapshot) = cache.get(FIRST_LOAD_WAIT).await else {
        return unavailable(&req);
    };
    let answer = snapshot.answer(AnswerKey::StockJson, stock::json);
    respond(&req, answer, JSON)
}

/// `GET /opendata/openapi.json`.
async fn openapi() -> HttpResponse {
    let mut res = HttpResponse::Ok();
    cors(&mut res);
    res.insert_header((header::CONTENT_TYPE, JSON))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(OPENAPI)
}

const JSON: &str = "application/json; charset=utf-8";
const CSV: &str = "text/csv; charset=utf-8";

/// The answer, or `304 Not Modified` when the client holds it already.
fn respond(req: &HttpRequest, answer: Answer, content_type: &'static str) -> HttpResponse {
    if not_modified(req, &answer.etag) {
        return unchanged(&answer.etag);
    }
    let mut res = HttpResponse::Ok();
    cors(&mut res);
    res.insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "max-age=1"))
        .insert_header((header::ETAG, answer.etag))
        .body(answer.body)
}

fn unchanged(etag: &str) -> HttpResponse {
    let mut res = HttpResponse::NotModified();
    cors(&mut res);
    res.insert_header((header::CACHE_CONTROL, "max-age=1"))
        .insert_header((header::ETAG, etag.to_owned()))
        .finish()
}

/// Whether `If-None-Match` names `etag` (or is `*`). Weak tags compare by
/// their opaque part, as RFC 9110 asks for `If-None-Match`.
fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

fn cors(res: &mut HttpResponseBuilder) {
    res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::ACCESS_CONTROL_EXPOSE_HEADERS, "ETag"));
}

/// An `OPTIONS` preflight: any origin may `GET`, with any request headers it
/// asks for (there are no credentials to protect).
async fn preflight(req: HttpRequest) -> HttpResponse {
    let mut res = HttpResponse::NoContent();
    cors(&mut res);
    res.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, OPTIONS"))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"));
    if let Some(asked) = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|v| v.len() <= 1024)
    {
        res.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone()));
    }
    res.finish()
}

/// The strings of the asker's language.
fn tr(req: &HttpRequest) -> Tr {
    let catalog = req
        .app_data::<web::Data<AppState>>()
        .map_or_else(Catalog::fallback, |state| state.catalog.clone());
    Tr::new(catalog, language::of_request(req))
}

/// `{"message": …}`; the text is in the asker's language, so caches must
/// tell languages apart.
fn message(status: StatusCode, text: &str) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    cors(&mut res);
    res.insert_header((header::CONTENT_TYPE, JSON))
        .insert_header((header::VARY, "Accept-Language, Cookie"))
        .body(json!({ "message": text }).to_string())
}

fn bad_request(req: &HttpRequest, e: BadQuery) -> HttpResponse {
    message(StatusCode::BAD_REQUEST, &e.message(&tr(req)))
}

fn unavailable(req: &HttpRequest) -> HttpResponse {
    let t = tr(req);
    let mut res = message(
        StatusCode::SERVICE_UNAVAILABLE,
        t.get("opendata.error.unavailable"),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    let t = tr(&req);
    message(StatusCode::NOT_FOUND, t.get("opendata.error.not_found"))
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let t = tr(&req);
    let mut res = message(
        StatusCode::METHOD_NOT_ALLOWED,
        t.get("opendata.error.method"),
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, OPTIONS"));
    res
}
