//! How a citizen is told what is left of their quota: one line per period a
//! booking can count against ([`rules::periods_left`]), each naming its dates,
//! so that the week shown is always the week being booked. The home page, the
//! citizen's list and the store page show the same lines.

use chrono::{NaiveDate, TimeDelta};

use crate::i18n::Tr;
use crate::policy::Policy;
use crate::reservations::rules::PeriodLeft;

/// One period's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaLine {
    /// The period's first day (`data-period`).
    pub first: NaiveDate,
    pub left: i32,
    /// "이번 주(12월 1일~7일): 2개 중 1개 남음".
    pub text: String,
}

/// The lines for `periods`, named from `today`: this week, next week, then
/// by their dates alone.
pub fn lines(t: &Tr, policy: &Policy, today: NaiveDate, periods: &[PeriodLeft]) -> Vec<QuotaLine> {
    let this = policy.period.start_of(today);
    let next = policy.period.end_of(today) + TimeDelta::days(1);
    periods
        .iter()
        .map(|p| {
            let range = t.date_range(p.first, p.last);
            let key = match p.first {
                first if first == this => "date.this_week",
                first if first == next => "date.next_week",
                _ => "date.week",
            };
            QuotaLine {
                first: p.first,
                left: p.left,
                text: t.fmt(
                    "quota.line",
                    &[
                        ("period", &t.fmt(key, &[("range", &range)])),
                        ("left", &p.left),
                        ("quota", &policy.quota_per_period),
                    ],
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::i18n::{Catalog, Lang};

    fn date(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    #[test]
    fn each_line_names_its_week_from_today() {
        let t = Tr::new(Arc::new(Catalog::load().unwrap()), Lang::Ko);
        let policy = Policy::default();
        let periods = [
            PeriodLeft {
                first: date(7),
                last: date(13),
                left: 0,
            },
            PeriodLeft {
                first: date(14),
                last: date(20),
                left: 2,
            },
            PeriodLeft {
                first: date(21),
                last: date(27),
                left: 1,
            },
        ];
        let shown = lines(&t, &policy, date(7), &periods);
        let texts: Vec<_> = shown.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "이번 주(12월 7일~13일): 2개 중 0개 남음",
                "다음 주(12월 14일~20일): 2개 중 2개 남음",
                "12월 21일~27일 주: 2개 중 1개 남음",
            ]
        );
        assert_eq!(shown[1].first, date(14));
        assert_eq!(shown[1].left, 2);
        let en = Tr::new(Arc::new(Catalog::load().unwrap()), Lang::En);
        assert_eq!(
            lines(&en, &policy, date(6), &periods[..1])[0].text,
            "next week (7–13 Dec): 0 of 2 left"
        );
    }
}
