//! Policy settings rows.

use chrono::Utc;
use chrono_tz::Tz;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::settings;

/// Applies the TIMEZONE configuration to the policy unless an administrator has
/// since chosen a time zone in the settings page, which then wins.
pub fn apply_timezone(conn: &mut DbConnection, tz: Tz) -> QueryResult<()> {
    diesel::update(
        settings::table
            .filter(settings::key.eq("timezone"))
            .filter(settings::updated_by.is_null())
            .filter(settings::value.ne(tz.name())),
    )
    .set((
        settings::value.eq(tz.name()),
        settings::updated_at.eq(Utc::now().naive_utc()),
    ))
    .execute(conn)
    .map(drop)
}
