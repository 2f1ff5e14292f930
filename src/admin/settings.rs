//! `/admin/settings`: the policy of SPEC §3 as a form. The work is in
//! [`crate::admin::policy_changes`].

use std::collections::HashMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::admin::policy_changes::{self, Change, KEYS, Saved, ValidPolicy};
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
    let change = Change {
        policy,
        version: version.clone(),
        timezone_confirmed: form.get("confirm_timezone") == "1",
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
            let mut errors = FieldErrors::default();
            errors.set_general(page.t.get("admin.settings.stale"));
            let current = stored(&state).await?;
            settings_page(page, current, errors, None, StatusCode::CONFLICT)
        }
    }
}
