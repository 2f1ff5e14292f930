//! The audit log: who changed what, when, with the values before and after.
//! The entries every administrative change (accounts, policy, stores, supply)
//! and every walk-in look-up writes in its own transaction, and the list the
//! administrator's audit page (`admin::audit_page`) reads. Shared by those
//! features, so it lives beside them rather than inside one of them.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::schema::{audit_log, users};
use crate::db::{DbConnection, Tx};

pub struct Entry<'a> {
    pub actor: Option<i64>,
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Writes the entry; call it in the transaction that makes the change.
pub fn record(tx: &mut Tx<'_>, e: Entry<'_>) -> QueryResult<()> {
    record_at(tx, e, Utc::now().naive_utc())
}

/// Writes the entry as made at `at` (UTC): for a feature that takes its time
/// from the application's clock, so that the entry and the rows it speaks
/// about carry the same time.
pub fn record_at(tx: &mut Tx<'_>, e: Entry<'_>, at: NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::actor_user_id.eq(e.actor),
            audit_log::action.eq(e.action),
            audit_log::entity.eq(e.entity),
            audit_log::entity_id.eq(e.entity_id),
            audit_log::before_json.eq(e.before.map(|v| v.to_string())),
            audit_log::after_json.eq(e.after.map(|v| v.to_string())),
            audit_log::created_at.eq(at),
        ))
        .execute(tx.conn())
        .map(drop)
}

/// Entries per page of the list.
pub const PAGE_SIZE: i64 = 50;

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only entries about this kind of thing (`user`, `setting`, …).
    pub entity: Option<String>,
    pub actor: Option<Actor>,
}

/// Who made the change.
#[derive(Debug, Clone)]
pub enum Actor {
    Id(i64),
    /// Accounts whose e-mail contains this text.
    EmailContains(String),
}

/// One entry as the list shows it, with the actor's account when it exists
/// (an entry written by the command line has none). Fields in the order the
/// list query selects them.
#[derive(Queryable)]
pub struct Listed {
    pub id: i64,
    pub actor_id: Option<i64>,
    pub actor_name: Option<String>,
    pub actor_email: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub created_at: NaiveDateTime,
}

/// One page of the list.
pub struct Page {
    pub entries: Vec<Listed>,
    /// How many entries match the filter, on every page.
    pub total: i64,
}

#[diesel::dsl::auto_type(no_type_alias)]
fn with_actor() -> _ {
    let on: diesel::dsl::Eq<audit_log::actor_user_id, diesel::dsl::Nullable<users::id>> =
        audit_log::actor_user_id.eq(users::id.nullable());
    audit_log::table.left_join(users::table.on(on))
}

/// Entries matching `filter`, newest first, page `page` (from 1) of
/// [`PAGE_SIZE`]; a page past the end is empty.
pub fn list(conn: &mut DbConnection, filter: &Filter, page: i64) -> QueryResult<Page> {
    let filtered = || {
        let mut q = with_actor().into_boxed();
        if let Some(entity) = &filter.entity {
            q = q.filter(audit_log::entity.eq(entity.clone()));
        }
        match &filter.actor {
            Some(Actor::Id(id)) => q = q.filter(audit_log::actor_user_id.eq(*id)),
            Some(Actor::EmailContains(text)) => {
                let pattern = format!("%{}%", text.to_lowercase().replace(['%', '_'], ""));
                q = q.filter(users::email.like(pattern));
            }
            None => {}
        }
        q
    };
    let total = filtered().count().get_result::<i64>(conn)?;
    let entries: Vec<Listed> = filtered()
        .select((
            audit_log::id,
            audit_log::actor_user_id,
            users::name.nullable(),
            users::email.nullable(),
            users::role.nullable(),
            audit_log::action,
            audit_log::entity,
            audit_log::entity_id,
            audit_log::before_json,
            audit_log::after_json,
            audit_log::created_at,
        ))
        .order((audit_log::created_at.desc(), audit_log::id.desc()))
        .limit(PAGE_SIZE)
        .offset(page.saturating_sub(1).saturating_mul(PAGE_SIZE))
        .load(conn)?;
    Ok(Page { entries, total })
}

/// The names of the accounts `ids` (those that exist), for entries about
/// accounts.
pub fn account_names(
    conn: &mut DbConnection,
    ids: &[i64],
) -> QueryResult<std::collections::HashMap<i64, String>> {
    let found: Vec<(i64, String)> = users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::name))
        .load(conn)?;
    Ok(found.into_iter().collect())
}

/// The kinds of things the log has entries about, for the filter.
pub fn entities(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    audit_log::table
        .select(audit_log::entity)
        .distinct()
        .order(audit_log::entity)
        .load(conn)
}
