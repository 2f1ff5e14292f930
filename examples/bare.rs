//! The floor to compare the application against: a bare actix-web 4 server with
//! no middleware, answering the same stylesheet the application serves from
//! `/static/css/app.css` (same bytes, same headers that matter).
//!
//! ```sh
//! cargo build --release --example bare
//! BIND=127.0.0.1:8081 WORKERS=2 target/release/examples/bare
//! ```
//!
//! `docs/benchmarks.md` says how it is measured against the application.

use actix_web::http::header;
use actix_web::{App, HttpResponse, HttpServer, web};

const CSS: &[u8] = include_bytes!("../static/css/app.css");

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(CSS)
}

fn main() -> std::io::Result<()> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8081".to_owned());
    let workers = std::env::var("WORKERS")
        .ok()
        .and_then(|w| w.parse::<usize>().ok())
        .filter(|w| *w > 0)
        .unwrap_or(2);
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| App::new().route("/static/css/app.css", web::get().to(stylesheet)))
            .workers(workers)
            .bind(bind)?
            .run()
            .await
    })
}
