//! `/admin/audit`: who changed what, when, before and after, newest first,
//! filtered by the kind of thing changed and by who changed it. The query is
//! [`crate::audit::list`].
//!
//! The query string is read strictly where a wrong value would show the wrong
//! entries: a `page` that is not a whole number from 1 up, or an `entity` that
//! cannot be an entity name, answers 400 rather than quietly showing the first
//! page of everything. A page past the end, or an entity with no entries,
//! is simply an empty list. `actor` is an account id (digits) or part of an
//! e-mail address.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use chrono_tz::Tz;

use std::collections::HashMap;

use crate::admin::audit_words::{self, Said, ValueChange, Who};
use crate::audit::{self, Actor, Filter, PAGE_SIZE};
use crate::i18n::Tr;
use crate::state::AppState;
use crate::web::auth::Admin;
use crate::web::errors::AppError;
use crate::web::form::truncate;
use crate::web::page::PageCtx;
use crate::web::paging;
use crate::web::render;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/audit", web::get().to(list));
}

#[derive(Deserialize)]
struct Query {
    #[serde(default)]
    page: Option<String>,
    #[serde(default)]
    entity: String,
    #[serde(default)]
    actor: String,
}

/// One entry as the page shows it.
pub struct EntryView {
    pub id: i64,
    /// The actor's name and e-mail, or empty when no account made the change.
    pub actor: String,
    pub action: String,
    /// What happened, as one sentence in the reader's language.
    pub sentence: String,
    /// The values the entry speaks about, by their names.
    pub values: Vec<ValueChange>,
    pub entity: String,
    pub entity_id: String,
    /// The id as the table shows it: a long one (the keyed hash that names a
    /// person) cut to its first characters, the whole in `data-entity-id`.
    pub entity_label: String,
    pub when: String,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    page: PageCtx,
    entries: Vec<EntryView>,
    entities: Vec<String>,
    entity: String,
    actor: String,
    number: i64,
    total: i64,
    /// How many entries match, and which page this is.
    heading: String,
    newer: Option<String>,
    older: Option<String>,
}

impl AuditPage {
    /// A kind of thing as the filter names it, in the reader's language; a
    /// kind without a name of its own stays as it is.
    fn entity_label(&self, entity: &str) -> String {
        let key = format!("admin.audit.entity_name.{entity}");
        match self.page.t.get(&key) {
            text if text == key => entity.to_owned(),
            text => text.to_owned(),
        }
    }
}

fn is_entity_name(s: &str) -> bool {
    s.len() <= 40 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// The link to page `n` with the same filters.
fn page_link(entity: &str, actor: &str, n: i64) -> String {
    let n = n.to_string();
    paging::link(
        "/admin/audit",
        &[("entity", entity), ("actor", actor), ("page", &n)],
    )
}

/// The query as the list reads it: the page number, the entity and actor as
/// typed (for the form and the links), and the filter they make.
fn parse_query(query: Query) -> Result<(i64, String, String, Filter), AppError> {
    let number = paging::parse_page(query.page.as_deref())?;
    let entity = query.entity.trim().to_owned();
    if !is_entity_name(&entity) {
        return Err(AppError::BadRequest("unknown entity".into()));
    }
    let actor = truncate(query.actor.trim(), 100);
    let filter = Filter {
        entity: (!entity.is_empty()).then(|| entity.clone()),
        actor: match actor.parse::<i64>() {
            _ if actor.is_empty() => None,
            Ok(id) => Some(Actor::Id(id)),
            Err(_) => Some(Actor::EmailContains(actor.clone())),
        },
    };
    Ok((number, entity, actor, filter))
}

/// An entry as people read it: the actor by name and e-mail, the time in the
/// service zone, what happened as a sentence, the values by their names.
/// `names` are the accounts' names for entries about accounts.
fn view(e: audit::Listed, t: &Tr, tz: Tz, names: &HashMap<i64, String>) -> EntryView {
    let local = e.created_at.and_utc().with_timezone(&tz);
    let (before, after) = (
        audit_words::object(e.before_json.as_deref()),
        audit_words::object(e.after_json.as_deref()),
    );
    let subject = match e.entity.as_str() {
        "user" => e
            .entity_id
            .parse::<i64>()
            .ok()
            .and_then(|id| names.get(&id)),
        _ => None,
    };
    let said = Said {
        action: &e.action,
        entity: &e.entity,
        entity_id: &e.entity_id,
        before: &before,
        after: &after,
        subject: subject.map(String::as_str),
    };
    let who = Who {
        role: e.actor_role.as_deref(),
        name: e.actor_name.as_deref(),
        id: e.actor_id,
    };
    let sentence = audit_words::sentence(t, &who, &said);
    let values = audit_words::values(t, &said);
    EntryView {
        id: e.id,
        actor: match (e.actor_name, e.actor_email, e.actor_id) {
            (Some(name), Some(email), _) => format!("{name} ({email})"),
            (_, _, Some(id)) => format!("#{id}"),
            _ => String::new(),
        },
        when: format!("{} {}", t.date(local.date_naive()), local.format("%H:%M")),
        sentence,
        values,
        action: e.action,
        entity: e.entity,
        entity_label: short_id(&e.entity_id),
        entity_id: e.entity_id,
    }
}

/// Ids longer than this are shortened in the table.
const SHOWN_ID_CHARS: usize = 16;

/// An entity id short enough for a table cell: a long one (64 hex digits of
/// a keyed hash) as its first 12 characters and an ellipsis.
fn short_id(id: &str) -> String {
    if id.chars().count() <= SHOWN_ID_CHARS {
        id.to_owned()
    } else {
        let head: String = id.chars().take(12).collect();
        format!("{head}…")
    }
}

async fn list(
    state: web::Data<AppState>,
    _: Admin,
    page: PageCtx,
    query: web::Query<Query>,
) -> Result<HttpResponse, AppError> {
    let (number, entity, actor, filter) = parse_query(query.into_inner())?;
    let (found, mut entities, names) = state
        .db
        .run(move |conn| {
            let found = audit::list(conn, &filter, number)?;
            let accounts: Vec<i64> = found
                .entries
                .iter()
                .filter(|e| e.entity == "user")
                .filter_map(|e| e.entity_id.parse().ok())
                .collect();
            let names = audit::account_names(conn, &accounts)?;
            Ok::<_, diesel::result::Error>((found, audit::entities(conn)?, names))
        })
        .await?;
    // A filter by an entity with no entries yet still shows as chosen.
    if !entity.is_empty() && !entities.contains(&entity) {
        entities.push(entity.clone());
    }
    let tz = state.policy().await?.timezone;
    let entries = found
        .entries
        .into_iter()
        .map(|e| view(e, &page.t, tz, &names))
        .collect();
    let (total, pages) = (found.total, (found.total + PAGE_SIZE - 1) / PAGE_SIZE);
    let newer = (number > 1).then(|| page_link(&entity, &actor, number - 1));
    let older = (number < pages).then(|| page_link(&entity, &actor, number + 1));
    let heading = page.t.fmt(
        "admin.audit.count",
        &[
            ("total", &total),
            ("page", &number),
            ("pages", &pages.max(1)),
        ],
    );
    let p = AuditPage {
        heading,
        page,
        entries,
        entities,
        entity,
        actor,
        number,
        total,
        newer,
        older,
    };
    render(&p, StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_links_keep_the_filters() {
        assert_eq!(page_link("", "", 2), "/admin/audit?page=2");
        assert_eq!(
            page_link("setting", "a@b.kr", 3),
            "/admin/audit?entity=setting&actor=a%40b.kr&page=3"
        );
    }

    #[test]
    fn long_ids_are_shortened_for_the_table() {
        assert_eq!(short_id("31802095"), "31802095");
        assert_eq!(short_id(&"ab".repeat(8)), "ab".repeat(8));
        assert_eq!(short_id(&"0123456789abcdef".repeat(4)), "0123456789ab…");
    }
}
