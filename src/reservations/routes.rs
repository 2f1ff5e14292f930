//! `GET /reservations`: the citizen's own reservations and what is left of the
//! quota this period.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use chrono::NaiveDate;

use crate::i18n::Tr;
use crate::policy::{Period, Policy};
use crate::reservations::queries;
use crate::state::AppState;
use crate::web::auth::Citizen;
use crate::web::errors::AppError;
use crate::web::page::PageCtx;
use crate::web::render;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/reservations", web::get().to(list));
}

pub struct Row {
    pub id: i64,
    pub store_name: String,
    pub when: String,
    pub quantity: i32,
    pub status_key: &'static str,
    pub status: String,
}

#[derive(Template)]
#[template(path = "reservations/list.html")]
struct ListPage {
    page: PageCtx,
    verified: bool,
    verify_text: String,
    quota_text: String,
    left: i32,
    rows: Vec<Row>,
}

/// "You can still reserve 1 of your 2 masks this week (23–29 Nov)."
pub fn quota_text(t: &Tr, policy: &Policy, left: i32, today: NaiveDate) -> String {
    let (first, last) = (policy.period.start_of(today), policy.period.end_of(today));
    let period = match policy.period {
        Period::IsoWeek => t.fmt("date.this_week", &[("range", &t.date_range(first, last))]),
    };
    t.fmt(
        "home.quota_left",
        &[
            ("left", &left),
            ("quota", &policy.quota_per_period),
            ("period", &period),
        ],
    )
}

fn status_key(status: &str) -> &'static str {
    match status {
        "active" => "reservation.status.active",
        "picked_up" => "reservation.status.picked_up",
        "cancelled" => "reservation.status.cancelled",
        _ => "reservation.status.expired",
    }
}

async fn list(
    state: web::Data<AppState>,
    citizen: Citizen,
    page: PageCtx,
) -> Result<HttpResponse, AppError> {
    let policy = state.policy().await?;
    let (user_id, person_id) = (citizen.user.id, citizen.person_id);
    let (for_policy, day) = (policy.clone(), policy.today());
    let queries::Overview { left, reservations } = state
        .db
        .run(move |conn| queries::overview(conn, &for_policy, user_id, person_id, day))
        .await?;
    let tz = policy.timezone;
    let rows = reservations
        .into_iter()
        .map(|r| {
            let start = r.starts_at.and_utc().with_timezone(&tz);
            let end = r.ends_at.and_utc().with_timezone(&tz);
            let key = status_key(&r.status);
            Row {
                id: r.id,
                store_name: format!("{} ({})", r.store_name, r.store_code),
                when: format!(
                    "{} {}–{}",
                    page.t.date(start.date_naive()),
                    start.format("%H:%M"),
                    end.format("%H:%M")
                ),
                quantity: r.quantity,
                status_key: key,
                status: r.status,
            }
        })
        .collect();
    let quota_text = quota_text(&page.t, &policy, left, day);
    let verify_text = page.t.fmt(
        "reservations.verify_first",
        &[("email", &citizen.user.email)],
    );
    render(
        &ListPage {
            page,
            verified: citizen.user.email_verified,
            verify_text,
            quota_text,
            left,
            rows,
        },
        StatusCode::OK,
    )
}
