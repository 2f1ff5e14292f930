//! The store search's reads: stores whose name, address or region holds every
//! word, a page at a time, with today's stock; or, from a point, the same
//! ordered by distance.

use std::collections::HashMap;

use chrono::NaiveDate;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{store_days, stores};
use crate::stores::search::geo::{self, Point};
use crate::stores::status;

type Backend = <DbConnection as Connection>::Backend;

diesel::define_sql_function! {
    /// Lower case, as both backends understand it (Korean has no case).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// How far "near me" looks when no words narrow the search.
pub const NEAR_RADIUS_M: f64 = 5_000.0;

/// At most this many words of a query are used; more narrow nothing useful.
const MAX_WORDS: usize = 8;

/// The words of a query, lower-cased, each to be found somewhere in a store's
/// name, address or region. `%`, `_` and `\` are taken out rather than
/// escaped (escaping is spelled differently by each backend); no store needs
/// them to be found.
pub fn words(q: &str) -> Vec<String> {
    q.split_whitespace()
        .map(|w| w.to_lowercase().replace(['%', '_', '\\'], ""))
        .filter(|w| !w.is_empty())
        .take(MAX_WORDS)
        .collect()
}

/// One store found.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub code: String,
    pub name: String,
    pub addr: String,
    pub store_type: String,
    pub suspended: bool,
    /// Masks left today; `None` when the store has no supply today.
    pub remaining: Option<i64>,
    /// Metres from the searcher, when searching from a point.
    pub distance_m: Option<f64>,
}

/// One page of results and how many there are in all.
pub struct Results {
    pub stores: Vec<Found>,
    pub total: i64,
}

/// Stores matching every word.
fn matching(words: &[String]) -> stores::BoxedQuery<'static, Backend> {
    let mut query = stores::table.into_boxed();
    for word in words {
        let pattern = format!("%{word}%");
        query = query.filter(
            lower(stores::name)
                .like(pattern.clone())
                .or(lower(stores::addr).like(pattern.clone()))
                .or(lower(stores::region).like(pattern)),
        );
    }
    query
}

type Row = (i64, String, String, String, String, bool);

#[diesel::dsl::auto_type(no_type_alias)]
fn row_columns() -> _ {
    (
        stores::id,
        stores::code,
        stores::name,
        stores::addr,
        stores::store_type,
        stores::suspended,
    )
}

/// Page `page` (from 1) of the stores matching `words` (at least one), by
/// name, with their stock on `today`.
pub fn by_text(
    conn: &mut DbConnection,
    words: &[String],
    today: NaiveDate,
    page: i64,
    per_page: i64,
) -> QueryResult<Results> {
    let total = matching(words).count().get_result::<i64>(conn)?;
    let rows: Vec<Row> = matching(words)
        .select(row_columns())
        .order((stores::name, stores::code))
        .limit(per_page)
        .offset(page.saturating_sub(1).saturating_mul(per_page))
        .load(conn)?;
    let stores = with_stock(conn, rows, today, &HashMap::new())?;
    Ok(Results { stores, total })
}

/// Page `page` of the stores nearest `from`: among those matching `words`
/// when there are any, else among those within [`NEAR_RADIUS_M`]. Only ids
/// and coordinates of the candidates are read; the distances are computed
/// here, and the page's stores read in full afterwards.
pub fn near(
    conn: &mut DbConnection,
    words: &[String],
    from: Point,
    today: NaiveDate,
    page: i64,
    per_page: i64,
) -> QueryResult<Results> {
    let candidates: Vec<(i64, f64, f64)> = if words.is_empty() {
        let b = geo::bounds(from, NEAR_RADIUS_M);
        stores::table
            .filter(stores::lat.between(b.min_lat, b.max_lat))
            .filter(stores::lng.between(b.min_lng, b.max_lng))
            .select((stores::id, stores::lat, stores::lng))
            .load(conn)?
    } else {
        matching(words)
            .select((stores::id, stores::lat, stores::lng))
            .load(conn)?
    };
    let mut ranked: Vec<(f64, i64)> = candidates
        .into_iter()
        .filter_map(|(id, lat, lng)| Some((geo::distance_m(from, Point::new(lat, lng)?), id)))
        .filter(|(d, _)| !words.is_empty() || *d <= NEAR_RADIUS_M)
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let total = i64::try_from(ranked.len()).unwrap_or(i64::MAX);
    let skip =
        usize::try_from(page.saturating_sub(1).saturating_mul(per_page)).unwrap_or(usize::MAX);
    let take = usize::try_from(per_page).unwrap_or(0);
    let on_page: Vec<(f64, i64)> = ranked.into_iter().skip(skip).take(take).collect();
    let ids: Vec<i64> = on_page.iter().map(|(_, id)| *id).collect();
    let mut rows: Vec<Row> = stores::table
        .filter(stores::id.eq_any(&ids))
        .select(row_columns())
        .load(conn)?;
    let position: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    rows.sort_by_key(|r| position.get(&r.0).copied().unwrap_or(usize::MAX));
    let distances: HashMap<i64, f64> = on_page.into_iter().map(|(d, id)| (id, d)).collect();
    let stores = with_stock(conn, rows, today, &distances)?;
    Ok(Results { stores, total })
}

/// The rows, in order, with each store's stock on `today` and its distance.
fn with_stock(
    conn: &mut DbConnection,
    rows: Vec<Row>,
    today: NaiveDate,
    distances: &HashMap<i64, f64>,
) -> QueryResult<Vec<Found>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let days: Vec<(i64, i32, i32, i32, i32)> = store_days::table
        .filter(store_days::store_id.eq_any(&ids))
        .filter(store_days::day.eq(today))
        .select((
            store_days::store_id,
            store_days::supply,
            store_days::reserved,
            store_days::picked_up,
            store_days::walk_in,
        ))
        .load(conn)?;
    let remaining: HashMap<i64, i64> = days
        .into_iter()
        .map(|(id, supply, reserved, picked_up, walk_in)| {
            (id, status::remaining(supply, reserved, picked_up, walk_in))
        })
        .collect();
    Ok(rows
        .into_iter()
        .map(|(id, code, name, addr, store_type, suspended)| Found {
            code,
            name,
            addr,
            store_type,
            suspended,
            remaining: remaining.get(&id).copied(),
            distance_m: distances.get(&id).copied(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn a_query_is_split_into_words_without_wildcards() {
        assert_eq!(words("  중구   세종대로 "), ["중구", "세종대로"]);
        assert_eq!(words("Seoul 100%_"), ["seoul", "100"]);
        assert_eq!(words("% _ \\"), Vec::<String>::new());
        assert_eq!(words("a b c d e f g h i j").len(), 8);
    }
}
