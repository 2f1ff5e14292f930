//! A fresh database of the size asked for, written in bulk before the server
//! starts: stores over the whole country (around its cities, as many as their
//! people), verified citizens (one argon2id hash shared by all, the real
//! keyed hash of a generated valid resident registration number each),
//! tomorrow's supply for every store, and for the pickup phase a pharmacist per
//! pickup store with reservations for today already booked, and a store with
//! today's supply and citizens of its own for the open-data freshness probe.
//! Everything that
//! touches stock goes through the library's own functions (`insert_all`,
//! `allocate_days`, `book`), so `verify` holds on the result.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Duration as TimeDelta, NaiveDate, NaiveTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Nullable, Text, Timestamp};

use mask_reservation::accounts::national_id::{NationalId, with_check_digit};
use mask_reservation::accounts::password::{self, NewPassword};
use mask_reservation::accounts::queries::{NewUser, insert_user};
use mask_reservation::accounts::{Role, SessionClaim};
use mask_reservation::db::schema::pickup_windows;
use mask_reservation::db::{Backend, DbConnection, write_tx};
use mask_reservation::i18n::{Catalog, Lang, Tr};
use mask_reservation::policy::{Policy, WindowSpec};
use mask_reservation::quantity::Quantity;
use mask_reservation::reservations::booking::{ForWhom, Hold, Request, book};
use mask_reservation::reservations::rules;
use mask_reservation::settings;
use mask_reservation::stores::import::{StoreRow, insert_all};
use mask_reservation::supply::allocation::{NewDay, allocate_days};

type DieselBackend = <DbConnection as Connection>::Backend;

/// The password every prepared account has.
pub const PASSWORD: &str = "surge-Launch-Morning-2020!";

/// Rows per multi-row statement (at most 9 bound values a row).
const ROWS_PER_STATEMENT: usize = 1000;
/// Statements per transaction while writing citizens.
const STATEMENTS_PER_TX: usize = 10;
/// Mask per reservation in the rush (the whole weekly quota of the default policy).
pub const RUSH_QUANTITY: i32 = 2;

/// What to prepare.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub stores: usize,
    pub citizens: usize,
    /// Stores whose pharmacist hands masks over during the rush.
    pub pickup_stores: usize,
    /// Reservations for today booked at each pickup store.
    pub pickups_per_store: usize,
    /// Bookings the open-data freshness probe may make (0: no probe).
    pub freshness_probes: usize,
    /// Whether to prepare the hot store: one window that every citizen could
    /// book, for the phase where everyone books it.
    pub hot_window: bool,
}

/// A citizen who can be given a session.
#[derive(Debug, Clone)]
pub struct Citizen {
    pub id: i64,
    pub name: String,
}

/// A pharmacist and the pickup codes waiting at their counter.
#[derive(Debug, Clone)]
pub struct Pharmacist {
    pub id: i64,
    pub name: String,
    pub codes: Vec<String>,
}

/// What the phases need to know about the prepared database.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub store_codes: Vec<String>,
    /// The rush citizens, in the order they are taken.
    pub citizens: Vec<Citizen>,
    pub pharmacists: Vec<Pharmacist>,
    /// The date the rush books (tomorrow in the service time zone).
    pub rush_day: NaiveDate,
    pub freshness: Option<FreshnessStore>,
    /// The hot store's one window on the rush day, if prepared.
    pub hot_window: Option<i64>,
}

/// The store the freshness probe books at: today's supply in one window open
/// all day (so that the booking changes today's open data, which the rush's
/// bookings for tomorrow do not), and citizens of its own.
#[derive(Debug, Clone)]
pub struct FreshnessStore {
    pub code: String,
    /// Today's supply, all of it reservable: `remain` before any probe.
    pub supply: i64,
    pub citizens: Vec<Citizen>,
}

/// Masks each freshness probe books.
pub const PROBE_QUANTITY: i64 = 1;

/// The e-mail address of the `i`-th rush citizen (also who the login storm logs in).
pub fn citizen_email(i: usize) -> String {
    format!("surge{i}@example.com")
}

/// The `i`-th generated resident registration number: a distinct valid number
/// for every `i` below 50 × 365 × 100,000 (birth dates over 1950–1999, then the
/// serial digits), with its check digit.
pub fn resident_number(i: usize) -> Option<String> {
    const DAYS: usize = 18_000;
    let birth = NaiveDate::from_ymd_opt(1950, 1, 1)?
        .checked_add_signed(TimeDelta::days(i64::try_from(i % DAYS).ok()?))?;
    let serial = i / DAYS;
    if serial >= 100_000 {
        return None;
    }
    let sex = 1 + i % 2;
    let first12 = format!("{}{sex}{serial:05}", birth.format("%y%m%d"));
    with_check_digit(&first12)
}

/// Applies the migrations and writes everything; `national_id_key` is the key
/// the server will hash numbers with.
pub fn prepare(
    conn: &mut DbConnection,
    sizes: Sizes,
    national_id_key: &[u8],
    tz: chrono_tz::Tz,
) -> anyhow::Result<Prepared> {
    conn.run_migrations()?;
    write_tx(conn, |tx| settings::apply_timezone(tx, tz))?;
    let policy = Policy::load(conn)?;
    let today = rules::today(&policy, chrono::Utc::now());
    let rush_day = today + TimeDelta::days(1);

    let hash = password::hash(
        &NewPassword::parse(PASSWORD)
            .map_err(|e| anyhow::anyhow!("the benchmark password is refused: {e:?}"))?,
    )?;

    let store_ids = stores(conn, sizes.stores)?;
    let store_codes = (0..sizes.stores).map(store_code).collect();

    // Enough that the rush never sells out: twice what every citizen could
    // take, however unevenly they pick stores, plus a margin for small runs
    // (the windows hold all but the policy's walk-in share of it).
    let per_store = sizes
        .citizens
        .saturating_mul(2 * usize::try_from(RUSH_QUANTITY)?)
        / sizes.stores.max(1)
        + 200;
    let per_store = i32::try_from(per_store).unwrap_or(i32::MAX);
    let days: Vec<NewDay> = store_ids
        .iter()
        .map(|&store_id| NewDay {
            store_id,
            day: rush_day,
            supply: per_store,
        })
        .collect();
    write_tx(conn, |tx| {
        allocate_days(tx, &policy, &days, None, Utc::now().naive_utc())
    })?;

    let citizens = citizens(conn, 0..sizes.citizens, &hash, national_id_key, today)?;
    let pharmacists = pickups(conn, &policy, sizes, &store_ids, &hash, national_id_key)?;
    let freshness = freshness_store(conn, &policy, sizes, &hash, national_id_key)?;
    let hot_window = if sizes.hot_window {
        Some(hot_window(conn, &policy, sizes, rush_day)?)
    } else {
        None
    };
    Ok(Prepared {
        store_codes,
        citizens,
        pharmacists,
        rush_day,
        freshness,
        hot_window,
    })
}

/// Today's stock at one store for whatever hour the benchmark runs: one
/// window from 00:00 to 23:59 and no walk-in share.
fn whole_day(policy: &Policy) -> anyhow::Result<Policy> {
    Ok(Policy {
        window_template: vec![WindowSpec {
            start: NaiveTime::MIN,
            end: NaiveTime::from_hms_opt(23, 59, 0)
                .ok_or_else(|| anyhow::anyhow!("23:59 is a time"))?,
        }],
        walk_in_share_percent: 0,
        ..policy.clone()
    })
}

fn store_code(i: usize) -> String {
    format!("{:08}", 20_000_000 + i)
}

/// Korea's bounds, Jeju to the DMZ, Baengnyeong to Ulleung: where apps ask
/// for the stores near a point.
pub const LAT_RANGE: std::ops::Range<f64> = 33.1..38.6;
pub const LNG_RANGE: std::ops::Range<f64> = 124.6..131.0;

/// Where the stores are: around these cities (region, district, centre), in
/// proportion to the weight (about their people, in hundred thousands), as
/// pharmacies are.
const CITIES: [(&str, &str, f64, f64, u32); 16] = [
    ("서울특별시", "중구", 37.5665, 126.9780, 94),
    ("부산광역시", "부산진구", 35.1796, 129.0756, 33),
    ("인천광역시", "남동구", 37.4563, 126.7052, 29),
    ("대구광역시", "중구", 35.8714, 128.6014, 24),
    ("대전광역시", "서구", 36.3504, 127.3845, 15),
    ("광주광역시", "서구", 35.1595, 126.8526, 15),
    ("울산광역시", "남구", 35.5384, 129.3114, 11),
    ("경기도", "수원시", 37.2636, 127.0286, 50),
    ("경기도", "성남시", 37.4200, 127.1267, 40),
    ("경기도", "고양시", 37.6584, 126.8320, 45),
    ("충청북도", "청주시", 36.6424, 127.4890, 16),
    ("전라북도", "전주시", 35.8242, 127.1480, 18),
    ("경상남도", "창원시", 35.2280, 128.6811, 33),
    ("경상북도", "포항시", 36.0190, 129.3435, 26),
    ("강원도", "원주시", 37.3422, 127.9202, 15),
    ("제주특별자치도", "제주시", 33.4996, 126.5312, 7),
];

/// The `i`-th store's place: a city drawn by weight, then a point within
/// about 15 km of its centre (the same for every run).
pub fn store_place(i: usize) -> (&'static str, &'static str, f64, f64) {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(i as u64);
    let total: u32 = CITIES.iter().map(|c| c.4).sum();
    let mut pick = rng.random_range(0..total.max(1));
    let mut city = CITIES[0];
    for c in CITIES {
        if pick < c.4 {
            city = c;
            break;
        }
        pick -= c.4;
    }
    let (region, district, lat, lng, _) = city;
    let lat = (lat + rng.random_range(-0.13..0.13)).clamp(LAT_RANGE.start, LAT_RANGE.end);
    let lng = (lng + rng.random_range(-0.17..0.17)).clamp(LNG_RANGE.start, LNG_RANGE.end);
    (region, district, lat, lng)
}

fn store_row(i: usize, name: String) -> StoreRow {
    let (region, district, lat, lng) = store_place(i);
    StoreRow {
        code: store_code(i),
        name,
        addr: format!("{region} {district} 서지로 {}", i + 1),
        store_type: "01".into(),
        lat,
        lng,
        phone: None,
        region: region.into(),
    }
}

fn stores(conn: &mut DbConnection, n: usize) -> anyhow::Result<Vec<i64>> {
    let rows: Vec<StoreRow> = (0..n)
        .map(|i| store_row(i, format!("서지약국 {i}")))
        .collect();
    let mut ids = Vec::with_capacity(n);
    for chunk in rows.chunks(5_000) {
        ids.extend(write_tx(conn, |tx| insert_all(tx, chunk))?);
    }
    Ok(ids)
}

#[derive(QueryableByName)]
struct Inserted {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    key: String,
}

/// `(…), (…)` for `rows` rows of `per_row` values. SQLite gets anonymous `?`:
/// it treats `$N` as a named parameter and finds each name by comparing it
/// with every earlier one, which is quadratic in a statement of 9,000 values.
pub fn placeholders(backend: Backend, rows: usize, per_row: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=per_row)
                .map(|c| match backend {
                    Backend::Sqlite => "?".to_owned(),
                    Backend::Postgres => format!("${}", r * per_row + c),
                })
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Citizens `range` (e-mail [`citizen_email`]), verified, in multi-row
/// statements: people first, then their accounts.
fn citizens(
    conn: &mut DbConnection,
    range: std::ops::Range<usize>,
    hash: &str,
    key: &[u8],
    today: NaiveDate,
) -> anyhow::Result<Vec<Citizen>> {
    let all: Vec<usize> = range.collect();
    let mut out = Vec::with_capacity(all.len());
    for group in all.chunks(ROWS_PER_STATEMENT * STATEMENTS_PER_TX) {
        let mut people = Vec::with_capacity(group.len());
        for &i in group {
            let number = resident_number(i)
                .ok_or_else(|| anyhow::anyhow!("no resident number for citizen {i}"))?;
            let id = NationalId::parse(&number, today)
                .map_err(|e| anyhow::anyhow!("generated number {i} is invalid: {e}"))?;
            people.push((id.keyed_hash(key), id.birth_date(), id.masked(), i));
        }
        let now = Utc::now().naive_utc();
        let written = write_tx(conn, |tx| {
            let mut written = Vec::with_capacity(people.len());
            for chunk in people.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO people (national_id_hash, birth_date, national_id_masked, created_at)
                     VALUES {} RETURNING id, national_id_hash AS key",
                    placeholders(tx.backend(), chunk.len(), 4)
                );
                let mut q = diesel::sql_query(sql).into_boxed::<DieselBackend>();
                for (h, birth, masked, _) in chunk {
                    q = q
                        .bind::<Text, _>(h.clone())
                        .bind::<Date, _>(*birth)
                        .bind::<Text, _>(masked.clone())
                        .bind::<Timestamp, _>(now);
                }
                let ids: HashMap<String, i64> = q
                    .load::<Inserted>(tx.conn())?
                    .into_iter()
                    .map(|r| (r.key, r.id))
                    .collect();
                let sql = format!(
                    "INSERT INTO users (role, email, name, password_hash, person_id, store_id,
                                        email_verified_at, created_at, updated_at)
                     VALUES {} RETURNING id, email AS key",
                    placeholders(tx.backend(), chunk.len(), 9)
                );
                let mut q = diesel::sql_query(sql).into_boxed::<DieselBackend>();
                let mut names = HashMap::with_capacity(chunk.len());
                for (h, _, _, i) in chunk {
                    let email = citizen_email(*i);
                    let name = format!("시민{i}");
                    q = q
                        .bind::<Text, _>(Role::Citizen.as_str())
                        .bind::<Text, _>(email.clone())
                        .bind::<Text, _>(name.clone())
                        .bind::<Text, _>(hash.to_owned())
                        .bind::<Nullable<BigInt>, _>(ids.get(h).copied())
                        .bind::<Nullable<BigInt>, _>(None::<i64>)
                        .bind::<Nullable<Timestamp>, _>(Some(now))
                        .bind::<Timestamp, _>(now)
                        .bind::<Timestamp, _>(now);
                    names.insert(email, (*i, name));
                }
                for r in q.load::<Inserted>(tx.conn())? {
                    if let Some((i, name)) = names.remove(&r.key) {
                        written.push((i, Citizen { id: r.id, name }));
                    }
                }
            }
            Ok::<_, diesel::result::Error>(written)
        })?;
        let mut written = written;
        written.sort_by_key(|(i, _)| *i);
        out.extend(written.into_iter().map(|(_, c)| c));
    }
    Ok(out)
}

/// A pharmacist per pickup store, today's supply there in one window lasting
/// the whole day, and `pickups_per_store` reservations in it, booked through
/// [`book`] by citizens of their own (not rush citizens: a reservation uses
/// the week's quota).
///
/// Today's windows are given a template of their own (00:00–23:59), so that
/// the pickups can be handed over at whatever hour the benchmark runs, and no
/// walk-in share, so that the one window holds every reservation; they are
/// booked as at one minute before the window opens, before its booking can
/// have closed.
fn pickups(
    conn: &mut DbConnection,
    policy: &Policy,
    sizes: Sizes,
    store_ids: &[i64],
    hash: &str,
    key: &[u8],
) -> anyhow::Result<Vec<Pharmacist>> {
    let stores: Vec<i64> = store_ids
        .iter()
        .copied()
        .take(sizes.pickup_stores)
        .collect();
    if stores.is_empty() || sizes.pickups_per_store == 0 {
        return Ok(Vec::new());
    }
    let today = rules::today(policy, chrono::Utc::now());
    let whole_day = whole_day(policy)?;
    let supply = i32::try_from(sizes.pickups_per_store)?;
    let days: Vec<NewDay> = stores
        .iter()
        .map(|&store_id| NewDay {
            store_id,
            day: today,
            supply,
        })
        .collect();
    let mut pharmacists = Vec::with_capacity(stores.len());
    write_tx(conn, |tx| {
        allocate_days(tx, &whole_day, &days, None, Utc::now().naive_utc())?;
        pharmacists.clear();
        for (n, &store_id) in stores.iter().enumerate() {
            let name = format!("약사{n}");
            let id = insert_user(
                tx,
                &NewUser {
                    role: Role::Pharmacist,
                    email: &format!("pharmacist{n}@surge.example.com"),
                    name: &name,
                    password_hash: hash,
                    person_id: None,
                    store_id: Some(store_id),
                    email_verified: true,
                },
            )?;
            pharmacists.push((
                store_id,
                Pharmacist {
                    id,
                    name,
                    codes: Vec::new(),
                },
            ));
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    let windows: Vec<(i64, i64, chrono::NaiveDateTime)> = pickup_windows::table
        .filter(pickup_windows::day.eq(today))
        .filter(pickup_windows::store_id.eq_any(&stores))
        .select((
            pickup_windows::store_id,
            pickup_windows::id,
            pickup_windows::starts_at,
        ))
        .load(conn)?;

    // Citizens of their own, numbered after the rush citizens.
    let first = sizes.citizens;
    let count = stores.len() * sizes.pickups_per_store;
    let holders = citizens(conn, first..first + count, hash, key, today)?;
    let tr = Tr::new(Arc::new(Catalog::load()?), Lang::Ko);
    let mut holders = holders.into_iter();
    for (store_id, pharmacist) in &mut pharmacists {
        let Some(&(_, window_id, starts_at)) = windows.iter().find(|w| w.0 == *store_id) else {
            anyhow::bail!("no window today at store {store_id}");
        };
        let now = starts_at.and_utc() - TimeDelta::minutes(1);
        let mine: Vec<Citizen> = holders.by_ref().take(sizes.pickups_per_store).collect();
        for chunk in mine.chunks(500) {
            let codes = write_tx(conn, |tx| {
                chunk
                    .iter()
                    .map(|c| {
                        let req = Request {
                            user_id: c.id,
                            window_id,
                            quantity: Quantity::ONE,
                            request_id: None,
                            person: ForWhom::Own,
                            now,
                            session: Some(SessionClaim::FIRST_CITIZEN_LOGIN),
                            hold: Hold::Booking,
                        };
                        book(tx, &req, policy, &tr, "http://127.0.0.1").map(|b| b.pickup_code)
                    })
                    .collect::<Result<Vec<_>, _>>()
            })?;
            pharmacist.codes.extend(codes);
        }
    }
    Ok(pharmacists.into_iter().map(|(_, p)| p).collect())
}

/// The freshness probe's store (the store numbered after the rush's), today's
/// supply there (enough for every probe, all of it reservable), and a citizen
/// per probe, numbered after the pickup holders.
fn freshness_store(
    conn: &mut DbConnection,
    policy: &Policy,
    sizes: Sizes,
    hash: &str,
    key: &[u8],
) -> anyhow::Result<Option<FreshnessStore>> {
    if sizes.freshness_probes == 0 {
        return Ok(None);
    }
    let code = store_code(sizes.stores);
    let row = store_row(sizes.stores, "서지 신선도 약국".to_owned());
    let store_id = write_tx(conn, |tx| insert_all(tx, std::slice::from_ref(&row)))?
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("the freshness store was not written"))?;
    let supply = i64::try_from(sizes.freshness_probes)? * PROBE_QUANTITY + 100;
    let today = rules::today(policy, chrono::Utc::now());
    let whole_day = whole_day(policy)?;
    let day = NewDay {
        store_id,
        day: today,
        supply: i32::try_from(supply)?,
    };
    write_tx(conn, |tx| {
        allocate_days(tx, &whole_day, &[day], None, Utc::now().naive_utc())
    })?;
    let first = sizes.citizens + sizes.pickup_stores * sizes.pickups_per_store;
    let citizens = citizens(
        conn,
        first..first + sizes.freshness_probes,
        hash,
        key,
        today,
    )?;
    Ok(Some(FreshnessStore {
        code,
        supply,
        citizens,
    }))
}

/// The hot store (after the freshness store) and its one window on the rush
/// day, open all day and big enough for every citizen; its id.
fn hot_window(
    conn: &mut DbConnection,
    policy: &Policy,
    sizes: Sizes,
    rush_day: NaiveDate,
) -> anyhow::Result<i64> {
    let row = store_row(sizes.stores + 1, "서지 한 창구 약국".to_owned());
    let store_id = write_tx(conn, |tx| insert_all(tx, std::slice::from_ref(&row)))?
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("the hot store was not written"))?;
    let supply = i64::try_from(sizes.citizens)? * i64::from(RUSH_QUANTITY) + 100;
    let day = NewDay {
        store_id,
        day: rush_day,
        supply: i32::try_from(supply)?,
    };
    let whole_day = whole_day(policy)?;
    write_tx(conn, |tx| {
        allocate_days(tx, &whole_day, &[day], None, Utc::now().naive_utc())
    })?;
    let window = pickup_windows::table
        .filter(pickup_windows::store_id.eq(store_id))
        .select(pickup_windows::id)
        .first(conn)?;
    Ok(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_resident_numbers_are_valid_and_distinct() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let mut seen = std::collections::HashSet::new();
        for i in (0..40_000).chain([999_999, 1_500_000]) {
            let n = resident_number(i).unwrap();
            assert!(NationalId::parse(&n, today).is_ok(), "{i}: {n}");
            assert!(seen.insert(n), "{i} repeats a number");
        }
        assert!(resident_number(18_000 * 100_000).is_none());
    }

    #[test]
    fn stores_are_spread_over_the_country_the_same_way_every_run() {
        let places: Vec<_> = (0..2_000).map(store_place).collect();
        assert_eq!(places, (0..2_000).map(store_place).collect::<Vec<_>>());
        for (_, _, lat, lng) in &places {
            assert!(LAT_RANGE.contains(lat) && LNG_RANGE.contains(lng));
        }
        let regions: std::collections::HashSet<_> = places.iter().map(|p| p.0).collect();
        assert!(regions.len() > 10, "{regions:?}");
    }

    #[test]
    fn placeholders_number_every_value() {
        assert_eq!(
            placeholders(Backend::Postgres, 2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(placeholders(Backend::Sqlite, 2, 2), "(?, ?), (?, ?)");
    }
}
