//! Who is asking: extractors that load the logged-in account and check its role.
//! Every protected route takes one of them; the session alone is never trusted
//! for authority (a disabled account or a reset password ends its sessions).

use std::future::Future;
use std::pin::Pin;

use actix_session::SessionExt;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::Utc;

use crate::accounts::{Role, SessionClaim, queries};
use crate::state::AppState;
use crate::web::errors::AppError;
use crate::web::session::{self, SessionUser};

/// The logged-in, enabled account, as the database has it now.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: i64,
    pub role: Role,
    pub name: String,
    pub email: String,
    pub person_id: Option<i64>,
    pub store_id: Option<i64>,
    pub email_verified: bool,
}

/// The session's login, if it is one and not past its age; otherwise the
/// error that sends the visitor to log in (and an old session ends here).
fn logged_in(req: &HttpRequest) -> Result<SessionUser, AppError> {
    let session = req.get_session();
    let claims = session::current_user(&session).ok_or_else(|| login_required(req))?;
    let now = req
        .app_data::<web::Data<AppState>>()
        .map_or_else(Utc::now, |state| state.clock.now());
    if !claims.current_at(now) {
        session::log_out(&session);
        return Err(login_required(req));
    }
    Ok(claims)
}

/// To the login page, and back to this request's page after it.
pub fn login_required(req: &HttpRequest) -> AppError {
    let next = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
    AppError::LoginRequired { next }
}

impl CurrentUser {
    async fn load(req: HttpRequest) -> Result<CurrentUser, AppError> {
        let claims = logged_in(&req)?;
        let state = req
            .app_data::<web::Data<AppState>>()
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("no app state")))?;
        let id = claims.id;
        let account = state
            .db
            .run(move |conn| queries::account_state(conn, id))
            .await?;
        let claim = claims.claim();
        let ended = || {
            session::log_out(&req.get_session());
            Err(login_required(&req))
        };
        let Some(account) = account else {
            return ended();
        };
        let role = Role::parse(&account.role).ok_or_else(|| {
            AppError::internal(anyhow::anyhow!("user {id} has role {}", account.role))
        })?;
        if !claim.holds(&account.role, account.disabled, account.session_epoch) {
            return ended();
        }
        Ok(CurrentUser {
            id: account.id,
            role,
            name: account.name,
            email: account.email,
            person_id: account.person_id,
            store_id: account.store_id,
            email_verified: account.email_verified,
        })
    }
}

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(CurrentUser::load(req.clone()))
    }
}

/// A citizen (verified or not: reserving checks verification itself).
#[derive(Debug, Clone)]
pub struct Citizen {
    pub user: CurrentUser,
    pub person_id: i64,
}

/// A session that says it is a citizen's, not yet held against the account:
/// for a handler whose own transaction reads the account and checks the claim
/// there ([`SessionClaim::holds`]), so that the check and the write see the
/// same row and the request costs one trip to the database, not two
/// (`POST /reservations`). A session of another role is refused here, as
/// [`Citizen`] refuses it.
#[derive(Debug, Clone)]
pub struct ClaimedCitizen {
    pub user_id: i64,
    pub claim: SessionClaim,
}

impl FromRequest for ClaimedCitizen {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(logged_in(req).and_then(|claims| match claims.role {
            Role::Citizen => Ok(ClaimedCitizen {
                user_id: claims.id,
                claim: claims.claim(),
            }),
            _ => Err(AppError::Forbidden),
        }))
    }
}

/// A pharmacist, with the one store they act for.
#[derive(Debug, Clone)]
pub struct Pharmacist {
    pub user: CurrentUser,
    pub store_id: i64,
}

/// An administrator.
#[derive(Debug, Clone)]
pub struct Admin {
    pub user: CurrentUser,
}

macro_rules! role_extractor {
    ($ty:ident, |$u:ident| $build:expr) => {
        impl FromRequest for $ty {
            type Error = AppError;
            type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                let req = req.clone();
                Box::pin(async move {
                    let $u = CurrentUser::load(req).await?;
                    $build.ok_or(AppError::Forbidden)
                })
            }
        }
    };
}

role_extractor!(Citizen, |u| match (u.role, u.person_id) {
    (Role::Citizen, Some(person_id)) => Some(Citizen { person_id, user: u }),
    _ => None,
});
role_extractor!(Pharmacist, |u| match (u.role, u.store_id) {
    (Role::Pharmacist, Some(store_id)) => Some(Pharmacist { store_id, user: u }),
    _ => None,
});
role_extractor!(Admin, |u| (u.role == Role::Admin)
    .then_some(Admin { user: u }));
