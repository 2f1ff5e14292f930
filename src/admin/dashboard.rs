//! `GET /admin`: today, nationally and by region — supply, reserved, picked up,
//! no-shows and walk-in sales.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Text};

use crate::app::AppState;
use crate::policy::Policy;
use crate::web::auth::Admin;
use crate::web::errors::AppError;
use crate::web::page::PageCtx;
use crate::web::render;

#[derive(Debug, Clone, QueryableByName)]
pub struct RegionRow {
    #[diesel(sql_type = Text)]
    pub region: String,
    #[diesel(sql_type = BigInt)]
    pub stores: i64,
    #[diesel(sql_type = BigInt)]
    pub supply: i64,
    #[diesel(sql_type = BigInt)]
    pub reserved: i64,
    #[diesel(sql_type = BigInt)]
    pub picked_up: i64,
    #[diesel(sql_type = BigInt)]
    pub no_show: i64,
    #[diesel(sql_type = BigInt)]
    pub walk_in: i64,
}

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
    let (day, regions) = state
        .db
        .run(|conn| -> anyhow::Result<_> {
            let policy = Policy::load(conn)?;
            let day = policy.today();
            let rows: Vec<RegionRow> = diesel::sql_query(
                "SELECT s.region AS region,
                        COUNT(*) AS stores,
                        CAST(COALESCE(SUM(d.supply), 0) AS BIGINT) AS supply,
                        CAST(COALESCE(SUM(d.reserved), 0) AS BIGINT) AS reserved,
                        CAST(COALESCE(SUM(d.picked_up), 0) AS BIGINT) AS picked_up,
                        CAST(COALESCE(SUM(d.no_show), 0) AS BIGINT) AS no_show,
                        CAST(COALESCE(SUM(d.walk_in), 0) AS BIGINT) AS walk_in
                 FROM store_days d JOIN stores s ON s.id = d.store_id
                 WHERE d.day = $1
                 GROUP BY s.region
                 ORDER BY s.region",
            )
            .bind::<Date, _>(day)
            .load(conn)?;
            Ok((day, rows))
        })
        .await?;
    let total = regions.iter().fold(
        RegionRow {
            region: String::new(),
            stores: 0,
            supply: 0,
            reserved: 0,
            picked_up: 0,
            no_show: 0,
            walk_in: 0,
        },
        |mut t, r| {
            t.stores += r.stores;
            t.supply += r.supply;
            t.reserved += r.reserved;
            t.picked_up += r.picked_up;
            t.no_show += r.no_show;
            t.walk_in += r.walk_in;
            t
        },
    );
    render(
        &DashboardPage {
            page,
            date: day.format("%Y-%m-%d").to_string(),
            regions,
            total,
        },
        StatusCode::OK,
    )
}
