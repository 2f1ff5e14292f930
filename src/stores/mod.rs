//! Stores: pharmacies, post offices and Nonghyup marts, each known by its
//! 8-digit code.

pub mod admin;
pub mod import;
pub mod page;
pub mod search;
pub mod status;

use chrono::NaiveDate;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{store_days, stores};

/// A store code: exactly 8 ASCII digits, as in the 2020 data (`31802095`).
pub fn is_store_code(code: &str) -> bool {
    code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit())
}

/// The locale key of a store type's name (`01` pharmacy, `02` post office,
/// `03` Nonghyup mart).
pub fn type_key(store_type: &str) -> &'static str {
    match store_type {
        "01" => "admin.store.type_01",
        "02" => "admin.store.type_02",
        _ => "admin.store.type_03",
    }
}

/// The code of the store `store_id`, if there is one: what audit entries and
/// refusals name a store by.
pub fn code_of(conn: &mut DbConnection, store_id: i64) -> QueryResult<Option<String>> {
    stores::table
        .find(store_id)
        .select(stores::code)
        .first(conn)
        .optional()
}

/// Every store beside its store-day on `day`, if it has one (a left join on
/// the store and the date): what a page shows a store's stock of the day from.
#[diesel::dsl::auto_type(no_type_alias)]
pub fn with_day(day: NaiveDate) -> _ {
    stores::table.left_join(
        store_days::table.on(store_days::store_id
            .eq(stores::id)
            .and(store_days::day.eq(day))),
    )
}

#[cfg(test)]
mod tests {
    use super::is_store_code;

    #[test]
    fn store_codes_are_eight_digits() {
        assert!(is_store_code("31802095"));
        assert!(!is_store_code("3180209"));
        assert!(!is_store_code("318020955"));
        assert!(!is_store_code("3180209a"));
        assert!(!is_store_code("３１８０２０９５"));
    }
}
