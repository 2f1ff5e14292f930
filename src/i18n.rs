//! Languages: Korean by default; English and Traditional Chinese (`zh-TW`)
//! complete. Every user-facing string lives in `locales/*.toml`; pages look
//! strings up through [`Tr`].

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use chrono::{Datelike, NaiveDate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Ko,
    En,
    /// Traditional Chinese as written in Taiwan.
    ZhTw,
}

/// How well a language tag is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// The language asked for.
    Asked(Lang),
    /// Simplified Chinese: we have only Traditional, which its readers can
    /// read but did not ask for.
    Substitute(Lang),
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Ko, Lang::En, Lang::ZhTw];

    pub fn code(self) -> &'static str {
        match self {
            Lang::Ko => "ko",
            Lang::En => "en",
            Lang::ZhTw => "zh-TW",
        }
    }

    /// The language's name in itself, for the switch.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::Ko => "한국어",
            Lang::En => "English",
            Lang::ZhTw => "繁體中文",
        }
    }

    /// The language a tag (`ko-KR`, `en`, `zh-Hant-TW`) asks for, if we have
    /// it. Simplified Chinese is not one of ours (see [`Lang::from_accept_language`]).
    pub fn from_code(code: &str) -> Option<Lang> {
        match fit(code)? {
            Fit::Asked(lang) => Some(lang),
            Fit::Substitute(_) => None,
        }
    }

    /// Picks from an `Accept-Language` header by quality; Korean when nothing fits.
    ///
    /// A Simplified Chinese tag (`zh-CN`, `zh-SG`, `zh-Hans…`) counts only
    /// when no other language in the header is one we have: its readers read
    /// Traditional Chinese more easily than Korean, but a second language they
    /// named (often English) is the one they asked for.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        let mut substitute: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q <= 0.0 {
                continue;
            }
            let slot = match fit(tag) {
                Some(Fit::Asked(lang)) => Some((&mut best, lang)),
                Some(Fit::Substitute(lang)) => Some((&mut substitute, lang)),
                None => None,
            };
            if let Some((slot, lang)) = slot
                && slot.is_none_or(|(bq, _)| q > bq)
            {
                *slot = Some((q, lang));
            }
        }
        best.or(substitute).map_or(Lang::Ko, |(_, l)| l)
    }
}

/// Reads a BCP 47 tag's language, script and region subtags.
fn fit(tag: &str) -> Option<Fit> {
    let lower = tag.trim().to_ascii_lowercase();
    let mut subtags = lower.split(['-', '_']);
    match subtags.next()? {
        "ko" => Some(Fit::Asked(Lang::Ko)),
        "en" => Some(Fit::Asked(Lang::En)),
        // Traditional Chinese is the only Chinese we have, so a plain `zh`
        // (or a region we do not know) gets it. The script subtag, when
        // given, outranks the region: `zh-Hant-CN` asks for Traditional.
        "zh" => {
            let (mut script, mut region) = (None, None);
            for sub in subtags {
                match sub.len() {
                    4 if script.is_none() => script = Some(sub),
                    2 | 3 if region.is_none() => region = Some(sub),
                    _ => {}
                }
            }
            let simplified = match script {
                Some(script) => script == "hans",
                None => matches!(region, Some("cn" | "sg" | "my")),
            };
            Some(if simplified {
                Fit::Substitute(Lang::ZhTw)
            } else {
                Fit::Asked(Lang::ZhTw)
            })
        }
        _ => None,
    }
}

/// All strings of all languages, loaded once at start.
#[derive(Debug)]
pub struct Catalog {
    strings: HashMap<Lang, HashMap<String, String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("locale file {lang}.toml: {reason}")]
pub struct CatalogError {
    lang: &'static str,
    reason: String,
}

const SOURCES: [(Lang, &str); 3] = [
    (Lang::Ko, include_str!("../locales/ko.toml")),
    (Lang::En, include_str!("../locales/en.toml")),
    (Lang::ZhTw, include_str!("../locales/zh-TW.toml")),
];

impl Catalog {
    pub fn load() -> Result<Catalog, CatalogError> {
        let mut strings = HashMap::new();
        for (lang, source) in SOURCES {
            let err = |reason: String| CatalogError {
                lang: lang.code(),
                reason,
            };
            let table: toml::Table = source.parse().map_err(|e| err(format!("{e}")))?;
            let mut flat = HashMap::new();
            flatten("", &table, &mut flat).map_err(err)?;
            strings.insert(lang, flat);
        }
        Ok(Catalog { strings })
    }

    /// The catalog for the rare request that reaches a page without app state
    /// (an error page rendered before routing).
    pub fn fallback() -> Arc<Catalog> {
        static FALLBACK: LazyLock<Arc<Catalog>> = LazyLock::new(|| {
            #[expect(
                clippy::expect_used,
                reason = "the locale files are compiled in, and every start and test loads them first"
            )]
            Arc::new(Catalog::load().expect("the compiled-in locale files parse"))
        });
        FALLBACK.clone()
    }

    pub fn keys(&self, lang: Lang) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .strings
            .get(&lang)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        keys
    }

    pub fn get(&self, lang: Lang, key: &str) -> Option<&str> {
        self.strings.get(&lang)?.get(key).map(String::as_str)
    }
}

fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut HashMap<String, String>,
) -> Result<(), String> {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            toml::Value::Table(t) => flatten(&key, t, out)?,
            _ => return Err(format!("`{key}` must be a string or a table")),
        }
    }
    Ok(())
}

/// `text` with each `{name}` of `args` replaced by its value, in one pass
/// and one allocation (pages fill dozens per request). A value is written as
/// it is, never searched for placeholders itself (a citizen named `{code}`
/// stays so); a `{…}` that names no argument is kept as written.
fn fill(text: &str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len() + 16 * args.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let arg = after.find('}').and_then(|close| {
            let name = &after[..close];
            args.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, value)| (close, value))
        });
        match arg {
            Some((close, value)) => {
                // Writing into a String cannot fail.
                let _ = write!(out, "{value}");
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A translator bound to one language: what templates call as `t.get("key")`.
#[derive(Clone)]
pub struct Tr {
    pub lang: Lang,
    catalog: Arc<Catalog>,
}

impl Tr {
    pub fn new(catalog: Arc<Catalog>, lang: Lang) -> Tr {
        Tr { lang, catalog }
    }

    /// The string for `key`; a missing key shows as itself (and a test fails).
    pub fn get<'a>(&'a self, key: &'a str) -> &'a str {
        self.catalog.get(self.lang, key).unwrap_or(key)
    }

    /// The string for `key` with `{name}` placeholders filled in.
    pub fn fmt(&self, key: &str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
        fill(self.get(key), args)
    }

    pub fn code(&self) -> &'static str {
        self.lang.code()
    }

    /// The same catalog in `lang`: for a mail written to someone other than
    /// the visitor, in the language they chose.
    pub fn in_lang(&self, lang: Lang) -> Tr {
        Tr::new(self.catalog.clone(), lang)
    }

    /// The string for `key` in the form the language uses for `n` things
    /// (`key.one`, `key.other`), its placeholders filled: "1 second",
    /// "2 seconds". Both forms exist in every locale file (the key test wants
    /// the same keys everywhere); a language with one form reads `key.other`.
    pub fn count<N: Copy + PartialEq + From<u8>>(
        &self,
        key: &str,
        n: N,
        args: &[(&str, &dyn std::fmt::Display)],
    ) -> String {
        let form = format!("{key}.{}", plural_form(self.lang, n == N::from(1)));
        match self.catalog.get(self.lang, &form) {
            Some(text) => fill(text, args),
            None => form,
        }
    }

    /// Both forms of `key` for a script that counts by itself, `(one, other)`.
    pub fn count_forms<'a>(&'a self, key: &'a str) -> (&'a str, &'a str) {
        let get = |form: &str| {
            self.catalog
                .get(self.lang, &format!("{key}.{form}"))
                .unwrap_or(key)
        };
        (get("one"), get("other"))
    }

    /// A day as people write it: `11월 26일(목)`, `Thu 26 Nov`, `11月26日(週四)`.
    pub fn date(&self, day: NaiveDate) -> String {
        self.fmt(
            "date.day",
            &[
                ("month", &self.month(day)),
                ("day", &day.day()),
                (
                    "weekday",
                    &self.get(WEEKDAYS[day.weekday().num_days_from_monday() as usize]),
                ),
            ],
        )
    }

    /// A span of days, the month said once when both ends share it:
    /// `11월 23일~29일`, `23–29 Nov`, `11月23日至29日`; `11월 30일~12월 6일`,
    /// `30 Nov – 6 Dec`, `11月30日至12月6日`.
    pub fn date_range(&self, first: NaiveDate, last: NaiveDate) -> String {
        if (first.year(), first.month()) == (last.year(), last.month()) {
            self.fmt(
                "date.range_in_month",
                &[
                    ("month", &self.month(first)),
                    ("first", &first.day()),
                    ("last", &last.day()),
                ],
            )
        } else {
            let short = |d: NaiveDate| {
                self.fmt(
                    "date.short",
                    &[("month", &self.month(d)), ("day", &d.day())],
                )
            };
            self.fmt(
                "date.range",
                &[("first", &short(first)), ("last", &short(last))],
            )
        }
    }

    fn month(&self, day: NaiveDate) -> &str {
        self.get(MONTHS[day.month0() as usize])
    }
}

/// CLDR's plural category of a whole number: English says "1 second" and
/// "0 seconds"; Korean and Chinese have a single form for every number.
fn plural_form(lang: Lang, is_one: bool) -> &'static str {
    match lang {
        Lang::En if is_one => "one",
        _ => "other",
    }
}

const WEEKDAYS: [&str; 7] = [
    "date.weekday.mon",
    "date.weekday.tue",
    "date.weekday.wed",
    "date.weekday.thu",
    "date.weekday.fri",
    "date.weekday.sat",
    "date.weekday.sun",
];

const MONTHS: [&str; 12] = [
    "date.month.jan",
    "date.month.feb",
    "date.month.mar",
    "date.month.apr",
    "date.month.may",
    "date.month.jun",
    "date.month.jul",
    "date.month.aug",
    "date.month.sep",
    "date.month.oct",
    "date.month.nov",
    "date.month.dec",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(lang: Lang) -> Tr {
        Tr::new(Arc::new(Catalog::load().unwrap()), lang)
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn placeholders_are_filled_once_each_and_values_are_not_read_again() {
        let name: &dyn std::fmt::Display = &"{code}";
        let n: &dyn std::fmt::Display = &3;
        assert_eq!(
            fill(
                "{name} has {n} of {n}; {unknown} {n",
                &[("name", name), ("n", n)]
            ),
            "{code} has 3 of 3; {unknown} {n"
        );
        assert_eq!(fill("no placeholders", &[("n", n)]), "no placeholders");
        assert_eq!(fill("{}{n}}", &[("n", n)]), "{}3}");
        assert_eq!(fill("한글 {n}개", &[("n", n)]), "한글 3개");
    }

    #[test]
    fn dates_read_as_people_write_them_in_each_language() {
        // 2026-11-26 is a Thursday.
        assert_eq!(tr(Lang::Ko).date(day(2026, 11, 26)), "11월 26일(목)");
        assert_eq!(tr(Lang::En).date(day(2026, 11, 26)), "Thu 26 Nov");
        assert_eq!(tr(Lang::Ko).date(day(2027, 1, 3)), "1월 3일(일)");
        assert_eq!(tr(Lang::En).date(day(2027, 1, 3)), "Sun 3 Jan");
        assert_eq!(tr(Lang::ZhTw).date(day(2026, 11, 26)), "11月26日(週四)");
        assert_eq!(tr(Lang::ZhTw).date(day(2026, 12, 7)), "12月7日(週一)");
        assert_eq!(tr(Lang::ZhTw).date(day(2027, 1, 3)), "1月3日(週日)");
    }

    #[test]
    fn a_range_names_its_month_once_unless_it_spans_two() {
        let (ko, en) = (tr(Lang::Ko), tr(Lang::En));
        assert_eq!(
            ko.date_range(day(2026, 11, 23), day(2026, 11, 29)),
            "11월 23일~29일"
        );
        assert_eq!(
            en.date_range(day(2026, 11, 23), day(2026, 11, 29)),
            "23–29 Nov"
        );
        assert_eq!(
            ko.date_range(day(2026, 11, 30), day(2026, 12, 6)),
            "11월 30일~12월 6일"
        );
        assert_eq!(
            en.date_range(day(2026, 11, 30), day(2026, 12, 6)),
            "30 Nov – 6 Dec"
        );
        assert_eq!(
            en.date_range(day(2026, 12, 28), day(2027, 1, 3)),
            "28 Dec – 3 Jan"
        );
        let zh = tr(Lang::ZhTw);
        assert_eq!(
            zh.date_range(day(2026, 11, 23), day(2026, 11, 29)),
            "11月23日至29日"
        );
        assert_eq!(
            zh.date_range(day(2026, 11, 30), day(2026, 12, 6)),
            "11月30日至12月6日"
        );
    }

    #[test]
    fn the_national_id_example_in_the_hint_passes_every_check() {
        for lang in Lang::ALL {
            let hint = tr(lang).get("signup.national_id_hint").to_owned();
            let example: String = hint
                .split_whitespace()
                .find(|w| w.len() == 14 && w.as_bytes()[6] == b'-')
                .unwrap_or_else(|| panic!("no YYMMDD-SNNNNNC example in {hint}"))
                .to_owned();
            assert!(
                crate::accounts::national_id::NationalId::parse(
                    &example,
                    chrono::Utc::now().date_naive()
                )
                .is_ok(),
                "{example} in the {lang:?} hint is not a valid number"
            );
        }
    }

    #[test]
    fn every_language_has_exactly_the_keys_of_korean() {
        let c = Catalog::load().unwrap();
        let ko = c.keys(Lang::Ko);
        for lang in Lang::ALL {
            let keys = c.keys(lang);
            let missing: Vec<_> = ko.iter().filter(|k| !keys.contains(k)).collect();
            let extra: Vec<_> = keys.iter().filter(|k| !ko.contains(k)).collect();
            let file = lang.code();
            assert!(missing.is_empty(), "missing in {file}.toml: {missing:?}");
            assert!(
                extra.is_empty(),
                "in {file}.toml but not ko.toml: {extra:?}"
            );
        }
    }

    /// The `{name}` placeholders of a string, sorted.
    fn placeholders(text: &str) -> Vec<&str> {
        let mut out: Vec<&str> = text
            .split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(name, _)| name))
            .filter(|name| name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    #[test]
    fn every_translation_keeps_the_placeholders_of_korean() {
        let c = Catalog::load().unwrap();
        let mut wrong = Vec::new();
        for lang in Lang::ALL {
            for key in c.keys(Lang::Ko) {
                let ko = placeholders(c.get(Lang::Ko, key).unwrap_or(""));
                let other = placeholders(c.get(lang, key).unwrap_or(""));
                if ko != other {
                    wrong.push(format!("{}: {key}: {other:?}, ko has {ko:?}", lang.code()));
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn the_chinese_catalog_is_translated_not_copied_from_english() {
        // A string may read the same in both only when it has no words:
        // numbers, placeholders, symbols.
        let c = Catalog::load().unwrap();
        let wordless = |s: &str| {
            let mut rest = s.to_owned();
            for name in placeholders(s) {
                rest = rest.replace(&format!("{{{name}}}"), "");
            }
            !rest.chars().any(char::is_alphabetic)
        };
        let same: Vec<String> = c
            .keys(Lang::ZhTw)
            .into_iter()
            .filter_map(|key| {
                let zh = c.get(Lang::ZhTw, key)?;
                (Some(zh) == c.get(Lang::En, key) && !wordless(zh))
                    .then(|| format!("{key} = {zh:?}"))
            })
            .collect();
        // A few names of things (a file format, a map's name) may stay as
        // they are; more than that is an untranslated catalog.
        assert!(same.len() <= 3, "zh-TW.toml has English strings: {same:#?}");
    }

    #[test]
    fn the_chinese_catalog_shows_korean_only_in_korean_place_name_examples() {
        // Searches and imports take Korean addresses, so their examples are
        // Korean; anything else in Hangul was copied from ko.toml.
        const EXAMPLES: [&str; 5] = [
            "home.search.hint",
            "admin.store.region_hint",
            "map.address_hint",
            "map.error.address_short",
            "opendata.error.address_short",
        ];
        let c = Catalog::load().unwrap();
        let hangul: Vec<&str> = c
            .keys(Lang::ZhTw)
            .into_iter()
            .filter(|key| !EXAMPLES.contains(key))
            .filter(|key| {
                c.get(Lang::ZhTw, key)
                    .is_some_and(|s| s.chars().any(|ch| ('가'..='힣').contains(&ch)))
            })
            .collect();
        assert!(hangul.is_empty(), "zh-TW.toml has Korean in {hangul:?}");
    }

    #[test]
    fn every_key_used_in_templates_and_code_exists() {
        let c = Catalog::load().unwrap();
        // Any string literal shaped like a key whose first part is a section of
        // the locale files counts as a use, so keys chosen at run time are
        // checked too.
        let sections: std::collections::HashSet<&str> = c
            .keys(Lang::Ko)
            .into_iter()
            .filter_map(|k| k.split('.').next())
            .collect();
        let mut missing = Vec::new();
        for dir in ["templates", "src"] {
            for path in files_under(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)) {
                let text = std::fs::read_to_string(&path).unwrap();
                for key in quoted_keys(&text) {
                    let section = key.split('.').next().unwrap_or("");
                    // A counted string is used by its stem (`t.count("x", n, …)`).
                    let counted = c.get(Lang::Ko, &format!("{key}.other")).is_some();
                    if sections.contains(section) && c.get(Lang::Ko, &key).is_none() && !counted {
                        missing.push(format!("{}: {key}", path.display()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "keys without a string: {missing:#?}");
    }

    /// Every double-quoted literal of the form `word.word[.word…]`.
    fn quoted_keys(text: &str) -> Vec<String> {
        text.split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| {
                s.contains('.')
                    && !s.ends_with(".html")
                    && !s.starts_with('.')
                    && !s.ends_with('.')
                    && !s.contains("..")
                    && s.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.'
                    })
                    && s.split('.')
                        .next()
                        .is_some_and(|p| p.bytes().next().is_some_and(|b| b.is_ascii_lowercase()))
            })
            .map(str::to_owned)
            .collect()
    }

    fn files_under(dir: std::path::PathBuf) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "html" || e == "rs") {
                    out.push(path);
                }
            }
        }
        out
    }

    #[test]
    fn accept_language_is_followed_by_quality() {
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Lang::En);
        assert_eq!(
            Lang::from_accept_language("ko-KR,ko;q=0.9,en;q=0.8"),
            Lang::Ko
        );
        assert_eq!(
            Lang::from_accept_language("fr;q=1, en;q=0.5, ko;q=0.7"),
            Lang::Ko
        );
        assert_eq!(Lang::from_accept_language("de, fr"), Lang::Ko);
        assert_eq!(Lang::from_accept_language(""), Lang::Ko);
        assert_eq!(Lang::from_accept_language("en;q=0"), Lang::Ko);
    }

    #[test]
    fn traditional_chinese_is_chosen_for_every_chinese_but_the_simplified() {
        for tag in [
            "zh-TW",
            "zh-tw",
            "zh_TW",
            "zh-Hant",
            "zh-Hant-TW",
            "zh-Hant-HK",
            "zh-HK",
            "zh-MO",
            "zh",
            "zh-Hant-CN",
        ] {
            assert_eq!(Lang::from_code(tag), Some(Lang::ZhTw), "{tag}");
            assert_eq!(Lang::from_accept_language(tag), Lang::ZhTw, "{tag}");
        }
        assert_eq!(
            Lang::from_accept_language("zh-TW,zh;q=0.9,en-US;q=0.8,en;q=0.7"),
            Lang::ZhTw
        );
        assert_eq!(
            Lang::from_accept_language("en;q=0.5, zh-HK;q=0.8"),
            Lang::ZhTw
        );
        assert_eq!(Lang::from_accept_language("zh-TW;q=0.4, ko"), Lang::Ko);
    }

    #[test]
    fn simplified_chinese_gets_traditional_only_when_nothing_else_fits() {
        for tag in ["zh-CN", "zh-SG", "zh-Hans", "zh-Hans-CN", "zh-Hans-TW"] {
            assert_eq!(Lang::from_code(tag), None, "{tag} is not what we have");
            assert_eq!(Lang::from_accept_language(tag), Lang::ZhTw, "{tag}");
        }
        // A second language they named is one they asked for.
        assert_eq!(Lang::from_accept_language("zh-CN,en;q=0.8"), Lang::En);
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Lang::ZhTw,
            "a plain zh asks for any Chinese"
        );
        assert_eq!(Lang::from_accept_language("zh-CN, fr;q=0.9"), Lang::ZhTw);
        assert_eq!(Lang::from_accept_language("zh-CN;q=0"), Lang::Ko);
    }

    #[test]
    fn each_language_reads_back_from_its_own_code() {
        for lang in Lang::ALL {
            assert_eq!(Lang::from_code(lang.code()), Some(lang));
        }
    }

    #[test]
    fn counts_take_the_form_their_language_uses_for_the_number() {
        let (ko, en) = (tr(Lang::Ko), tr(Lang::En));
        let retry = |t: &Tr, n: u64| t.count("waiting_room.retry_in", n, &[("seconds", &n)]);
        assert_eq!(retry(&en, 1), "Trying again in 1 second.");
        assert_eq!(retry(&en, 0), "Trying again in 0 seconds.");
        assert_eq!(retry(&en, 2), "Trying again in 2 seconds.");
        assert_eq!(retry(&en, 21), "Trying again in 21 seconds.");
        assert_eq!(retry(&ko, 1), "1초 뒤에 다시 시도합니다.");
        assert_eq!(retry(&ko, 2), "2초 뒤에 다시 시도합니다.");
        assert_eq!(plural_form(Lang::Ko, true), "other");
        assert_eq!(
            en.count_forms("waiting_room.retry_in"),
            (
                "Trying again in {seconds} second.",
                "Trying again in {seconds} seconds."
            )
        );
    }

    #[test]
    fn every_counted_string_has_both_forms_and_no_english_string_hedges_with_s() {
        let c = Catalog::load().unwrap();
        for lang in Lang::ALL {
            for key in c.keys(lang) {
                // `admin.windows.one` ("Pickup window") is a word, not a form.
                let counted = c.get(lang, key).is_some_and(|s| s.contains('{'));
                if let Some(stem) = key.strip_suffix(".one").filter(|_| counted) {
                    assert!(
                        c.get(lang, &format!("{stem}.other")).is_some(),
                        "{lang:?}: {stem}.one without {stem}.other"
                    );
                }
            }
        }
        let hedged: Vec<&str> = c
            .keys(Lang::En)
            .into_iter()
            .filter(|k| c.get(Lang::En, k).is_some_and(|s| s.contains("(s)")))
            .collect();
        assert!(hedged.is_empty(), "say it with t.count: {hedged:?}");
    }

    #[test]
    fn placeholders_are_filled() {
        let c = Arc::new(Catalog::load().unwrap());
        let t = Tr::new(c, Lang::En);
        let text = t.fmt(
            "quota.line",
            &[("left", &2), ("quota", &2), ("period", &"this week")],
        );
        assert!(text.contains('2') && !text.contains('{'), "{text}");
    }
}
