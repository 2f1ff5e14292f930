//! `GET /pharmacy`: today at the pharmacist's store — each window's capacity,
//! reserved, picked up and remaining, and the walk-in stock.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::app::AppState;
use crate::db::schema::{pickup_windows, store_days, stores};
use crate::policy::Policy;
use crate::web::auth::Pharmacist;
use crate::web::errors::AppError;
use crate::web::page::PageCtx;
use crate::web::render;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/pharmacy", web::get().to(today));
}

pub struct WindowRow {
    pub label: String,
    pub capacity: i32,
    pub reserved: i32,
    pub picked_up: i32,
    pub remaining: i32,
}

pub struct DayStock {
    pub supply: i32,
    pub walk_in_sold: i32,
    pub walk_in_left: i32,
    pub windows: Vec<WindowRow>,
}

#[derive(Template)]
#[template(path = "pharmacy/today.html")]
struct TodayPage {
    page: PageCtx,
    store_name: String,
    store_code: String,
    date: String,
    stock: Option<DayStock>,
}

type Loaded = (
    String,
    String,
    chrono::NaiveDate,
    Option<(i32, i32, i32)>,
    Vec<(NaiveDateTime, NaiveDateTime, i32, i32, i32)>,
    Policy,
);

async fn today(
    state: web::Data<AppState>,
    pharmacist: Pharmacist,
    page: PageCtx,
) -> Result<HttpResponse, AppError> {
    let store_id = pharmacist.store_id;
    let (name, code, day, totals, windows, policy): Loaded = state
        .db
        .run(move |conn| -> anyhow::Result<Loaded> {
            let policy = Policy::load(conn)?;
            let day = policy.today();
            let (name, code): (String, String) = stores::table
                .find(store_id)
                .select((stores::name, stores::code))
                .first(conn)?;
            let totals: Option<(i32, i32, i32)> = store_days::table
                .filter(store_days::store_id.eq(store_id))
                .filter(store_days::day.eq(day))
                .select((
                    store_days::supply,
                    store_days::window_capacity,
                    store_days::walk_in,
                ))
                .first(conn)
                .optional()?;
            let windows = pickup_windows::table
                .filter(pickup_windows::store_id.eq(store_id))
                .filter(pickup_windows::day.eq(day))
                .order(pickup_windows::starts_at)
                .select((
                    pickup_windows::starts_at,
                    pickup_windows::ends_at,
                    pickup_windows::capacity,
                    pickup_windows::reserved,
                    pickup_windows::picked_up,
                ))
                .load(conn)?;
            Ok((name, code, day, totals, windows, policy))
        })
        .await?;
    let tz = policy.timezone;
    let stock = totals.map(|(supply, window_capacity, walk_in)| DayStock {
        supply,
        walk_in_sold: walk_in,
        walk_in_left: supply - window_capacity - walk_in,
        windows: windows
            .into_iter()
            .map(|(s, e, capacity, reserved, picked_up)| WindowRow {
                label: format!(
                    "{}–{}",
                    s.and_utc().with_timezone(&tz).format("%H:%M"),
                    e.and_utc().with_timezone(&tz).format("%H:%M")
                ),
                capacity,
                reserved,
                picked_up,
                remaining: capacity - reserved - picked_up,
            })
            .collect(),
    });
    render(
        &TodayPage {
            page,
            store_name: name,
            store_code: code,
            date: day.format("%Y-%m-%d").to_string(),
            stock,
        },
        StatusCode::OK,
    )
}
