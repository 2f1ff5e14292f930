//! A database for one benchmark run, used by surge and by the benchmarks
//! in `examples/`: a fresh SQLite file in a directory the caller owns, or a
//! scratch database `{prefix}_{pid}` created on a PostgreSQL server and
//! dropped when the run is over.

use std::path::Path;

use anyhow::{Context, bail};
use diesel::connection::SimpleConnection;
use mask_reservation::db::DatabaseUrl;

/// The database a run uses, and on PostgreSQL the server it was made on.
pub struct Scratch {
    pub url: DatabaseUrl,
    made_on: Option<(DatabaseUrl, String)>,
}

impl Scratch {
    /// `{file}` in `dir` without `server`; with it (a `postgres://` URL),
    /// a new database `{prefix}_{pid}` next to the one `server` names, with
    /// its parameters (`?sslmode=…`) kept.
    pub fn create(
        server: Option<&str>,
        dir: &Path,
        file: &str,
        prefix: &str,
    ) -> anyhow::Result<Scratch> {
        let Some(server) = server else {
            return Ok(Scratch {
                url: DatabaseUrl::Sqlite(dir.join(file)),
                made_on: None,
            });
        };
        let admin = DatabaseUrl::parse(server)?;
        let DatabaseUrl::Postgres(base) = &admin else {
            bail!("--database-url must be a postgres:// URL");
        };
        let name = format!("{prefix}_{}", std::process::id());
        admin
            .connect()?
            .batch_execute(&format!("CREATE DATABASE {name}"))?;
        let (base, query) = match base.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (base.as_str(), String::new()),
        };
        let (prefix, _) = base.rsplit_once('/').context("URL without a database")?;
        Ok(Scratch {
            url: DatabaseUrl::Postgres(format!("{prefix}/{name}{query}")),
            made_on: Some((admin, name)),
        })
    }

    /// Runs `run` on the database, then drops a PostgreSQL scratch database
    /// whatever `run` answered; `run`'s answer.
    pub fn run<T>(self, run: impl FnOnce(&DatabaseUrl) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let result = run(&self.url);
        if let Some((admin, name)) = self.made_on {
            admin
                .connect()?
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        }
        result
    }
}
