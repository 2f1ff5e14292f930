//! Pure rules of allocation.

use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
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
            let start = to_utc(day.and_time(w.start), tz)?;
            let end = to_utc(day.and_time(w.end), tz)?;
            (end > start).then_some(WindowTimes {
                starts_at: start,
                ends_at: end,
            })
        })
        .collect()
}

fn to_utc(local: NaiveDateTime, tz: Tz) -> Option<NaiveDateTime> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

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
