//! The national picture for one day: supply, reservations, pickups, no-shows and
//! walk-in sales, by region and in total.

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Text};

use crate::db::DbConnection;

#[derive(Debug, Clone, Default, PartialEq, Eq, QueryableByName)]
pub struct RegionRow {
    #[diesel(sql_type = Text)]
    pub region: String,
    #[diesel(sql_type = BigInt)]
    pub stores: i64,
    #[diesel(sql_type = BigInt)]
    pub supply: i64,
    #[diesel(sql_type = BigInt)]
    pub reserved: i64,
    #[diesel(sql_type = BigInt)]
    pub picked_up: i64,
    #[diesel(sql_type = BigInt)]
    pub no_show: i64,
    #[diesel(sql_type = BigInt)]
    pub walk_in: i64,
}

/// Each region with supply on `day`, in region order.
pub fn regions_on(conn: &mut DbConnection, day: NaiveDate) -> QueryResult<Vec<RegionRow>> {
    diesel::sql_query(
        "SELECT s.region AS region,
                COUNT(*) AS stores,
                CAST(COALESCE(SUM(d.supply), 0) AS BIGINT) AS supply,
                CAST(COALESCE(SUM(d.reserved), 0) AS BIGINT) AS reserved,
                CAST(COALESCE(SUM(d.picked_up), 0) AS BIGINT) AS picked_up,
                CAST(COALESCE(SUM(d.no_show), 0) AS BIGINT) AS no_show,
                CAST(COALESCE(SUM(d.walk_in), 0) AS BIGINT) AS walk_in
         FROM store_days d JOIN stores s ON s.id = d.store_id
         WHERE d.day = $1
         GROUP BY s.region
         ORDER BY s.region",
    )
    .bind::<Date, _>(day)
    .load(conn)
}

/// The sum of the regions (its `region` is empty).
pub fn total(regions: &[RegionRow]) -> RegionRow {
    regions.iter().fold(RegionRow::default(), |mut t, r| {
        t.stores += r.stores;
        t.supply += r.supply;
        t.reserved += r.reserved;
        t.picked_up += r.picked_up;
        t.no_show += r.no_show;
        t.walk_in += r.walk_in;
        t
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(region: &str, n: i64) -> RegionRow {
        RegionRow {
            region: region.into(),
            stores: n,
            supply: 10 * n,
            reserved: 5 * n,
            picked_up: 3 * n,
            no_show: n,
            walk_in: 2 * n,
        }
    }

    #[test]
    fn the_total_adds_every_column_of_every_region() {
        let t = total(&[row("서울특별시", 1), row("부산광역시", 2)]);
        assert_eq!(
            t,
            RegionRow {
                region: String::new(),
                stores: 3,
                supply: 30,
                reserved: 15,
                picked_up: 9,
                no_show: 3,
                walk_in: 6,
            }
        );
        assert_eq!(total(&[]), RegionRow::default());
    }
}
