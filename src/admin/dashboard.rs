//! `GET /admin`: today, nationally and by region — supply, reserved, picked up,
//! no-shows and walk-in sales.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::admin::overview::{self, RegionRow};
use crate::state::AppState;
use crate::web::auth::Admin;
use crate::web::errors::AppError;
use crate::web::page::PageCtx;
use crate::web::render;

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    page: PageCtx,
    date: String,
    regions: Vec<RegionRow>,
    total: RegionRow,
}

pub async fn dashboard(
    state: web::Data<AppState>,
    _admin: Admin,
    page: PageCtx,
) -> Result<HttpResponse, AppError> {
    let day = state.policy().await?.today();
    let regions = state
        .db
        .run(move |conn| overview::regions_on(conn, day))
        .await?;
    let total = overview::total(&regions);
    let date = page.t.date(day);
    render(
        &DashboardPage {
            page,
            date,
            regions,
            total,
        },
        StatusCode::OK,
    )
}
