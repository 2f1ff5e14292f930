//! An administrator's day at national scale: imports a store list and one day
//! of supply for every store through the web forms, and times the pages an
//! administrator then works with, against a running server.
//!
//! 1. `POST /admin/stores/import` with `--stores` stores (25,000 by default,
//!    spread over the 17 provinces): all created; then the same file again
//!    (all unchanged); then with one store in ten renamed (an upsert).
//! 2. `POST /admin/supply/import` with one row per store for `--date`, then its
//!    confirmation (`confirm=1` with the preview's `file_hash`): every
//!    store-day and its pickup windows created.
//! 3. `GET` of the store list, a search, a deep page, and the supply page for
//!    that date, `--page-loads` times each, one at a time: latency percentiles.
//!
//! `--write-dir DIR` also writes the two files (`stores.csv`, `supply.csv`) for
//! timing the command-line import (`mask-reservation import-stores`).
//!
//! ```text
//! cargo run --release --example admin_day -- \
//!     --base http://127.0.0.1:8080 --admin admin@example.com:PASSWORD --date 2026-11-27
//! ```
//! See `docs/benchmarks.md` for the procedure and recorded figures.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use reqwest::redirect::Policy;

#[derive(Parser, Debug)]
struct Args {
    /// The server, on a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// An administrator's `email:password`.
    #[arg(long)]
    admin: String,
    /// How many stores the file lists.
    #[arg(long, default_value_t = 25_000)]
    stores: usize,
    /// The supply date (`YYYY-MM-DD`), normally tomorrow in the service zone.
    #[arg(long)]
    date: String,
    /// Loads of each page timed.
    #[arg(long, default_value_t = 50)]
    page_loads: usize,
    /// Also write `stores.csv` and `supply.csv` here.
    #[arg(long)]
    write_dir: Option<std::path::PathBuf>,
}

/// The 17 provinces and metropolitan cities, with a point inside each.
const REGIONS: [(&str, f64, f64); 17] = [
    ("서울특별시", 37.56, 126.97),
    ("부산광역시", 35.17, 129.07),
    ("대구광역시", 35.87, 128.60),
    ("인천광역시", 37.45, 126.70),
    ("광주광역시", 35.16, 126.85),
    ("대전광역시", 36.35, 127.38),
    ("울산광역시", 35.53, 129.31),
    ("세종특별자치시", 36.48, 127.28),
    ("경기도", 37.27, 127.01),
    ("강원도", 37.88, 127.73),
    ("충청북도", 36.63, 127.49),
    ("충청남도", 36.65, 126.67),
    ("전라북도", 35.82, 127.14),
    ("전라남도", 34.81, 126.46),
    ("경상북도", 36.57, 128.72),
    ("경상남도", 35.23, 128.68),
    ("제주특별자치도", 33.50, 126.53),
];

fn stores_csv(n: usize, renamed_every: Option<usize>) -> String {
    let mut out = String::from("code,name,addr,type,lat,lng,phone\n");
    for i in 0..n {
        let (region, lat, lng) = REGIONS[i % REGIONS.len()];
        let offset = (i % 1000) as f64 / 10_000.0;
        let store_type = ["01", "01", "01", "02", "03"][i % 5];
        let renamed = renamed_every.is_some_and(|k| i % k == 0);
        let name = if renamed {
            format!("새봄약국 {i}")
        } else {
            format!("온누리약국 {i}")
        };
        let _ = writeln!(
            out,
            "{code},{name},{region} 중앙로 {street}길 {i},{store_type},{lat:.6},{lng:.6},02-{a:03}-{b:04}",
            code = 30_000_000 + i,
            street = i % 97 + 1,
            lat = lat + offset,
            lng = lng - offset,
            a = i % 1000,
            b = i % 10_000,
        );
    }
    out
}

fn supply_csv(n: usize, date: &str) -> String {
    let mut out = String::from("store_code,date,quantity\n");
    for i in 0..n {
        let _ = writeln!(out, "{},{date},{}", 30_000_000 + i, 100 + (i * 37) % 300);
    }
    out
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .timeout(Duration::from_secs(300))
        .build()?)
}

fn csrf_in(html: &str) -> anyhow::Result<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let at = html.find(marker).context("no CSRF token on the page")? + marker.len();
    let end = html[at..].find('"').context("unterminated CSRF token")?;
    Ok(html[at..at + end].to_owned())
}

/// The session's CSRF token, from a page with a form (`path`).
async fn csrf_token(c: &reqwest::Client, base: &str, path: &str) -> anyhow::Result<String> {
    csrf_in(&c.get(format!("{base}{path}")).send().await?.text().await?)
}

async fn log_in(base: &str, email: &str, password: &str) -> anyhow::Result<reqwest::Client> {
    let c = client()?;
    let token = csrf_token(&c, base, "/login").await?;
    let res = c
        .post(format!("{base}/login"))
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf_token", &token),
        ])
        .send()
        .await?;
    if res.status() != 303 {
        bail!("login answered {}", res.status());
    }
    Ok(c)
}

/// Posts `csv` as the import form does; returns the time to the answer and a
/// summary of the answer page.
async fn import(
    c: &reqwest::Client,
    base: &str,
    path: &str,
    name: &str,
    csv: String,
) -> anyhow::Result<Duration> {
    let token = csrf_token(c, base, "/admin/stores").await?;
    let part = reqwest::multipart::Part::bytes(csv.into_bytes())
        .file_name(name.to_owned())
        .mime_str("text/csv")?;
    let form = reqwest::multipart::Form::new()
        .text("csrf_token", token)
        .part("file", part);
    let started = Instant::now();
    let res = c
        .post(format!("{base}{path}"))
        .multipart(form)
        .send()
        .await?;
    let status = res.status();
    let mut body = res.text().await?;
    if !status.is_success() && !status.is_redirection() {
        bail!(
            "{path} answered {status}: {}",
            &body[..body.len().min(2000)]
        );
    }
    // A supply file answers its preview; it applies once confirmed, as the
    // preview's button does. The time is the two requests together.
    if let Some(hash) = hidden_value(&body, "file_hash") {
        let token = csrf_token(c, base, "/admin/stores").await?;
        let form = reqwest::multipart::Form::new()
            .text("csrf_token", token)
            .text("file_hash", hash)
            .text("confirm", "1");
        let res = c
            .post(format!("{base}{path}"))
            .multipart(form)
            .send()
            .await?;
        let status = res.status();
        body = res.text().await?;
        if !status.is_success() {
            bail!(
                "{path} (confirm) answered {status}: {}",
                &body[..body.len().min(2000)]
            );
        }
    }
    Ok(started.elapsed())
}

/// The value of the hidden input named `name`, if the page has one.
fn hidden_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    rest.split('"').next().map(str::to_owned)
}

async fn time_page(c: &reqwest::Client, base: &str, path: &str, n: usize) -> anyhow::Result<()> {
    let mut latencies = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let started = Instant::now();
        let res = c.get(format!("{base}{path}")).send().await?;
        if res.status() != 200 {
            bail!("{path} answered {}", res.status());
        }
        bytes = res.bytes().await?.len();
        latencies.push(started.elapsed());
    }
    latencies.sort_unstable();
    let ms = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    println!(
        "  {path:<48} p50 {:>6.1} ms   p90 {:>6.1} ms   p99 {:>6.1} ms   max {:>6.1} ms   ({bytes} bytes)",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(1.0),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (email, password) = args
        .admin
        .split_once(':')
        .context("--admin is email:password")?;
    let base = args.base.trim_end_matches('/').to_owned();
    let n = args.stores;
    if let Some(dir) = &args.write_dir {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("stores.csv"), stores_csv(n, None))?;
        std::fs::write(dir.join("supply.csv"), supply_csv(n, &args.date))?;
        println!("wrote {}/stores.csv and supply.csv", dir.display());
    }
    let c = log_in(&base, email, password).await?;

    println!("imports through the web form ({n} rows each):");
    for (what, csv) in [
        ("stores, all new", stores_csv(n, None)),
        ("stores, all unchanged", stores_csv(n, None)),
        ("stores, 1 in 10 renamed", stores_csv(n, Some(10))),
    ] {
        let t = import(&c, &base, "/admin/stores/import", "stores.csv", csv).await?;
        println!("  {what:<36} {:>8.2} s", t.as_secs_f64());
    }
    let supply = supply_csv(n, &args.date);
    let t = import(&c, &base, "/admin/supply/import", "supply.csv", supply).await?;
    println!(
        "  {:<36} {:>8.2} s",
        format!("supply for {}, all new", args.date),
        t.as_secs_f64()
    );

    println!("pages with {n} stores ({} loads each):", args.page_loads);
    let last_page = n.div_ceil(50);
    for path in [
        "/admin/stores".to_owned(),
        format!("/admin/stores?page={last_page}"),
        "/admin/stores?q=%EC%A4%91%EC%95%99%EB%A1%9C+5%EA%B8%B8".to_owned(),
        format!("/admin/supply?date={}", args.date),
        format!("/admin/supply?date={}&page={last_page}", args.date),
        format!("/admin/supply?date={}&q=3001", args.date),
        "/admin".to_owned(),
    ] {
        time_page(&c, &base, &path, args.page_loads).await?;
    }
    Ok(())
}
