//! Form bodies and the values taken from them: reading a body (bounded, and
//! refused as a whole when a field is not UTF-8), bounding free text, and
//! cleaning a value before it is shown back in a form.
//!
//! A field that is not UTF-8 is refused rather than repaired with U+FFFD: a
//! browser never sends one, and a repaired value would be stored as something
//! the user did not type.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;

use crate::accounts::email::is_unsafe_in_text;
use crate::web::csrf::MAX_FORM_BYTES;
use crate::web::errors::AppError;

/// An `application/x-www-form-urlencoded` body as name → value (the first value
/// of a repeated name wins).
#[derive(Debug, Default, Clone)]
pub struct FormData(HashMap<String, String>);

impl FormData {
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }

    /// Whether the form has the field at all, even empty: which of a page's
    /// forms was sent.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The fields given as pairs (the first value of a repeated name wins).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> FormData {
        let mut map = HashMap::new();
        for (name, value) in pairs {
            map.entry(name).or_insert(value);
        }
        FormData(map)
    }

    /// Decodes an urlencoded body; `Err` if any name or value is not UTF-8
    /// once percent-decoded.
    pub fn from_bytes(body: &[u8]) -> Result<FormData, NotUtf8> {
        let mut map = HashMap::new();
        for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            map.entry(decode(name)?).or_insert(decode(value)?);
        }
        Ok(FormData(map))
    }
}

/// A form field that is not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUtf8;

/// One urlencoded name or value: `+` is a space, `%XX` a byte; a `%` not
/// followed by two hex digits stands for itself, as WHATWG's decoder has it.
fn decode(encoded: &[u8]) -> Result<String, NotUtf8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while let Some(&b) = encoded.get(i) {
        let escaped = match (b, encoded.get(i + 1), encoded.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match (b, escaped.and_then(|v| u8::try_from(v).ok())) {
            (_, Some(byte)) => {
                bytes.push(byte);
                i += 3;
            }
            (b'+', None) => {
                bytes.push(b' ');
                i += 1;
            }
            (other, None) => {
                bytes.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(bytes).map_err(|_| NotUtf8)
}

impl FromRequest for FormData {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<FormData, AppError>>>>;

    fn from_request(_: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let mut payload = payload.take();
        Box::pin(async move {
            let body = read_form_body(&mut payload).await?;
            FormData::from_bytes(&body).map_err(|NotUtf8| AppError::UnreadableForm)
        })
    }
}

/// Reads a form body whole, refusing one over [`MAX_FORM_BYTES`] as soon as it
/// grows past it.
pub async fn read_form_body(payload: &mut Payload) -> Result<Vec<u8>, AppError> {
    read_body(payload, MAX_FORM_BYTES).await
}

/// Reads a body whole, refusing it as soon as it grows past `limit` bytes.
pub async fn read_body(payload: &mut Payload, limit: usize) -> Result<Vec<u8>, AppError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A field's value with surrounding white space removed, refused when longer than
/// `max` characters. Used for every free-text field.
pub fn bounded(value: &str, max: usize) -> Result<&str, TooLong> {
    let v = value.trim();
    if v.chars().count() > max {
        Err(TooLong)
    } else {
        Ok(v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// At most `max` characters of a value, without the characters that are
/// [unsafe in text](is_unsafe_in_text), to show it back in a form or use it as a
/// key without letting a huge input (or a terminal escape, or a bidi override
/// that reorders the page around it) through.
pub fn truncate(value: &str, max: usize) -> String {
    value
        .chars()
        .filter(|&c| !is_unsafe_in_text(c))
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &[u8]) -> FormData {
        FormData::from_bytes(body).unwrap()
    }

    #[test]
    fn fields_are_percent_and_plus_decoded() {
        let f = form("name=%ED%99%8D+%EA%B8%B8%EB%8F%99&email=a%40b.kr&flag&=x".as_bytes());
        assert_eq!(f.get("name"), "홍 길동");
        assert_eq!(f.get("email"), "a@b.kr");
        assert_eq!(f.get("flag"), "");
        assert_eq!(f.get("missing"), "");
        assert_eq!(form("raw=홍길동".as_bytes()).get("raw"), "홍길동");
    }

    #[test]
    fn a_stray_percent_stands_for_itself() {
        let f = form(b"a=100%&b=%zz&c=%4&d=%2b");
        assert_eq!(f.get("a"), "100%");
        assert_eq!(f.get("b"), "%zz");
        assert_eq!(f.get("c"), "%4");
        assert_eq!(f.get("d"), "+");
    }

    #[test]
    fn decoding_agrees_with_form_urlencoded_on_valid_input() {
        let body = b"a=1&b=x+y%20z&%EC%9D%B4%EB%A6%84=%EA%B0%80&c=50%25&d=%&e";
        let ours = form(body);
        for (k, v) in form_urlencoded::parse(body) {
            assert_eq!(ours.get(&k), v, "{k}");
        }
    }

    #[test]
    fn invalid_utf8_in_a_value_or_a_name_is_refused_not_replaced() {
        for body in [
            &b"name=%FF%FEabc&email=a%40b.kr"[..],
            b"name=%C3%28",
            b"%FF=x",
            b"name=\xff",
            b"a=1&b=%ED%A0%80",
        ] {
            assert_eq!(FormData::from_bytes(body).err(), Some(NotUtf8), "{body:?}");
        }
    }

    #[test]
    fn values_kept_for_a_form_lose_control_and_bidi_override_characters() {
        assert_eq!(
            truncate(
                "\u{202e}홍길\u{0}동\u{1b}[2J\u{7f}\u{85}\u{2066}\r\n\t",
                100
            ),
            "홍길동[2J"
        );
        assert_eq!(truncate("a\u{200f}b\u{a0}c", 100), "a\u{200f}b\u{a0}c");
    }

    #[test]
    fn truncate_counts_characters_after_cleaning() {
        assert_eq!(truncate("가나다라", 2), "가나");
        assert_eq!(truncate("\u{0}\u{0}가나다", 2), "가나");
        assert_eq!(truncate("", 5), "");
    }

    #[test]
    fn a_summary_line_names_its_field_when_the_form_labels_them() {
        let mut errors = FieldErrors::default();
        errors.add("national_id", "필수 입력 항목입니다.");
        assert_eq!(
            errors.summary_line("national_id", "필수 입력 항목입니다."),
            "필수 입력 항목입니다."
        );
        errors.label_fields(&[("national_id", "주민등록번호")]);
        assert_eq!(
            errors.summary_line("national_id", "필수 입력 항목입니다."),
            "주민등록번호: 필수 입력 항목입니다."
        );
        assert_eq!(errors.summary_line("name", "x"), "x");
    }

    #[test]
    fn the_first_of_repeated_fields_wins() {
        assert_eq!(form(b"a=1&a=2").get("a"), "1");
    }
}

/// Messages next to fields (already in the visitor's language), plus one for the
/// form as a whole.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors {
    fields: Vec<(&'static str, String)>,
    general: Option<String>,
    /// The summary's heading, where the form's usual one ("입력 내용을 확인해
    /// 주세요") would not fit what happened (a booking refused, not mistyped).
    title: Option<String>,
    /// Each field's label, for a summary that names the fields it lists.
    labels: Vec<(&'static str, String)>,
}

impl FieldErrors {
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        if self.get(field).is_none() {
            self.fields.push((field, message.into()));
        }
    }

    pub fn set_general(&mut self, message: impl Into<String>) {
        self.general = Some(message.into());
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    /// Each field's message, in the order they were found (the form's order).
    pub fn fields(&self) -> &[(&'static str, String)] {
        &self.fields
    }

    pub fn general(&self) -> Option<&str> {
        self.general.as_deref()
    }

    pub fn set_title(&mut self, title: impl Into<String>) {
        self.title = Some(title.into());
    }

    /// The summary's own heading, if it has one.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// Names the form's fields, so that the summary above the form says
    /// which field each message is about ("주민등록번호: 필수 입력 항목입니다.")
    /// where the same words fit several fields.
    pub fn label_fields(&mut self, labels: &[(&'static str, &str)]) {
        self.labels = labels
            .iter()
            .map(|(field, label)| (*field, (*label).to_owned()))
            .collect();
    }

    /// The summary's line for a field: its label and its message, or the
    /// message alone on a form whose fields are not named.
    pub fn summary_line(&self, field: &str, message: &str) -> String {
        match self.labels.iter().find(|(f, _)| *f == field) {
            Some((_, label)) => format!("{label}: {message}"),
            None => message.to_owned(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_none()
    }
}
