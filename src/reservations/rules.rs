//! The rules of reserving and cancelling that need no database (SPEC §3): which
//! windows can be booked at a given moment, the rotation rule by the window's
//! date, the quantity's bounds, the period a reservation counts against, the
//! cancel cut-off, the pickup deadline (window end + grace) after which a
//! reservation is a no-show; and every reason a reservation is refused, with
//! its words.

use actix_web::http::StatusCode;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use crate::i18n::Tr;
use crate::policy::{Policy, rotation_weekday};
use crate::quantity::Quantity;

/// The most masks one form may ask for, whatever the quota: a bound on input,
/// not a rule (the quota setting goes up to 100).
pub const MAX_QUANTITY: i32 = 100;

/// A window as the rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowFacts {
    /// The window's date in the service time zone.
    pub day: NaiveDate,
    /// Its end, UTC: booking closes `booking_close_minutes` before it.
    pub ends_at: NaiveDateTime,
    pub store_suspended: bool,
}

/// Another window of the same store-day that still has room, suggested when
/// the one asked for is full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenWindow {
    pub id: i64,
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
    pub remaining: i32,
}

/// Why a reservation was not made, with what it takes to explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The account's e-mail address is not confirmed yet.
    Unverified,
    AccountDisabled,
    /// Only citizens reserve.
    NotCitizen,
    UnknownWindow,
    /// The form names someone who is not a current dependant of the account
    /// (another's, one removed, or no one).
    UnknownPerson,
    /// An administrator stopped sales at the store.
    StoreSuspended,
    /// The window's booking has closed ([`booking_closes_at`]): what it has
    /// left is sold at the counter.
    BookingClosed,
    /// The window's date is after `last_day`, the last one bookable now.
    BeyondHorizon {
        last_day: NaiveDate,
    },
    /// The rotation rule is on and the window's date is not this person's day.
    Rotation {
        weekday: Weekday,
    },
    /// Not a quantity between 1 and `max`.
    BadQuantity {
        max: i32,
    },
    /// More than the person may still take in the window's period.
    QuotaExceeded {
        left: i32,
    },
    /// The window has no room for the quantity; `open` are the windows of the
    /// same store-day that still have room and still take bookings.
    WindowFull {
        open: Vec<OpenWindow>,
    },
    /// The store-day's supply is used up (walk-in sales took what was left).
    SoldOut,
    /// The window is allocated by draw `draw_id` (SPEC §13), not first come:
    /// one registers there until it closes.
    InDraw {
        draw_id: i64,
    },
}

impl Refusal {
    /// Its HTTP status and its `data-refusal` name, for every page that
    /// answers it (booking, joining a waiting list).
    pub fn answer(&self) -> (StatusCode, &'static str) {
        match self {
            Refusal::Unverified => (StatusCode::FORBIDDEN, "unverified"),
            Refusal::AccountDisabled => (StatusCode::FORBIDDEN, "disabled"),
            Refusal::NotCitizen => (StatusCode::FORBIDDEN, "not_citizen"),
            Refusal::UnknownWindow => (StatusCode::NOT_FOUND, "unknown_window"),
            Refusal::UnknownPerson => (StatusCode::NOT_FOUND, "unknown_person"),
            Refusal::StoreSuspended => (StatusCode::CONFLICT, "suspended"),
            Refusal::BookingClosed => (StatusCode::CONFLICT, "closed"),
            Refusal::BeyondHorizon { .. } => (StatusCode::CONFLICT, "horizon"),
            Refusal::Rotation { .. } => (StatusCode::CONFLICT, "rotation"),
            Refusal::BadQuantity { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "quantity"),
            Refusal::QuotaExceeded { .. } => (StatusCode::CONFLICT, "quota"),
            Refusal::WindowFull { .. } => (StatusCode::CONFLICT, "full"),
            Refusal::SoldOut => (StatusCode::CONFLICT, "sold_out"),
            Refusal::InDraw { .. } => (StatusCode::CONFLICT, "draw"),
        }
    }

    /// [`Self::answer`] with [`Self::message`]: all a page needs to say it.
    pub fn answered(&self, t: &Tr, tz: Tz) -> (StatusCode, &'static str, String) {
        let (status, kind) = self.answer();
        (status, kind, self.message(t, tz))
    }

    /// What the citizen reads next to the form, in `t`'s language, times in `tz`.
    pub fn message(&self, t: &Tr, tz: Tz) -> String {
        match self {
            Refusal::Unverified => t.get("reservation.refusal.unverified").to_owned(),
            Refusal::AccountDisabled => t.get("reservation.refusal.disabled").to_owned(),
            Refusal::NotCitizen => t.get("reservation.refusal.not_citizen").to_owned(),
            Refusal::UnknownWindow => t.get("reservation.refusal.unknown_window").to_owned(),
            Refusal::UnknownPerson => t.get("reservation.refusal.unknown_person").to_owned(),
            Refusal::StoreSuspended => t.get("reservation.refusal.suspended").to_owned(),
            Refusal::BookingClosed => t.get("reservation.refusal.closed").to_owned(),
            Refusal::BeyondHorizon { last_day } => t.fmt(
                "reservation.refusal.horizon",
                &[("date", &t.date(*last_day))],
            ),
            Refusal::Rotation { weekday } => t.fmt(
                "reservation.refusal.rotation",
                &[("weekday", &t.get(weekday_key(*weekday)))],
            ),
            Refusal::BadQuantity { max } => t.fmt("reservation.refusal.quantity", &[("max", max)]),
            Refusal::QuotaExceeded { left: 0 } => {
                t.get("reservation.refusal.quota_none").to_owned()
            }
            Refusal::QuotaExceeded { left } => {
                t.count("reservation.refusal.quota", *left, &[("left", left)])
            }
            Refusal::WindowFull { open } if open.is_empty() => {
                t.get("reservation.refusal.full").to_owned()
            }
            Refusal::WindowFull { open } => {
                let list = open
                    .iter()
                    .map(|w| {
                        t.fmt(
                            "reservation.refusal.open_window",
                            &[
                                ("time", &time_range(tz, w.starts_at, w.ends_at)),
                                ("left", &w.remaining),
                            ],
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                t.fmt("reservation.refusal.full_open", &[("open", &list)])
            }
            Refusal::SoldOut => t.get("reservation.refusal.sold_out").to_owned(),
            Refusal::InDraw { draw_id } => t.fmt(
                "reservation.refusal.in_draw",
                &[("link", &format!("/draws/{draw_id}"))],
            ),
        }
    }
}

/// The locale key of a weekday's full name.
pub fn weekday_key(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "reservation.weekday.mon",
        Weekday::Tue => "reservation.weekday.tue",
        Weekday::Wed => "reservation.weekday.wed",
        Weekday::Thu => "reservation.weekday.thu",
        Weekday::Fri => "reservation.weekday.fri",
        Weekday::Sat => "reservation.weekday.sat",
        Weekday::Sun => "reservation.weekday.sun",
    }
}

/// A UTC time stored in the database, in the service zone.
pub fn local(tz: Tz, at: NaiveDateTime) -> DateTime<Tz> {
    Utc.from_utc_datetime(&at).with_timezone(&tz)
}

/// `12:00–15:00` in the service zone.
pub fn time_range(tz: Tz, starts_at: NaiveDateTime, ends_at: NaiveDateTime) -> String {
    format!(
        "{}–{}",
        local(tz, starts_at).format("%H:%M"),
        local(tz, ends_at).format("%H:%M")
    )
}

/// `2026년 3월 10일 (화) 14:30`: a moment in the service zone, in `t`'s
/// words for the date.
pub fn local_date_time(t: &crate::i18n::Tr, tz: Tz, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&tz);
    format!("{} {}", t.date(local.date_naive()), local.format("%H:%M"))
}

/// The date at `now` in the service time zone.
pub fn today(policy: &Policy, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&policy.timezone).date_naive()
}

/// The last date whose windows can be reserved at `now`.
pub fn last_bookable_day(policy: &Policy, now: DateTime<Utc>) -> NaiveDate {
    today(policy, now) + TimeDelta::days(i64::from(policy.booking_horizon_days))
}

/// The first day of the period a reservation for a window on `day` counts
/// against: the window's date decides, not the day the reservation is made.
pub fn period_of(policy: &Policy, day: NaiveDate) -> NaiveDate {
    policy.period.start_of(day)
}

/// What a person may still take in one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodLeft {
    /// The period's first and last day.
    pub first: NaiveDate,
    pub last: NaiveDate,
    pub left: i32,
}

/// The first days of the first and the last period a booking made at `now`
/// can count against: today's and the last bookable day's.
pub fn bookable_periods(policy: &Policy, now: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    (
        period_of(policy, today(policy, now)),
        period_of(policy, last_bookable_day(policy, now)),
    )
}

/// The periods a booking made at `now` can count against — from the one that
/// contains today to the one that contains the last bookable day — each with
/// what is left of the quota, given what the person `used` per period start
/// (a period missing from it used nothing). On a Sunday evening that is the
/// week ending and the week every bookable window is in: a page that names one
/// "this week" would show the wrong one.
pub fn periods_left(
    policy: &Policy,
    now: DateTime<Utc>,
    used: impl Fn(NaiveDate) -> i32,
) -> Vec<PeriodLeft> {
    let (mut first, last) = bookable_periods(policy, now);
    let mut periods = Vec::new();
    while first <= last {
        let end = policy.period.end_of(first);
        periods.push(PeriodLeft {
            first,
            last: end,
            left: crate::quota::left(policy.quota_per_period, used(first)),
        });
        first = end + TimeDelta::days(1);
    }
    periods
}

/// The moment a window ending at `ends_at` stops taking bookings (exclusive):
/// `booking_close_minutes` before its end (SPEC §3). From then on its
/// unbooked places are the counter's.
pub fn booking_closes_at(close_minutes: i32, ends_at: NaiveDateTime) -> NaiveDateTime {
    ends_at - TimeDelta::minutes(i64::from(close_minutes))
}

/// Whether a window ending at `ends_at` still takes bookings at `now`.
pub fn booking_open(close_minutes: i32, ends_at: NaiveDateTime, now: DateTime<Utc>) -> bool {
    now.naive_utc() < booking_closes_at(close_minutes, ends_at)
}

/// [`booking_closes_at`] solved for the window's end, for the queries that
/// select windows by their end: at `now` the windows ending after this moment
/// take bookings, those ending at or before it have closed.
pub fn earliest_bookable_end(close_minutes: i32, now: DateTime<Utc>) -> NaiveDateTime {
    now.naive_utc() + TimeDelta::minutes(i64::from(close_minutes))
}

/// Whether the window can be reserved at `now`, whoever asks: the store sells,
/// the window's booking has not closed, and its date is within the booking
/// horizon.
pub fn check_window(policy: &Policy, now: DateTime<Utc>, w: &WindowFacts) -> Result<(), Refusal> {
    if w.store_suspended {
        return Err(Refusal::StoreSuspended);
    }
    if !booking_open(policy.booking_close_minutes, w.ends_at, now) {
        return Err(Refusal::BookingClosed);
    }
    let last_day = last_bookable_day(policy, now);
    if w.day > last_day {
        return Err(Refusal::BeyondHorizon { last_day });
    }
    Ok(())
}

/// The rotation rule for someone born in `birth_year` and a window on `day`.
pub fn check_rotation(policy: &Policy, birth_year: i32, day: NaiveDate) -> Result<(), Refusal> {
    if policy.rotation.allows(birth_year, day) {
        Ok(())
    } else {
        Err(Refusal::Rotation {
            weekday: rotation_weekday(birth_year),
        })
    }
}

/// A quantity a form may ask for: 1 (a [`Quantity`] is at least that) to
/// [`MAX_QUANTITY`]. More than the quota is refused by the quota counter,
/// which knows what is left.
pub fn check_quantity(quantity: Quantity) -> Result<(), Refusal> {
    if quantity.get() <= MAX_QUANTITY {
        Ok(())
    } else {
        Err(Refusal::BadQuantity { max: MAX_QUANTITY })
    }
}

/// Every rule that needs no counter, in the order a citizen is best told.
pub fn check(
    policy: &Policy,
    now: DateTime<Utc>,
    birth_year: i32,
    w: &WindowFacts,
    quantity: Quantity,
) -> Result<(), Refusal> {
    check_window(policy, now, w)?;
    check_rotation(policy, birth_year, w.day)?;
    check_quantity(quantity)
}

/// The last moment a reservation for a window starting at `starts_at` can be
/// cancelled (exclusive).
pub fn cancel_deadline(policy: &Policy, starts_at: NaiveDateTime) -> NaiveDateTime {
    starts_at - TimeDelta::minutes(i64::from(policy.cancel_cutoff_minutes))
}

/// Whether a reservation for a window starting at `starts_at` can still be
/// cancelled at `now`.
pub fn cancellable(policy: &Policy, now: DateTime<Utc>, starts_at: NaiveDateTime) -> bool {
    now.naive_utc() < cancel_deadline(policy, starts_at)
}

/// The last moment a reservation for a window ending at `ends_at` can be
/// picked up (inclusive): the end plus the policy's `pickup_grace_minutes`.
/// After it the reservation is a no-show, refused at the counter and expired
/// by the job (SPEC §3).
pub fn pickup_deadline(grace_minutes: i32, ends_at: NaiveDateTime) -> NaiveDateTime {
    ends_at + pickup_grace(grace_minutes)
}

/// Whether the pickup of a window ending at `ends_at` has closed at `now`.
pub fn pickup_closed(grace_minutes: i32, ends_at: NaiveDateTime, now: DateTime<Utc>) -> bool {
    now.naive_utc() > pickup_deadline(grace_minutes, ends_at)
}

/// [`pickup_deadline`] solved for the window's end, for the queries that
/// select windows by their end: at `now` pickup is still open for the windows
/// ending at or after this moment, and [`pickup_closed`] for those ending
/// before it.
pub fn earliest_open_end(grace_minutes: i32, now: DateTime<Utc>) -> NaiveDateTime {
    now.naive_utc() - pickup_grace(grace_minutes)
}

fn pickup_grace(minutes: i32) -> TimeDelta {
    TimeDelta::minutes(i64::from(minutes))
}

/// The year of a birth date, for the rotation rule.
pub fn birth_year(birth_date: NaiveDate) -> i32 {
    birth_date.year()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Rotation;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// `h:m` Seoul time on `day`, as UTC.
    fn seoul(day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Seoul
            .from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
            .unwrap()
            .with_timezone(&Utc)
    }

    /// A window of three hours from `h:00` on `day`.
    fn window(day: NaiveDate, h: u32) -> WindowFacts {
        WindowFacts {
            day,
            ends_at: seoul(day, h + 3, 0).naive_utc(),
            store_suspended: false,
        }
    }

    #[test]
    fn the_periods_shown_are_those_the_horizon_touches_counted_in_the_service_zone() {
        let p = Policy::default();
        let (sunday, monday) = (date(2026, 12, 6), date(2026, 12, 7));
        let used = |start: NaiveDate| if start == monday { 2 } else { 0 };
        // Sunday 23:00 in Seoul: the week ending and the next one, whose quota
        // is used; the next week is the one every bookable window is in.
        assert_eq!(
            periods_left(&p, seoul(sunday, 23, 0), used),
            vec![
                PeriodLeft {
                    first: date(2026, 11, 30),
                    last: sunday,
                    left: 2
                },
                PeriodLeft {
                    first: monday,
                    last: date(2026, 12, 13),
                    left: 0
                },
            ]
        );
        // Monday 00:30 in Seoul is still Sunday in UTC: the week is Seoul's.
        let at = seoul(monday, 0, 30);
        assert_eq!(at.date_naive(), sunday);
        let shown = periods_left(&p, at, used);
        assert_eq!(shown[0].first, monday);
        assert_eq!(shown[0].left, 0);
        assert_eq!(shown[1].first, date(2026, 12, 14));
        assert_eq!(shown.len(), 2);
        // A horizon of 0 days: only the week of today.
        let today_only = Policy {
            booking_horizon_days: 0,
            ..Policy::default()
        };
        assert_eq!(periods_left(&today_only, at, used).len(), 1);
        // Sixteen days ahead from a Wednesday: three weeks, none left out.
        let long = Policy {
            booking_horizon_days: 16,
            ..Policy::default()
        };
        let weeks = periods_left(&long, seoul(date(2026, 12, 2), 10, 0), |_| 1);
        let firsts: Vec<_> = weeks.iter().map(|w| w.first).collect();
        assert_eq!(firsts, vec![date(2026, 11, 30), monday, date(2026, 12, 14)]);
        assert!(weeks.iter().all(|w| w.left == 1));
    }

    #[test]
    fn a_window_is_bookable_until_its_booking_closes_before_its_end() {
        let p = Policy::default();
        let day = date(2026, 11, 26);
        // 12:00–15:00, booking closes 30 minutes before the end: at 14:30.
        let w = window(day, 12);
        assert_eq!(check_window(&p, seoul(day, 11, 59), &w), Ok(()));
        assert_eq!(check_window(&p, seoul(day, 13, 0), &w), Ok(()), "started");
        assert_eq!(check_window(&p, seoul(day, 14, 29), &w), Ok(()));
        assert_eq!(
            check_window(&p, seoul(day, 14, 30), &w),
            Err(Refusal::BookingClosed)
        );
        assert_eq!(
            check_window(&p, seoul(day, 16, 0), &w),
            Err(Refusal::BookingClosed)
        );
        let at_start = Policy {
            booking_close_minutes: 180,
            ..Policy::default()
        };
        assert_eq!(
            check_window(&at_start, seoul(day, 12, 0), &w),
            Err(Refusal::BookingClosed)
        );
    }

    #[test]
    fn the_earliest_bookable_end_selects_exactly_the_windows_still_taking_bookings() {
        let day = date(2026, 11, 26);
        let now = seoul(day, 14, 30);
        let end = seoul(day, 15, 0).naive_utc();
        for close in [0, 30, 31, 180] {
            let open = end > earliest_bookable_end(close, now);
            assert_eq!(open, booking_open(close, end, now), "{close}");
        }
        assert!(!booking_open(30, end, now));
        assert!(booking_open(29, end, now));
    }

    #[test]
    fn the_horizon_counts_days_in_the_service_zone() {
        let p = Policy::default();
        // 2026-11-26 00:30 in Seoul is still the 25th in UTC: today is the 26th.
        let now = seoul(date(2026, 11, 26), 0, 30);
        assert_eq!(today(&p, now), date(2026, 11, 26));
        assert_eq!(last_bookable_day(&p, now), date(2026, 12, 3));
        assert_eq!(
            check_window(&p, now, &window(date(2026, 12, 3), 15)),
            Ok(())
        );
        assert_eq!(
            check_window(&p, now, &window(date(2026, 12, 4), 9)),
            Err(Refusal::BeyondHorizon {
                last_day: date(2026, 12, 3)
            })
        );
    }

    #[test]
    fn a_suspended_store_sells_nothing() {
        let p = Policy::default();
        let day = date(2026, 11, 26);
        let mut w = window(day, 15);
        w.store_suspended = true;
        assert_eq!(
            check_window(&p, seoul(day, 9, 0), &w),
            Err(Refusal::StoreSuspended)
        );
    }

    #[test]
    fn rotation_is_judged_by_the_windows_date_not_today() {
        let p = Policy {
            rotation: Rotation::BirthYear,
            ..Policy::default()
        };
        // Born 1983: Wednesday. 2026-11-25 is a Wednesday, the 26th a Thursday.
        let now = seoul(date(2026, 11, 23), 9, 0);
        let wed = window(date(2026, 11, 25), 12);
        let thu = window(date(2026, 11, 26), 12);
        let sat = window(date(2026, 11, 28), 12);
        let one = Quantity::ONE;
        assert_eq!(check(&p, now, 1983, &wed, one), Ok(()));
        assert_eq!(
            check(&p, now, 1983, &thu, one),
            Err(Refusal::Rotation {
                weekday: Weekday::Wed
            })
        );
        assert_eq!(check(&p, now, 1983, &sat, one), Ok(()));
        // Off: any day.
        assert_eq!(check(&Policy::default(), now, 1983, &thu, one), Ok(()));
    }

    #[test]
    fn quantities_are_one_to_the_bound() {
        let q = |n| Quantity::new(n).unwrap();
        assert_eq!(check_quantity(q(1)), Ok(()));
        assert_eq!(check_quantity(q(MAX_QUANTITY)), Ok(()));
        for n in [MAX_QUANTITY + 1, i32::MAX] {
            assert_eq!(
                check_quantity(q(n)),
                Err(Refusal::BadQuantity { max: MAX_QUANTITY })
            );
        }
    }

    #[test]
    fn the_period_is_that_of_the_windows_date_across_weeks_and_years() {
        let p = Policy::default();
        // Sunday 2026-11-29 and Monday 2026-11-30 are in different weeks.
        assert_eq!(period_of(&p, date(2026, 11, 29)), date(2026, 11, 23));
        assert_eq!(period_of(&p, date(2026, 11, 30)), date(2026, 11, 30));
        // Friday 2027-01-01 belongs to the week that began Monday 2026-12-28.
        assert_eq!(period_of(&p, date(2027, 1, 1)), date(2026, 12, 28));
        assert_eq!(period_of(&p, date(2026, 12, 31)), date(2026, 12, 28));
        // Booked on a Sunday evening in Seoul (still Sunday in UTC too) for
        // Monday: the Monday's week counts, not the week of booking.
        let now = seoul(date(2026, 11, 29), 20, 0);
        let monday = date(2026, 11, 30);
        assert_ne!(period_of(&p, today(&p, now)), period_of(&p, monday));
        // Monday 00:30 in Seoul is Sunday 15:30 UTC: the service zone decides.
        let early = seoul(monday, 0, 30);
        assert_eq!(early.date_naive(), date(2026, 11, 29));
        assert_eq!(period_of(&p, today(&p, early)), monday);
    }

    #[test]
    fn cancelling_closes_the_cutoff_before_the_start() {
        let p = Policy::default();
        let day = date(2026, 11, 26);
        let start = seoul(day, 12, 0).naive_utc();
        assert!(cancellable(&p, seoul(day, 10, 59), start));
        assert!(!cancellable(&p, seoul(day, 11, 0), start));
        assert!(!cancellable(&p, seoul(day, 12, 30), start));
        let none = Policy {
            cancel_cutoff_minutes: 0,
            ..Policy::default()
        };
        assert!(cancellable(&none, seoul(day, 11, 59), start));
        assert!(!cancellable(&none, seoul(day, 12, 0), start));
        assert_eq!(cancel_deadline(&p, start), seoul(day, 11, 0).naive_utc());
        assert_eq!(cancel_deadline(&none, start), start);
    }

    #[test]
    fn pickup_closes_the_grace_after_the_window_ends() {
        let day = date(2026, 12, 1);
        let end = seoul(day, 15, 0).naive_utc();
        assert_eq!(pickup_deadline(30, end), seoul(day, 15, 30).naive_utc());
        assert_eq!(pickup_deadline(0, end), end);
        assert!(!pickup_closed(30, end, seoul(day, 15, 0)));
        assert!(!pickup_closed(30, end, seoul(day, 15, 30)));
        assert!(pickup_closed(
            30,
            end,
            seoul(day, 15, 30) + TimeDelta::microseconds(1)
        ));
        assert!(pickup_closed(30, end, seoul(day, 20, 0)));
        // No grace: closed the moment after the end.
        assert!(!pickup_closed(0, end, seoul(day, 15, 0)));
        assert!(pickup_closed(
            0,
            end,
            seoul(day, 15, 0) + TimeDelta::seconds(1)
        ));
    }

    #[test]
    fn the_earliest_open_end_selects_exactly_the_windows_still_open() {
        let day = date(2026, 12, 1);
        let now = seoul(day, 15, 30);
        assert_eq!(earliest_open_end(30, now), seoul(day, 15, 0).naive_utc());
        for grace in [0, 1, 30, 1440] {
            for minutes in -1500..=60 {
                for seconds in [-1, 0, 1] {
                    let end = (now + TimeDelta::minutes(minutes) + TimeDelta::seconds(seconds))
                        .naive_utc();
                    assert_eq!(
                        pickup_closed(grace, end, now),
                        end < earliest_open_end(grace, now),
                        "grace {grace}, end {end}"
                    );
                }
            }
        }
    }
}
