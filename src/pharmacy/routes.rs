//! The pharmacist's routes. `GET /pharmacy`: today at the pharmacist's store —
//! each window's capacity, reserved, picked up and remaining, the walk-in
//! stock, and the way to the counter's pages: pickup, walk-in, summary.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono_tz::Tz;

use crate::i18n::Tr;
use crate::pharmacy::queries::{self, DayStock};
use crate::pharmacy::{pickup_page, summary_page, walk_in_page};
use crate::state::AppState;
use crate::stock::{At, Figures};
use crate::web::auth::Pharmacist;
use crate::web::errors::AppError;
use crate::web::page::PageCtx;
use crate::web::render;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/pharmacy", web::get().to(today))
        .route("/pharmacy/pickup", web::get().to(pickup_page::show))
        .route("/pharmacy/pickup", web::post().to(pickup_page::post))
        .route(
            "/pharmacy/pickup/preferences",
            web::post().to(pickup_page::preferences),
        )
        .route("/pharmacy/walk-in", web::get().to(walk_in_page::show))
        .route("/pharmacy/walk-in", web::post().to(walk_in_page::sell))
        .route(
            "/pharmacy/walk-in/{id}/undo",
            web::post().to(walk_in_page::undo),
        )
        .route("/pharmacy/summary", web::get().to(summary_page::show))
        .route("/pharmacy/summary.csv", web::get().to(summary_page::csv));
}

pub struct WindowRow {
    pub label: String,
    pub capacity: i32,
    pub reserved: i32,
    pub picked_up: i32,
    pub remaining: i32,
    pub booking_open: bool,
}

pub struct StockView {
    pub supply: i32,
    pub walk_in_sold: i32,
    pub figures: Figures,
    /// "예약 가능 N · 현장 구매 M".
    pub figures_text: String,
    pub windows: Vec<WindowRow>,
}

impl StockView {
    fn new(stock: DayStock, tz: Tz, t: &Tr) -> StockView {
        let local = |t: chrono::NaiveDateTime| t.and_utc().with_timezone(&tz).format("%H:%M");
        StockView {
            supply: stock.supply,
            walk_in_sold: stock.walk_in_sold,
            figures: stock.figures,
            figures_text: stock.figures.text(t),
            windows: stock
                .windows
                .into_iter()
                .map(|w| WindowRow {
                    label: format!("{}–{}", local(w.starts_at), local(w.ends_at)),
                    remaining: w.remaining(),
                    capacity: w.capacity,
                    reserved: w.reserved,
                    picked_up: w.picked_up,
                    booking_open: w.booking_open,
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "pharmacy/today.html")]
struct TodayPage {
    page: PageCtx,
    store_name: String,
    store_code: String,
    date: String,
    stock: Option<StockView>,
}

async fn today(
    state: web::Data<AppState>,
    pharmacist: Pharmacist,
    page: PageCtx,
) -> Result<HttpResponse, AppError> {
    let policy = state.policy().await?;
    let (store_id, at) = (pharmacist.store_id, At::of(&policy, state.clock.now()));
    let store = state
        .db
        .run(move |conn| queries::store_day(conn, store_id, at))
        .await?;
    let date = page.t.date(at.today);
    let stock = store
        .stock
        .map(|s| StockView::new(s, policy.timezone, &page.t));
    render(
        &TodayPage {
            page,
            store_name: store.name,
            store_code: store.code,
            date,
            stock,
        },
        StatusCode::OK,
    )
}
