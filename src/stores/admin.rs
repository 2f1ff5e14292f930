//! Stores as an administrator manages them: the list searched and paged, one
//! store by code, and creating or editing a store, each change one transaction
//! with its audit entry.

use chrono::Utc;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::json;

use crate::audit::{self, Entry};
use crate::db::schema::stores;
use crate::db::{AsRetryable, DbConnection, Tx, is_retryable};
use crate::stores::import::{self, StoreRow};

/// A store as the administrator's pages show it. Fields in the order
/// [`columns`] selects them.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct StoreRecord {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub addr: String,
    pub store_type: String,
    pub region: String,
    pub lat: f64,
    pub lng: f64,
    pub phone: Option<String>,
    pub suspended: bool,
}

#[diesel::dsl::auto_type(no_type_alias)]
fn columns() -> _ {
    (
        stores::id,
        stores::code,
        stores::name,
        stores::addr,
        stores::store_type,
        stores::region,
        stores::lat,
        stores::lng,
        stores::phone,
        stores::suspended,
    )
}

diesel::define_sql_function! {
    /// Lower case, as both backends understand it (ASCII letters at least:
    /// Korean has no case).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// One page of the list.
pub struct Listing {
    pub stores: Vec<StoreRecord>,
    /// Matching stores on every page together.
    pub total: i64,
}

/// Stores whose code, name, address or region contains `q` (any case; all when
/// empty), ordered by code, `per_page` from page `page` (from 1).
pub fn list(conn: &mut DbConnection, q: &str, page: i64, per_page: i64) -> QueryResult<Listing> {
    // `%` and `_` are taken out rather than escaped: no store's fields need
    // them to be found, and escaping is spelled differently by each backend.
    let needle = q.trim().to_lowercase().replace(['%', '_', '\\'], "");
    let filtered = || {
        let mut query = stores::table.into_boxed();
        if !needle.is_empty() {
            let pattern = format!("%{needle}%");
            query = query.filter(
                stores::code
                    .like(pattern.clone())
                    .or(lower(stores::name).like(pattern.clone()))
                    .or(lower(stores::addr).like(pattern.clone()))
                    .or(lower(stores::region).like(pattern)),
            );
        }
        query
    };
    let total = filtered().count().get_result::<i64>(conn)?;
    let stores = filtered()
        .select(columns())
        .order(stores::code)
        .limit(per_page)
        .offset(page.saturating_sub(1).saturating_mul(per_page))
        .load(conn)?;
    Ok(Listing { stores, total })
}

/// The store with this code.
pub fn get(conn: &mut DbConnection, code: &str) -> QueryResult<Option<StoreRecord>> {
    stores::table
        .filter(stores::code.eq(code))
        .select(columns())
        .first(conn)
        .optional()
}

/// A store as the form gives it: the fields a file has, and the suspension
/// (sales stopped: the open data's `break`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreForm {
    pub row: StoreRow,
    pub suspended: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("another store has this code")]
    CodeTaken,
    #[error("no store has this code")]
    NotFound,
    #[error("database error")]
    Db(#[from] DieselError),
}

impl AsRetryable for SaveError {
    fn is_retryable(&self) -> bool {
        matches!(self, SaveError::Db(e) if is_retryable(e))
    }
}

fn taken(e: DieselError) -> SaveError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => SaveError::CodeTaken,
        other => SaveError::Db(other),
    }
}

fn audit_json(f: &StoreForm) -> serde_json::Value {
    let r = &f.row;
    json!({
        "code": r.code,
        "name": r.name,
        "addr": r.addr,
        "type": r.store_type,
        "region": r.region,
        "lat": r.lat,
        "lng": r.lng,
        "phone": r.phone,
        "suspended": f.suspended,
    })
}

/// Creates the store; returns its id.
pub fn create(tx: &mut Tx<'_>, actor: i64, new: &StoreForm) -> Result<i64, SaveError> {
    let id = import::insert_all(tx, std::slice::from_ref(&new.row))
        .map_err(taken)?
        .first()
        .copied()
        .ok_or(SaveError::NotFound)?;
    if new.suspended {
        set_suspended(tx, id, true)?;
    }
    audit::record(
        tx,
        Entry {
            actor: Some(actor),
            action: "store.create",
            entity: "store",
            entity_id: new.row.code.clone(),
            before: None,
            after: Some(audit_json(new)),
        },
    )?;
    Ok(id)
}

/// What saving the edit form did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Changed,
    /// Every value was as stored; nothing was written.
    Unchanged,
}

/// Writes the form over the store that has code `code` (its code may change).
pub fn update(
    tx: &mut Tx<'_>,
    actor: i64,
    code: &str,
    form: &StoreForm,
) -> Result<Saved, SaveError> {
    let current = stores::table
        .filter(stores::code.eq(code))
        .select(columns())
        .first::<StoreRecord>(tx.conn())
        .optional()?
        .ok_or(SaveError::NotFound)?;
    let id = current.id;
    let before = StoreForm::from(current);
    if before == *form {
        return Ok(Saved::Unchanged);
    }
    if before.row != form.row {
        import::update(tx, id, &form.row).map_err(taken)?;
    }
    if before.suspended != form.suspended {
        set_suspended(tx, id, form.suspended)?;
    }
    audit::record(
        tx,
        Entry {
            actor: Some(actor),
            action: "store.update",
            entity: "store",
            entity_id: form.row.code.clone(),
            before: Some(audit_json(&before)),
            after: Some(audit_json(form)),
        },
    )?;
    Ok(Saved::Changed)
}

impl From<StoreRecord> for StoreForm {
    fn from(s: StoreRecord) -> StoreForm {
        StoreForm {
            row: StoreRow {
                code: s.code,
                name: s.name,
                addr: s.addr,
                store_type: s.store_type,
                lat: s.lat,
                lng: s.lng,
                phone: s.phone,
                region: s.region,
            },
            suspended: s.suspended,
        }
    }
}

fn set_suspended(tx: &mut Tx<'_>, id: i64, suspended: bool) -> QueryResult<usize> {
    diesel::update(stores::table.find(id))
        .set((
            stores::suspended.eq(suspended),
            stores::updated_at.eq(Utc::now().naive_utc()),
        ))
        .execute(tx.conn())
}
