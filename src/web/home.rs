//! `GET /`: what the service is, the rules in force, and the visitor's remaining
//! quota when logged in as a citizen.

use actix_web::{HttpResponse, web};
use askama::Template;
use diesel::prelude::*;

use crate::accounts::Role;
use crate::app::AppState;
use crate::db::schema::users;
use crate::policy::{Period, Policy, Rotation};
use crate::reservations::queries::quota_left;
use crate::web::errors::AppError;
use crate::web::i18n::Tr;
use crate::web::page::PageCtx;

pub struct Rule {
    pub key: &'static str,
    pub label: String,
    pub value: String,
}

pub struct QuotaLeft {
    pub left: i32,
    pub text: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    page: PageCtx,
    rules: Vec<Rule>,
    quota: Option<QuotaLeft>,
}

pub async fn home(state: web::Data<AppState>, page: PageCtx) -> Result<HttpResponse, AppError> {
    let citizen_id = page
        .user
        .as_ref()
        .filter(|u| u.role == Role::Citizen)
        .map(|u| u.id);
    let (policy, left) = state
        .db
        .run(move |conn| -> anyhow::Result<(Policy, Option<i32>)> {
            let policy = Policy::load(conn)?;
            let left = match citizen_id {
                Some(user_id) => Some(citizen_quota_left(conn, &policy, user_id)?),
                None => None,
            };
            Ok((policy, left))
        })
        .await?;
    let t = &page.t;
    let quota = left.map(|left| QuotaLeft {
        left,
        text: t.fmt(
            "home.quota_left",
            &[("left", &left), ("quota", &policy.quota_per_period)],
        ),
    });
    let rules = rules(t, &policy);
    let html = HomePage { page, rules, quota }.render()?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

fn citizen_quota_left(
    conn: &mut crate::db::DbConnection,
    policy: &Policy,
    user_id: i64,
) -> QueryResult<i32> {
    let person: Option<i64> = users::table
        .find(user_id)
        .select(users::person_id)
        .first::<Option<i64>>(conn)
        .optional()?
        .flatten();
    match person {
        Some(person) => quota_left(conn, policy, person, policy.today()),
        None => Ok(policy.quota_per_period),
    }
}

fn rules(t: &Tr, p: &Policy) -> Vec<Rule> {
    let rule = |key, label_key, value| Rule {
        key,
        label: t.get(label_key).to_owned(),
        value,
    };
    vec![
        rule(
            "quota_per_period",
            "home.rules.quota",
            t.fmt("home.rules.quota_value", &[("quota", &p.quota_per_period)]),
        ),
        rule(
            "period",
            "home.rules.period",
            match p.period {
                Period::IsoWeek => t.get("home.rules.period_iso_week").to_owned(),
            },
        ),
        rule(
            "rotation",
            "home.rules.rotation",
            match p.rotation {
                Rotation::Off => t.get("home.rules.rotation_off").to_owned(),
                Rotation::BirthYear => t.get("home.rules.rotation_birth_year").to_owned(),
            },
        ),
        rule(
            "window_template",
            "home.rules.windows",
            p.window_template_text().replace(',', ", "),
        ),
        rule(
            "booking_horizon_days",
            "home.rules.horizon",
            t.fmt(
                "home.rules.horizon_value",
                &[("days", &p.booking_horizon_days)],
            ),
        ),
        rule(
            "cancel_cutoff_minutes",
            "home.rules.cancel",
            t.fmt(
                "home.rules.cancel_value",
                &[("minutes", &p.cancel_cutoff_minutes)],
            ),
        ),
        rule(
            "pickup_grace_minutes",
            "home.rules.grace",
            t.fmt(
                "home.rules.grace_value",
                &[("minutes", &p.pickup_grace_minutes)],
            ),
        ),
        rule(
            "timezone",
            "home.rules.timezone",
            p.timezone.name().to_owned(),
        ),
    ]
}
