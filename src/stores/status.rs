//! A store's stock as the public sees it (SPEC §6): the status band the 2020
//! public-mask API reported (`remain_stat`) for the masks remaining today
//! (counted by [`crate::stock::StockDay::remaining`]).

/// Status bands of SPEC §6, as maps and apps colour them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemainStat {
    /// 100 or more.
    Plenty,
    /// 30–99.
    Some,
    /// 2–29.
    Few,
    /// 0–1.
    Empty,
    /// Sales stopped: an administrator suspended the store.
    Break,
}

impl RemainStat {
    /// The band of `remaining` masks, or `Break` for a suspended store whatever
    /// it has left.
    pub fn of(remaining: i64, suspended: bool) -> RemainStat {
        match remaining {
            _ if suspended => RemainStat::Break,
            100.. => RemainStat::Plenty,
            30..=99 => RemainStat::Some,
            2..=29 => RemainStat::Few,
            _ => RemainStat::Empty,
        }
    }

    /// The status for a store that may have no supply today: `None` (no data)
    /// unless it has a store-day, except that a suspended store is `Break`
    /// either way — its sales are stopped whether or not supply was allocated.
    pub fn of_day(remaining: Option<i64>, suspended: bool) -> Option<RemainStat> {
        match remaining {
            _ if suspended => Some(RemainStat::Break),
            Some(r) => Some(RemainStat::of(r, false)),
            None => None,
        }
    }

    /// The value of `remain_stat` in the open data and of `data-remain-stat`
    /// on pages.
    pub fn as_str(self) -> &'static str {
        match self {
            RemainStat::Plenty => "plenty",
            RemainStat::Some => "some",
            RemainStat::Few => "few",
            RemainStat::Empty => "empty",
            RemainStat::Break => "break",
        }
    }

    /// The locale key of the status's words ("100개 이상", "판매 중지", …).
    pub fn label_key(self) -> &'static str {
        match self {
            RemainStat::Plenty => "stock.status.plenty",
            RemainStat::Some => "stock.status.some",
            RemainStat::Few => "stock.status.few",
            RemainStat::Empty => "stock.status.empty",
            RemainStat::Break => "stock.status.break",
        }
    }
}

/// The locale key for a store with no supply today.
pub const NO_DATA_KEY: &str = "stock.status.no_data";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_the_thresholds_of_the_public_api() {
        let band = |r| RemainStat::of(r, false).as_str();
        assert_eq!(band(0), "empty");
        assert_eq!(band(1), "empty");
        assert_eq!(band(2), "few");
        assert_eq!(band(29), "few");
        assert_eq!(band(30), "some");
        assert_eq!(band(99), "some");
        assert_eq!(band(100), "plenty");
        assert_eq!(band(25_000), "plenty");
        assert_eq!(RemainStat::of(500, true), RemainStat::Break);
    }

    #[test]
    fn a_store_without_supply_has_no_status_unless_suspended() {
        assert_eq!(RemainStat::of_day(None, false), None);
        assert_eq!(RemainStat::of_day(None, true), Some(RemainStat::Break));
        assert_eq!(RemainStat::of_day(Some(1), false), Some(RemainStat::Empty));
    }
}
