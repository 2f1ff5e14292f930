//! The Korean resident registration number (SPEC §5): parsed and checked at the
//! edge, then reduced to what may be kept — a keyed hash, the birth date and a
//! masked form. The number itself is never stored, logged or shown in full.

use chrono::{Datelike, NaiveDate};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const WEIGHTS: [u32; 12] = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5];

/// Why a number is not a valid resident registration number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NationalIdError {
    #[error("nothing was entered")]
    Missing,
    #[error("format: 13 digits as YYMMDD-SNNNNNC")]
    Format,
    #[error("the birth date is not a real date")]
    BirthDate,
    #[error("the birth date is in the future")]
    FutureBirthDate,
    #[error("the 7th digit must be 1 to 8")]
    CenturyDigit,
    #[error("the check digit does not match")]
    CheckDigit,
}

impl NationalIdError {
    /// Locale key of the message shown next to the field.
    pub fn message_key(self) -> &'static str {
        match self {
            NationalIdError::Missing => "form.error.required",
            NationalIdError::Format => "national_id.error.format",
            NationalIdError::BirthDate => "national_id.error.birth_date",
            NationalIdError::FutureBirthDate => "national_id.error.future_birth_date",
            NationalIdError::CenturyDigit => "national_id.error.century",
            NationalIdError::CheckDigit => "national_id.error.check_digit",
        }
    }
}

/// A valid number. Deliberately not `Debug`, `Display` or `Serialize`: it cannot
/// end up in a log line or a page by accident.
pub struct NationalId {
    digits: [u8; 13],
    birth_date: NaiveDate,
}

impl NationalId {
    /// Accepts `YYMMDD-SNNNNNC` or the 13 digits without the dash, with
    /// surrounding spaces ignored. `today` is the date in the service time zone:
    /// nobody is born after it, so a later birth date is a mistyped century digit
    /// or a made-up number. Someone born today is accepted.
    pub fn parse(input: &str, today: NaiveDate) -> Result<NationalId, NationalIdError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(NationalIdError::Missing);
        }
        let compact: String = match text.len() {
            14 if text.as_bytes()[6] == b'-' => format!("{}{}", &text[..6], &text[7..]),
            13 => text.to_owned(),
            _ => return Err(NationalIdError::Format),
        };
        let mut digits = [0u8; 13];
        for (slot, ch) in digits.iter_mut().zip(compact.bytes()) {
            if !ch.is_ascii_digit() {
                return Err(NationalIdError::Format);
            }
            *slot = ch - b'0';
        }
        let century = match digits[6] {
            1 | 2 | 5 | 6 => 1900,
            3 | 4 | 7 | 8 => 2000,
            _ => return Err(NationalIdError::CenturyDigit),
        };
        let two = |i: usize| u32::from(digits[i]) * 10 + u32::from(digits[i + 1]);
        let year = century + i32::try_from(two(0)).map_err(|_| NationalIdError::Format)?;
        let birth_date =
            NaiveDate::from_ymd_opt(year, two(2), two(4)).ok_or(NationalIdError::BirthDate)?;
        if birth_date > today {
            return Err(NationalIdError::FutureBirthDate);
        }
        if check_digit(&digits) != digits[12] {
            return Err(NationalIdError::CheckDigit);
        }
        Ok(NationalId { digits, birth_date })
    }

    pub fn birth_date(&self) -> NaiveDate {
        self.birth_date
    }

    pub fn birth_year(&self) -> i32 {
        self.birth_date.year()
    }

    /// `850101-1******`: birth date and the 7th digit, as Korean services show it.
    pub fn masked(&self) -> String {
        let head: String = self.digits[..7]
            .iter()
            .map(|d| char::from(b'0' + d))
            .collect();
        format!("{}-{}******", &head[..6], &head[6..])
    }

    /// HMAC-SHA256 of the 13 digits under the server's key, hex: unique per
    /// person, useless without the key.
    pub fn keyed_hash(&self, key: &[u8]) -> String {
        #[expect(
            clippy::expect_used,
            reason = "HMAC accepts keys of any length; `new_from_slice` cannot fail for it"
        )]
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("an HMAC key");
        let ascii: Vec<u8> = self.digits.iter().map(|d| b'0' + d).collect();
        mac.update(&ascii);
        super::hex(&mac.finalize().into_bytes())
    }
}

/// `C = (11 − Σ dᵢ·wᵢ mod 11) mod 10` over the first 12 digits.
fn check_digit(digits: &[u8; 13]) -> u8 {
    let sum: u32 = digits[..12]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(*d) * w)
        .sum();
    u8::try_from((11 - sum % 11) % 10).unwrap_or(0)
}

/// Completes 12 digits with their check digit: for demo data and tests.
pub fn with_check_digit(first12: &str) -> Option<String> {
    if first12.len() != 12 || !first12.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits = [0u8; 13];
    for (slot, b) in digits.iter_mut().zip(first12.bytes()) {
        *slot = b - b'0';
    }
    Some(format!("{first12}{}", check_digit(&digits)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(first12: &str) -> String {
        with_check_digit(first12).unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// A `today` late enough for every number these tests use.
    fn parse(input: &str) -> Result<NationalId, NationalIdError> {
        NationalId::parse(input, date(2100, 1, 1))
    }

    #[test]
    fn an_empty_field_is_missing_not_malformed() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        for empty in ["", "   "] {
            assert_eq!(
                NationalId::parse(empty, today).err(),
                Some(NationalIdError::Missing)
            );
        }
        assert_eq!(
            NationalIdError::Missing.message_key(),
            "form.error.required"
        );
    }

    #[test]
    fn a_valid_number_parses_with_or_without_dash() {
        let n = valid("850101123456");
        let dashed = format!("{}-{}", &n[..6], &n[6..]);
        for input in [n.as_str(), dashed.as_str(), &format!("  {dashed} ")] {
            let id = parse(input).unwrap();
            assert_eq!(
                id.birth_date(),
                NaiveDate::from_ymd_opt(1985, 1, 1).unwrap()
            );
            assert_eq!(id.masked(), "850101-1******");
        }
    }

    #[test]
    fn every_century_digit_gives_its_century() {
        for (s, year) in [
            ('1', 1999),
            ('2', 1999),
            ('5', 1999),
            ('6', 1999),
            ('3', 2099),
            ('4', 2099),
            ('7', 2099),
            ('8', 2099),
        ] {
            let id = parse(&valid(&format!("991231{s}23456"))).unwrap();
            assert_eq!(id.birth_year(), year, "7th digit {s}");
        }
    }

    #[test]
    fn the_check_digit_follows_the_weights() {
        // 9·2 + 0·3 + 0·4 + 1·5 + 0·6 + 1·7 + 1·8 = 38; 38 mod 11 = 5; (11 − 5) mod 10 = 6.
        assert_eq!(valid("900101100000"), "9001011000006");
        assert!(parse("900101-1000006").is_ok());
    }

    #[test]
    fn each_kind_of_invalid_number_says_what_failed() {
        let ok = valid("850101123456");
        let wrong_check = format!("{}{}", &ok[..12], (ok.as_bytes()[12] - b'0' + 1) % 10);
        let cases: Vec<(String, NationalIdError)> = vec![
            (String::new(), NationalIdError::Missing),
            ("85010-11234567".into(), NationalIdError::Format),
            ("8501011234".into(), NationalIdError::Format),
            ("85010112345678".into(), NationalIdError::Format),
            ("8501a11234567".into(), NationalIdError::Format),
            ("850101_1234567".into(), NationalIdError::Format),
            ("８５０１０１１２３４５６７".into(), NationalIdError::Format),
            (valid("850230123456"), NationalIdError::BirthDate),
            (valid("851301123456"), NationalIdError::BirthDate),
            (valid("850101923456"), NationalIdError::CenturyDigit),
            (valid("850101023456"), NationalIdError::CenturyDigit),
            (wrong_check, NationalIdError::CheckDigit),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(&input).err(), Some(expected), "{input:?}");
        }
    }

    #[test]
    fn a_birth_date_after_today_is_refused_and_today_itself_is_accepted() {
        let today = date(2020, 3, 12);
        let born_today = valid("200312323456");
        let born_tomorrow = valid("200313323456");
        let born_yesterday = valid("200311423456");
        assert_eq!(
            NationalId::parse(&born_today, today).unwrap().birth_date(),
            today
        );
        assert!(NationalId::parse(&born_yesterday, today).is_ok());
        assert_eq!(
            NationalId::parse(&born_tomorrow, today).err(),
            Some(NationalIdError::FutureBirthDate)
        );
        // A century digit for the 2000s on a 1990s birth year: the far future.
        assert_eq!(
            NationalId::parse(&valid("991231323456"), today).err(),
            Some(NationalIdError::FutureBirthDate)
        );
        assert!(NationalId::parse(&valid("991231123456"), today).is_ok());
    }

    #[test]
    fn the_date_is_checked_before_it_is_compared_with_today() {
        let today = date(2020, 3, 12);
        assert_eq!(
            NationalId::parse(&valid("201301323456"), today).err(),
            Some(NationalIdError::BirthDate)
        );
    }

    #[test]
    fn leap_days_are_real_dates_only_in_leap_years() {
        assert!(parse(&valid("000229323456")).is_ok());
        assert_eq!(
            parse(&valid("010229323456")).err(),
            Some(NationalIdError::BirthDate)
        );
    }

    #[test]
    fn the_hash_is_keyed_and_stable() {
        let id = parse(&valid("850101123456")).unwrap();
        let a = id.keyed_hash(b"key one");
        assert_eq!(a.len(), 64);
        assert_eq!(a, id.keyed_hash(b"key one"));
        assert_ne!(a, id.keyed_hash(b"key two"));
        assert!(!a.contains("850101"));
    }
}
