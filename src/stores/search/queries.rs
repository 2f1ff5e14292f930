//! The store search's reads: stores whose name, address or region holds every
//! word, a page at a time, with today's stock; or, from a point, the same
//! ordered by distance.
//!
//! What a search may cost is bounded whatever is typed: a query is cut to
//! [`MAX_WORDS`] words that each narrow something (a repeated word, or one
//! inside another word, is implied and left out), and each word is one `LIKE`
//! on one column, [`search_text`], written with the store. At national scale
//! (25,000 stores) the costliest search takes a few tens of milliseconds on
//! either backend (docs/benchmarks.md, "Store search at national scale").

use std::collections::HashMap;

use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{store_days, stores};
use crate::stock::{self, At, Figures, StockDay};
use crate::stores::search::geo::{self, Point};

type Backend = <DbConnection as Connection>::Backend;

/// How far "near me" looks when no words narrow the search.
pub const NEAR_RADIUS_M: f64 = 5_000.0;

/// At most this many words of a query are used: each costs a pass over the
/// text of every store, and a name and an address need fewer
/// (`서울 중구 세종대로 110`).
pub const MAX_WORDS: usize = 4;

/// What a store is found by: its name, address and region, lower-cased, one
/// to a line. Every word of a search must occur in it, and a word never holds
/// a line break, so a word never matches across two fields. Stored with the
/// store (`stores.search_text`) by every write of its text.
pub fn search_text(name: &str, addr: &str, region: &str) -> String {
    format!("{name}\n{addr}\n{region}").to_lowercase()
}

/// The words a query is searched for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Words {
    /// Lower-cased, in the order typed, at most [`MAX_WORDS`].
    pub used: Vec<String>,
    /// Words beyond [`MAX_WORDS`], left out of the search (the page says so).
    pub left_out: Vec<String>,
}

impl Words {
    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}

/// The words of a query, lower-cased, each to be found somewhere in a store's
/// name, address or region. `%`, `_` and `\` are taken out rather than
/// escaped (escaping is spelled differently by each backend); no store needs
/// them to be found. A word typed twice, or found inside another word of the
/// query, is left out: every store that has the longer word has it too, so
/// the results are the same without it. Of the rest, the first
/// [`MAX_WORDS`] are used.
pub fn words(q: &str) -> Words {
    let typed: Vec<String> = q
        .split_whitespace()
        .map(|w| w.to_lowercase().replace(['%', '_', '\\'], ""))
        .filter(|w| !w.is_empty())
        .collect();
    let mut narrowing: Vec<String> = Vec::new();
    for (i, w) in typed.iter().enumerate() {
        let implied = typed
            .iter()
            .enumerate()
            .any(|(j, other)| j != i && other.contains(w.as_str()) && (other != w || j < i));
        if !implied {
            narrowing.push(w.clone());
        }
    }
    let left_out = narrowing.split_off(narrowing.len().min(MAX_WORDS));
    Words {
        used: narrowing,
        left_out,
    }
}

/// One store found.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub code: String,
    pub name: String,
    pub addr: String,
    pub store_type: String,
    pub suspended: bool,
    /// What is left today, to book and at the counter; `None` when the store
    /// has no supply today.
    pub figures: Option<Figures>,
    /// Metres from the searcher, when searching from a point.
    pub distance_m: Option<f64>,
}

/// One page of results and how many there are in all.
pub struct Results {
    pub stores: Vec<Found>,
    pub total: i64,
}

/// Stores matching every word: one `LIKE` on [`search_text`] a word, the
/// longest first (the likeliest to rule a store out at once).
fn matching(words: &[String]) -> stores::BoxedQuery<'static, Backend> {
    let mut by_length: Vec<&String> = words.iter().collect();
    by_length.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    let mut query = stores::table.into_boxed();
    for word in by_length {
        query = query.filter(stores::search_text.like(format!("%{word}%")));
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
/// name, with their stock on `today`. The page and the number of matches
/// come from one pass over the stores (`count(*) OVER ()`); only a page past
/// the end, which has no row to carry the number, needs a second.
pub fn by_text(
    conn: &mut DbConnection,
    words: &[String],
    at: At,
    page: i64,
    per_page: i64,
) -> QueryResult<Results> {
    let counted: Vec<(Row, i64)> = matching(words)
        .select((row_columns(), diesel::dsl::count_star().over()))
        .order((stores::name, stores::code))
        .limit(per_page)
        .offset(page.saturating_sub(1).saturating_mul(per_page))
        .load(conn)?;
    let total = match counted.first() {
        Some((_, total)) => *total,
        None if page <= 1 => 0,
        None => matching(words).count().get_result::<i64>(conn)?,
    };
    let rows = counted.into_iter().map(|(row, _)| row).collect();
    let stores = with_stock(conn, rows, at, &HashMap::new())?;
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
    at: At,
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
    let stores = with_stock(conn, rows, at, &distances)?;
    Ok(Results { stores, total })
}

/// The rows, in order, with each store's figures at `at` and its distance.
fn with_stock(
    conn: &mut DbConnection,
    rows: Vec<Row>,
    at: At,
    distances: &HashMap<i64, f64>,
) -> QueryResult<Vec<Found>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let days: Vec<(i64, i64, i32, i32, i32, i32)> = store_days::table
        .filter(store_days::store_id.eq_any(&ids))
        .filter(store_days::day.eq(at.today))
        .select((
            store_days::id,
            store_days::store_id,
            store_days::supply,
            store_days::reserved,
            store_days::picked_up,
            store_days::walk_in,
        ))
        .load(conn)?;
    let stock: Vec<(i64, StockDay)> = days
        .iter()
        .map(|&(id, _, supply, reserved, picked_up, walk_in)| {
            let day = StockDay {
                supply,
                reserved,
                picked_up,
                walk_in,
            };
            (id, day)
        })
        .collect();
    let by_day = stock::figures_of(conn, &stock, at)?;
    let figures: HashMap<i64, Figures> = days
        .iter()
        .filter_map(|&(id, store_id, ..)| Some((store_id, *by_day.get(&id)?)))
        .collect();
    Ok(rows
        .into_iter()
        .map(|(id, code, name, addr, store_type, suspended)| Found {
            code,
            name,
            addr,
            store_type,
            suspended,
            figures: figures.get(&id).copied(),
            distance_m: distances.get(&id).copied(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(q: &str) -> Vec<String> {
        words(q).used
    }

    #[test]
    fn a_query_is_split_into_words_without_wildcards() {
        assert_eq!(used("  중구   세종대로 "), ["중구", "세종대로"]);
        assert_eq!(used("Seoul 100%_"), ["seoul", "100"]);
        assert_eq!(used("% _ \\"), Vec::<String>::new());
        assert!(words("").is_empty());
    }

    #[test]
    fn repeated_words_and_words_inside_others_are_implied_and_left_out() {
        assert_eq!(used("약국 약국 성모약국"), ["성모약국"]);
        assert_eq!(used("중 중구 서울 서"), ["중구", "서울"]);
        assert_eq!(used("SEOUL seoul"), ["seoul"]);
        // Eight one-letter words of one address: none implied by another.
        let all = words("시 구 로 동 약 국 울 중");
        assert_eq!(all.used, ["시", "구", "로", "동"]);
        assert_eq!(all.left_out, ["약", "국", "울", "중"]);
    }

    #[test]
    fn at_most_four_words_are_used_and_the_rest_said_to_be_left_out() {
        let w = words("서울특별시 중구 세종대로 110 성모약국");
        assert_eq!(w.used, ["서울특별시", "중구", "세종대로", "110"]);
        assert_eq!(w.left_out, ["성모약국"]);
        let w = words("a b c d e f g h i j");
        assert_eq!(w.used.len(), MAX_WORDS);
        assert_eq!(w.left_out.len(), 6);
        // The words of a long query that are implied do not count.
        assert_eq!(
            words("서울 서울 서울 서울 서울 중구").left_out,
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_search_text_holds_each_field_on_its_own_line_in_lower_case() {
        assert_eq!(
            search_text("Olive 약국", "서울특별시 중구 A로 1", "서울특별시"),
            "olive 약국\n서울특별시 중구 a로 1\n서울특별시"
        );
        // A word never holds a line break, so it cannot span two fields.
        for w in words("약국서울 약국 서울").used {
            assert!(!w.contains('\n'));
        }
    }
}
