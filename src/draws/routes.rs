//! `GET /draws/{id}`: a draw for anyone — its rules, its days and region,
//! when registration opens and closes and when the results come, the
//! commitment; during registration, for a citizen, the form (`choice1`…
//! `choice3` among the windows of the store named by `?store=` and of the
//! stores already chosen, `quantity`, `person`) and what they registered,
//! under which pseudonym; once drawn, the revealed secret, the digest and the
//! seed, and the published order, a page at a time (`?page=`), with each
//! registration's place and outcome. `POST /draws/{id}/register` registers
//! (or changes a registration) and comes back here.

use std::collections::HashSet;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{NaiveDate, NaiveDateTime};
use chrono_tz::Tz;
use diesel::prelude::*;
use serde::Deserialize;

use crate::accounts::Role;
use crate::db::schema::{dependants, draw_entries, draw_windows, pickup_windows, stores};
use crate::db::{DbConnection, DbError};
use crate::draws::admin::{days_text, moment, phase_words};
use crate::draws::entries::{self, Mine, NotRegistered, Register, RegisterError};
use crate::draws::{self, Draw, Phase};
use crate::i18n::Tr;
use crate::quantity::Quantity;
use crate::reservations::booking::ForWhom;
use crate::reservations::rules::{self, Refusal};
use crate::state::AppState;
use crate::web::auth::Citizen;
use crate::web::errors::AppError;
use crate::web::form::{FormData, truncate};
use crate::web::page::PageCtx;
use crate::web::paging::{Pages, link, parse_page};
use crate::web::{render, see_other, session};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/draws/{id}", web::get().to(show))
        .route("/draws/{id}/register", web::post().to(register));
}

/// Registrations in the published order, a page.
const PER_PAGE: i64 = 100;

/// A window one may choose.
pub struct WindowOption {
    pub id: i64,
    pub label: String,
}

/// One registration of the visitor's.
pub struct MineView {
    pub pseudonym: String,
    /// "추첨 번호 K3F9Q-2XD7M".
    pub pseudonym_text: String,
    pub for_whom: String,
    /// "마스크 2개".
    pub quantity_text: String,
    pub choices: Vec<String>,
    /// After the draw: the place and the outcome's words.
    pub result: Option<String>,
    pub reservation_id: Option<i64>,
}

/// One of the form's three ranked choices.
pub struct ChoiceField {
    pub name: &'static str,
    pub label: String,
    /// The second and third may be left empty.
    pub optional: bool,
    /// (window id, label, selected).
    pub options: Vec<(i64, String, bool)>,
}

/// One line of the published order.
pub struct ResultRow {
    pub position: i32,
    pub pseudonym: String,
    pub outcome: String,
    pub won: bool,
}

/// The form as sent back, or as the registration holds it.
#[derive(Debug, Clone, Default)]
pub struct Form {
    pub choices: [String; 3],
    pub quantity: String,
    pub person: String,
}

#[derive(Template)]
#[template(path = "draws/show.html")]
struct DrawPage {
    page: PageCtx,
    id: i64,
    name: String,
    days: String,
    region: String,
    opens: String,
    closes: String,
    results_at: String,
    commitment: String,
    state: &'static str,
    state_key: &'static str,
    /// Once drawn: the secret, the digest and the seed, in hex.
    revealed: Option<(String, String, String)>,
    /// "3,120 registrations for 450 windows".
    counts: String,
    registrations: i64,
    /// A citizen during registration may register.
    can_register: bool,
    store: String,
    /// Empty when the named store has none of the draw's windows.
    choice_fields: Vec<ChoiceField>,
    people: Vec<(String, String)>,
    form: Form,
    error: Option<(String, &'static str)>,
    mine: Vec<MineView>,
    results: Vec<ResultRow>,
    pages: Option<Pages>,
}

#[derive(Debug, Deserialize)]
struct Query {
    store: Option<String>,
    page: Option<String>,
}

/// A draw id from the path: anything but a number is no draw.
fn draw_id(path: &str) -> Result<i64, AppError> {
    path.parse().map_err(|_| AppError::NotFound)
}

/// A window of the draw with its store, as the choices and the results name it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = pickup_windows)]
struct OptionRow {
    id: i64,
    day: NaiveDate,
    starts_at: NaiveDateTime,
    ends_at: NaiveDateTime,
    #[diesel(select_expression = stores::name)]
    store_name: String,
    #[diesel(select_expression = stores::code)]
    store_code: String,
}

/// The draw's windows at the store `code` and at the stores of `chosen`.
fn options(
    conn: &mut DbConnection,
    draw_id: i64,
    code: &str,
    chosen: &[i64],
) -> QueryResult<Vec<OptionRow>> {
    let chosen_stores: Vec<i64> = pickup_windows::table
        .filter(pickup_windows::id.eq_any(chosen.to_vec()))
        .select(pickup_windows::store_id)
        .load(conn)?;
    draw_windows::table
        .inner_join(pickup_windows::table.inner_join(stores::table))
        .filter(draw_windows::draw_id.eq(draw_id))
        .filter(
            stores::code
                .eq(code)
                .or(pickup_windows::store_id.eq_any(chosen_stores)),
        )
        .order((stores::code, pickup_windows::starts_at))
        .select(OptionRow::as_select())
        .limit(200)
        .load(conn)
}

fn option_label(t: &Tr, tz: Tz, o: &OptionRow) -> String {
    format!(
        "{} ({}) · {} {}",
        o.store_name,
        o.store_code,
        t.date(o.day),
        rules::time_range(tz, o.starts_at, o.ends_at)
    )
}

/// Everything the page reads.
struct Loaded {
    draw: Draw,
    registrations: i64,
    windows: i64,
    mine: Vec<Mine>,
    dependants: Vec<(i64, String)>,
    options: Vec<OptionRow>,
    results: Vec<(i32, String, Option<String>, Option<i64>)>,
    labels: Vec<OptionRow>,
}

fn load(
    conn: &mut DbConnection,
    id: i64,
    user: Option<i64>,
    store: &str,
    page: i64,
) -> QueryResult<Option<Loaded>> {
    let Some(draw) = draws::find(conn, id)? else {
        return Ok(None);
    };
    let registrations = draw_entries::table
        .filter(draw_entries::draw_id.eq(id))
        .count()
        .get_result(conn)?;
    let windows = draw_windows::table
        .filter(draw_windows::draw_id.eq(id))
        .count()
        .get_result(conn)?;
    let (mine, dependants) = match user {
        Some(user) => (
            entries::mine(conn, id, user)?,
            dependants::table
                .filter(dependants::guardian_user_id.eq(user))
                .filter(dependants::ended_at.is_null())
                .order(dependants::id)
                .select((dependants::id, dependants::name))
                .load(conn)?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    let chosen: Vec<i64> = mine
        .iter()
        .flat_map(Mine::choices)
        .chain(mine.iter().filter_map(|m| m.won_window_id))
        .collect();
    let options = options(conn, id, store, &chosen)?;
    let results: Vec<(i32, String, Option<String>, Option<i64>)> = if draw.state == "done" {
        draw_entries::table
            .filter(draw_entries::draw_id.eq(id))
            .filter(draw_entries::position.is_not_null())
            .order(draw_entries::position)
            .offset(Pages::offset(page, PER_PAGE))
            .limit(PER_PAGE)
            .select((
                draw_entries::position.assume_not_null(),
                draw_entries::pseudonym,
                draw_entries::outcome,
                draw_entries::won_window_id,
            ))
            .load(conn)?
    } else {
        Vec::new()
    };
    let won: Vec<i64> = results.iter().filter_map(|r| r.3).collect();
    let labels: Vec<OptionRow> = pickup_windows::table
        .inner_join(stores::table)
        .filter(pickup_windows::id.eq_any(won.into_iter().chain(chosen).collect::<Vec<_>>()))
        .select(OptionRow::as_select())
        .load(conn)?;
    Ok(Some(Loaded {
        draw,
        registrations,
        windows,
        mine,
        dependants,
        options,
        results,
        labels,
    }))
}

async fn show(
    state: web::Data<AppState>,
    page: PageCtx,
    path: web::Path<String>,
    query: web::Query<Query>,
) -> Result<HttpResponse, AppError> {
    let id = draw_id(&path)?;
    let q = query.into_inner();
    let number = parse_page(q.page.as_deref())?;
    let store = truncate(q.store.as_deref().unwrap_or("").trim(), 8);
    draw_page(
        &state,
        page,
        id,
        store,
        number,
        None,
        Form::default(),
        StatusCode::OK,
    )
    .await
}

#[expect(
    clippy::too_many_arguments,
    reason = "the page, the draw, what it lists and what was sent back"
)]
async fn draw_page(
    state: &AppState,
    page: PageCtx,
    id: i64,
    store: String,
    number: i64,
    error: Option<(String, &'static str)>,
    form: Form,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let policy = state.policy().await?;
    let tz = policy.timezone;
    let now = state.clock.now();
    let citizen = page
        .user
        .as_ref()
        .filter(|u| u.role == Role::Citizen)
        .map(|u| u.id);
    let lookup = store.clone();
    let loaded = state
        .db
        .run(move |conn| load(conn, id, citizen, &lookup, number))
        .await?
        .ok_or(AppError::NotFound)?;
    let t = &page.t;
    let d = &loaded.draw;
    let phase = d.phase(now);
    let (state_key, state_name) = phase_words(phase);
    let label_of = |window: i64| {
        loaded
            .labels
            .iter()
            .chain(&loaded.options)
            .find(|o| o.id == window)
            .map_or_else(|| window.to_string(), |o| option_label(t, tz, o))
    };
    let name_of = |dependant: Option<i64>| match dependant {
        None => t.get("draws.for_self").to_owned(),
        Some(id) => loaded
            .dependants
            .iter()
            .find(|(d, _)| *d == id)
            .map_or_else(|| id.to_string(), |(_, name)| name.clone()),
    };
    let mine = loaded
        .mine
        .iter()
        .map(|m| MineView {
            pseudonym: m.pseudonym.clone(),
            pseudonym_text: t.fmt("draws.pseudonym", &[("name", &m.pseudonym)]),
            for_whom: name_of(m.dependant_id),
            quantity_text: t.fmt("draws.quantity_value", &[("quantity", &m.quantity)]),
            choices: m.choices().into_iter().map(&label_of).collect(),
            result: m.position.map(|position| match m.won_window_id {
                Some(w) => t.fmt(
                    "draws.result_won",
                    &[("position", &position), ("window", &label_of(w))],
                ),
                None => t.fmt("draws.result_not_drawn", &[("position", &position)]),
            }),
            reservation_id: m.reservation_id,
        })
        .collect();
    let results = loaded
        .results
        .iter()
        .map(|(position, pseudonym, outcome, won)| ResultRow {
            position: *position,
            pseudonym: pseudonym.clone(),
            outcome: match (outcome.as_deref(), won) {
                (Some("won"), Some(w)) => label_of(*w),
                _ => t.get("draws.not_drawn").to_owned(),
            },
            won: won.is_some(),
        })
        .collect();
    let pages = (phase == Phase::Done).then(|| {
        Pages::new(number, loaded.registrations, PER_PAGE, |n| {
            link(&format!("/draws/{id}"), &[("page", &n.to_string())])
        })
    });
    // The form shows what the registration holds, unless a refused form
    // came back.
    let form = match (&error, loaded.mine.first()) {
        (None, Some(m)) => {
            let c = m.choices();
            Form {
                choices: [0, 1, 2].map(|i| c.get(i).map(ToString::to_string).unwrap_or_default()),
                quantity: m.quantity.to_string(),
                person: m
                    .dependant_id
                    .map_or_else(|| "self".to_owned(), |id| id.to_string()),
            }
        }
        _ => form,
    };
    let mut people = Vec::new();
    if !loaded.dependants.is_empty() {
        people.push((
            "self".to_owned(),
            t.get("store_page.person_self").to_owned(),
        ));
        people.extend(
            loaded
                .dependants
                .iter()
                .map(|(id, name)| (id.to_string(), name.clone())),
        );
    }
    let mut seen = HashSet::new();
    let options: Vec<WindowOption> = loaded
        .options
        .iter()
        .filter(|o| seen.insert(o.id))
        .map(|o| WindowOption {
            id: o.id,
            label: option_label(t, tz, o),
        })
        .collect();
    let choice_fields = if options.is_empty() {
        Vec::new()
    } else {
        ["choice1", "choice2", "choice3"]
            .into_iter()
            .enumerate()
            .map(|(i, name)| ChoiceField {
                name,
                label: t.fmt("draws.choice", &[("rank", &(i + 1))]),
                optional: i > 0,
                options: options
                    .iter()
                    .map(|o| {
                        let selected = form.choices[i] == o.id.to_string();
                        (o.id, o.label.clone(), selected)
                    })
                    .collect(),
            })
            .collect()
    };
    let revealed = match (&d.digest, &d.seed, phase) {
        (Some(digest), Some(seed), Phase::Done) => {
            let secret = state
                .db
                .run(move |conn| {
                    crate::db::schema::draws::table
                        .find(id)
                        .select(crate::db::schema::draws::secret)
                        .first::<String>(conn)
                })
                .await?;
            Some((secret, digest.clone(), seed.clone()))
        }
        _ => None,
    };
    let view = DrawPage {
        id,
        name: d.name.clone(),
        days: days_text(t, d.first_day, d.last_day),
        region: d
            .region
            .clone()
            .unwrap_or_else(|| t.get("draws.all_regions").to_owned()),
        opens: moment(t, tz, d.opens_at),
        closes: moment(t, tz, d.closes_at),
        results_at: moment(t, tz, d.results_at),
        commitment: d.commitment.clone(),
        state: state_name,
        state_key,
        revealed,
        counts: t.fmt(
            "draws.counts_value",
            &[
                ("registrations", &loaded.registrations),
                ("windows", &loaded.windows),
            ],
        ),
        registrations: loaded.registrations,
        can_register: citizen.is_some() && phase == Phase::Registering,
        store,
        choice_fields,
        people,
        form,
        error,
        mine,
        results,
        pages,
        page,
    };
    render(&view, status)
}

/// A refusal's status, its `data-refusal` name and its words.
fn not_registered(t: &Tr, tz: Tz, n: &NotRegistered) -> (StatusCode, &'static str, String) {
    match n {
        NotRegistered::Refused(r) => r.answered(t, tz),
        NotRegistered::UnknownDraw => (
            StatusCode::NOT_FOUND,
            "unknown_draw",
            t.get("error.404.title").to_owned(),
        ),
        NotRegistered::NotOpen { opens_at } => (
            StatusCode::CONFLICT,
            "draw_not_open",
            t.fmt(
                "draws.refused.not_open",
                &[("at", &moment(t, tz, *opens_at))],
            ),
        ),
        NotRegistered::Closed => (
            StatusCode::CONFLICT,
            "draw_closed",
            t.get("draws.refused.closed").to_owned(),
        ),
        NotRegistered::Choices => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "draw_choices",
            t.get("draws.refused.choices").to_owned(),
        ),
        NotRegistered::NotInDraw { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "draw_window",
            t.get("draws.refused.not_in_draw").to_owned(),
        ),
    }
}

async fn register(
    state: web::Data<AppState>,
    citizen: Citizen,
    session: Session,
    page: PageCtx,
    path: web::Path<String>,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let id = draw_id(&path)?;
    let sent = Form {
        choices: ["choice1", "choice2", "choice3"].map(|f| truncate(form.get(f).trim(), 20)),
        quantity: truncate(form.get("quantity").trim(), 20),
        person: truncate(form.get("person").trim(), 20),
    };
    let store = truncate(form.get("store").trim(), 8);
    let policy = state.policy().await?;
    let choices: Option<Vec<i64>> = sent
        .choices
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| c.parse().ok())
        .collect();
    let refusal = match (
        sent.quantity.parse::<Quantity>(),
        ForWhom::parse(&sent.person),
        choices,
    ) {
        (Err(_), _, _) => NotRegistered::Refused(Refusal::BadQuantity {
            max: policy.quota_per_period,
        }),
        (_, None, _) => NotRegistered::Refused(Refusal::UnknownPerson),
        (_, _, None) => NotRegistered::Choices,
        (Ok(quantity), Some(person), Some(choices)) => {
            let asked = Register {
                user_id: citizen.user.id,
                draw_id: id,
                person,
                quantity,
                choices,
                now: state.clock.now(),
                mail_lang: page.t.code(),
            };
            let (for_tx, key) = (policy.clone(), state.keys.draw_pseudonym.clone());
            match state
                .db
                .write(move |tx| entries::register(tx, &asked, &for_tx, &key))
                .await
            {
                Ok(_) => {
                    session::set_flash(&session, "draws.flash.registered");
                    return Ok(see_other(&format!("/draws/{id}")));
                }
                Err(DbError::Work(RegisterError::NotRegistered(n))) => n,
                Err(e) => return Err(e.into()),
            }
        }
    };
    if refusal == NotRegistered::UnknownDraw {
        return Err(AppError::NotFound);
    }
    let (status, kind, message) = not_registered(&page.t, policy.timezone, &refusal);
    draw_page(
        &state,
        page,
        id,
        store,
        1,
        Some((message, kind)),
        sent,
        status,
    )
    .await
}
