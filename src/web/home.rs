//! `GET /`: what the service is, a store search, the rules in force, and the
//! visitor's remaining quota when logged in as a citizen.

use actix_web::{HttpResponse, web};
use askama::Template;

use crate::accounts::Role;
use crate::i18n::Tr;
use crate::policy::{Period, Policy, Rotation};
use crate::reservations::queries::quota_by_period_of_user;
use crate::reservations::quota_view::{self, QuotaLine};
use crate::reservations::rules;
use crate::state::AppState;
use crate::web::errors::AppError;
use crate::web::page::PageCtx;

pub struct Rule {
    pub key: &'static str,
    pub label: String,
    pub value: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    page: PageCtx,
    rules: Vec<Rule>,
    /// For a citizen, what is left in each period they can book for.
    quota_lines: Vec<QuotaLine>,
}

pub async fn home(state: web::Data<AppState>, page: PageCtx) -> Result<HttpResponse, AppError> {
    let policy = state.policy().await?;
    let citizen_id = page
        .user
        .as_ref()
        .filter(|u| u.role == Role::Citizen)
        .map(|u| u.id);
    let now = state.clock.now();
    let periods = match citizen_id {
        Some(user_id) => {
            let policy = policy.clone();
            state
                .db
                .run(move |conn| quota_by_period_of_user(conn, &policy, user_id, now))
                .await?
        }
        None => Vec::new(),
    };
    let t = &page.t;
    let quota_lines = quota_view::lines(t, &policy, rules::today(&policy, now), &periods);
    let rules = rules_in_force(t, &policy);
    let html = HomePage {
        page,
        rules,
        quota_lines,
    }
    .render()?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

fn rules_in_force(t: &Tr, p: &Policy) -> Vec<Rule> {
    let rule = |key, label_key, value| Rule {
        key,
        label: t.get(label_key).to_owned(),
        value,
    };
    vec![
        rule(
            "quota_per_period",
            "home.rules.quota",
            t.count(
                "home.rules.quota_value",
                p.quota_per_period,
                &[("quota", &p.quota_per_period)],
            ),
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
            t.count(
                "home.rules.horizon_value",
                p.booking_horizon_days,
                &[("days", &p.booking_horizon_days)],
            ),
        ),
        rule(
            "booking_close_minutes",
            "home.rules.booking_close",
            t.count(
                "home.rules.booking_close_value",
                p.booking_close_minutes,
                &[("minutes", &p.booking_close_minutes)],
            ),
        ),
        rule(
            "walk_in_share_percent",
            "home.rules.walk_in_share",
            t.fmt(
                "home.rules.walk_in_share_value",
                &[("percent", &p.walk_in_share_percent)],
            ),
        ),
        rule(
            "cancel_cutoff_minutes",
            "home.rules.cancel",
            t.count(
                "home.rules.cancel_value",
                p.cancel_cutoff_minutes,
                &[("minutes", &p.cancel_cutoff_minutes)],
            ),
        ),
        rule(
            "pickup_grace_minutes",
            "home.rules.grace",
            t.count(
                "home.rules.grace_value",
                p.pickup_grace_minutes,
                &[("minutes", &p.pickup_grace_minutes)],
            ),
        ),
        rule(
            "reminder_lead_minutes",
            "home.rules.reminder",
            match p.reminder_lead_minutes {
                0 => t.get("home.rules.reminder_off").to_owned(),
                minutes => t.count(
                    "home.rules.reminder_value",
                    minutes,
                    &[("minutes", &minutes)],
                ),
            },
        ),
        rule(
            "timezone",
            "home.rules.timezone",
            if p.timezone == chrono_tz::Asia::Seoul {
                t.get("home.rules.timezone_seoul").to_owned()
            } else {
                p.timezone.name().to_owned()
            },
        ),
    ]
}
