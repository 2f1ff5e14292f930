//! Who changed what, when, with the values before and after.

use chrono::Utc;
use diesel::prelude::*;

use crate::db::Tx;
use crate::db::schema::audit_log;

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
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::actor_user_id.eq(e.actor),
            audit_log::action.eq(e.action),
            audit_log::entity.eq(e.entity),
            audit_log::entity_id.eq(e.entity_id),
            audit_log::before_json.eq(e.before.map(|v| v.to_string())),
            audit_log::after_json.eq(e.after.map(|v| v.to_string())),
            audit_log::created_at.eq(Utc::now().naive_utc()),
        ))
        .execute(tx.conn())
        .map(drop)
}
