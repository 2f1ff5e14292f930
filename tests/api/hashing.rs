//! Password hashing on its own bounded pool: when every slot is taken, logins,
//! sign-ups, password resets and admin-created accounts get their form back
//! with a 503, `Retry-After` and the visitor's values, at once.

use std::sync::{Arc, Mutex};

use diesel::prelude::*;
use mask_reservation::accounts::Role;
use mask_reservation::db::schema::users;
use tokio::task::JoinHandle;

use crate::common::fixtures::{self, PASSWORD};
use crate::common::{TestApp, retry_after, spawn_app};

/// Every slot of the app's hashing pool taken: its workers run jobs that wait on
/// a gate, and the other slots' jobs queue behind them.
struct FullPool {
    gate: Option<std::sync::mpsc::Sender<()>>,
    jobs: Vec<JoinHandle<()>>,
}

impl FullPool {
    fn take(app: &TestApp) -> FullPool {
        let pool = &app.state.hashing;
        let (open, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let jobs = (0..pool.size().capacity())
            .map(|_| {
                let slot = pool
                    .try_reserve()
                    .expect("a free slot before the test fills them");
                let gate = gate.clone();
                tokio::spawn(async move {
                    slot.run(move || {
                        // Returns when the gate's sender is dropped.
                        let _ = gate.lock().unwrap().recv();
                    })
                    .await
                    .unwrap();
                })
            })
            .collect();
        assert!(pool.try_reserve().is_err(), "the pool is full");
        FullPool {
            gate: Some(open),
            jobs,
        }
    }

    /// Lets every waiting job finish and gives the slots back.
    async fn release(mut self) {
        self.gate.take();
        for job in self.jobs.drain(..) {
            job.await.unwrap();
        }
    }
}

fn count_users(app: &TestApp) -> i64 {
    let mut conn = app.db.get().unwrap();
    users::table.count().get_result(&mut conn).unwrap()
}

#[tokio::test]
async fn a_login_while_hashing_is_saturated_gets_the_waiting_page_with_the_email_kept() {
    let app = spawn_app().await;
    let key = app.state.keys.national_id.clone();
    fixtures::user(&app.db, Role::Citizen, "c@example.com", None, true, &key);

    let full = FullPool::take(&app);
    let res = app.login("c@example.com", PASSWORD).await;
    assert_eq!(res.status(), 503);
    let secs = retry_after(&res);
    assert!((1..=30).contains(&secs), "{secs}");
    let html = res.text().await.unwrap();
    assert!(
        html.contains(r#"action="/login""#),
        "the form, to send again"
    );
    assert!(
        html.contains(r#"value="c@example.com""#),
        "the e-mail is kept"
    );
    assert!(
        html.contains(&format!("{secs}초 뒤에 다시 시도해 주세요")),
        "says when to come back"
    );
    assert!(!html.contains(PASSWORD), "the password is never echoed");

    full.release().await;
    let res = app.login("c@example.com", PASSWORD).await;
    assert_eq!(
        res.status(),
        303,
        "the same login goes through once there is room"
    );
}

#[tokio::test]
async fn a_sign_up_while_hashing_is_saturated_keeps_every_value_but_the_passwords() {
    let app = spawn_app().await;
    let national_id = fixtures::national_id("850101123456");
    let password = "a new secret passphrase";
    let fields = [
        ("national_id", national_id.as_str()),
        ("name", "홍길동"),
        ("email", "hong@example.com"),
        ("password", password),
        ("password_confirm", password),
        ("consent", "on"),
    ];

    let full = FullPool::take(&app);
    let token = app.csrf_token().await;
    let mut form = fields.to_vec();
    form.push(("csrf_token", &token));
    let res = app
        .client
        .post(app.url("/signup"))
        .header("Accept-Language", "en")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let secs = retry_after(&res);
    let html = res.text().await.unwrap();
    assert!(html.contains(&format!("Please try again in {secs} seconds")));
    // The national ID comes back as its front only: the back is typed again.
    let (front, back) = national_id.split_at(6);
    for kept in [front, "홍길동", "hong@example.com"] {
        assert!(
            html.contains(&format!(r#"value="{kept}""#)),
            "{kept} is kept"
        );
    }
    assert!(!html.contains(&format!(r#"value="{back}""#)), "{html}");
    assert!(!html.contains(password), "passwords are never echoed");
    assert_eq!(count_users(&app), 0, "nothing was created");

    full.release().await;
    let res = app.post_form("/signup", &fields).await;
    assert_eq!(res.status(), 303);
    assert_eq!(count_users(&app), 1);
}

#[tokio::test]
async fn a_password_reset_while_hashing_is_saturated_keeps_the_link_usable() {
    let app = spawn_app().await;
    let key = app.state.keys.national_id.clone();
    fixtures::user(&app.db, Role::Citizen, "c@example.com", None, true, &key);
    let res = app
        .post_form("/password/forgot", &[("email", "c@example.com")])
        .await;
    assert_eq!(res.status(), 200);
    let body = app.smtp.wait_for(1).await.remove(0).text_body();
    let link = &body[body.find("http://").unwrap()..];
    let link = link.split_whitespace().next().unwrap();
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let fields = [
        ("token", token.as_str()),
        ("password", "new password 1"),
        ("password_confirm", "new password 1"),
    ];

    let full = FullPool::take(&app);
    let res = app.post_form("/password/reset", &fields).await;
    assert_eq!(res.status(), 503);
    retry_after(&res);
    let html = res.text().await.unwrap();
    assert!(
        html.contains(&format!(r#"value="{token}""#)),
        "the link is kept"
    );
    assert!(html.contains("data-error-for=\"form\""));
    assert!(!html.contains("new password 1"));

    full.release().await;
    let res = app.post_form("/password/reset", &fields).await;
    assert_eq!(res.status(), 303, "the link was not used up by the refusal");
    let v = app.new_visitor();
    assert_eq!(
        v.login("c@example.com", "new password 1").await.status(),
        303
    );
}

#[tokio::test]
async fn an_admin_creating_an_account_while_hashing_is_saturated_gets_the_form_back() {
    let app = spawn_app().await;
    let key = app.state.keys.national_id.clone();
    fixtures::store(&app.db, "11800001", "중앙약국");
    fixtures::user(&app.db, Role::Admin, "a@example.com", None, true, &key);
    assert_eq!(app.login("a@example.com", PASSWORD).await.status(), 303);
    let fields = [
        ("email", "p@example.com"),
        ("name", "새 약사"),
        ("password", "initial password 9"),
        ("role", "pharmacist"),
        ("store_code", "11800001"),
    ];

    let full = FullPool::take(&app);
    let res = app.post_form("/admin/users", &fields).await;
    assert_eq!(res.status(), 503);
    retry_after(&res);
    let html = res.text().await.unwrap();
    for kept in ["p@example.com", "새 약사", "11800001"] {
        assert!(
            html.contains(&format!(r#"value="{kept}""#)),
            "{kept} is kept"
        );
    }
    assert!(!html.contains("initial password 9"));
    assert_eq!(count_users(&app), 1, "only the admin");

    full.release().await;
    assert_eq!(app.post_form("/admin/users", &fields).await.status(), 303);
    assert_eq!(count_users(&app), 2);
}

#[tokio::test]
async fn a_storm_of_logins_gets_only_answers_or_the_waiting_page_never_an_error() {
    let app = spawn_app().await;
    let key = app.state.keys.national_id.clone();
    fixtures::user(&app.db, Role::Citizen, "c@example.com", None, true, &key);
    let capacity = app.state.hashing.size().capacity();

    // More logins in flight at once than the pool has slots.
    let logins = (0..capacity + 30).map(|i| {
        let v = app.new_visitor();
        tokio::spawn(async move {
            let password = if i % 2 == 0 {
                PASSWORD
            } else {
                "wrong password"
            };
            let res = v.login("c@example.com", password).await;
            let status = res.status().as_u16();
            let retry = res.headers().get("retry-after").is_some();
            (i, status, retry)
        })
    });
    let mut answered = 0;
    for login in futures_util::future::join_all(logins).await {
        let (i, status, retry) = login.unwrap();
        match status {
            303 => assert_eq!(i % 2, 0, "only the right password logs in"),
            401 => assert_eq!(i % 2, 1, "only the wrong password is refused"),
            503 => assert!(retry, "the waiting page says when to retry"),
            other => panic!("login {i} answered {other}"),
        }
        if status != 503 {
            answered += 1;
        }
    }
    assert!(answered > 0, "the pool kept working through the storm");
    // Every slot came back: none leaked by a refused or finished request.
    let slots: Vec<_> = (0..capacity)
        .map(|_| app.state.hashing.try_reserve().expect("a slot back"))
        .collect();
    assert_eq!(slots.len(), capacity);
}
