//! `GET /stores?q=…&page=…&lat=…&lng=…`: anyone looks for a store by name,
//! address or region (every word must match) and sees today's remaining stock
//! and status; with `lat` and `lng` (sent by `static/js/near-me.js` from the
//! browser's location) the stores come nearest first. The reads are in
//! [`queries`], the distances in [`geo`]. At most [`queries::MAX_WORDS`]
//! words are searched for; the page names the words it left out.

pub mod geo;
pub mod queries;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::i18n::Tr;
use crate::state::AppState;
use crate::stock::{At, Figures};
use crate::stores::search::geo::{BadPoint, Point};
use crate::stores::search::queries::{Found, Results, Words};
use crate::stores::status::{NO_DATA_KEY, RemainStat};
use crate::web::errors::AppError;
use crate::web::form::truncate;
use crate::web::page::PageCtx;
use crate::web::paging::{Pages, link, parse_page};
use crate::web::render;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/stores", web::get().to(search));
}

/// Stores on one page of results.
pub const PER_PAGE: i64 = 20;

/// A longer query is cut to this many characters (not refused): a name and an
/// address together are shorter.
pub const MAX_QUERY_CHARS: usize = 100;

#[derive(Deserialize)]
struct Params {
    q: Option<String>,
    page: Option<String>,
    lat: Option<String>,
    lng: Option<String>,
}

/// One result as the page shows it.
pub struct StoreRow {
    pub code: String,
    pub name: String,
    pub addr: String,
    pub type_key: &'static str,
    /// `data-remain-stat`: empty when the store has no supply today.
    pub stat: &'static str,
    pub stat_text: String,
    /// Today's figures, and their words; none without supply today or when
    /// sales are stopped.
    pub figures: Option<(Figures, String)>,
    pub distance: Option<String>,
}

#[derive(Template)]
#[template(path = "stores/search.html")]
struct SearchPage {
    page: PageCtx,
    q: String,
    /// The point searched from, to keep in the page links.
    near: Option<(String, String)>,
    /// Whether anything was searched for (words or a place).
    searched: bool,
    stores: Vec<StoreRow>,
    pages: Pages,
    count_text: String,
    empty_text: String,
    /// When words were left out: which were searched for, which were not.
    left_out_text: Option<String>,
}

async fn search(
    state: web::Data<AppState>,
    page: PageCtx,
    params: web::Query<Params>,
) -> Result<HttpResponse, AppError> {
    let params = params.into_inner();
    let number = parse_page(params.page.as_deref())?;
    let q = truncate(params.q.as_deref().unwrap_or("").trim(), MAX_QUERY_CHARS);
    let from = Point::parse(params.lat.as_deref(), params.lng.as_deref()).map_err(|e| {
        AppError::BadRequest(match e {
            BadPoint::Incomplete => "lat and lng go together".into(),
            BadPoint::NotANumber => "lat and lng must be decimal degrees".into(),
            BadPoint::OutOfRange => "lat must be within -90..90 and lng within -180..180".into(),
        })
    })?;
    let Words {
        used: words,
        left_out,
    } = queries::words(&q);
    let policy = state.policy().await?;
    let at = At::of(&policy, state.clock.now());
    let found = match from {
        Some(point) => {
            let words = words.clone();
            Some(
                state
                    .db
                    .run(move |conn| queries::near(conn, &words, point, at, number, PER_PAGE))
                    .await?,
            )
        }
        None if !words.is_empty() => {
            let words = words.clone();
            Some(
                state
                    .db
                    .run(move |conn| queries::by_text(conn, &words, at, number, PER_PAGE))
                    .await?,
            )
        }
        None => None,
    };
    let near = from.map(|p| (format!("{:.5}", p.lat()), format!("{:.5}", p.lng())));
    let Results { stores, total } = found.unwrap_or(Results {
        stores: Vec::new(),
        total: 0,
    });
    let pages = Pages::new(number, total, PER_PAGE, |n| {
        let n = n.to_string();
        let (lat, lng) = near.clone().unwrap_or_default();
        link(
            "/stores",
            &[("q", &q), ("lat", &lat), ("lng", &lng), ("page", &n)],
        )
    });
    let t = &page.t;
    let count_text = match from {
        Some(_) => t.fmt("stores.search.count_near", &[("total", &total)]),
        None => t.fmt("stores.search.count", &[("total", &total)]),
    };
    let empty_text = if from.is_some() && words.is_empty() {
        let km = queries::NEAR_RADIUS_M / 1000.0;
        t.fmt("stores.search.empty_near", &[("km", &km)])
    } else {
        t.get("stores.search.empty").to_owned()
    };
    let stores = stores.into_iter().map(|s| store_row(t, s)).collect();
    let searched = from.is_some() || !words.is_empty();
    let left_out_text = (!left_out.is_empty()).then(|| {
        t.fmt(
            "stores.search.words_left_out",
            &[
                ("max", &queries::MAX_WORDS),
                ("used", &words.join(" ")),
                ("left_out", &left_out.join(" ")),
            ],
        )
    });
    let html = SearchPage {
        page,
        q,
        left_out_text,
        near,
        searched,
        stores,
        pages,
        count_text,
        empty_text,
    };
    render(&html, StatusCode::OK)
}

fn store_row(t: &Tr, s: Found) -> StoreRow {
    let stat = RemainStat::of_day(s.figures.map(|f| i64::from(f.remaining())), s.suspended);
    // A suspended store sells nothing, whatever it has left.
    let figures = s.figures.filter(|_| !s.suspended);
    StoreRow {
        type_key: crate::stores::type_key(&s.store_type),
        stat: stat.map_or("", RemainStat::as_str),
        stat_text: t
            .get(stat.map_or(NO_DATA_KEY, RemainStat::label_key))
            .to_owned(),
        figures: figures.map(|f| (f, f.text(t))),
        distance: s.distance_m.map(|m| distance_text(t, m)),
        code: s.code,
        name: s.name,
        addr: s.addr,
    }
}

/// "350 m" under a kilometre, "1.2 km" from there.
pub fn distance_text(t: &Tr, metres: f64) -> String {
    if metres < 1000.0 {
        let m = (metres / 10.0).round() * 10.0;
        t.fmt("stores.search.distance_m", &[("m", &m)])
    } else {
        let km = format!("{:.1}", metres / 1000.0);
        t.fmt("stores.search.distance_km", &[("km", &km)])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::i18n::{Catalog, Lang};

    #[test]
    fn distances_read_in_metres_then_kilometres() {
        let t = Tr::new(Arc::new(Catalog::load().unwrap()), Lang::En);
        assert_eq!(distance_text(&t, 0.0), "0 m");
        assert_eq!(distance_text(&t, 344.0), "340 m");
        assert_eq!(distance_text(&t, 999.0), "1000 m");
        assert_eq!(distance_text(&t, 1000.0), "1.0 km");
        assert_eq!(distance_text(&t, 12_345.0), "12.3 km");
    }
}
