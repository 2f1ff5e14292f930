//! A `multipart/form-data` form with one uploaded file (the CSV imports): the
//! file's bytes and the form's text fields, read whole and bounded by
//! [`MAX_MULTIPART_BYTES`], the limit the CSRF check already applied.
//!
//! The extractor reads nothing: the handler calls [`Upload::read`] once the
//! other extractors (the role check above all) have passed. actix polls a
//! handler's extractors together and answers with the first error, so a body
//! read and refused by the extractor itself could answer a visitor without the
//! role with 400 instead of 403.

use std::future::{Ready, ready};

use actix_multipart::Multipart;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;

use crate::web::csrf::MAX_MULTIPART_BYTES;
use crate::web::errors::AppError;
use crate::web::form::FormData;

/// The form field every import page names its file input.
pub const FILE_FIELD: &str = "file";

/// A multipart body not read yet.
pub struct Upload(Multipart);

impl Upload {
    /// Reads the whole form; 400 when it is not `multipart/form-data` or is
    /// malformed, 413 past [`MAX_MULTIPART_BYTES`].
    pub async fn read(self) -> Result<Uploaded, AppError> {
        read(self.0).await
    }
}

/// An upload read: the bytes of the part named [`FILE_FIELD`] (empty when the
/// form was sent without a file) and the other parts as text fields.
#[derive(Debug, Default)]
pub struct Uploaded {
    pub file: Vec<u8>,
    /// The name the browser gave the file, for the answer page only.
    pub file_name: String,
    pub fields: FormData,
}

impl FromRequest for Upload {
    type Error = AppError;
    type Future = Ready<Result<Upload, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        ready(Ok(Upload(Multipart::new(req.headers(), payload.take()))))
    }
}

async fn read(mut multipart: Multipart) -> Result<Uploaded, AppError> {
    let bad = |e: actix_multipart::MultipartError| AppError::BadRequest(e.to_string());
    let mut upload = Uploaded::default();
    let mut fields = Vec::new();
    let mut total = 0usize;
    while let Some(part) = multipart.next().await {
        let mut part = part.map_err(bad)?;
        let name = part.name().unwrap_or_default().to_owned();
        let file_name = part
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = part.next().await {
            let chunk = chunk.map_err(bad)?;
            total += chunk.len();
            if total > MAX_MULTIPART_BYTES {
                return Err(AppError::PayloadTooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        if name == FILE_FIELD {
            // The first file wins, as the first value of a repeated field does.
            if upload.file_name.is_empty() && upload.file.is_empty() {
                upload.file = bytes;
                upload.file_name = file_name.unwrap_or_default();
            }
        } else {
            let value = String::from_utf8(bytes).map_err(|_| AppError::UnreadableForm)?;
            fields.push((name, value));
        }
    }
    upload.fields = FormData::from_pairs(fields);
    Ok(upload)
}
