//! Headless Chromium driven over WebDriver (chromedriver + fantoccini), the
//! steps a journey is made of, and the page check every page a journey visits
//! goes through: axe-core's accessibility rules at desktop and phone width, and
//! a screenshot of each under `target/screenshots/` for a reviewer.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// axe-core, vendored from the npm registry (see `fixtures/vendor/axe-core/SOURCE`).
const AXE: &str = include_str!("../fixtures/vendor/axe-core/axe.min.js");

/// The widths every page is checked at: a desktop window and a phone.
pub const WIDTHS: [(u32, u32); 2] = [(1280, 900), (390, 844)];

/// A browser session with its own chromedriver and profile; both end on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn find(candidates: &[&str], env: &str) -> Option<String> {
    if let Ok(p) = std::env::var(env) {
        return Some(p);
    }
    candidates
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| (*p).to_owned())
}

impl Browser {
    /// A browser whose language is English (Chromium's own).
    pub async fn start() -> Browser {
        Browser::start_in("en-US").await
    }

    /// A browser whose language, and so `Accept-Language`, is `lang`.
    pub async fn start_in(lang: &str) -> Browser {
        let driver_path = find(
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
            "CHROMEDRIVER",
        )
        .expect("chromedriver not found: install Debian's chromium-driver (see .ci/run)");
        let chrome_path = find(
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
            "CHROME_BIN",
        )
        .expect("chromium not found: install Debian's chromium (see .ci/run)");
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome_path,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                    "--no-first-run",
                    "--window-size=1280,900",
                    format!("--lang={lang}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": { "intl.accept_languages": lang }
            }
        });
        let caps = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "chromedriver did not start a session: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Checks the page on screen at each of [`WIDTHS`]: saves a screenshot as
    /// `target/screenshots/NAME-WIDTH.png` and fails on any serious or critical
    /// accessibility violation axe-core finds, naming the rule and the elements.
    pub async fn check_page(&self, name: &str) {
        let c = &self.client;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let mut problems = Vec::new();
        for (width, height) in WIDTHS {
            c.set_window_size(width, height).await.unwrap();
            let png = c.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{name}-{width}.png")), png).unwrap();
            // A page wider than the screen: name what sticks out, leaving out
            // what a table's own scroll box holds (it rarely is the cause).
            let too_wide = c
                .execute(
                    "const edge = document.documentElement.clientWidth;
                     if (document.documentElement.scrollWidth <= edge) return null;
                     return [...document.querySelectorAll('body *')]
                        .filter(e => e.getBoundingClientRect().right > edge + 0.5)
                        .filter(e => !e.closest('.table-scroll') || e.matches('.table-scroll'))
                        .slice(0, 5)
                        .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''));",
                    vec![],
                )
                .await
                .unwrap();
            if !too_wide.is_null() {
                problems.push(format!(
                    "at {width} px the page scrolls sideways: {too_wide}"
                ));
            }
            c.execute(&format!("{AXE}\nreturn true;"), vec![])
                .await
                .unwrap();
            let found = c
                .execute_async(
                    "const done = arguments[arguments.length - 1];
                     axe.run(document, { resultTypes: ['violations'] })
                        .then(r => done(r.violations
                            .filter(v => v.impact === 'serious' || v.impact === 'critical')
                            .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                                         nodes: v.nodes.map(n => n.target.join(' ')) }))))
                        .catch(e => done([{ id: 'axe-error', impact: 'critical',
                                            help: String(e), nodes: [] }]));",
                    vec![],
                )
                .await
                .unwrap();
            for v in found.as_array().unwrap() {
                problems.push(format!("at {width} px: {}", describe(v)));
            }
        }
        let (width, height) = WIDTHS[0];
        c.set_window_size(width, height).await.unwrap();
        let url = c.current_url().await.unwrap();
        assert!(
            problems.is_empty(),
            "{name} ({url}):\n{}",
            problems.join("\n")
        );
    }

    /// Ends the WebDriver session; the driver process ends on drop.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn describe(v: &Value) -> String {
    format!(
        "{} ({}): {} — {}",
        v["id"].as_str().unwrap_or("?"),
        v["impact"].as_str().unwrap_or("?"),
        v["help"].as_str().unwrap_or(""),
        v["nodes"]
            .as_array()
            .map(|n| n
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    )
}

/// Waits until the element's text is `expected`: a click that navigates returns
/// before the next page is there.
pub async fn wait_for_text(c: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && let Ok(text) = el.text().await
        {
            if text == expected {
                return;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`{css}` never read `{expected}`; last `{last}`");
}

/// Waits until an element matching `css` is on the page.
pub async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(el) = c.find(Locator::Css(css)).await {
            return el;
        }
        assert!(
            Instant::now() < deadline,
            "`{css}` never appeared on {:?}",
            c.current_url().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Types `value` into the input named `name`, replacing what it held.
pub async fn fill(c: &Client, name: &str, value: &str) {
    let field = c
        .find(Locator::Css(&format!("input[name='{name}']")))
        .await
        .unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Types a national ID into the sign-up form's two fields, as a person does:
/// the six birth-date digits, then the seven others.
pub async fn fill_national_id(c: &Client, national_id: &str) {
    let digits: String = national_id.chars().filter(char::is_ascii_digit).collect();
    let (front, back) = digits.split_at(digits.len().min(6));
    fill(c, "national_id_front", front).await;
    fill(c, "national_id_back", back).await;
}

/// Logs `email` in (with [`super::fixtures::PASSWORD`]) from the login page
/// of the app at `app`, and waits for the page after.
pub async fn log_in(c: &Client, app: &super::TestApp, email: &str) {
    c.goto(&app.url("/login")).await.unwrap();
    fill(c, "email", email).await;
    fill(c, "password", super::fixtures::PASSWORD).await;
    submit(c, "/login").await;
    wait_for(c, "form[action='/logout']").await;
}

/// Presses the submit button of the form posting to `form_action`.
pub async fn submit(c: &Client, form_action: &str) {
    c.find(Locator::Css(&format!(
        "form[action='{form_action}'] button[type='submit']"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
}

/// Ticks the checkbox named `name` unless it is ticked already (a form sent
/// back keeps it ticked).
pub async fn tick(c: &Client, name: &str) {
    let boxed = c
        .find(Locator::Css(&format!(
            "input[type='checkbox'][name='{name}']"
        )))
        .await
        .unwrap();
    if boxed.prop("checked").await.unwrap().as_deref() != Some("true") {
        boxed.click().await.unwrap();
    }
}
