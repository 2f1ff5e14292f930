//! A store's pickup windows for the administrator: the table the store page
//! includes (`templates/admin/store_windows.html`, filled by
//! [`store_windows`]) and `GET,POST /admin/stores/{code}/windows/{window_id}`,
//! one window's capacity.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::admin::supply::{parse_quantity, refusal_message};
use crate::db::DbError;
use crate::state::AppState;
use crate::supply::changes::{self, CapacityOutcome, ChangeError};
use crate::supply::import::MAX_QUANTITY;
use crate::supply::queries;
use crate::web::auth::Admin;
use crate::web::errors::AppError;
use crate::web::form::{FieldErrors, FormData, truncate};
use crate::web::page::PageCtx;
use crate::web::{render, see_other, session};

/// The rows of the windows table; the page that includes
/// `admin/store_windows.html` has them as `windows` (and `page`).
pub use crate::supply::queries::{WindowRow, store_windows};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/admin/stores/{code}/windows/{window_id}",
        web::get().to(show),
    )
    .route(
        "/admin/stores/{code}/windows/{window_id}",
        web::post().to(save),
    );
}

#[derive(Template)]
#[template(path = "admin/window.html")]
struct WindowPage {
    page: PageCtx,
    window: WindowRow,
    value: String,
    errors: FieldErrors,
}

impl WindowPage {
    fn back_label(&self) -> String {
        let code: &str = &self.window.store_code;
        self.page.t.fmt("admin.windows.back", &[("code", &code)])
    }
}

/// The window named by the path, if it is that store's.
async fn window_at(state: &AppState, path: (String, String)) -> Result<WindowRow, AppError> {
    let (code, id) = path;
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    state
        .db
        .run(move |conn| queries::window_of_store(conn, &code, id))
        .await?
        .ok_or(AppError::NotFound)
}

async fn show(
    state: web::Data<AppState>,
    _admin: Admin,
    page: PageCtx,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let window = window_at(&state, path.into_inner()).await?;
    let value = window.capacity.to_string();
    let errors = FieldErrors::default();
    render(
        &WindowPage {
            page,
            window,
            value,
            errors,
        },
        StatusCode::OK,
    )
}

async fn save(
    state: web::Data<AppState>,
    admin: Admin,
    session: Session,
    page: PageCtx,
    path: web::Path<(String, String)>,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let window = window_at(&state, path.into_inner()).await?;
    let value = truncate(form.get("capacity"), 20);
    let mut errors = FieldErrors::default();
    let refused = |page: PageCtx, window: WindowRow, value: String, errors: FieldErrors| {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        render(
            &WindowPage {
                page,
                window,
                value,
                errors,
            },
            status,
        )
    };
    let Some(capacity) = parse_quantity(&value) else {
        let message = page
            .t
            .fmt("admin.windows.error.capacity", &[("max", &MAX_QUANTITY)]);
        errors.add("capacity", message);
        return refused(page, window, value, errors);
    };
    let (id, actor, now) = (window.id, admin.user.id, state.clock.now());
    let policy = state.policy().await?;
    let (t, base_url) = (page.t.clone(), state.base_url.clone());
    let result = state
        .db
        .write(move |tx| {
            let outcome =
                changes::set_window_capacity(tx, id, capacity, Some(actor), now.naive_utc())?;
            // Places added go to the window's waiting list first (SPEC §13),
            // in the same transaction: no booking takes them in between.
            if matches!(outcome, CapacityOutcome::Changed { from, to } if to > from) {
                crate::waitlist::offer_freed(tx, id, now, &policy, &t, &base_url)?;
            }
            Ok::<_, ChangeError>(outcome)
        })
        .await;
    match result {
        Ok(_) => {
            state.mail_wake.notify_one();
            session::set_flash(&session, "admin.windows.saved");
            Ok(see_other(&format!(
                "/admin/stores/{}#windows",
                window.store_code
            )))
        }
        Err(DbError::Work(ChangeError::Refused(refusal))) => {
            errors.add("capacity", refusal_message(&page.t, &refusal, &window.time));
            refused(page, window, value, errors)
        }
        Err(DbError::Work(ChangeError::NoSuchWindow)) => Err(AppError::NotFound),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use askama::Template;
    use chrono::NaiveDate;

    use super::WindowRow;
    use crate::i18n::{Catalog, Lang, Tr};
    use crate::web::page::PageCtx;

    /// A page that includes the partial, as the store page does.
    #[derive(Template)]
    #[template(source = "{% include \"admin/store_windows.html\" %}", ext = "html")]
    struct StorePart {
        page: PageCtx,
        windows: Vec<WindowRow>,
    }

    #[test]
    fn the_windows_partial_shows_each_window_with_a_capacity_form() {
        let catalog = Arc::new(Catalog::load().unwrap());
        let page = PageCtx {
            t: Tr::new(catalog, Lang::En),
            csrf_token: "token".into(),
            user: None,
            here: "/admin/stores/31802095".into(),
            languages: Lang::ALL,
            flash: None,
        };
        let window = WindowRow {
            id: 7,
            store_code: "31802095".into(),
            day: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            time: "09:00–12:00".into(),
            capacity: 40,
            reserved: 12,
            picked_up: 3,
        };
        let html = StorePart {
            page,
            windows: vec![window],
        }
        .render()
        .unwrap();
        assert!(html.contains(r#"<section id="windows""#), "{html}");
        assert!(html.contains(r#"action="/admin/stores/31802095/windows/7""#));
        assert!(
            html.contains(r#"name="capacity" type="text" inputmode="numeric" size="6" value="40""#)
        );
        assert!(html.contains("Capacity of the window 09:00–12:00 on"));
        assert!(
            html.contains(r#"<td class="num">25</td>"#),
            "remaining 40 − 12 − 3"
        );
    }
}
