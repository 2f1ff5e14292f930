//! The rules of dependants that need no database: who may be booked for (the
//! policy's proxy rule), why an addition or a removal is refused, with its
//! words, and the line that says who collects for whom.

use crate::accounts::email::mask_name;
use crate::i18n::Tr;
use crate::policy::Policy;

/// Whether someone born in `birth_year` may be booked for by someone else:
/// born in or after `proxy_born_from`, or in or before `proxy_born_until`
/// (Korea's 2020 proxy rule: children and the elderly).
pub fn may_be_dependant(policy: &Policy, birth_year: i32) -> bool {
    birth_year >= policy.proxy_born_from || birth_year <= policy.proxy_born_until
}

/// The proxy rule in words, for a refusal and for the page's hint.
pub fn proxy_rule_text(t: &Tr, policy: &Policy) -> String {
    t.fmt(
        "dependants.rule",
        &[
            ("from", &policy.proxy_born_from),
            ("until", &policy.proxy_born_until),
        ],
    )
}

/// Why a person was not added, in the order the checks run: the account
/// first, then what was typed, then what needs the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The account's e-mail address is not confirmed yet.
    Unverified,
    /// The account already books for `max` people.
    TooMany { max: i32 },
    /// Born after `until` and before `from`: the proxy rule does not cover
    /// them.
    OutsideProxyYears { from: i32, until: i32 },
    /// The citizen's own national ID.
    Oneself,
    /// Already in this account's list: saying so tells nothing new.
    AlreadyYours,
    /// The person has an account of their own, or is someone else's
    /// dependant. One answer for both, which says neither: the page must not
    /// tell whether a number has an account or a guardian.
    Unavailable,
}

impl Refusal {
    /// Its name in the page's `data-refusal`.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Unverified => "unverified",
            Refusal::TooMany { .. } => "too_many",
            Refusal::OutsideProxyYears { .. } => "proxy_years",
            Refusal::Oneself => "oneself",
            Refusal::AlreadyYours => "already_yours",
            Refusal::Unavailable => "unavailable",
        }
    }

    /// The form field the message stands next to; `None` is the form as a
    /// whole.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Refusal::Unverified | Refusal::TooMany { .. } => None,
            Refusal::OutsideProxyYears { .. }
            | Refusal::Oneself
            | Refusal::AlreadyYours
            | Refusal::Unavailable => Some("national_id"),
        }
    }

    /// What the citizen reads, in `t`'s language.
    pub fn message(&self, t: &Tr) -> String {
        match self {
            Refusal::Unverified => t.get("dependants.refusal.unverified").to_owned(),
            Refusal::TooMany { max } => t.fmt("dependants.refusal.too_many", &[("max", max)]),
            Refusal::OutsideProxyYears { from, until } => t.fmt(
                "dependants.refusal.proxy_years",
                &[("from", from), ("until", until)],
            ),
            Refusal::Oneself => t.get("dependants.refusal.oneself").to_owned(),
            Refusal::AlreadyYours => t.get("dependants.refusal.already_yours").to_owned(),
            Refusal::Unavailable => t.get("dependants.refusal.unavailable").to_owned(),
        }
    }
}

/// Why a dependant was not removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveRefusal {
    /// No current dependant of this account has this id (another account's
    /// is as absent as one that never existed).
    NotFound,
    /// A reservation made for them is still active: it is picked up,
    /// cancelled or expired first.
    ActiveReservation,
}

/// "대리 수령: 홍*동(2012년생) 대신 김*지": who collects (`collector`, the
/// guardian's name) for whom (`dependant`, born in `birth_year`), both names
/// masked. The reservation page, its confirmation mail and the pickup screen
/// all say it with this.
pub fn proxy_line(t: &Tr, collector: &str, dependant: &str, birth_year: i32) -> String {
    t.fmt(
        "proxy.line",
        &[
            ("collector", &mask_name(collector)),
            ("dependant", &mask_name(dependant)),
            ("year", &birth_year),
        ],
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::i18n::{Catalog, Lang};

    fn tr(lang: Lang) -> Tr {
        Tr::new(Arc::new(Catalog::load().unwrap()), lang)
    }

    #[test]
    fn children_and_the_elderly_may_be_booked_for_and_nobody_between() {
        let p = Policy::default();
        for year in [2010, 2015, 2026, 1940, 1931] {
            assert!(may_be_dependant(&p, year), "{year}");
        }
        for year in [2009, 1985, 1941] {
            assert!(!may_be_dependant(&p, year), "{year}");
        }
        let wider = Policy {
            proxy_born_from: 2005,
            proxy_born_until: 1950,
            ..Policy::default()
        };
        assert!(may_be_dependant(&wider, 2007) && may_be_dependant(&wider, 1948));
        assert!(!may_be_dependant(&wider, 1985));
    }

    #[test]
    fn the_proxy_line_masks_both_names_and_gives_the_birth_year() {
        assert_eq!(
            proxy_line(&tr(Lang::Ko), "김민지", "홍길동", 2012),
            "대리 수령: 홍*동(2012년생) 대신 김*지"
        );
        assert_eq!(
            proxy_line(&tr(Lang::En), "Kim Jiwoo", "Hong Gildong", 2012),
            "Proxy pickup: K*******o collects for H**********g (born 2012)"
        );
    }

    #[test]
    fn the_two_cases_that_must_not_be_told_apart_share_one_sentence() {
        for lang in Lang::ALL {
            let t = tr(lang);
            let neutral = Refusal::Unavailable.message(&t);
            assert!(!neutral.is_empty());
            assert_ne!(neutral, Refusal::AlreadyYours.message(&t));
        }
        assert_eq!(Refusal::Unavailable.field(), Some("national_id"));
        assert_eq!(Refusal::TooMany { max: 4 }.field(), None);
        assert!(
            Refusal::OutsideProxyYears {
                from: 2010,
                until: 1940
            }
            .message(&tr(Lang::Ko))
            .contains("2010")
        );
    }
}
