//! `GET /map`: stores near a point or an address, on a map (Leaflet, drawn by
//! `static/js/map.js` from the API) and as a list rendered here, which is the
//! whole page without JavaScript. Read from the snapshot like the API.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::opendata::api::API_PREFIX;
use crate::opendata::query::{self, AddressQuery, BadQuery, GeoQuery, Params};
use crate::opendata::snapshot::StockCache;
use crate::state::AppState;
use crate::stock::Figures;
use crate::stores::status::NO_DATA_KEY;
use crate::web::errors::AppError;
use crate::web::page::PageCtx;
use crate::web::render;

/// Where the map opens when no place is asked for: Seoul City Hall.
const DEFAULT_LAT: f64 = 37.5665;
const DEFAULT_LNG: f64 = 126.978;
const DEFAULT_RADIUS_M: f64 = 2000.0;

/// The most stores listed on the page; the map shows what the API answers.
const LIST_MAX: usize = 200;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/map", web::get().to(map_page));
}

pub struct Row {
    pub code: String,
    pub name: String,
    pub addr: String,
    pub type_label: String,
    /// `plenty` … `break`, or `none` for no supply today.
    pub stat: &'static str,
    pub stat_label: String,
    pub remain: Option<i64>,
    /// Of `remain`, what can be booked now and sold at the counter now, and
    /// their words.
    pub figures: Option<(Figures, String)>,
    /// Metres from the point asked about, when one was.
    pub distance: Option<String>,
}

/// What the question decided, before the page is put together.
struct View {
    address_error: Option<String>,
    point_error: Option<String>,
    api_url: Option<String>,
    center: (f64, f64),
}

#[derive(Template)]
#[template(path = "opendata/map.html")]
struct MapPage {
    page: PageCtx,
    address: String,
    /// Next to the address field, or above the list for a point in the
    /// address bar that is not one (the page has no fields for it: the
    /// "near me" button fills it in).
    address_error: Option<String>,
    point_error: Option<String>,
    /// The API question the script draws markers from (none after an error).
    api_url: Option<String>,
    center: (f64, f64),
    rows: Vec<Row>,
    list_heading: String,
    created_at_text: String,
    tile_url: String,
    /// One legend line per status, colour and words.
    legend: Vec<(&'static str, String)>,
}

pub async fn map_page(
    req: HttpRequest,
    page: PageCtx,
    cache: web::Data<StockCache>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(snapshot) = cache.get(Duration::from_secs(5)).await else {
        return Err(AppError::Unavailable(
            "the stock snapshot is not loaded yet".into(),
        ));
    };
    let params =
        Params::parse(req.query_string()).map_err(|e| AppError::BadRequest(e.message(&page.t)))?;
    let raw = |name: &str| {
        form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| crate::web::form::truncate(v.trim(), 100))
            .unwrap_or_default()
    };
    let t = &page.t;
    let (address, lat, lng) = (raw("address"), raw("lat"), raw("lng"));
    let mut view = View {
        address_error: None,
        point_error: None,
        api_url: None,
        center: (DEFAULT_LAT, DEFAULT_LNG),
    };
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let found: Vec<(&crate::opendata::snapshot::Entry, Option<f64>)> = if !address.is_empty() {
        match AddressQuery::parse(&params) {
            Ok(a) => {
                view.api_url = Some(format!(
                    "{API_PREFIX}/storesByAddr/json?address={}",
                    enc(a.as_str())
                ));
                let found: Vec<_> = snapshot
                    .by_address(&a)
                    .into_iter()
                    .map(|e| (e, None))
                    .collect();
                if let Some((e, _)) = found.first() {
                    view.center = (e.lat, e.lng);
                }
                found
            }
            Err(BadQuery::AddressTooShort) => {
                view.address_error = Some(t.fmt(
                    "map.error.address_short",
                    &[("min", &query::MIN_ADDRESS_CHARS)],
                ));
                Vec::new()
            }
            Err(_) => {
                view.address_error = Some(t.get("map.error.address").to_owned());
                Vec::new()
            }
        }
    } else {
        let geo = if lat.is_empty() && lng.is_empty() {
            Ok(GeoQuery {
                lat: DEFAULT_LAT,
                lng: DEFAULT_LNG,
                m: DEFAULT_RADIUS_M,
            })
        } else {
            GeoQuery::parse(&params)
        };
        match geo {
            Ok(g) => {
                view.center = (g.lat, g.lng);
                view.api_url = Some(format!(
                    "{API_PREFIX}/storesByGeo/json?lat={}&lng={}&m={}",
                    g.lat, g.lng, g.m
                ));
                snapshot
                    .near(g.lat, g.lng, g.m)
                    .into_iter()
                    .map(|(e, d)| (e, Some(d)))
                    .collect()
            }
            Err(_) => {
                view.point_error = Some(t.get("map.error.point").to_owned());
                Vec::new()
            }
        }
    };
    let total = found.len();
    let rows = found
        .into_iter()
        .take(LIST_MAX)
        .map(|(e, d)| Row {
            code: e.code.clone(),
            name: e.name.clone(),
            addr: e.addr.clone(),
            type_label: t.get(crate::stores::type_key(&e.store_type)).to_owned(),
            stat: e.stat.map_or("", |s| s.as_str()),
            stat_label: t
                .get(e.stat.map_or(NO_DATA_KEY, |s| s.label_key()))
                .to_owned(),
            remain: e.remain,
            figures: e.figures.map(|f| (f, f.text(t))),
            distance: d.map(|d| format!("{:.0} m", d)),
        })
        .collect();
    let status = if view.address_error.is_some() || view.point_error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let legend = legend(t);
    let list_heading = t.fmt("map.list_heading", &[("count", &total)]);
    let created_at_text = t.fmt("map.created_at", &[("time", &snapshot.created_at())]);
    let View {
        address_error,
        point_error,
        api_url,
        center,
    } = view;
    let html = MapPage {
        list_heading,
        created_at_text,
        tile_url: state.config.map_tile_url.clone(),
        page,
        address,
        address_error,
        point_error,
        api_url,
        center,
        rows,
        legend,
    };
    render(&html, status)
}

fn legend(t: &crate::i18n::Tr) -> Vec<(&'static str, String)> {
    use crate::stores::status::RemainStat;
    let mut lines: Vec<(&'static str, String)> = [
        RemainStat::Plenty,
        RemainStat::Some,
        RemainStat::Few,
        RemainStat::Empty,
        RemainStat::Break,
    ]
    .into_iter()
    .map(|s| (s.as_str(), t.get(s.label_key()).to_owned()))
    .collect();
    lines.push(("", t.get(NO_DATA_KEY).to_owned()));
    lines
}
