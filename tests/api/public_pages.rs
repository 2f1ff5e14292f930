//! The pages everyone sees, in a browser at phone width (390 px), in Korean and
//! English, checked for what is on screen: search results as cards, the
//! sign-up's named error summary and consent, the map's links, live markers
//! and "near me", the home page's title, the waiting room's and the 429 page's
//! countdown, and a focus ring that can be seen.

use std::time::Duration;

use fantoccini::{Client, Locator};
use mask_reservation::accounts::Role;
use mask_reservation::clock::Clock;
use mask_reservation::rate_limit::{Limit, RateLimits};
use serde_json::{Value, json};

use crate::common::browser::{Browser, fill, submit, wait_for, wait_for_text};
use crate::common::{
    Spawn, TestApp, count_users, eventually, fixtures, generous_limits, spawn_app_with,
};
use crate::reservations::{seoul, tuesday};

const STORE: &str = "11800001";
const PHONE: (u32, u32) = (390, 844);

/// Both languages: the browser's, and the words a page says in it.
const LANGS: [(&str, &str); 2] = [("ko-KR", "ko"), ("en-US", "en")];

fn says<'a>(lang: &str, ko: &'a str, en: &'a str) -> &'a str {
    if lang == "ko" { ko } else { en }
}

async fn phone(lang: &str) -> Browser {
    let browser = Browser::start_in(lang).await;
    browser
        .client
        .set_window_size(PHONE.0, PHONE.1)
        .await
        .unwrap();
    browser
}

/// Where `css` is on screen and whether it shows: its box, the viewport's
/// width and height, its computed display and visibility, its text as rendered.
const ON_SCREEN: &str = "
    const el = document.querySelector(arguments[0]);
    if (!el) return null;
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    return { left: r.left, right: r.right, top: r.top, bottom: r.bottom,
             width: r.width, height: r.height,
             vw: document.documentElement.clientWidth, vh: window.innerHeight,
             display: s.display, visibility: s.visibility,
             text: el.innerText };";

async fn on_screen(c: &Client, css: &str) -> Value {
    let seen = c.execute(ON_SCREEN, vec![json!(css)]).await.unwrap();
    assert!(!seen.is_null(), "`{css}` is not on the page");
    seen
}

/// `css` is shown, wholly inside the screen's width, and (when `fold`) above
/// the fold; answers its rendered text.
async fn visible(c: &Client, css: &str, fold: bool) -> String {
    let s = on_screen(c, css).await;
    let f = |k: &str| s[k].as_f64().unwrap();
    assert!(
        s["display"] != "none" && s["visibility"] == "visible" && f("width") > 0.0,
        "`{css}` is not shown: {s}"
    );
    assert!(
        f("left") >= -0.5 && f("right") <= f("vw") + 0.5,
        "`{css}` sticks out sideways: {s}"
    );
    if fold {
        assert!(
            f("top") >= 0.0 && f("bottom") <= f("vh"),
            "`{css}` is not above the fold: {s}"
        );
    }
    s["text"].as_str().unwrap_or_default().to_owned()
}

async fn shown(c: &Client, css: &str) -> bool {
    let s = on_screen(c, css).await;
    s["display"] != "none" && s["width"].as_f64().unwrap() > 0.0
}

async fn no_sideways_scroll(c: &Client) {
    let wide = c
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        wide.as_f64().unwrap() <= 0.5,
        "the page scrolls sideways by {wide}"
    );
}

/// A store with 100 masks today (70 in the windows, 30 at the counter) in an
/// app whose clock stands at 10:00 on a Tuesday, the snapshot holding it.
async fn app_with_a_store() -> (TestApp, Vec<i64>) {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 10, 0))).await;
    let store = fixtures::store(&app.db, STORE, "중앙약국");
    let windows = fixtures::supply(&app.db, store, tuesday(), 100);
    eventually(
        Duration::from_secs(10),
        "the snapshot to hold the store",
        || async {
            let res = app.get("/corona19-masks/v1/stores/json?perPage=1").await;
            let v: Value = res.json().await.ok()?;
            (v["totalCount"] == 1).then_some(())
        },
    )
    .await;
    (app, windows)
}

// ---- 4: search results ---------------------------------------------------

#[tokio::test]
async fn on_a_phone_each_search_result_is_a_card_with_status_figures_distance_and_one_button() {
    let (app, _) = app_with_a_store().await;
    for (browser_lang, lang) in LANGS {
        let browser = phone(browser_lang).await;
        let c = &browser.client;
        c.goto(&app.url("/stores?lat=37.5600&lng=126.9700"))
            .await
            .unwrap();
        wait_for(c, "[data-search-results] [data-distance]").await;
        let card = format!("tr[data-store-code='{STORE}']");
        assert_eq!(
            visible(c, &format!("{card} .card-name"), false).await,
            "중앙약국"
        );
        let status = visible(c, &format!("{card} .card-status"), false).await;
        assert_eq!(
            status,
            says(lang, "충분 (100개 이상)", "Plenty (100 or more)")
        );
        let figures = visible(c, &format!("{card} .card-figures"), false).await;
        assert!(
            figures.contains(says(
                lang,
                "예약 가능 70 · 현장 구매 30",
                "Bookable 70 · At the counter 30"
            )),
            "{figures}"
        );
        let distance = visible(c, &format!("{card} .card-distance"), false).await;
        assert!(distance.ends_with(says(lang, "0m", "0 m")), "{distance}");
        let action = visible(c, &format!("{card} [data-store-action]"), false).await;
        assert!(
            action.starts_with(says(lang, "재고 보고 예약하기", "Book or see stock")),
            "{action}"
        );
        assert!(!shown(c, &format!("{card} .card-type")).await);
        // A card, not a row: the name sits above the status, not beside it.
        let name = on_screen(c, &format!("{card} .card-name")).await;
        let stat = on_screen(c, &format!("{card} .card-status")).await;
        assert!(
            stat["top"].as_f64() >= name["bottom"].as_f64(),
            "{name} {stat}"
        );
        no_sideways_scroll(c).await;
        browser.check_page(&format!("search-cards-{lang}")).await;
        c.find(Locator::Css(&format!("{card} [data-store-action]")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        eventually(Duration::from_secs(10), "the store page", || async {
            let url = c.current_url().await.ok()?;
            (url.path() == format!("/stores/{STORE}")).then_some(())
        })
        .await;
        browser.close().await;
    }
}

// ---- 6: sign-up ----------------------------------------------------------

#[tokio::test]
async fn a_sign_up_without_consent_comes_back_with_the_message_by_the_box_and_values_kept() {
    let app = spawn_app_with(Spawn::default()).await;
    let national_id = fixtures::unique_national_id();
    let fields = [
        ("national_id", national_id.as_str()),
        ("name", "홍길동"),
        ("email", "hong@example.com"),
        ("password", fixtures::PASSWORD),
        ("password_confirm", fixtures::PASSWORD),
    ];
    let res = app.post_form("/signup", &fields).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"data-error-for="consent""#), "{html}");
    assert!(html.contains(r##"href="#f-consent""##));
    assert!(html.contains(r#"value="hong@example.com""#));
    assert!(html.contains(r#"value="홍길동""#));
    assert_eq!(count_users(&app), 0);

    // Without the CSRF token: refused, nobody signed up.
    let mut with_consent = fields.to_vec();
    with_consent.push(("consent", "on"));
    let res = app.post_form_raw("/signup", &with_consent).await;
    assert_eq!(res.status(), 403);
    assert_eq!(count_users(&app), 0);

    let res = app.post_form("/signup", &with_consent).await;
    assert_eq!(res.status(), 303);
    assert_eq!(count_users(&app), 1);
}

#[tokio::test]
async fn on_a_phone_the_sign_up_summary_names_each_field_and_the_notice_says_what_is_kept() {
    let app = spawn_app_with(Spawn::default()).await;
    for (browser_lang, lang) in LANGS {
        let browser = phone(browser_lang).await;
        let c = &browser.client;
        c.goto(&app.url("/signup")).await.unwrap();
        // The notice comes before the box, and says the truth about retention
        // and what is stored of the number.
        let notice = visible(c, "[data-consent] dl", false).await;
        for words in [
            says(
                lang,
                "계정이 있는 동안 보관합니다",
                "For as long as the account exists",
            ),
            "HMAC-SHA256",
            "850101-1******",
            says(lang, "생년월일", "birth date"),
        ] {
            assert!(notice.contains(words), "{words} in {notice}");
        }
        fill(c, "email", "minji@example.com").await;
        submit(c, "/signup").await;
        wait_for(c, "[data-error-summary]").await;
        let focused = c
            .execute(
                "return document.activeElement && document.activeElement.hasAttribute('data-error-summary');",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(focused, json!(true), "the focus is on the summary");
        visible(c, "#error-summary-title", true).await;
        let summary = visible(c, "[data-error-summary]", false).await;
        let required = says(lang, "필수 입력 항목입니다.", "This field is required.");
        for label in [
            says(lang, "주민등록번호", "Resident registration number"),
            says(lang, "이름", "Name"),
        ] {
            assert!(
                summary.contains(&format!("{label}: {required}")),
                "{label} in {summary}"
            );
        }
        let consent_line = visible(c, "[data-summary-for='consent']", false).await;
        assert!(
            consent_line.starts_with(says(
                lang,
                "개인정보 수집·이용 동의(필수): ",
                "Consent to collecting and using personal data (required): "
            )),
            "{consent_line}"
        );
        // The message sits by the box, and the box is where its link leads.
        c.find(Locator::Css("[data-summary-for='consent']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let error = on_screen(c, "[data-error-for='consent']").await;
        let boxed = on_screen(c, "#f-consent").await;
        visible(c, "[data-error-for='consent']", true).await;
        visible(c, "#f-consent", true).await;
        let gap = boxed["top"].as_f64().unwrap() - error["bottom"].as_f64().unwrap();
        assert!((0.0..120.0).contains(&gap), "{error} {boxed}");
        let kept = c
            .find(Locator::Css("input[name='email']"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap();
        assert_eq!(kept.as_deref(), Some("minji@example.com"));
        no_sideways_scroll(c).await;
        browser.close().await;
    }
}

// ---- 13: the map ---------------------------------------------------------

#[tokio::test]
async fn on_a_phone_the_map_links_each_marker_and_row_and_follows_the_stock_without_reloading() {
    let (app, windows) = app_with_a_store().await;
    let key = app.state.keys.national_id.clone();
    let citizen = fixtures::user(
        &app.db,
        Role::Citizen,
        "citizen@example.com",
        None,
        true,
        &key,
    );
    let mut booked = false;
    for (browser_lang, lang) in LANGS {
        let browser = phone(browser_lang).await;
        let c = &browser.client;
        c.goto(&app.url("/map?lat=37.56&lng=126.97")).await.unwrap();
        wait_for(c, "[data-markers='1']").await;
        let marker = format!("a[data-marker-link='{STORE}']");
        let link = c.find(Locator::Css(&marker)).await.unwrap();
        assert_eq!(
            link.attr("href").await.unwrap().as_deref(),
            Some("/stores/11800001")
        );
        let plenty = says(lang, "충분 (100개 이상)", "Plenty (100 or more)");
        let some = says(lang, "보통 (30~99개)", "Some (30–99)");
        let name = c
            .execute(
                "return document.querySelector(arguments[0]).textContent;",
                vec![json!(marker)],
            )
            .await
            .unwrap();
        let expected = if booked { some } else { plenty };
        assert_eq!(
            name,
            json!(format!("중앙약국, {expected}")),
            "the marker's name"
        );
        let row = format!("tr[data-store-code='{STORE}'] a[data-store-link]");
        assert_eq!(
            c.find(Locator::Css(&row))
                .await
                .unwrap()
                .attr("href")
                .await
                .unwrap()
                .as_deref(),
            Some("/stores/11800001")
        );
        visible(c, "[data-map-live]", false).await;
        visible(c, "[data-near-me]", false).await;
        assert!(
            c.find(Locator::Css("input[name='lat']")).await.is_err(),
            "no latitude field"
        );

        if !booked {
            // Stock moves (a booking of two: 98 left, "some"): the open page
            // follows without a reload — the marker, then the list's figures.
            c.execute("window.__samePage = true;", vec![])
                .await
                .unwrap();
            // Written as a booking writes it, stamped by the same clock as
            // the fixture's allocation (the snapshot reads what moved since
            // its last stamp; the app's clock here stands still in the past).
            fixtures::reservation(&app.db, windows[windows.len() - 1], citizen, 2);
            booked = true;
            wait_for(c, &format!("{marker}[data-remain-stat='some']")).await;
            wait_for(
                c,
                &format!("tr[data-store-code='{STORE}'][data-figures*='68']"),
            )
            .await;
            assert_eq!(
                c.execute("return window.__samePage === true;", vec![])
                    .await
                    .unwrap(),
                json!(true),
                "the page was not reloaded"
            );
        }
        no_sideways_scroll(c).await;

        // "Near me" with the browser's location: the map of that point.
        c.execute(
            "navigator.geolocation.getCurrentPosition = (ok) =>
                ok({ coords: { latitude: 37.5601, longitude: 126.9701, accuracy: 10 } });",
            vec![],
        )
        .await
        .unwrap();
        c.find(Locator::Css("[data-near-me]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        eventually(Duration::from_secs(10), "the map of the point", || async {
            let url = c.current_url().await.ok()?;
            url.query()
                .is_some_and(|q| q.contains("lat=37.56010") && q.contains("lng=126.97010"))
                .then_some(())
        })
        .await;
        wait_for(c, "[data-markers='1']").await;
        browser.check_page(&format!("map-{lang}")).await;
        browser.close().await;
    }
}

// ---- 14: bugs seen by everyone ------------------------------------------

#[tokio::test]
async fn the_home_page_title_is_words_and_the_near_me_script_loads_once() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 10, 0))).await;
    for (browser_lang, lang) in LANGS {
        let browser = phone(browser_lang).await;
        let c = &browser.client;
        c.goto(&app.url("/")).await.unwrap();
        wait_for(c, "[data-near-me]").await;
        let title = c.title().await.unwrap();
        assert_eq!(
            title,
            says(
                lang,
                "홈 · 공적 마스크 예약",
                "Home · Public Mask Reservation"
            )
        );
        let buttons = c
            .execute(
                "return document.querySelectorAll('[data-near-me]').length;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(buttons, json!(1), "one near-me button");
        browser.close().await;
    }
}

/// The ratio of WCAG 2 between the focused element's outline colour and what
/// is on screen just outside the ring, for each of the first stops the Tab key
/// reaches.
const FOCUS_RING: &str = "
    const lum = (rgb) => {
        const [r, g, b] = rgb.match(/[0-9.]+/g).slice(0, 3).map(Number).map(v => {
            v = v / 255;
            return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const behind = (el) => {
        for (let e = el; e; e = e.parentElement) {
            const bg = getComputedStyle(e).backgroundColor;
            const alpha = bg.match(/[0-9.]+/g);
            if (alpha && (alpha.length < 4 || Number(alpha[3]) > 0.5)) return bg;
        }
        return 'rgb(255, 255, 255)';
    };
    const el = document.activeElement;
    const s = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    const ring = parseFloat(s.outlineOffset) + parseFloat(s.outlineWidth);
    const x = Math.max(0, r.left - ring - 1), y = r.top + r.height / 2;
    const under = document.elementsFromPoint(x, y).find(e => e !== el && !el.contains(e)) || document.body;
    const a = lum(s.outlineColor) + 0.05, b = lum(behind(under)) + 0.05;
    return { what: el.outerHTML.slice(0, 80), style: s.outlineStyle,
             colour: s.outlineColor, background: behind(under),
             ratio: Math.max(a, b) / Math.min(a, b) };";

#[tokio::test]
async fn the_focus_ring_stands_out_at_least_three_to_one_in_the_header_and_the_page() {
    let app = spawn_app_with(Spawn::at(seoul(tuesday(), 10, 0))).await;
    for (browser_lang, _) in LANGS {
        let browser = phone(browser_lang).await;
        let c = &browser.client;
        c.goto(&app.url("/")).await.unwrap();
        wait_for(c, "[data-near-me]").await;
        let mut backgrounds = std::collections::HashSet::new();
        for _ in 0..12 {
            c.active_element()
                .await
                .unwrap()
                .send_keys("\u{E004}")
                .await
                .unwrap();
            let seen = c.execute(FOCUS_RING, vec![]).await.unwrap();
            if seen["what"].as_str().unwrap_or("").starts_with("<body") {
                continue;
            }
            assert_eq!(seen["style"], "solid", "a ring is drawn: {seen}");
            assert!(seen["ratio"].as_f64().unwrap() >= 3.0, "{seen}");
            backgrounds.insert(seen["background"].as_str().unwrap().to_owned());
        }
        assert!(
            backgrounds.len() >= 2,
            "stops on the blue header and on the white page: {backgrounds:?}"
        );
        browser.close().await;
    }
}

/// Posting this to the resend form is refused (a limit of none per minute),
/// two seconds before the limit's minute ends: the 429 page counts down 2, 1.
fn resend_refused() -> RateLimits {
    RateLimits {
        resend_per_account: Limit {
            max: 0,
            window_secs: 60,
        },
        ..generous_limits()
    }
}

#[tokio::test]
async fn on_a_phone_the_429_page_counts_the_retry_after_down_in_words_for_one_and_many() {
    let at = seoul(tuesday(), 10, 0) + chrono::TimeDelta::seconds(58);
    let app = spawn_app_with(Spawn {
        clock: Some(Clock::manual(at)),
        rate_limits: Some(resend_refused()),
        ..Spawn::default()
    })
    .await;
    let key = app.state.keys.national_id.clone();
    fixtures::user(&app.db, Role::Citizen, "new@example.com", None, false, &key);
    // Over HTTP: 429 with Retry-After, and the wait on the page.
    let v = app.new_visitor();
    assert_eq!(
        v.login("new@example.com", fixtures::PASSWORD)
            .await
            .status(),
        303
    );
    let res = v.post_form("/verify-email/resend", &[]).await;
    assert_eq!(res.status(), 429);
    assert_eq!(crate::common::retry_after(&res), 2);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"data-countdown="2""#), "{html}");
    assert!(html.contains("2초 뒤에 다시 시도할 수 있습니다.") || html.contains("in 2 seconds"));

    for (browser_lang, lang) in LANGS {
        let browser = phone(browser_lang).await;
        let c = &browser.client;
        c.goto(&app.url("/login")).await.unwrap();
        fill(c, "email", "new@example.com").await;
        fill(c, "password", fixtures::PASSWORD).await;
        submit(c, "/login").await;
        wait_for(c, "form[action='/verify-email/resend']").await;
        submit(c, "/verify-email/resend").await;
        wait_for(c, "[data-status='429']").await;
        let first = visible(c, "[data-countdown]", true).await;
        assert!(
            [
                says(
                    lang,
                    "2초 뒤에 다시 시도할 수 있습니다.",
                    "You can try again in 2 seconds."
                ),
                says(
                    lang,
                    "1초 뒤에 다시 시도할 수 있습니다.",
                    "You can try again in 1 second."
                ),
            ]
            .contains(&first.as_str()),
            "{first}"
        );
        wait_for_text(
            c,
            "[data-countdown]",
            says(
                lang,
                "1초 뒤에 다시 시도할 수 있습니다.",
                "You can try again in 1 second.",
            ),
        )
        .await;
        wait_for_text(
            c,
            "[data-countdown]",
            says(
                lang,
                "이제 다시 시도할 수 있습니다.",
                "You can try again now.",
            ),
        )
        .await;
        let again = visible(c, "[data-try-again]", true).await;
        assert_eq!(again, says(lang, "다시 시도", "Try again"));
        // It leads back to the page the refused form was on.
        let href = c
            .find(Locator::Css("[data-try-again]"))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap();
        assert_eq!(href.as_deref(), Some("/reservations"));
        no_sideways_scroll(c).await;
        browser.close().await;
    }
}

/// The waiting room with one slot, held, and the store page behind it.
async fn app_with_a_full_room() -> TestApp {
    let app = spawn_app_with(Spawn {
        clock: Some(Clock::manual(seoul(tuesday(), 8, 0))),
        configure: Some(Box::new(|c| c.waiting_room_capacity = 1)),
        ..Spawn::default()
    })
    .await;
    let store = fixtures::store(&app.db, STORE, "중앙약국");
    fixtures::supply(&app.db, store, tuesday(), 120);
    app
}

#[tokio::test]
async fn without_javascript_the_waiting_page_asks_for_its_button_instead_of_promising_a_retry() {
    let app = app_with_a_full_room().await;
    let _slot = app.state.waiting_room.hold().unwrap();
    for (lang, words, button) in [
        ("en", "Press “Try again” in 1 second.", "Try again"),
        ("ko", "1초 뒤에 '다시 시도'를 눌러 주세요.", "다시 시도"),
    ] {
        let res = app
            .new_visitor()
            .get_with_lang("/stores/11800001", lang)
            .await;
        assert_eq!(res.status(), 503);
        assert_eq!(crate::common::retry_after(&res), 1);
        let html = res.text().await.unwrap();
        assert!(
            html.contains(&format!(">{}</p>", words.replace('\'', "&#39;")))
                || html.contains(words),
            "{html}"
        );
        assert!(
            html.contains(&format!(r#"href="/stores/11800001">{button}</a>"#)),
            "{html}"
        );
        // No refresh the reader could not stop, and no promise of one.
        assert!(!html.contains("http-equiv"), "{html}");
        assert!(!html.contains("This page tries again by itself"));
        assert!(!html.contains("스스로 다시 시도"));
    }
}

/// Reads the waiting page at once (its script opens it again within a
/// second), then presses the pause button, in one turn of the page's script:
/// what was on screen before and after.
const PAUSE: &str = "
    const pause = document.querySelector('[data-waiting-pause]');
    const count = document.querySelector('[data-countdown]');
    const show = (el) => { const r = el.getBoundingClientRect(), s = getComputedStyle(el);
        return { display: s.display, width: r.width, right: r.right, bottom: r.bottom,
                 vw: document.documentElement.clientWidth, vh: window.innerHeight }; };
    const before = { pause: show(pause), count: show(count), text: count.innerText };
    pause.click();
    window.__pausedAt = performance.now();
    return { before, after: { pause: show(pause), count: show(count),
             status: document.querySelector('[data-countdown-status]').innerText } };";

#[tokio::test]
async fn on_a_phone_the_waiting_page_counts_down_and_its_pause_button_stops_it_and_goes_away() {
    let app = app_with_a_full_room().await;
    let _slot = app.state.waiting_room.hold().unwrap();
    for (browser_lang, lang) in LANGS {
        let browser = phone(browser_lang).await;
        let c = &browser.client;
        c.goto(&app.url("/stores/11800001")).await.unwrap();
        let seen = c.execute(PAUSE, vec![]).await.unwrap();
        let before = &seen["before"];
        assert_ne!(before["pause"]["display"], "none", "{seen}");
        assert!(before["pause"]["width"].as_f64().unwrap() > 0.0, "{seen}");
        assert!(
            before["pause"]["right"].as_f64() <= before["pause"]["vw"].as_f64(),
            "{seen}"
        );
        assert!(
            before["count"]["bottom"].as_f64() <= before["count"]["vh"].as_f64(),
            "the countdown is above the fold: {seen}"
        );
        assert_eq!(
            before["text"],
            json!(says(
                lang,
                "1초 뒤에 다시 시도합니다.",
                "Trying again in 1 second."
            ))
        );
        let after = &seen["after"];
        assert_eq!(after["pause"]["display"], "none", "{seen}");
        assert_eq!(after["count"]["display"], "none", "{seen}");
        assert!(
            after["status"].as_str().unwrap().starts_with(says(
                lang,
                "자동 다시 시도를 멈췄습니다",
                "Trying again by itself is stopped"
            )),
            "{seen}"
        );
        // Stopped: two seconds later by the page's own clock, the same page.
        eventually(
            Duration::from_secs(10),
            "two seconds after the pause",
            || async {
                let passed = c
                    .execute(
                        "return window.__pausedAt !== undefined
                        && performance.now() - window.__pausedAt > 2000;",
                        vec![],
                    )
                    .await
                    .ok()?;
                (passed == json!(true)).then_some(())
            },
        )
        .await;
        visible(c, "[data-status-text], [data-countdown-status]", false).await;
        browser.close().await;
    }
}
