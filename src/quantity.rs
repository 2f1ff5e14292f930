//! A number of masks taken or given back: at least one. Parsed where it comes
//! in — a form, a command, a row — so that the quota counter, the stock takes
//! and the give-backs behind them cannot be asked to move zero or a negative
//! number of masks.
//!
//! The field is private: outside this module a `Quantity` comes only from
//! [`Quantity::new`], [`TryFrom<i32>`], [`str::parse`] or
//! [`Quantity::from_stored`], each of which refuses what is not at least one.
//!
//! ```compile_fail
//! let q = mask_reservation::quantity::Quantity(0);
//! ```

use std::fmt;
use std::str::FromStr;

use diesel::result::Error as DieselError;

/// At least one mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(i32);

/// What is not a quantity: not a whole number, or less than one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a quantity of masks (a whole number, at least 1)")]
pub struct NotAQuantity;

impl Quantity {
    pub const ONE: Quantity = Quantity(1);

    /// The quantity `n`, if it is at least one.
    ///
    /// ```
    /// use mask_reservation::quantity::Quantity;
    /// assert_eq!(Quantity::new(2).map(Quantity::get), Some(2));
    /// assert_eq!(Quantity::new(0), None);
    /// ```
    pub fn new(n: i32) -> Option<Quantity> {
        (n >= 1).then_some(Quantity(n))
    }

    pub fn get(self) -> i32 {
        self.0
    }

    /// A quantity read back from a column whose `CHECK` keeps it above zero
    /// (a reservation's, a sale's): a row that breaks it is corrupt, and the
    /// read fails with an error that names the value, as a row diesel could
    /// not read would.
    pub fn from_stored(n: i32) -> Result<Quantity, DieselError> {
        Quantity::new(n).ok_or_else(|| {
            DieselError::DeserializationError(
                format!("a stored quantity is {n}: {NotAQuantity}").into(),
            )
        })
    }
}

impl TryFrom<i32> for Quantity {
    type Error = NotAQuantity;

    fn try_from(n: i32) -> Result<Quantity, NotAQuantity> {
        Quantity::new(n).ok_or(NotAQuantity)
    }
}

/// A quantity as typed, without surrounding spaces: digits only (an optional
/// `+` as [`i32`] reads it), at least one.
impl FromStr for Quantity {
    type Err = NotAQuantity;

    fn from_str(text: &str) -> Result<Quantity, NotAQuantity> {
        text.parse::<i32>()
            .map_err(|_| NotAQuantity)
            .and_then(Quantity::try_from)
    }
}

impl From<Quantity> for i32 {
    fn from(q: Quantity) -> i32 {
        q.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_and_more_are_quantities_zero_and_less_are_not() {
        for n in [1, 2, 100, i32::MAX] {
            assert_eq!(Quantity::new(n).map(Quantity::get), Some(n));
            assert_eq!(Quantity::try_from(n).map(i32::from), Ok(n));
        }
        for n in [0, -1, i32::MIN] {
            assert_eq!(Quantity::new(n), None);
            assert_eq!(Quantity::try_from(n), Err(NotAQuantity));
        }
    }

    #[test]
    fn typed_text_is_a_quantity_only_when_it_is_a_whole_number_of_at_least_one() {
        assert_eq!("1".parse::<Quantity>().map(Quantity::get), Ok(1));
        assert_eq!("100".parse::<Quantity>().map(Quantity::get), Ok(100));
        for bad in ["0", "-1", "", "abc", "1.5", " 1", "1e3", "99999999999999"] {
            assert_eq!(bad.parse::<Quantity>(), Err(NotAQuantity), "{bad:?}");
        }
    }

    #[test]
    fn a_stored_quantity_below_one_is_a_read_error_naming_the_value() {
        assert_eq!(Quantity::from_stored(3).map(Quantity::get).ok(), Some(3));
        let Err(DieselError::DeserializationError(e)) = Quantity::from_stored(0) else {
            panic!("0 is no stored quantity");
        };
        assert!(e.to_string().contains("a stored quantity is 0"), "{e}");
        assert!(Quantity::from_stored(-2).is_err());
    }

    #[test]
    fn a_quantity_shows_as_its_number_and_orders_by_it() {
        let (one, two) = (Quantity::new(1), Quantity::new(2));
        assert_eq!(one, Some(Quantity::ONE));
        assert!(one < two);
        assert_eq!(two.map(|q| q.to_string()).as_deref(), Some("2"));
    }
}
