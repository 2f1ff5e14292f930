//! `/admin/settings`: the policy of SPEC §3 as a form. The work is in
//! [`crate::admin::policy_changes`].
//!
//! A valid form is not saved at once: it answers a review listing each value
//! that would change, old → new, because a setting changes the whole country
//! at once. The review's form carries the values (hidden), the version of the
//! settings it was made against, and `confirm=1`; only that post saves. If the
//! settings changed between the review and the confirmation (another
//! administrator), nothing is saved and a fresh review against the values now
//! in force is shown.

use std::collections::HashMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::admin::policy_changes::{self, Change, Difference, KEYS, Saved, ValidPolicy};
use crate::settings;
use crate::state::AppState;
use crate::web::auth::Admin;
use crate::web::errors::AppError;
use crate::web::form::{FieldErrors, FormData, truncate};
use crate::web::page::PageCtx;
use crate::web::{render, see_other, session};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/settings", web::get().to(show))
        .route("/admin/settings", web::post().to(save));
}

/// The form's values, as typed or as stored.
pub struct SettingValues(HashMap<&'static str, String>);

impl SettingValues {
    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", String::as_str)
    }
}

/// A change of time zone waiting for confirmation.
pub struct TimezoneChange {
    pub from: String,
    pub to: String,
    /// What changes, in the visitor's language.
    pub message: String,
}

#[derive(Template)]
#[template(path = "admin/settings.html")]
struct SettingsPage {
    page: PageCtx,
    values: SettingValues,
    version: String,
    errors: FieldErrors,
    confirm: Option<TimezoneChange>,
}

/// One line of the review: a setting by its label, its value now and after.
pub struct ReviewLine {
    pub key: &'static str,
    pub label: String,
    pub before: String,
    pub after: String,
}

#[derive(Template)]
#[template(path = "admin/settings_review.html")]
struct ReviewPage {
    page: PageCtx,
    /// Every value of the form, in its stored form, for the hidden fields.
    values: Vec<(&'static str, String)>,
    version: String,
    lines: Vec<ReviewLine>,
    /// What a new time zone changes, when the review has one.
    timezone: Option<String>,
    /// Why the review is shown again (the settings changed meanwhile).
    stale: bool,
}

/// A value as the form's choices name it (`birth_year` → the rotation by birth
/// year), other values as they are.
fn shown_value(page: &PageCtx, key: &str, value: &str) -> String {
    let choice = match (key, value) {
        ("rotation", "off") => "admin.settings.rotation_off",
        ("rotation", "birth_year") => "admin.settings.rotation_birth_year",
        ("period", "iso_week") => "admin.settings.period_iso_week",
        _ => return value.to_owned(),
    };
    page.t.get(choice).to_owned()
}

/// The review of `policy` against the settings in force (`current`, of
/// `version`).
fn review_page(
    page: PageCtx,
    policy: &ValidPolicy,
    (current, version): (&HashMap<String, String>, String),
    stale: bool,
) -> Result<HttpResponse, AppError> {
    let differences = policy_changes::differences(current, policy);
    let timezone = differences.iter().find(|d| d.key == "timezone").map(|d| {
        page.t.fmt(
            "admin.settings.timezone_confirm_body",
            &[("from", &d.before), ("to", &d.after)],
        )
    });
    let lines = differences
        .into_iter()
        .map(|Difference { key, before, after }| ReviewLine {
            key,
            label: page
                .t
                .get(&format!("admin.settings.label.{key}"))
                .to_owned(),
            before: shown_value(&page, key, &before),
            after: shown_value(&page, key, &after),
        })
        .collect();
    let status = if stale {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    let p = ReviewPage {
        page,
        values: policy.pairs().to_vec(),
        version,
        lines,
        timezone,
        stale,
    };
    render(&p, status)
}

/// The message next to a field whose value broke the policy's rules.
fn error_key(key: &str) -> &'static str {
    match key {
        "quota_per_period" => "admin.settings.error.quota_per_period",
        "period" => "admin.settings.error.period",
        "timezone" => "admin.settings.error.timezone",
        "rotation" => "admin.settings.error.rotation",
        "booking_horizon_days" => "admin.settings.error.booking_horizon_days",
        "cancel_cutoff_minutes" => "admin.settings.error.cancel_cutoff_minutes",
        "pickup_grace_minutes" => "admin.settings.error.pickup_grace_minutes",
        "reminder_lead_minutes" => "admin.settings.error.reminder_lead_minutes",
        "walk_in_share_percent" => "admin.settings.error.walk_in_share_percent",
        "booking_close_minutes" => "admin.settings.error.booking_close_minutes",
        "max_dependants" => "admin.settings.error.max_dependants",
        "proxy_born_from" | "proxy_born_until" => "admin.settings.error.proxy_year",
        "waitlist_hold_minutes" => "admin.settings.error.waitlist_hold_minutes",
        _ => "admin.settings.error.window_template",
    }
}

/// The settings in force, as the form shows them, with their version.
async fn stored(state: &AppState) -> Result<(SettingValues, String), AppError> {
    let snapshot = state.db.run(settings::snapshot).await?;
    let values = KEYS
        .iter()
        .map(|k| (*k, snapshot.values.get(*k).cloned().unwrap_or_default()))
        .collect();
    Ok((SettingValues(values), snapshot.version))
}

/// The page, with the form as given.
fn settings_page(
    page: PageCtx,
    (values, version): (SettingValues, String),
    errors: FieldErrors,
    confirm: Option<TimezoneChange>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let p = SettingsPage {
        page,
        values,
        version,
        errors,
        confirm,
    };
    render(&p, status)
}

async fn show(
    state: web::Data<AppState>,
    _: Admin,
    page: PageCtx,
) -> Result<HttpResponse, AppError> {
    let form = stored(&state).await?;
    settings_page(page, form, FieldErrors::default(), None, StatusCode::OK)
}

/// The form's values as typed, its version, and the valid policy they make,
/// or a message next to each invalid field.
fn parse_form(
    page: &PageCtx,
    form: &FormData,
) -> (SettingValues, String, Result<ValidPolicy, FieldErrors>) {
    let values: HashMap<&'static str, String> = KEYS
        .iter()
        .map(|k| (*k, truncate(form.get(k).trim(), 200)))
        .collect();
    let version = truncate(form.get("version"), 64);
    let parsed = ValidPolicy::parse(&values).map_err(|invalid| {
        let mut errors = FieldErrors::default();
        for e in invalid {
            if let Some(key) = KEYS.iter().find(|k| **k == e.key) {
                errors.add(key, page.t.get(error_key(key)));
            }
        }
        errors
    });
    (SettingValues(values), version, parsed)
}

async fn save(
    state: web::Data<AppState>,
    admin: Admin,
    session: Session,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let (values, version, parsed) = parse_form(&page, &form);
    let policy = match parsed {
        Ok(policy) => policy,
        Err(errors) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return settings_page(page, (values, version), errors, None, status);
        }
    };
    // Back from the review to the form, with the values as they were.
    if form.get("edit") == "1" {
        let status = StatusCode::OK;
        return settings_page(
            page,
            (values, version),
            FieldErrors::default(),
            None,
            status,
        );
    }
    if form.get("confirm") != "1" {
        let current = state.db.run(settings::snapshot).await?;
        if current.version != version {
            return stale_form(&state, page).await;
        }
        return review_page(page, &policy, (&current.values, version), false);
    }
    let change = Change {
        policy: policy.clone(),
        version: version.clone(),
        // The review showed the new time zone with what it changes.
        timezone_confirmed: true,
    };
    let actor = admin.user.id;
    let saved = state
        .db
        .write(move |tx| policy_changes::save(tx, actor, &change))
        .await?;
    match saved {
        Saved::Changed(keys) => {
            let cache = state.policy.clone();
            state.db.run(move |conn| cache.refresh(conn)).await?;
            let flash = if keys.is_empty() {
                "admin.settings.unchanged"
            } else {
                "admin.settings.saved"
            };
            session::set_flash(&session, flash);
            Ok(see_other("/admin/settings"))
        }
        Saved::ConfirmTimezone { from, to } => {
            let message = page.t.fmt(
                "admin.settings.timezone_confirm_body",
                &[("from", &from), ("to", &to)],
            );
            let confirm = Some(TimezoneChange { from, to, message });
            let form = (values, version);
            settings_page(page, form, FieldErrors::default(), confirm, StatusCode::OK)
        }
        Saved::Stale => {
            let current = state.db.run(settings::snapshot).await?;
            review_page(page, &policy, (&current.values, current.version), true)
        }
    }
}

/// The form with the values in force, and why nothing was saved: the
/// settings changed since this form was opened.
async fn stale_form(state: &AppState, page: PageCtx) -> Result<HttpResponse, AppError> {
    let mut errors = FieldErrors::default();
    errors.set_general(page.t.get("admin.settings.stale"));
    let current = stored(state).await?;
    settings_page(page, current, errors, None, StatusCode::CONFLICT)
}
