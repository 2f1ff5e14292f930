//! Long lists shown a page at a time: the `page` query parameter, parsed, and
//! the links to the pages either side that keep the list's other filters.

use crate::i18n::Tr;
use crate::web::errors::AppError;

/// Rows on one page of an administrator's list.
pub const PER_PAGE: i64 = 50;

/// A `page` parameter: absent or empty is the first page; anything but a whole
/// number from 1 is refused (400), a page past the end shows an empty list.
pub fn parse_page(raw: Option<&str>) -> Result<i64, AppError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(1),
        Some(p) => p
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| {
                AppError::BadRequest(format!("page must be a whole number from 1, not {p:?}"))
            }),
    }
}

/// Where a list stands: which page, of how many, and the links around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pages {
    pub number: i64,
    /// Matching rows on every page together.
    pub total: i64,
    /// At least 1, so that an empty list reads "page 1 of 1".
    pub pages: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pages {
    /// Page `number` of `total` rows, `per_page` a page; `link(n)` is the URL of
    /// page `n` with the list's other parameters.
    pub fn new(number: i64, total: i64, per_page: i64, link: impl Fn(i64) -> String) -> Pages {
        let pages = ((total + per_page - 1) / per_page.max(1)).max(1);
        Pages {
            number,
            total,
            pages,
            prev: (number > 1).then(|| link((number - 1).min(pages))),
            next: (number < pages).then(|| link(number + 1)),
        }
    }

    /// "Page 2 of 7" in the visitor's language.
    pub fn position(&self, t: &Tr) -> String {
        t.fmt(
            "paging.position",
            &[("page", &self.number), ("pages", &self.pages)],
        )
    }

    /// The rows to skip to reach page `number`.
    pub fn offset(number: i64, per_page: i64) -> i64 {
        (number - 1).saturating_mul(per_page)
    }
}

/// `path?query` from name/value pairs, leaving out the empty ones.
pub fn link(path: &str, params: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(name, value);
    }
    let q = q.finish();
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{q}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_whole_numbers_from_one() {
        assert_eq!(parse_page(None).ok(), Some(1));
        assert_eq!(parse_page(Some(" ")).ok(), Some(1));
        assert_eq!(parse_page(Some("3")).ok(), Some(3));
        for bad in ["0", "-1", "1.5", "x", "99999999999999999999"] {
            assert!(parse_page(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_point_to_the_neighbours_and_keep_the_filters() {
        let to = |n: i64| {
            link(
                "/admin/stores",
                &[("q", "중구 약국"), ("page", &n.to_string())],
            )
        };
        let p = Pages::new(2, 120, 50, to);
        assert_eq!(p.pages, 3);
        assert_eq!(
            p.prev.as_deref(),
            Some("/admin/stores?q=%EC%A4%91%EA%B5%AC+%EC%95%BD%EA%B5%AD&page=1")
        );
        assert!(p.next.as_deref().is_some_and(|l| l.ends_with("page=3")));
        let last = Pages::new(3, 120, 50, to);
        assert_eq!(last.next, None);
        let empty = Pages::new(1, 0, 50, to);
        assert_eq!((empty.pages, empty.prev, empty.next), (1, None, None));
        let beyond = Pages::new(9, 120, 50, to);
        assert!(
            beyond
                .prev
                .as_deref()
                .is_some_and(|l| l.ends_with("page=3"))
        );
        assert_eq!(Pages::offset(3, 50), 100);
        assert_eq!(link("/a", &[("q", "")]), "/a");
    }
}
