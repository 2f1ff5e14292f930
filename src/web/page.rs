//! What every page needs besides its own data: the translator, the CSRF token for
//! its forms, the logged-in user, and where it is (for the language switch).

use std::future::{Ready, ready};

use actix_session::SessionExt;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};

use crate::i18n::{Catalog, Lang, Tr};
use crate::state::AppState;
use crate::web::session::{self, SessionUser};

pub struct PageCtx {
    pub t: Tr,
    pub csrf_token: String,
    pub user: Option<SessionUser>,
    /// Path and query of this page, to come back to after switching language.
    pub here: String,
    pub languages: [Lang; Lang::ALL.len()],
    /// A one-time message from the previous action (a locale key).
    pub flash: Option<String>,
}

impl PageCtx {
    pub fn from_request(req: &HttpRequest) -> PageCtx {
        let session = req.get_session();
        let lang = crate::web::language::of_request(req);
        let catalog = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.catalog.clone())
            .unwrap_or_else(Catalog::fallback);
        PageCtx {
            t: Tr::new(catalog, lang),
            csrf_token: session::csrf_token(&session),
            user: session::current_user(&session),
            here: req
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned()),
            languages: Lang::ALL,
            flash: session::take_flash(&session),
        }
    }

    pub fn lang(&self) -> Lang {
        self.t.lang
    }
}

impl FromRequest for PageCtx {
    type Error = actix_web::Error;
    type Future = Ready<Result<PageCtx, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(PageCtx::from_request(req)))
    }
}
