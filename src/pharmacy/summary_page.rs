//! `GET /pharmacy/summary?date=YYYY-MM-DD` (today by default) and its CSV,
//! `GET /pharmacy/summary.csv?date=YYYY-MM-DD`. The figures are
//! [`summary::day`]'s.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Deserialize;

use crate::csv_util::{inert, into_bytes, spreadsheet_writer};
use crate::pharmacy::summary::{self, DayFigures, Totals};
use crate::reservations::rules;
use crate::state::AppState;
use crate::web::auth::Pharmacist;
use crate::web::errors::AppError;
use crate::web::page::PageCtx;
use crate::web::render;

#[derive(Deserialize)]
pub struct DateQuery {
    #[serde(default)]
    date: String,
}

/// The day asked for: today when none is given; a malformed date is a 400.
fn day_of(today: NaiveDate, q: &DateQuery) -> Result<NaiveDate, AppError> {
    match q.date.trim() {
        "" => Ok(today),
        text => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| AppError::BadRequest("date is not YYYY-MM-DD".into())),
    }
}

pub struct Line {
    pub window: String,
    pub capacity: i32,
    pub handed_over: i32,
    pub no_show: i32,
    pub still_reserved: i32,
    pub remaining: i32,
}

fn lines(figures: &DayFigures, tz: Tz) -> Vec<Line> {
    figures
        .windows
        .iter()
        .map(|w| Line {
            window: rules::time_range(tz, w.starts_at, w.ends_at),
            capacity: w.capacity,
            handed_over: w.handed_over,
            no_show: w.no_show,
            still_reserved: w.still_reserved,
            remaining: w.remaining,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "pharmacy/summary.html")]
struct SummaryPage {
    page: PageCtx,
    date: String,
    date_text: String,
    /// `None` when the store had no supply that day.
    figures: Option<(Vec<Line>, Totals, i32, String)>,
}

pub async fn show(
    state: web::Data<AppState>,
    pharmacist: Pharmacist,
    page: PageCtx,
    query: web::Query<DateQuery>,
) -> Result<HttpResponse, AppError> {
    let policy = state.policy().await?;
    let day = day_of(rules::today(&policy, state.clock.now()), &query)?;
    let store_id = pharmacist.store_id;
    let figures = state
        .db
        .run(move |conn| summary::day(conn, store_id, day))
        .await?;
    let tz = policy.timezone;
    let date_text = page.t.date(day);
    render(
        &SummaryPage {
            date: day.format("%Y-%m-%d").to_string(),
            date_text,
            figures: figures.map(|f| {
                let totals = f.totals();
                let sales = page.t.fmt(
                    "pharmacy.summary.walk_in_sales",
                    &[("quantity", &totals.walk_in), ("sales", &f.walk_in_sales)],
                );
                (lines(&f, tz), totals, f.supply, sales)
            }),
            page,
        },
        StatusCode::OK,
    )
}

pub async fn csv(
    state: web::Data<AppState>,
    pharmacist: Pharmacist,
    query: web::Query<DateQuery>,
) -> Result<HttpResponse, AppError> {
    let policy = state.policy().await?;
    let day = day_of(rules::today(&policy, state.clock.now()), &query)?;
    let store_id = pharmacist.store_id;
    let figures = state
        .db
        .run(move |conn| summary::day(conn, store_id, day))
        .await?
        .unwrap_or_default();
    let body = summary_csv(&figures, policy.timezone).map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(format!("pharmacy-{day}.csv"))],
        })
        .body(body))
}

/// One row per window, then the day's row with its walk-in sales and
/// remaining, for a spreadsheet ([`spreadsheet_writer`]: a byte order mark
/// first; every text cell made inert against formulas).
pub fn summary_csv(figures: &DayFigures, tz: Tz) -> Result<Vec<u8>, csv::Error> {
    let mut out = spreadsheet_writer();
    out.write_record([
        "window",
        "capacity",
        "handed_over",
        "no_show",
        "still_reserved",
        "walk_in",
        "remaining",
    ])?;
    for line in lines(figures, tz) {
        out.write_record([
            inert(&line.window),
            line.capacity.to_string(),
            line.handed_over.to_string(),
            line.no_show.to_string(),
            line.still_reserved.to_string(),
            String::new(),
            line.remaining.to_string(),
        ])?;
    }
    let t = figures.totals();
    out.write_record([
        "day".to_owned(),
        t.capacity.to_string(),
        t.handed_over.to_string(),
        t.no_show.to_string(),
        t.still_reserved.to_string(),
        t.walk_in.to_string(),
        t.remaining.to_string(),
    ])?;
    into_bytes(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pharmacy::summary::WindowFigures;

    #[test]
    fn the_csv_has_a_bom_a_row_per_window_and_the_days_totals() {
        let start = NaiveDate::from_ymd_opt(2026, 12, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let figures = DayFigures {
            supply: 30,
            windows: vec![WindowFigures {
                starts_at: start,
                ends_at: start + chrono::TimeDelta::hours(3),
                capacity: 20,
                handed_over: 5,
                no_show: 1,
                still_reserved: 2,
                remaining: 13,
            }],
            walk_in: 4,
            walk_in_sales: 2,
        };
        let bytes = summary_csv(&figures, chrono_tz::Asia::Seoul).unwrap();
        assert!(bytes.starts_with(b"\xEF\xBB\xBFwindow,capacity,"));
        let text = String::from_utf8(bytes).unwrap();
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows[1], "09:00–12:00,20,5,1,2,,13");
        assert_eq!(rows[2], "day,20,5,1,2,4,19");
    }
}
