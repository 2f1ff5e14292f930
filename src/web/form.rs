//! Form bodies read leniently: invalid UTF-8 becomes U+FFFD instead of a bare 400,
//! so a form with bad input comes back with the user's values and a message next
//! to the field, as every other mistake does.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;

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

    pub fn from_bytes(body: &[u8]) -> FormData {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        FormData(map)
    }
}

impl FromRequest for FormData {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<FormData, AppError>>>>;

    fn from_request(_: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let mut payload = payload.take();
        Box::pin(async move { Ok(FormData::from_bytes(&read_form_body(&mut payload).await?)) })
    }
}

/// Reads a form body whole, refusing one over [`MAX_FORM_BYTES`] as soon as it
/// grows past it.
pub async fn read_form_body(payload: &mut Payload) -> Result<Vec<u8>, AppError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(e.to_string()))?;
        if body.len() + chunk.len() > MAX_FORM_BYTES {
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

/// At most `max` characters of a value, to show it back in a form or use it
/// as a key without letting a huge input through.
pub fn truncate(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let f = FormData::from_bytes(b"name=%FF%FEabc&email=a%40b.kr");
        assert_eq!(f.get("name"), "\u{fffd}\u{fffd}abc");
        assert_eq!(f.get("email"), "a@b.kr");
        assert_eq!(f.get("missing"), "");
    }

    #[test]
    fn the_first_of_repeated_fields_wins() {
        assert_eq!(FormData::from_bytes(b"a=1&a=2").get("a"), "1");
    }
}

/// Messages next to fields (already in the visitor's language), plus one for the
/// form as a whole.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors {
    fields: Vec<(&'static str, String)>,
    general: Option<String>,
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

    pub fn general(&self) -> Option<&str> {
        self.general.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_none()
    }
}
