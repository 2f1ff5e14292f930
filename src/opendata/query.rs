//! The questions the open-data API accepts, parsed from the query string: a
//! value that is out of range is refused here with the reason the client is
//! told, or clamped where SPEC §8 says so (`perPage`, `m`).

use std::collections::HashMap;

use crate::i18n::Tr;

/// `perPage` when none is given.
pub const DEFAULT_PER_PAGE: u32 = 500;
/// The largest `perPage`; a larger one is answered as this.
pub const MAX_PER_PAGE: u32 = 5000;
/// `m` (metres) when none is given.
pub const DEFAULT_RADIUS_M: f64 = 500.0;
/// The largest `m`; a larger one is answered as this.
pub const MAX_RADIUS_M: f64 = 5000.0;
/// The longest query string read; anything longer is refused whole.
pub const MAX_QUERY_BYTES: usize = 2048;
/// The longest `address` searched for, in characters.
pub const MAX_ADDRESS_CHARS: usize = 100;
/// The shortest `address` searched for, in characters other than whitespace:
/// enough for a district or a dong (`분당구`, `서현동`, `서울특별시 중구`), as
/// the 2020 service answered at most a district; one or two characters
/// (`서`, `서울`) would match a province or the whole country.
pub const MIN_ADDRESS_CHARS: usize = 3;
/// The most stores a `storesByAddr` answer holds, the first by code. The
/// 2020 service's largest district answered a few hundred.
pub const MAX_ADDRESS_STORES: usize = 1000;

/// Why a question was refused; [`BadQuery::message`] is the `message` of the
/// 400 answer, in the asker's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadQuery {
    /// The query string is longer than [`MAX_QUERY_BYTES`].
    QueryTooLong,
    Page,
    PerPage,
    /// A required parameter is missing or empty.
    Missing(&'static str),
    /// `lat` or `lng` is not a number within ± this many degrees.
    Coordinate(&'static str, u8),
    Radius,
    AddressTooLong,
    AddressTooShort,
}

impl BadQuery {
    pub fn message(self, t: &Tr) -> String {
        match self {
            BadQuery::QueryTooLong => t.fmt(
                "opendata.error.query_too_long",
                &[("max", &MAX_QUERY_BYTES)],
            ),
            BadQuery::Page => t.get("opendata.error.page").to_owned(),
            BadQuery::PerPage => t.get("opendata.error.per_page").to_owned(),
            BadQuery::Missing(name) => t.fmt("opendata.error.missing", &[("name", &name)]),
            BadQuery::Coordinate(name, limit) => t.fmt(
                "opendata.error.coordinate",
                &[("name", &name), ("limit", &limit)],
            ),
            BadQuery::Radius => t.get("opendata.error.radius").to_owned(),
            BadQuery::AddressTooLong => t.fmt(
                "opendata.error.address_long",
                &[("max", &MAX_ADDRESS_CHARS)],
            ),
            BadQuery::AddressTooShort => t.fmt(
                "opendata.error.address_short",
                &[("min", &MIN_ADDRESS_CHARS)],
            ),
        }
    }
}

/// The query string's parameters; the first of a repeated name counts.
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(query: &str) -> Result<Params, BadQuery> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(BadQuery::QueryTooLong);
        }
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Ok(Params(map))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim())
    }
}

/// A page of a paged endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    pub page: u32,
    pub per_page: u32,
}

impl PageQuery {
    pub fn parse(p: &Params) -> Result<PageQuery, BadQuery> {
        let page = match p.get("page") {
            None | Some("") => 1,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(BadQuery::Page),
            },
        };
        let per_page = match p.get("perPage") {
            None | Some("") => DEFAULT_PER_PAGE,
            Some(text) => match text.parse::<u64>() {
                Ok(n) if n >= 1 => {
                    u32::try_from(n.min(u64::from(MAX_PER_PAGE))).unwrap_or(MAX_PER_PAGE)
                }
                Ok(_) => return Err(BadQuery::PerPage),
                // A number too long for u64 is still a number: clamp it.
                Err(_) if is_digits(text) => MAX_PER_PAGE,
                Err(_) => return Err(BadQuery::PerPage),
            },
        };
        Ok(PageQuery { page, per_page })
    }

    /// The positions of this page's items among `total`, empty past the end.
    pub fn range(self, total: usize) -> std::ops::Range<usize> {
        let per = self.per_page as usize;
        let start = (self.page as usize - 1).saturating_mul(per).min(total);
        start..start.saturating_add(per).min(total)
    }

    /// Pages needed for `total` items (0 for none).
    pub fn total_pages(self, total: usize) -> usize {
        total.div_ceil(self.per_page as usize)
    }
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// A point and a radius.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoQuery {
    pub lat: f64,
    pub lng: f64,
    /// Metres, clamped to [`MAX_RADIUS_M`].
    pub m: f64,
}

impl GeoQuery {
    pub fn parse(p: &Params) -> Result<GeoQuery, BadQuery> {
        let lat = coordinate(p.get("lat"), "lat", 90)?;
        let lng = coordinate(p.get("lng"), "lng", 180)?;
        let m = match p.get("m") {
            None | Some("") => DEFAULT_RADIUS_M,
            Some(text) => match text.parse::<f64>() {
                Ok(m) if m >= 0.0 && !m.is_nan() => m.min(MAX_RADIUS_M),
                _ => return Err(BadQuery::Radius),
            },
        };
        Ok(GeoQuery { lat, lng, m })
    }

    /// What makes two questions the same answer (for its `ETag`).
    pub fn key(&self) -> (u64, u64, u64) {
        (self.lat.to_bits(), self.lng.to_bits(), self.m.to_bits())
    }
}

fn coordinate(text: Option<&str>, name: &'static str, limit: u8) -> Result<f64, BadQuery> {
    let text = match text {
        None | Some("") => return Err(BadQuery::Missing(name)),
        Some(t) => t,
    };
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x.abs() <= f64::from(limit) => Ok(x),
        _ => Err(BadQuery::Coordinate(name, limit)),
    }
}

/// An address question (`storesByAddr`, the map): the words a store's
/// address must all contain, [`MIN_ADDRESS_CHARS`] to [`MAX_ADDRESS_CHARS`]
/// characters of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressQuery {
    /// As asked, trimmed: the answer echoes it.
    text: String,
}

impl AddressQuery {
    pub fn parse(p: &Params) -> Result<AddressQuery, BadQuery> {
        let text = p.get("address").unwrap_or("");
        if text.is_empty() {
            return Err(BadQuery::Missing("address"));
        }
        if text.chars().count() > MAX_ADDRESS_CHARS || text.chars().any(char::is_control) {
            return Err(BadQuery::AddressTooLong);
        }
        if text.chars().filter(|c| !c.is_whitespace()).count() < MIN_ADDRESS_CHARS {
            return Err(BadQuery::AddressTooShort);
        }
        Ok(AddressQuery {
            text: text.to_owned(),
        })
    }

    /// The address as asked.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a store at `addr` answers the question: every word asked for
    /// (split at whitespace) occurs somewhere in it, in any order. So
    /// `경기도 성남시 분당구 서현동` finds `경기도 성남시 분당구 서현로 184 (서현동)`,
    /// where a road-name address keeps the dong in parentheses, as the 2020
    /// service did.
    pub fn matches(&self, addr: &str) -> bool {
        self.text.split_whitespace().all(|word| addr.contains(word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(q).unwrap()
    }

    #[test]
    fn pages_default_to_the_first_of_500_and_clamp_at_5000() {
        let p = PageQuery::parse(&params("")).unwrap();
        assert_eq!((p.page, p.per_page), (1, 500));
        let p = PageQuery::parse(&params("page=3&perPage=99999")).unwrap();
        assert_eq!((p.page, p.per_page), (3, 5000));
        let p = PageQuery::parse(&params("perPage=99999999999999999999999")).unwrap();
        assert_eq!(p.per_page, 5000);
        for q in [
            "page=0",
            "page=-1",
            "page=abc",
            "perPage=abc",
            "perPage=0",
            "perPage=-5",
        ] {
            assert!(PageQuery::parse(&params(q)).is_err(), "{q}");
        }
    }

    #[test]
    fn a_page_past_the_end_is_empty() {
        let p = PageQuery {
            page: 3,
            per_page: 10,
        };
        assert_eq!(p.range(25), 20..25);
        assert_eq!(p.range(20), 20..20);
        assert_eq!(p.total_pages(25), 3);
        let far = PageQuery {
            page: u32::MAX,
            per_page: 5000,
        };
        assert!(far.range(25_000).is_empty());
    }

    #[test]
    fn coordinates_must_be_numbers_on_the_earth_and_the_radius_is_clamped() {
        let g = GeoQuery::parse(&params("lat=37.5&lng=127&m=99999")).unwrap();
        assert_eq!((g.lat, g.lng, g.m), (37.5, 127.0, 5000.0));
        assert_eq!(
            GeoQuery::parse(&params("lat=37.5&lng=127")).unwrap().m,
            500.0
        );
        for q in [
            "lng=127",
            "lat=37.5",
            "lat=abc&lng=127",
            "lat=200&lng=127",
            "lat=37&lng=181",
            "lat=NaN&lng=127",
            "lat=inf&lng=127",
            "lat=37&lng=127&m=-5",
            "lat=37&lng=127&m=x",
        ] {
            assert!(GeoQuery::parse(&params(q)).is_err(), "{q}");
        }
    }

    fn address(text: &str) -> Result<String, BadQuery> {
        let q = format!(
            "address={}",
            form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
        );
        AddressQuery::parse(&params(&q)).map(|a| a.as_str().to_owned())
    }

    #[test]
    fn an_address_is_required_and_bounded() {
        assert_eq!(address("서울특별시 중구"), Ok("서울특별시 중구".into()));
        assert_eq!(address("  분당구 "), Ok("분당구".into()), "trimmed");
        assert_eq!(address(""), Err(BadQuery::Missing("address")));
        assert_eq!(address("   "), Err(BadQuery::Missing("address")));
        assert_eq!(
            AddressQuery::parse(&params("")),
            Err(BadQuery::Missing("address"))
        );
        assert_eq!(address("중\n구청"), Err(BadQuery::AddressTooLong));
        let long = "가".repeat(MAX_ADDRESS_CHARS + 1);
        assert_eq!(address(&long), Err(BadQuery::AddressTooLong));
        assert!(address(&long[..long.len() - 3]).is_ok());
        assert_eq!(
            Params::parse(&"a".repeat(10_000)).err(),
            Some(BadQuery::QueryTooLong)
        );
    }

    #[test]
    fn an_address_shorter_than_a_district_is_refused() {
        for short in ["서", "서울", "중구", "중 구", " 서 울 ", "a", "1 2"] {
            assert_eq!(address(short), Err(BadQuery::AddressTooShort), "{short}");
        }
        for enough in [
            "서현동",
            "분당구",
            "서울 중구",
            "서울특별시",
            "서울특별시 중구",
            "중구 1",
        ] {
            assert!(address(enough).is_ok(), "{enough}");
        }
    }

    #[test]
    fn every_refusal_has_a_message_in_both_languages() {
        let catalog = std::sync::Arc::new(crate::i18n::Catalog::load().unwrap());
        let ko = Tr::new(catalog.clone(), crate::i18n::Lang::Ko);
        let en = Tr::new(catalog, crate::i18n::Lang::En);
        let all = [
            BadQuery::QueryTooLong,
            BadQuery::Page,
            BadQuery::PerPage,
            BadQuery::Missing("lat"),
            BadQuery::Coordinate("lng", 180),
            BadQuery::Radius,
            BadQuery::AddressTooLong,
            BadQuery::AddressTooShort,
        ];
        for bad in all {
            let (k, e) = (bad.message(&ko), bad.message(&en));
            assert!(
                !k.contains("opendata.") && !e.contains("opendata."),
                "{bad:?}"
            );
            assert!(!k.contains('{') && !e.contains('{'), "{bad:?}: {k} / {e}");
            assert_ne!(k, e, "{bad:?}");
        }
        assert_eq!(
            BadQuery::Coordinate("lat", 90).message(&en),
            "lat must be a number from -90 to 90."
        );
        assert!(BadQuery::AddressTooShort.message(&ko).contains('3'));
        assert!(BadQuery::AddressTooShort.message(&en).contains('3'));
    }

    fn query(text: &str) -> AddressQuery {
        AddressQuery { text: text.into() }
    }

    #[test]
    fn every_word_of_the_address_must_occur_in_the_stores_in_any_order() {
        let road = "경기도 성남시 분당구 서현로210번길 2, 105호 (서현동, 성지하이츠텔)";
        let lot = "경기도 성남시 분당구 서현동 246";
        // (asked, found at the road-name address, found at the lot address)
        let cases = [
            ("경기도 성남시 분당구 서현동", true, true),
            ("성남시  분당구\t서현동", true, true),
            ("서현동 분당구", true, true),
            ("서현동", true, true),
            ("경기도 성남시", true, true),
            ("분당구 서현로210번길", true, false),
            ("경기도 성남시 분당구 정자동", false, false),
            ("서울특별시 서현동", false, false),
            ("서현동분당구", false, false),
        ];
        for (asked, in_road, in_lot) in cases {
            assert_eq!(query(asked).matches(road), in_road, "{asked} in {road}");
            assert_eq!(query(asked).matches(lot), in_lot, "{asked} in {lot}");
        }
    }
}
