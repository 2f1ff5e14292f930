//! Account pages: sign-up, e-mail verification, login, logout, password reset.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::accounts::email::{DisplayName, Email};
use crate::accounts::hashing::{Busy, HashError};
use crate::accounts::national_id::NationalId;
use crate::accounts::password::{self, NewPassword};
use crate::accounts::service::{self, AccountError, Signup, SignupOutcome};
use crate::accounts::tokens::{self, Purpose, TokenError};
use crate::config::AppEnv;
use crate::i18n::Tr;
use crate::rate_limit::{self, Decision, Limit};
use crate::reservations::rules;
use crate::state::AppState;
use crate::web::auth::{Citizen, CurrentUser};
use crate::web::device::Device;
use crate::web::errors::AppError;
use crate::web::form::{FieldErrors, FormData, bounded, truncate};
use crate::web::limits;
use crate::web::page::PageCtx;
use crate::web::session::{self, SessionUser};
use crate::web::{render, safe_next, see_other};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/signup", web::get().to(signup_form))
        .route("/signup", web::post().to(signup))
        .route(SIGNUP_SENT, web::get().to(signup_sent))
        .route("/verify-email", web::get().to(verify_email))
        .route("/verify-email/resend", web::post().to(resend_verification))
        .route("/login", web::get().to(login_form))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/password/forgot", web::get().to(forgot_form))
        .route("/password/forgot", web::post().to(forgot))
        .route("/password/reset", web::get().to(reset_form))
        .route("/password/reset", web::post().to(reset));
}

/// Hashing is deliberately slow: it runs on the hashing pool, which refuses at
/// once when it is full.
async fn hash_password(
    state: &AppState,
    pw: NewPassword,
) -> Result<Result<String, Busy>, AppError> {
    match state.hashing.hash(pw).await {
        Ok(phc) => Ok(Ok(phc)),
        Err(HashError::Busy(busy)) => Ok(Err(busy)),
        Err(e) => Err(AppError::internal(e)),
    }
}

/// A form page sent back because hashing is saturated: 503, and when to retry.
fn waiting(page: Result<HttpResponse, AppError>, busy: Busy) -> Result<HttpResponse, AppError> {
    limits::with_retry_after(page, busy.retry_after_secs)
}

/// The `password` and `password_confirm` fields of a form that sets one; each
/// mistake is reported next to its field.
fn new_password(t: &Tr, form: &FormData, errors: &mut FieldErrors) -> Option<NewPassword> {
    let password = NewPassword::parse(form.get("password"))
        .map_err(|rule| errors.add("password", rule.message(t)))
        .ok();
    if form.get("password") != form.get("password_confirm") {
        errors.add("password_confirm", t.get("form.error.password_mismatch"));
    }
    password
}

// ---- sign-up -------------------------------------------------------------

#[derive(Default)]
pub struct SignupValues {
    /// The front of the national ID as typed (the six birth-date characters),
    /// never the back: a page sent back carries no more of the number than a
    /// masked one shows, and the user types the back half again.
    pub national_id_front: String,
    pub name: String,
    pub email: String,
    /// The consent box, ticked.
    pub consent: bool,
}

impl SignupValues {
    /// Up to the first six characters of a typed national ID, dashes and
    /// spaces left out.
    pub fn front_of(typed: &str) -> String {
        typed
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .take(6)
            .collect()
    }
}

#[derive(Template)]
#[template(path = "accounts/signup.html")]
struct SignupPage {
    page: PageCtx,
    values: SignupValues,
    errors: FieldErrors,
}

async fn signup_form(page: PageCtx, user: Option<CurrentUser>) -> Result<HttpResponse, AppError> {
    if let Some(user) = user {
        return Ok(see_other(user.role.home_path()));
    }
    render(
        &SignupPage {
            page,
            values: SignupValues::default(),
            errors: FieldErrors::default(),
        },
        StatusCode::OK,
    )
}

/// The national ID as sent: the `national_id` field, or the page's two fields
/// (the six birth-date digits, then the seven masked ones) joined with a dash.
pub(crate) fn national_id_field(form: &FormData) -> String {
    let whole = form.get("national_id").trim();
    if !whole.is_empty() {
        return whole.to_owned();
    }
    let (front, back) = (
        form.get("national_id_front").trim(),
        form.get("national_id_back").trim(),
    );
    if front.is_empty() && back.is_empty() {
        String::new()
    } else {
        format!("{front}-{back}")
    }
}

async fn signup(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let t = &page.t;
    let mut errors = FieldErrors::default();
    // The national ID is never echoed back in full: only its front (the birth
    // date) is shown again; the back half is typed again.
    let typed_id = national_id_field(&form);
    let values = SignupValues {
        national_id_front: truncate(&SignupValues::front_of(&typed_id), 6),
        name: truncate(form.get("name"), 200),
        email: truncate(form.get("email"), 300),
        consent: form.get("consent") == "on",
    };
    errors.label_fields(&[
        ("national_id", t.get("signup.national_id")),
        ("name", t.get("signup.name")),
        ("email", t.get("signup.email")),
        ("password", t.get("signup.password")),
        ("password_confirm", t.get("signup.password_confirm")),
        ("consent", t.get("signup.consent.heading")),
    ]);
    let policy = state.policy().await?;
    let today = rules::today(&policy, state.clock.now());
    let national_id = match NationalId::parse(&typed_id, today) {
        Ok(id) => Some(id),
        Err(e) => {
            errors.add("national_id", t.get(e.message_key()));
            None
        }
    };
    let name = DisplayName::parse(form.get("name"))
        .map_err(|key| errors.add("name", t.get(key)))
        .ok();
    let email = Email::parse(form.get("email"))
        .map_err(|e| errors.add("email", t.get(Email::message_key(e))))
        .ok();
    let password = new_password(t, &form, &mut errors);
    if !values.consent {
        errors.add("consent", t.get("signup.consent.missing"));
    }
    let (Some(national_id), Some(name), Some(email), Some(password), true) =
        (national_id, name, email, password, errors.is_empty())
    else {
        return render(
            &SignupPage {
                page,
                values,
                errors,
            },
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };

    // Only a well-formed sign-up counts: it costs a hash and sends a mail. Per
    // address the limit is high (a mobile carrier puts many people behind one);
    // per e-mail it is low, so nobody's mailbox can be flooded with notices.
    // The same for a new and a taken address, so the limit tells nothing.
    let ip = limits::client_ip(&req, &state.config.trusted_proxies);
    let buckets = vec![
        (format!("signup:ip:{ip}"), state.rate_limits.signup_per_ip),
        (
            format!("signup:email:{}", email.as_str()),
            state.rate_limits.signup_per_email,
        ),
    ];
    if let Decision::Limited { retry_after_secs } = limits::hit_all(&state, buckets).await? {
        errors.set_general(limits::wait_message(t, retry_after_secs));
        let page = SignupPage {
            page,
            values,
            errors,
        };
        return limits::form_over_limit(&page, retry_after_secs);
    }

    let password_hash = match hash_password(&state, password).await? {
        Ok(phc) => phc,
        Err(busy) => {
            errors.set_general(busy.message(t));
            let page = SignupPage {
                page,
                values,
                errors,
            };
            return waiting(render(&page, StatusCode::SERVICE_UNAVAILABLE), busy);
        }
    };
    let address = email.as_str().to_owned();
    let signup = Signup {
        national_id,
        name,
        email,
        password_hash,
    };
    let key = state.keys.national_id.clone();
    let tr = page.t.clone();
    let base_url = state.base_url.clone();
    let outcome = state
        .db
        .write(move |tx| service::sign_up(tx, &key, &signup, &tr, &base_url, today))
        .await?;
    if outcome == SignupOutcome::Taken {
        tracing::info!("sign-up for a registered e-mail or national ID; the owner is told by mail");
    }
    // Whatever happened, the same answer: a mail is on its way to the address.
    state.mail_wake.notify_one();
    session::set_signup_address(&session, &address).map_err(AppError::internal)?;
    Ok(see_other(SIGNUP_SENT))
}

/// Where every sign-up lands.
const SIGNUP_SENT: &str = "/signup/sent";

#[derive(Template)]
#[template(path = "accounts/signup_sent.html")]
struct SignupSentPage {
    page: PageCtx,
    /// Names the address the mail went to.
    message: String,
}

/// "Check your e-mail": where the mail went and what to do next.
async fn signup_sent(
    page: PageCtx,
    session: Session,
    user: Option<CurrentUser>,
) -> Result<HttpResponse, AppError> {
    if let Some(user) = user {
        return Ok(see_other(user.role.home_path()));
    }
    let Some(email) = session::signup_address(&session) else {
        return Ok(see_other("/signup"));
    };
    let message = page.t.fmt("signup.sent", &[("email", &email)]);
    render(&SignupSentPage { page, message }, StatusCode::OK)
}

// ---- e-mail verification -------------------------------------------------

#[derive(Template)]
#[template(path = "accounts/message.html")]
struct MessagePage {
    page: PageCtx,
    title_key: &'static str,
    message_key: &'static str,
    link: &'static str,
    link_key: &'static str,
}

fn token_problem(page: PageCtx, e: TokenError) -> Result<HttpResponse, AppError> {
    let message_key = match e {
        TokenError::Unknown => "token.unknown",
        TokenError::Expired => "token.expired",
        TokenError::Used => "token.used",
    };
    render(
        &MessagePage {
            page,
            title_key: "token.title",
            message_key,
            link: "/",
            link_key: "error.back_home",
        },
        StatusCode::BAD_REQUEST,
    )
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn verify_email(
    state: web::Data<AppState>,
    page: PageCtx,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, AppError> {
    let token = query.into_inner().token;
    let result = state
        .db
        .write(move |tx| service::verify_email(tx, &token))
        .await;
    match result {
        Ok(_) => render(
            &MessagePage {
                page,
                title_key: "verify.done_title",
                message_key: "verify.done",
                link: "/reservations",
                link_key: "verify.continue",
            },
            StatusCode::OK,
        ),
        // Only verifying uses a verification link up, so the address is
        // confirmed: say so, and point to logging in rather than to an error.
        Err(crate::db::DbError::Work(AccountError::Token(TokenError::Used))) => render(
            &MessagePage {
                page,
                title_key: "verify.already_title",
                message_key: "verify.already_log_in",
                link: "/login",
                link_key: "nav.login",
            },
            StatusCode::OK,
        ),
        Err(crate::db::DbError::Work(AccountError::Token(e))) => token_problem(page, e),
        Err(e) => Err(e.into()),
    }
}

async fn resend_verification(
    state: web::Data<AppState>,
    session: Session,
    citizen: Citizen,
    page: PageCtx,
) -> Result<HttpResponse, AppError> {
    if citizen.user.email_verified {
        session::set_flash(&session, "verify.already");
        return Ok(see_other("/reservations"));
    }
    let user_id = citizen.user.id;
    limits::check(
        &state,
        format!("resend:user:{user_id}"),
        state.rate_limits.resend_per_account,
    )
    .await?;
    let tr = page.t.clone();
    let base_url = state.base_url.clone();
    state
        .db
        .write(move |tx| service::resend_verification(tx, user_id, &tr, &base_url))
        .await?;
    state.mail_wake.notify_one();
    session::set_flash(&session, "verify.resent");
    Ok(see_other("/reservations"))
}

// ---- login / logout ------------------------------------------------------

#[derive(Template)]
#[template(path = "accounts/login.html")]
struct LoginPage {
    page: PageCtx,
    email: String,
    next: String,
    errors: FieldErrors,
}

#[derive(Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

/// A visitor who is already logged in is sent on to their own page.
async fn login_form(
    page: PageCtx,
    query: web::Query<NextQuery>,
    user: Option<CurrentUser>,
) -> Result<HttpResponse, AppError> {
    if let Some(user) = user {
        return Ok(see_other(user.role.home_path()));
    }
    render(
        &LoginPage {
            page,
            email: String::new(),
            next: safe_next(&query.next).to_owned(),
            errors: FieldErrors::default(),
        },
        StatusCode::OK,
    )
}

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let email = truncate(form.get("email").trim(), 300).to_lowercase();
    let next = safe_next(form.get("next")).to_owned();
    // The hashing slot comes first: when there is none, the visitor is told at
    // once to come back, and the refusal costs no database work.
    let slot = match state.hashing.try_reserve() {
        Ok(slot) => slot,
        Err(busy) => {
            let mut errors = FieldErrors::default();
            errors.set_general(busy.message(&page.t));
            let page = LoginPage {
                page,
                email,
                next,
                errors,
            };
            return waiting(render(&page, StatusCode::SERVICE_UNAVAILABLE), busy);
        }
    };
    let password = bounded(form.get("password"), password::MAX_LEN)
        .unwrap_or("")
        .to_owned();
    let lookup = email.clone();
    let candidate = state
        .db
        .run(move |conn| service::find_for_login(conn, &lookup))
        .await?;

    let account = candidate.as_ref().map(|c| c.id);
    let charged = match charge_login(&state, &req, &email, account).await {
        Ok(charged) => charged,
        Err(AppError::TooManyRequests { retry_after_secs }) => {
            let mut errors = FieldErrors::default();
            errors.set_general(limits::wait_message(&page.t, retry_after_secs));
            let page = LoginPage {
                page,
                email,
                next,
                errors,
            };
            return limits::form_over_limit(&page, retry_after_secs);
        }
        Err(e) => return Err(e),
    };

    // The same work and the same answer whether or not the account exists.
    let phc = candidate.as_ref().map(|c| c.password_hash.clone());
    let password_ok = slot
        .verify_login(password, phc)
        .await
        .map_err(AppError::internal)?;
    let (device, now) = (charged.device.clone(), charged.at);
    if password_ok {
        charged.refund(&state).await?;
    }

    let t = &page.t;
    let mut errors = FieldErrors::default();
    let user = match candidate {
        Some(c) if password_ok && !c.disabled => c,
        Some(c) if password_ok && c.disabled => {
            errors.set_general(t.get("login.disabled"));
            return render(
                &LoginPage {
                    page,
                    email,
                    next,
                    errors,
                },
                StatusCode::FORBIDDEN,
            );
        }
        _ => {
            errors.set_general(t.get("login.failed"));
            return render(
                &LoginPage {
                    page,
                    email,
                    next,
                    errors,
                },
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    let claims = SessionUser::new(
        user.id,
        user.role,
        user.name.clone(),
        user.epoch,
        state.clock.now(),
    );
    session::log_in(&session, &claims).map_err(AppError::internal)?;
    let target = if next == "/" {
        user.role.home_path().to_owned()
    } else {
        next
    };
    // This browser is now one the account has used: remember it, or remember
    // it for longer.
    let device = device.map_or_else(|| Device::new(user.id, now), |d| d.renewed(now));
    let secure = state.config.app_env == AppEnv::Production;
    let mut res = see_other(&target);
    res.add_cookie(&device.cookie(&state.keys.device, secure))
        .map_err(AppError::internal)?;
    Ok(res)
}

/// A login attempt's place in the failure limits, taken before its password
/// is checked, so that attempts in flight count too.
struct Charged {
    /// The browser's device cookie, when it names the account.
    device: Option<Device>,
    buckets: Vec<(String, Limit)>,
    at: DateTime<Utc>,
}

/// Counts the attempt on every limit it is charged to; over one, the 429.
async fn charge_login(
    state: &AppState,
    req: &HttpRequest,
    email: &str,
    account: Option<i64>,
) -> Result<Charged, AppError> {
    let at = state.clock.now();
    let device = account.and_then(|id| Device::of_request(req, &state.keys.device, id, at));
    let ip = limits::client_ip(req, &state.config.trusted_proxies);
    let device_id = device.as_ref().map(|d| d.device_id.as_str());
    let buckets = service::login_buckets(&state.rate_limits, email, &ip, device_id);
    let counted = buckets.clone();
    match state
        .db
        .write(move |tx| rate_limit::hit_all(tx, &counted, at))
        .await?
    {
        Decision::Allowed => Ok(Charged {
            device,
            buckets,
            at,
        }),
        Decision::Limited { retry_after_secs } => {
            Err(AppError::TooManyRequests { retry_after_secs })
        }
    }
}

impl Charged {
    /// Gives the place back: only failures count against the limits.
    async fn refund(self, state: &AppState) -> Result<(), AppError> {
        let (buckets, at) = (self.buckets, self.at);
        state
            .db
            .write(move |tx| rate_limit::release_all(tx, &buckets, at))
            .await?;
        Ok(())
    }
}

/// Ends the session. Cookies carry the session, so a copy of this one would
/// stay valid; moving the account's session epoch on makes every copy — and
/// every other session of the account — invalid at its next request.
async fn logout(state: web::Data<AppState>, session: Session) -> Result<HttpResponse, AppError> {
    if let Some(user) = session::current_user(&session) {
        state
            .db
            .write(move |tx| service::end_all_sessions(tx, user.id))
            .await?;
    }
    // A new, empty session rather than none, to carry the message.
    session::reset(&session);
    session::set_flash(&session, "logout.done");
    Ok(see_other("/"))
}

// ---- password reset ------------------------------------------------------

#[derive(Template)]
#[template(path = "accounts/forgot.html")]
struct ForgotPage {
    page: PageCtx,
    email: String,
    sent: bool,
    errors: FieldErrors,
}

async fn forgot_form(page: PageCtx) -> Result<HttpResponse, AppError> {
    render(
        &ForgotPage {
            page,
            email: String::new(),
            sent: false,
            errors: FieldErrors::default(),
        },
        StatusCode::OK,
    )
}

async fn forgot(
    state: web::Data<AppState>,
    req: HttpRequest,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let email = match Email::parse(form.get("email")) {
        Ok(e) => e,
        Err(e) => {
            let mut errors = FieldErrors::default();
            errors.add("email", page.t.get(Email::message_key(e)));
            return render(
                &ForgotPage {
                    email: truncate(form.get("email"), 300),
                    page,
                    sent: false,
                    errors,
                },
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    let ip = limits::client_ip(&req, &state.config.trusted_proxies);
    let per_ip = state.rate_limits.forgot_per_ip;
    if let Decision::Limited { retry_after_secs } =
        limits::hit(&state, format!("forgot:ip:{ip}"), per_ip).await?
    {
        let mut errors = FieldErrors::default();
        errors.set_general(limits::wait_message(&page.t, retry_after_secs));
        let page = ForgotPage {
            email: email.as_str().to_owned(),
            page,
            sent: false,
            errors,
        };
        return limits::form_over_limit(&page, retry_after_secs);
    }
    // Over the per-account limit, nothing more is sent, but the answer is the
    // same: the page must not tell whether the address has an account.
    let bucket = format!("forgot:account:{}", email.as_str());
    let per_account = state.rate_limits.forgot_per_account;
    if limits::hit(&state, bucket, per_account).await? == Decision::Allowed {
        let tr = page.t.clone();
        let base_url = state.base_url.clone();
        let address = email.as_str().to_owned();
        let queued = state
            .db
            .write(move |tx| service::request_reset(tx, &address, &tr, &base_url))
            .await?;
        if queued {
            state.mail_wake.notify_one();
        }
    }
    render(
        &ForgotPage {
            page,
            email: String::new(),
            sent: true,
            errors: FieldErrors::default(),
        },
        StatusCode::OK,
    )
}

#[derive(Template)]
#[template(path = "accounts/reset.html")]
struct ResetPage {
    page: PageCtx,
    token: String,
    errors: FieldErrors,
    /// The link is a new staff account's invitation: the password is set
    /// for the first time, not changed.
    first: bool,
}

impl ResetPage {
    fn title_key(&self) -> &'static str {
        if self.first {
            "reset.first_title"
        } else {
            "reset.title"
        }
    }

    fn submit_key(&self) -> &'static str {
        if self.first {
            "reset.first_submit"
        } else {
            "reset.submit"
        }
    }
}

/// Whether a reset link is still good, without using it; when it is, whether
/// it sets a new staff account's first password.
async fn check_reset_token(
    state: &AppState,
    token: &str,
) -> Result<Result<bool, TokenError>, AppError> {
    let token = token.to_owned();
    let status = state
        .db
        .run(
            move |conn| match tokens::peek(conn, &token, Purpose::PasswordReset)? {
                Ok(user_id) => tokens::awaits_first_password(conn, user_id).map(Ok),
                Err(e) => Ok(Err(e)),
            },
        )
        .await?;
    Ok(status)
}

async fn reset_form(
    state: web::Data<AppState>,
    page: PageCtx,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, AppError> {
    let token = query.into_inner().token;
    match check_reset_token(&state, &token).await? {
        Ok(first) => render(
            &ResetPage {
                page,
                token,
                errors: FieldErrors::default(),
                first,
            },
            StatusCode::OK,
        ),
        Err(e) => token_problem(page, e),
    }
}

async fn reset(
    state: web::Data<AppState>,
    session: Session,
    page: PageCtx,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let token = truncate(form.get("token"), 200);
    // A dead link is refused before the costly hashing: the form cannot
    // succeed, and this route is open to anyone.
    let first = match check_reset_token(&state, &token).await? {
        Ok(first) => first,
        Err(e) => return token_problem(page, e),
    };
    let mut errors = FieldErrors::default();
    let password = new_password(&page.t, &form, &mut errors);
    let (Some(password), true) = (password, errors.is_empty()) else {
        return render(
            &ResetPage {
                page,
                token,
                errors,
                first,
            },
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    let hash = match hash_password(&state, password).await? {
        Ok(phc) => phc,
        Err(busy) => {
            errors.set_general(busy.message(&page.t));
            let page = ResetPage {
                page,
                token,
                errors,
                first,
            };
            return waiting(render(&page, StatusCode::SERVICE_UNAVAILABLE), busy);
        }
    };
    let result = state
        .db
        .write(move |tx| service::reset_password(tx, &token, &hash))
        .await;
    match result {
        Ok(_) => {
            // Whoever was logged in here is logged out with every other session.
            session::reset(&session);
            let done = if first {
                "reset.first_done"
            } else {
                "reset.done"
            };
            session::set_flash(&session, done);
            Ok(see_other("/login"))
        }
        Err(crate::db::DbError::Work(AccountError::Token(e))) => token_problem(page, e),
        Err(e) => Err(e.into()),
    }
}
