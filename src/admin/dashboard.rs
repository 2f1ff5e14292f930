//! `GET /admin`: today, nationally and by region — supply, reserved, picked up,
//! no-shows and walk-in sales — with an hourly chart and a chart by region;
//! `GET /admin/export.csv?date=…`: the day's figures per store as CSV.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use serde::Deserialize;

use crate::admin::charts::{self, Labels, Series};
use crate::admin::overview::{self, RegionRow, StoreDayRow};
use crate::csv_util::{inert, into_bytes, spreadsheet_writer};
use crate::reservations::rules;
use crate::state::AppState;
use crate::stock::At;
use crate::web::auth::Admin;
use crate::web::errors::AppError;
use crate::web::page::PageCtx;
use crate::web::render;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(dashboard))
        .route("/admin/export.csv", web::get().to(export_csv));
}

/// One hour's row of the fallback table.
struct HourRow {
    hour: usize,
    reserved: i64,
    picked_up: i64,
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    page: PageCtx,
    date: String,
    iso_date: String,
    regions: Vec<RegionRow>,
    total: RegionRow,
    hours: Vec<HourRow>,
    hourly_chart: String,
    region_chart: String,
}

pub async fn dashboard(
    state: web::Data<AppState>,
    _admin: Admin,
    page: PageCtx,
) -> Result<HttpResponse, AppError> {
    let policy = state.policy().await?;
    let at = At::of(&policy, state.clock.now());
    let (day, tz) = (at.today, policy.timezone);
    let (regions, hourly) = state
        .db
        .run(move |conn| {
            Ok::<_, diesel::result::Error>((
                overview::regions_on(conn, at)?,
                overview::hourly_on(conn, day, tz)?,
            ))
        })
        .await?;
    let total = overview::total(&regions);
    let hours = (0..24)
        .map(|hour| HourRow {
            hour,
            reserved: hourly.reserved[hour],
            picked_up: hourly.picked_up[hour],
        })
        .collect();
    let hourly_chart = hourly_svg(&page, &hourly);
    let region_chart = region_svg(&page, &regions);
    render(
        &DashboardPage {
            date: page.t.date(day),
            iso_date: day.to_string(),
            page,
            regions,
            total,
            hours,
            hourly_chart,
            region_chart,
        },
        StatusCode::OK,
    )
}

fn hourly_svg(page: &PageCtx, hourly: &overview::Hourly) -> String {
    let t = &page.t;
    charts::columns(
        &Labels {
            id: "chart-hourly".into(),
            title: t.get("admin.charts.hourly_title").into(),
            desc: t.get("admin.charts.hourly_desc").into(),
            no_data: t.get("admin.charts.no_data").into(),
        },
        &(0..24).map(|h| format!("{h}")).collect::<Vec<_>>(),
        &[
            Series {
                label: t.get("admin.charts.made").into(),
                values: hourly.reserved.to_vec(),
            },
            Series {
                label: t.get("admin.charts.picked_up").into(),
                values: hourly.picked_up.to_vec(),
            },
        ],
        3,
    )
}

fn region_svg(page: &PageCtx, regions: &[RegionRow]) -> String {
    let t = &page.t;
    let column = |f: fn(&RegionRow) -> i64| regions.iter().map(f).collect::<Vec<_>>();
    charts::bars(
        &Labels {
            id: "chart-regions".into(),
            title: t.get("admin.charts.regions_title").into(),
            desc: t.get("admin.charts.regions_desc").into(),
            no_data: t.get("admin.charts.no_data").into(),
        },
        &regions.iter().map(|r| r.region.clone()).collect::<Vec<_>>(),
        &[
            Series {
                label: t.get("pharmacy.supply").into(),
                values: column(|r| r.supply),
            },
            Series {
                label: t.get("admin.reserved_waiting").into(),
                values: column(|r| r.reserved),
            },
            Series {
                label: t.get("pharmacy.picked_up").into(),
                values: column(|r| r.picked_up),
            },
        ],
    )
}

/// `YYYY-MM-DD` exactly: chrono alone would read `26-11-26` as the year 26.
fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|d| d.format("%Y-%m-%d").to_string() == text)
}

#[derive(Deserialize)]
pub struct ExportQuery {
    date: Option<String>,
}

pub async fn export_csv(
    state: web::Data<AppState>,
    _admin: Admin,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, AppError> {
    let day = match query.into_inner().date.filter(|d| !d.is_empty()) {
        None => rules::today(&*state.policy().await?, state.clock.now()),
        Some(text) => parse_day(&text)
            .ok_or_else(|| AppError::BadRequest(format!("not a date (YYYY-MM-DD): {text}")))?,
    };
    let rows = state
        .db
        .run(move |conn| overview::stores_on(conn, day))
        .await?;
    let body = store_csv(&rows).map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(format!("masks-{day}.csv"))],
        })
        .body(body))
}

/// The export's bytes, for a spreadsheet ([`spreadsheet_writer`]: a byte
/// order mark first; every text cell made inert against formulas).
pub fn store_csv(rows: &[StoreDayRow]) -> Result<Vec<u8>, csv::Error> {
    let mut out = spreadsheet_writer();
    out.write_record([
        "store_code",
        "store_name",
        "region",
        "supply",
        "window_capacity",
        "reserved",
        "picked_up",
        "no_show",
        "walk_in",
        "remaining",
    ])?;
    for r in rows {
        out.write_record([
            inert(&r.code),
            inert(&r.name),
            inert(&r.region),
            r.supply.to_string(),
            r.window_capacity.to_string(),
            r.reserved.to_string(),
            r.picked_up.to_string(),
            r.no_show.to_string(),
            r.walk_in.to_string(),
            r.remaining().to_string(),
        ])?;
    }
    into_bytes(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_starts_with_a_byte_order_mark_and_quotes_what_needs_it() {
        let rows = [StoreDayRow {
            code: "11800001".into(),
            name: "중앙약국, 본점".into(),
            region: "서울특별시".into(),
            supply: 100,
            window_capacity: 90,
            reserved: 20,
            picked_up: 30,
            no_show: 1,
            walk_in: 5,
        }];
        let bytes = store_csv(&rows).unwrap();
        assert!(bytes.starts_with(b"\xEF\xBB\xBFstore_code,store_name,"));
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.ends_with("11800001,\"중앙약국, 본점\",서울특별시,100,90,20,30,1,5,45\n"),
            "{text}"
        );
    }
}
