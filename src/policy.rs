//! The rationing policy of SPEC §3: typed values parsed from the `settings` table,
//! with the defaults the migrations insert.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};
use chrono_tz::Tz;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Monday to Sunday, in the service time zone.
    IsoWeek,
}

impl Period {
    /// The first day of the period that contains `day`.
    pub fn start_of(self, day: NaiveDate) -> NaiveDate {
        match self {
            Period::IsoWeek => {
                day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday()))
            }
        }
    }

    /// The last day of the period that contains `day`.
    pub fn end_of(self, day: NaiveDate) -> NaiveDate {
        match self {
            Period::IsoWeek => self.start_of(day) + chrono::Duration::days(6),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::IsoWeek => "iso_week",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Off,
    /// Pick up only on the weekday given by the last digit of the birth year.
    BirthYear,
}

impl Rotation {
    pub fn as_str(self) -> &'static str {
        match self {
            Rotation::Off => "off",
            Rotation::BirthYear => "birth_year",
        }
    }

    /// Whether someone born in `birth_year` may pick up or buy on `day`.
    pub fn allows(self, birth_year: i32, day: NaiveDate) -> bool {
        match self {
            Rotation::Off => true,
            Rotation::BirthYear => match day.weekday() {
                Weekday::Sat | Weekday::Sun => true,
                weekday => rotation_weekday(birth_year) == weekday,
            },
        }
    }
}

/// The weekday of SPEC §3's rotation: 1,6 Mon · 2,7 Tue · 3,8 Wed · 4,9 Thu · 5,0 Fri.
pub fn rotation_weekday(birth_year: i32) -> Weekday {
    match birth_year.rem_euclid(10) {
        1 | 6 => Weekday::Mon,
        2 | 7 => Weekday::Tue,
        3 | 8 => Weekday::Wed,
        4 | 9 => Weekday::Thu,
        _ => Weekday::Fri,
    }
}

/// One pickup window of the daily template, in local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub quota_per_period: i32,
    pub period: Period,
    pub timezone: Tz,
    pub rotation: Rotation,
    pub booking_horizon_days: i32,
    pub cancel_cutoff_minutes: i32,
    pub pickup_grace_minutes: i32,
    pub window_template: Vec<WindowSpec>,
    /// How long before a window starts its citizens get a reminder by e-mail;
    /// 0 sends none.
    pub reminder_lead_minutes: i32,
    /// Share of an allocated supply (rounded down) kept out of the windows
    /// for the counter, in percent.
    pub walk_in_share_percent: i32,
    /// A window can be booked until this long before it ends; then its
    /// unbooked places go to the counter.
    pub booking_close_minutes: i32,
    /// People one citizen may book for (SPEC §12).
    pub max_dependants: i32,
    /// A dependant is born in or after this year…
    pub proxy_born_from: i32,
    /// …or in or before this one.
    pub proxy_born_until: i32,
    /// How long a place freed in a full window is held for the first in its
    /// waiting list (SPEC §13).
    pub waitlist_hold_minutes: i32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            quota_per_period: 2,
            period: Period::IsoWeek,
            timezone: chrono_tz::Asia::Seoul,
            rotation: Rotation::Off,
            booking_horizon_days: 7,
            cancel_cutoff_minutes: 60,
            pickup_grace_minutes: 30,
            window_template: default_windows(),
            reminder_lead_minutes: 60,
            walk_in_share_percent: 30,
            booking_close_minutes: 30,
            max_dependants: 4,
            proxy_born_from: 2010,
            proxy_born_until: 1940,
            waitlist_hold_minutes: 30,
        }
    }
}

fn default_windows() -> Vec<WindowSpec> {
    [(9, 12), (12, 15), (15, 18)]
        .into_iter()
        .filter_map(|(s, e)| {
            Some(WindowSpec {
                start: NaiveTime::from_hms_opt(s, 0, 0)?,
                end: NaiveTime::from_hms_opt(e, 0, 0)?,
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting `{key}` has an invalid value `{value}`: {reason}")]
pub struct PolicyError {
    pub key: String,
    pub value: String,
    pub reason: &'static str,
}

/// Why the policy could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("database error")]
    Db(#[from] diesel::result::Error),
    #[error(transparent)]
    Invalid(#[from] PolicyError),
}

impl Policy {
    /// Builds the policy from `key → value` pairs; a missing key keeps its default.
    pub fn from_pairs(pairs: &HashMap<String, String>) -> Result<Policy, PolicyError> {
        let mut p = Policy::default();
        for (key, value) in pairs {
            let err = |reason| PolicyError {
                key: key.clone(),
                value: value.clone(),
                reason,
            };
            let v = value.trim();
            match key.as_str() {
                "quota_per_period" => p.quota_per_period = int_in(v, 1, 100).ok_or(err("1–100"))?,
                "period" => {
                    p.period = match v {
                        "iso_week" => Period::IsoWeek,
                        _ => return Err(err("iso_week")),
                    }
                }
                "timezone" => p.timezone = v.parse().map_err(|_| err("an IANA time zone"))?,
                "rotation" => {
                    p.rotation = match v {
                        "off" => Rotation::Off,
                        "birth_year" => Rotation::BirthYear,
                        _ => return Err(err("off or birth_year")),
                    }
                }
                "booking_horizon_days" => {
                    p.booking_horizon_days = int_in(v, 0, 60).ok_or(err("0–60"))?
                }
                "cancel_cutoff_minutes" => {
                    p.cancel_cutoff_minutes = int_in(v, 0, 1440).ok_or(err("0–1440"))?
                }
                "pickup_grace_minutes" => {
                    p.pickup_grace_minutes = int_in(v, 0, 1440).ok_or(err("0–1440"))?
                }
                "reminder_lead_minutes" => {
                    p.reminder_lead_minutes = int_in(v, 0, 1440).ok_or(err("0–1440"))?
                }
                "walk_in_share_percent" => {
                    p.walk_in_share_percent = int_in(v, 0, 100).ok_or(err("0–100"))?
                }
                "booking_close_minutes" => {
                    p.booking_close_minutes = int_in(v, 0, 1440).ok_or(err("0–1440"))?
                }
                "max_dependants" => p.max_dependants = int_in(v, 0, 20).ok_or(err("0–20"))?,
                "proxy_born_from" => {
                    p.proxy_born_from = int_in(v, 1900, 2100).ok_or(err("a year, 1900–2100"))?
                }
                "proxy_born_until" => {
                    p.proxy_born_until = int_in(v, 1900, 2100).ok_or(err("a year, 1900–2100"))?
                }
                "waitlist_hold_minutes" => {
                    p.waitlist_hold_minutes = int_in(v, 1, 1440).ok_or(err("1–1440"))?
                }
                "window_template" => {
                    p.window_template =
                        parse_window_template(v).ok_or(err("HH:MM-HH:MM, comma-separated"))?
                }
                _ => {}
            }
        }
        Ok(p)
    }

    /// Reads the policy in force from the database. Requests take it from
    /// [`crate::settings::PolicyCache`] instead.
    pub fn load(conn: &mut DbConnection) -> Result<Policy, LoadError> {
        let rows: Vec<(String, String)> = settings::table
            .select((settings::key, settings::value))
            .load(conn)?;
        Ok(Policy::from_pairs(&rows.into_iter().collect())?)
    }

    pub fn window_template_text(&self) -> String {
        format_window_template(&self.window_template)
    }
}

fn int_in(v: &str, min: i32, max: i32) -> Option<i32> {
    v.parse::<i32>().ok().filter(|n| (min..=max).contains(n))
}

/// Parses `09:00-12:00,12:00-15:00`: windows in order, each ending after it
/// starts, none overlapping the next.
pub fn parse_window_template(text: &str) -> Option<Vec<WindowSpec>> {
    let mut out: Vec<WindowSpec> = Vec::new();
    for part in text.split(',') {
        let (s, e) = part.trim().split_once(['-', '–'])?;
        let start = NaiveTime::parse_from_str(s.trim(), "%H:%M").ok()?;
        let end = NaiveTime::parse_from_str(e.trim(), "%H:%M").ok()?;
        if end <= start || out.last().is_some_and(|prev| prev.end > start) {
            return None;
        }
        out.push(WindowSpec { start, end });
    }
    if out.is_empty() || out.len() > 24 {
        return None;
    }
    Some(out)
}

pub fn format_window_template(windows: &[WindowSpec]) -> String {
    windows
        .iter()
        .map(|w| format!("{}-{}", w.start.format("%H:%M"), w.end.format("%H:%M")))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn defaults_are_those_of_the_spec() {
        let p = Policy::from_pairs(&HashMap::new()).unwrap();
        assert_eq!(p.quota_per_period, 2);
        assert_eq!(p.period, Period::IsoWeek);
        assert_eq!(p.timezone, chrono_tz::Asia::Seoul);
        assert_eq!(p.rotation, Rotation::Off);
        assert_eq!(p.booking_horizon_days, 7);
        assert_eq!(p.cancel_cutoff_minutes, 60);
        assert_eq!(p.pickup_grace_minutes, 30);
        assert_eq!(p.reminder_lead_minutes, 60);
        assert_eq!(p.walk_in_share_percent, 30);
        assert_eq!(p.booking_close_minutes, 30);
        assert_eq!(p.max_dependants, 4);
        assert_eq!((p.proxy_born_from, p.proxy_born_until), (2010, 1940));
        assert_eq!(p.waitlist_hold_minutes, 30);
        assert_eq!(
            p.window_template_text(),
            "09:00-12:00,12:00-15:00,15:00-18:00"
        );
    }

    #[test]
    fn the_migration_defaults_parse_to_the_same_policy() {
        let pairs: HashMap<String, String> = [
            ("quota_per_period", "2"),
            ("period", "iso_week"),
            ("timezone", "Asia/Seoul"),
            ("rotation", "off"),
            ("booking_horizon_days", "7"),
            ("cancel_cutoff_minutes", "60"),
            ("pickup_grace_minutes", "30"),
            ("window_template", "09:00-12:00,12:00-15:00,15:00-18:00"),
            ("reminder_lead_minutes", "60"),
            ("walk_in_share_percent", "30"),
            ("booking_close_minutes", "30"),
            ("max_dependants", "4"),
            ("proxy_born_from", "2010"),
            ("proxy_born_until", "1940"),
            ("waitlist_hold_minutes", "30"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(Policy::from_pairs(&pairs).unwrap(), Policy::default());
    }

    #[test]
    fn invalid_values_are_refused_with_the_key() {
        for (k, v) in [
            ("quota_per_period", "0"),
            ("quota_per_period", "two"),
            ("rotation", "odd_even"),
            ("timezone", "Seoul"),
            ("window_template", "12:00-09:00"),
            ("window_template", "09:00-12:00,11:00-13:00"),
            ("reminder_lead_minutes", "-1"),
            ("reminder_lead_minutes", "1441"),
            ("walk_in_share_percent", "101"),
            ("walk_in_share_percent", "-1"),
            ("booking_close_minutes", "1441"),
            ("max_dependants", "21"),
            ("proxy_born_from", "20"),
            ("proxy_born_until", "2101"),
            ("waitlist_hold_minutes", "0"),
            ("waitlist_hold_minutes", "1441"),
        ] {
            let pairs = HashMap::from([(k.to_owned(), v.to_owned())]);
            let e = Policy::from_pairs(&pairs).unwrap_err();
            assert_eq!(e.key, k);
        }
    }

    #[test]
    fn iso_week_runs_monday_to_sunday() {
        // 2020-03-09 was a Monday, 2020-03-15 a Sunday.
        for d in 9..=15 {
            assert_eq!(Period::IsoWeek.start_of(date(2020, 3, d)), date(2020, 3, 9));
            assert_eq!(Period::IsoWeek.end_of(date(2020, 3, d)), date(2020, 3, 15));
        }
        assert_eq!(
            Period::IsoWeek.start_of(date(2020, 3, 16)),
            date(2020, 3, 16)
        );
        // Across a year boundary.
        assert_eq!(
            Period::IsoWeek.start_of(date(2021, 1, 1)),
            date(2020, 12, 28)
        );
    }

    #[test]
    fn birth_year_rotation_follows_the_last_digit() {
        let monday = date(2020, 3, 9);
        let expected = [
            (1981, Weekday::Mon),
            (1986, Weekday::Mon),
            (1972, Weekday::Tue),
            (1997, Weekday::Tue),
            (1963, Weekday::Wed),
            (2008, Weekday::Wed),
            (1954, Weekday::Thu),
            (1999, Weekday::Thu),
            (1945, Weekday::Fri),
            (2000, Weekday::Fri),
        ];
        for (year, weekday) in expected {
            assert_eq!(rotation_weekday(year), weekday, "{year}");
            for offset in 0..7 {
                let day = monday + chrono::Duration::days(offset);
                let allowed = Rotation::BirthYear.allows(year, day);
                let weekend = matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
                assert_eq!(allowed, weekend || day.weekday() == weekday, "{year} {day}");
                assert!(Rotation::Off.allows(year, day));
            }
        }
    }
}
