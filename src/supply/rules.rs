//! Pure rules of allocation: how a supply is split over windows, how a
//! changed supply is split again, when a change is refused, and which dates
//! supply may be given for.

use chrono::{Months, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::policy::WindowSpec;

/// Splits `supply` over `windows` windows as evenly as possible, the remainder
/// going to the earliest ones (SPEC §6).
pub fn split_supply(supply: i32, windows: usize) -> Vec<i32> {
    let Ok(n) = i32::try_from(windows) else {
        return Vec::new();
    };
    if n == 0 || supply < 0 {
        return vec![0; windows];
    }
    let (base, rest) = (supply / n, supply % n);
    (0..n).map(|i| base + i32::from(i < rest)).collect()
}

/// One window of a store-day, as UTC instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowTimes {
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
}

/// The windows of `day` in the service time zone, as UTC instants. A local time
/// that does not exist (a DST gap) moves to the first instant after it.
pub fn window_times(day: NaiveDate, template: &[WindowSpec], tz: Tz) -> Vec<WindowTimes> {
    template
        .iter()
        .filter_map(|w| {
            let start = local_to_utc(day.and_time(w.start), tz)?;
            let end = local_to_utc(day.and_time(w.end), tz)?;
            (end > start).then_some(WindowTimes {
                starts_at: start,
                ends_at: end,
            })
        })
        .collect()
}

/// A local time in `tz` as a UTC instant; a time that does not exist (a DST
/// gap) moves to the first instant after it.
pub fn local_to_utc(local: NaiveDateTime, tz: Tz) -> Option<NaiveDateTime> {
    let mut candidate = local;
    // A DST gap is at most a few hours; step forward until the time exists.
    for _ in 0..=240 {
        if let Some(t) = tz.from_local_datetime(&candidate).earliest() {
            return Some(t.with_timezone(&Utc).naive_utc());
        }
        candidate += chrono::Duration::minutes(1);
    }
    None
}

/// The walk-in share of a supply: `percent` of it, rounded down, kept out of
/// the windows for the counter (SPEC §6).
pub fn walk_in_share(supply: i32, percent: i32) -> i32 {
    let share = i64::from(supply.max(0)) * i64::from(percent.clamp(0, 100)) / 100;
    i32::try_from(share).unwrap_or(0)
}

/// What a fresh allocation of `supply` puts in its windows: all but the
/// [`walk_in_share`].
pub fn windows_share(supply: i32, percent: i32) -> i32 {
    supply.max(0) - walk_in_share(supply, percent)
}

/// One pickup window of a store-day as the supply rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowStock {
    pub capacity: i32,
    /// Reserved (active) plus picked up: what the window's capacity must keep.
    pub taken: i32,
    /// The window's booking has closed: nobody can reserve in it any more,
    /// and what it does not hold belongs to the counter.
    pub closed: bool,
}

/// A store-day's figures that a change of supply or capacity depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayStock {
    pub supply: i32,
    /// Sold to walk-in buyers.
    pub walk_in: i32,
    /// In the order the windows start.
    pub windows: Vec<WindowStock>,
}

impl DayStock {
    pub fn capacity(&self) -> i32 {
        self.windows.iter().map(|w| w.capacity).sum()
    }

    pub fn taken_by_windows(&self) -> i32 {
        self.windows.iter().map(|w| w.taken).sum()
    }

    /// Reserved, picked up and sold: what no change may take away.
    pub fn taken(&self) -> i32 {
        self.taken_by_windows() + self.walk_in
    }
}

/// Why a supply or capacity change is refused; each carries the numbers the
/// message names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The supply would be below what is reserved, picked up and sold.
    SupplyBelowTaken { taken: i32, quantity: i32 },
    /// The window's capacity would be below what it has reserved or handed over.
    CapacityBelowReserved { taken: i32, capacity: i32 },
    /// The windows together would hold more than the supply less walk-in sales.
    CapacityAboveSupply {
        total: i32,
        supply: i32,
        walk_in: i32,
    },
}

/// Whether a store-day that has `taken` (reserved, picked up and sold) may
/// have its supply set to `quantity`: never below what it has taken.
pub fn check_supply(taken: i32, quantity: i32) -> Result<(), Refusal> {
    if quantity < taken {
        return Err(Refusal::SupplyBelowTaken { taken, quantity });
    }
    Ok(())
}

/// The window capacities after the store-day's supply changes to `quantity`,
/// in the order of `day.windows`.
///
/// The rule: `margin = supply − Σcapacity` is what the counter has (the
/// walk-in share, places released by closed windows, no-shows, an
/// administrator's own cuts); it keeps all that and gains the walk-in share
/// (`share_percent`) of the change: `margin′ = margin + share(quantity) −
/// share(supply)`, so a day allocated with the share keeps exactly the share
/// of its new supply. The windows together get
/// `C′ = clamp(quantity − margin′, Σtaken, quantity − walk_in)`: the margin
/// shrinks only as far as the windows' reservations force it to, and the
/// windows never hold stock that is already sold to walk-in buyers. Every
/// window keeps what it has taken; only the unreserved rest `C′ − Σtaken`
/// moves: it is split evenly (the remainder to the earliest) over the windows
/// still taking bookings, or over all of them when every window has closed. A
/// store-day without windows keeps everything as walk-in stock.
pub fn resplit_supply(
    day: &DayStock,
    quantity: i32,
    share_percent: i32,
) -> Result<Vec<i32>, Refusal> {
    let taken = day.taken();
    check_supply(taken, quantity)?;
    if day.windows.is_empty() {
        return Ok(Vec::new());
    }
    let margin = (day.supply - day.capacity()).max(0) + walk_in_share(quantity, share_percent)
        - walk_in_share(day.supply, share_percent);
    let reserved = day.taken_by_windows();
    let total = (quantity - margin).clamp(reserved, quantity - day.walk_in);
    let open: Vec<usize> = match day
        .windows
        .iter()
        .enumerate()
        .filter(|(_, w)| !w.closed)
        .map(|(i, _)| i)
        .collect::<Vec<_>>()
    {
        open if open.is_empty() => (0..day.windows.len()).collect(),
        open => open,
    };
    let shares = split_supply(total - reserved, open.len());
    let mut capacities: Vec<i32> = day.windows.iter().map(|w| w.taken).collect();
    for (i, share) in open.into_iter().zip(shares) {
        capacities[i] += share;
    }
    Ok(capacities)
}

/// Whether one window's capacity may become `capacity`: not below what the
/// window has taken, and the windows together not above the supply less what
/// walk-in buyers have bought (SPEC §6).
pub fn check_capacity(day: &DayStock, window: usize, capacity: i32) -> Result<(), Refusal> {
    let Some(w) = day.windows.get(window) else {
        return Ok(());
    };
    if capacity < w.taken {
        return Err(Refusal::CapacityBelowReserved {
            taken: w.taken,
            capacity,
        });
    }
    let total = day.capacity() - w.capacity + capacity;
    if total > day.supply - day.walk_in {
        return Err(Refusal::CapacityAboveSupply {
            total,
            supply: day.supply,
            walk_in: day.walk_in,
        });
    }
    Ok(())
}

/// How far from today, either way, supply may be given: a date further off is
/// a typing mistake (`1900-01-01`, `9999-12-31`), not a delivery.
pub const SUPPLY_DATE_MONTHS: u32 = 12;

/// The dates supply may be given for on `today` (in the service time zone),
/// both ends included: from a year before to a year after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupplyDates {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl SupplyDates {
    /// The range on `today`. A year before 29 February is 28 February.
    pub fn around(today: NaiveDate) -> SupplyDates {
        let months = Months::new(SUPPLY_DATE_MONTHS);
        SupplyDates {
            first: today.checked_sub_months(months).unwrap_or(NaiveDate::MIN),
            last: today.checked_add_months(months).unwrap_or(NaiveDate::MAX),
        }
    }

    /// The one check of a supply's date, for the form, the copy of the
    /// previous day and the CSV import alike.
    pub fn check(self, day: NaiveDate) -> Result<NaiveDate, SupplyDates> {
        if (self.first..=self.last).contains(&day) {
            Ok(day)
        } else {
            Err(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn supply_dates_are_within_a_year_of_today_both_ends_included() {
        let dates = SupplyDates::around(ymd(2026, 12, 1));
        assert_eq!(
            (dates.first, dates.last),
            (ymd(2025, 12, 1), ymd(2027, 12, 1))
        );
        for fine in [
            ymd(2025, 12, 1),
            ymd(2026, 12, 1),
            ymd(2026, 12, 2),
            ymd(2027, 12, 1),
        ] {
            assert_eq!(dates.check(fine), Ok(fine));
        }
        for wrong in [
            ymd(1900, 1, 1),
            ymd(2025, 11, 30),
            ymd(2027, 12, 2),
            ymd(9999, 12, 31),
            NaiveDate::MIN,
            NaiveDate::MAX,
        ] {
            assert_eq!(dates.check(wrong), Err(dates), "{wrong}");
        }
        // A leap day's year either side ends on 28 February.
        let leap = SupplyDates::around(ymd(2028, 2, 29));
        assert_eq!(
            (leap.first, leap.last),
            (ymd(2027, 2, 28), ymd(2029, 2, 28))
        );
        // At the ends of the calendar the range stops there.
        assert_eq!(SupplyDates::around(NaiveDate::MAX).last, NaiveDate::MAX);
    }

    fn window(capacity: i32, taken: i32, closed: bool) -> WindowStock {
        WindowStock {
            capacity,
            taken,
            closed,
        }
    }

    fn day(supply: i32, walk_in: i32, windows: &[(i32, i32, bool)]) -> DayStock {
        DayStock {
            supply,
            walk_in,
            windows: windows.iter().map(|&(c, t, e)| window(c, t, e)).collect(),
        }
    }

    #[test]
    fn the_walk_in_share_is_rounded_down_and_the_windows_get_the_rest() {
        assert_eq!((walk_in_share(100, 30), windows_share(100, 30)), (30, 70));
        assert_eq!((walk_in_share(6, 30), windows_share(6, 30)), (1, 5));
        assert_eq!((walk_in_share(3, 30), windows_share(3, 30)), (0, 3));
        assert_eq!((walk_in_share(7, 0), windows_share(7, 0)), (0, 7));
        assert_eq!((walk_in_share(7, 100), windows_share(7, 100)), (7, 0));
        assert_eq!(walk_in_share(i32::MAX, 100), i32::MAX, "no overflow");
        assert_eq!(walk_in_share(-5, 30), 0, "not a supply");
    }

    #[test]
    fn a_changed_supply_keeps_the_share_of_the_change_for_the_counter() {
        // Allocated at 30 %: 100 → 70 in windows, 30 at the counter.
        let d = day(100, 0, &[(24, 0, false), (23, 0, false), (23, 0, false)]);
        // 200: the counter keeps 60, the windows 140.
        assert_eq!(resplit_supply(&d, 200, 30), Ok(vec![47, 47, 46]));
        // 50: the counter keeps 15, the windows 35.
        assert_eq!(resplit_supply(&d, 50, 30), Ok(vec![12, 12, 11]));
        // With no share, the counter keeps the 30 it has.
        assert_eq!(resplit_supply(&d, 200, 0), Ok(vec![57, 57, 56]));
    }

    #[test]
    fn places_released_to_the_counter_stay_there_when_the_supply_changes() {
        // The first window's booking closed with 19 places unbooked: they
        // went to the counter, which now has 30 + 19 = 49.
        let d = day(100, 0, &[(5, 5, true), (23, 0, false), (23, 0, false)]);
        // 110: the counter keeps 49 + 3; the closed window gets nothing back.
        assert_eq!(resplit_supply(&d, 110, 30), Ok(vec![5, 27, 26]));
    }

    #[test]
    fn raising_supply_keeps_the_walk_in_margin_and_splits_the_rest() {
        // 100 supply, 90 in windows: a margin of 10 kept for walk-in buyers.
        let d = day(100, 0, &[(30, 0, false), (30, 0, false), (30, 0, false)]);
        assert_eq!(resplit_supply(&d, 130, 0), Ok(vec![40, 40, 40]));
        assert_eq!(resplit_supply(&d, 101, 0), Ok(vec![31, 30, 30]));
    }

    #[test]
    fn only_unreserved_capacity_moves() {
        let d = day(120, 0, &[(40, 25, false), (40, 3, false), (40, 0, false)]);
        // 28 reserved; 60 − 28 = 32 free, split 11/11/10 over the three.
        assert_eq!(resplit_supply(&d, 60, 0), Ok(vec![36, 14, 10]));
        assert_eq!(resplit_supply(&d, 28, 0), Ok(vec![25, 3, 0]));
        assert_eq!(
            resplit_supply(&d, 27, 0),
            Err(Refusal::SupplyBelowTaken {
                taken: 28,
                quantity: 27
            })
        );
    }

    #[test]
    fn walk_in_sales_count_against_a_lower_supply() {
        // 12 sold at the counter, 10 in a window reserved: nothing below 22.
        let d = day(100, 12, &[(50, 10, false), (38, 0, false)]);
        assert_eq!(
            resplit_supply(&d, 21, 0),
            Err(Refusal::SupplyBelowTaken {
                taken: 22,
                quantity: 21
            })
        );
        // At 22 the windows keep only what they hold; the sold 12 stay outside.
        assert_eq!(resplit_supply(&d, 22, 0), Ok(vec![10, 0]));
        // The margin (12) is kept when there is room: 40 − 12 = 28 in windows.
        assert_eq!(resplit_supply(&d, 40, 0), Ok(vec![19, 9]));
    }

    #[test]
    fn the_margin_gives_way_to_reservations() {
        // Margin 30, but 50 reserved: at supply 60 the windows need 50.
        let d = day(100, 0, &[(35, 25, false), (35, 25, false)]);
        assert_eq!(resplit_supply(&d, 60, 0), Ok(vec![25, 25]));
        assert_eq!(resplit_supply(&d, 50, 0), Ok(vec![25, 25]));
    }

    #[test]
    fn supply_zero_with_nothing_reserved_empties_every_window() {
        let d = day(90, 0, &[(30, 0, false), (30, 0, false), (30, 0, true)]);
        assert_eq!(resplit_supply(&d, 0, 0), Ok(vec![0, 0, 0]));
    }

    #[test]
    fn closed_windows_keep_what_they_hold_and_give_the_rest_to_open_ones() {
        let d = day(90, 0, &[(30, 20, true), (30, 5, false), (30, 0, false)]);
        // 120 − 25 taken = 95 free over the two open windows.
        assert_eq!(resplit_supply(&d, 120, 0), Ok(vec![20, 53, 47]));
    }

    #[test]
    fn when_every_window_has_closed_the_free_stock_goes_over_all() {
        let d = day(90, 0, &[(30, 20, true), (30, 5, true), (30, 0, true)]);
        assert_eq!(resplit_supply(&d, 100, 0), Ok(vec![45, 30, 25]));
    }

    #[test]
    fn a_day_without_windows_keeps_its_supply_for_walk_ins() {
        let d = day(10, 4, &[]);
        assert_eq!(resplit_supply(&d, 20, 0), Ok(vec![]));
        assert_eq!(
            resplit_supply(&d, 3, 0),
            Err(Refusal::SupplyBelowTaken {
                taken: 4,
                quantity: 3
            })
        );
    }

    #[test]
    fn resplit_capacity_never_exceeds_supply_less_walk_in() {
        for supply in [0, 1, 7, 50, 100] {
            for walk_in in [0, 1, 5] {
                for quantity in 0..120 {
                    let d = day(supply.max(walk_in), walk_in, &[(0, 0, false), (0, 0, true)]);
                    if let Ok(caps) = resplit_supply(&d, quantity, 0) {
                        assert!(caps.iter().sum::<i32>() + walk_in <= quantity);
                    }
                }
            }
        }
    }

    #[test]
    fn a_capacity_may_not_fall_below_what_the_window_has_taken() {
        let d = day(150, 0, &[(50, 41, false), (50, 0, false)]);
        assert_eq!(
            check_capacity(&d, 0, 40),
            Err(Refusal::CapacityBelowReserved {
                taken: 41,
                capacity: 40
            })
        );
        assert_eq!(check_capacity(&d, 0, 41), Ok(()));
    }

    #[test]
    fn capacities_may_not_exceed_supply_less_walk_in_sales() {
        let d = day(150, 5, &[(50, 0, false), (50, 0, false)]);
        assert_eq!(check_capacity(&d, 1, 95), Ok(()));
        assert_eq!(
            check_capacity(&d, 1, 96),
            Err(Refusal::CapacityAboveSupply {
                total: 146,
                supply: 150,
                walk_in: 5
            })
        );
    }

    #[test]
    fn supply_is_split_with_the_remainder_to_the_earliest_windows() {
        assert_eq!(split_supply(100, 3), vec![34, 33, 33]);
        assert_eq!(split_supply(101, 3), vec![34, 34, 33]);
        assert_eq!(split_supply(99, 3), vec![33, 33, 33]);
        assert_eq!(split_supply(2, 3), vec![1, 1, 0]);
        assert_eq!(split_supply(0, 3), vec![0, 0, 0]);
        assert_eq!(split_supply(7, 1), vec![7]);
        assert!(split_supply(5, 0).is_empty());
        for supply in 0..200 {
            for n in 1..6 {
                let parts = split_supply(supply, n);
                assert_eq!(parts.iter().sum::<i32>(), supply);
                assert!(parts.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1));
            }
        }
    }

    #[test]
    fn default_windows_in_seoul_are_nine_hours_ahead_of_utc() {
        let day = NaiveDate::from_ymd_opt(2020, 3, 9).unwrap();
        let p = Policy::default();
        let times = window_times(day, &p.window_template, chrono_tz::Asia::Seoul);
        assert_eq!(times.len(), 3);
        assert_eq!(times[0].starts_at.to_string(), "2020-03-09 00:00:00");
        assert_eq!(times[2].ends_at.to_string(), "2020-03-09 09:00:00");
    }

    #[test]
    fn a_window_starting_in_a_dst_gap_starts_when_the_clock_resumes() {
        // Europe/Berlin skipped 02:00–03:00 on 2021-03-28.
        let day = NaiveDate::from_ymd_opt(2021, 3, 28).unwrap();
        let spec = crate::policy::parse_window_template("02:30-04:00").unwrap();
        let times = window_times(day, &spec, chrono_tz::Europe::Berlin);
        assert_eq!(times[0].starts_at.to_string(), "2021-03-28 01:00:00");
        assert_eq!(times[0].ends_at.to_string(), "2021-03-28 02:00:00");
    }
}
