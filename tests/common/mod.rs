//! The test harness: a fresh database per test (an SQLite file copied from a
//! migrated template, or a PostgreSQL database cloned from a template database
//! when `TEST_DATABASE_URL` is set), the app on port 0, and an HTTP client that
//! keeps cookies and knows the CSRF token.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod db;
pub mod proxy;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mask_reservation::app::{AppState, Application, open_db};
use mask_reservation::config::{AppEnv, Config, MailTransport, SecretKey};
use mask_reservation::db::{Backend, Db};
use reqwest::redirect::Policy;

pub use db::TestDatabase;

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub db: Db,
    pub state: actix_web::web::Data<AppState>,
    pub data_dir: tempfile::TempDir,
    pub database: Arc<TestDatabase>,
    handle: actix_web::dev::ServerHandle,
}

/// Options for [`spawn_app_with`].
#[derive(Default)]
pub struct Spawn {
    /// Run the app against an existing test database (several instances on one
    /// database), instead of a fresh one.
    pub database: Option<Arc<TestDatabase>>,
    /// Route PostgreSQL traffic through this proxy port (to cut the database).
    pub via_proxy: Option<u16>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Spawn::default()).await
}

pub async fn spawn_app_with(options: Spawn) -> TestApp {
    let database = match options.database {
        Some(d) => d,
        None => Arc::new(TestDatabase::fresh()),
    };
    let data_dir = tempfile::tempdir().unwrap();
    let config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: database.url_via(options.via_proxy),
        secret: SecretKey::generate(),
        mail: MailTransport::File(data_dir.path().join("mail")),
        timezone: chrono_tz::Asia::Seoul,
        seed_demo: false,
        app_env: AppEnv::Development,
        data_dir: data_dir.path().to_owned(),
        db_pool_size: 8,
        workers: 2,
        base_url: "http://127.0.0.1".into(),
    };
    let db = open_db(&config);
    let app = Application::build(config, db.clone()).expect("the app builds");
    let port = app.port();
    let state = app.state();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client,
        db,
        state,
        data_dir,
        database,
        handle,
    }
}

impl TestApp {
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_with_lang(&self, path: &str, accept_language: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("Accept-Language", accept_language)
            .send()
            .await
            .unwrap()
    }

    /// The session's CSRF token, as a page's forms carry it.
    pub async fn csrf_token(&self) -> String {
        let html = self.get("/").await.text().await.unwrap();
        extract_csrf(&html).expect("the home page carries a CSRF token")
    }

    /// Posts a form with the session's CSRF token added.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let token = self.csrf_token().await;
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf_token", &token));
        self.post_form_raw(path, &all).await
    }

    /// Posts exactly these fields.
    pub async fn post_form_raw(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

pub fn extract_csrf(html: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// Polls `check` until it returns `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}
