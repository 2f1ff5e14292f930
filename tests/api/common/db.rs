//! Fresh databases for tests: migrated once into a template, copied per test.

use std::path::PathBuf;
use std::sync::OnceLock;

use diesel::PgConnection;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use mask_reservation::db::{DatabaseUrl, DbConnection};

/// The database of one test; dropped with the test.
pub enum TestDatabase {
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres {
        /// Server URL without a database name.
        server: url::Url,
        name: String,
    },
}

/// The PostgreSQL server to test against, if any.
pub fn postgres_server() -> Option<url::Url> {
    let raw = std::env::var("TEST_DATABASE_URL").ok()?;
    let mut url = url::Url::parse(&raw).expect("TEST_DATABASE_URL is a postgres:// URL");
    assert!(
        matches!(url.scheme(), "postgres" | "postgresql"),
        "TEST_DATABASE_URL must be a postgres:// URL"
    );
    // The test server is local and TLS is not what these tests check. Left at
    // libpq's default (`prefer`), every connection speaks TLS, and when the test
    // process ends, OpenSSL's exit-time clean-up frees its state while servers
    // left running in other threads still close their connections: the process
    // then aborts ("double free or corruption") after every test has passed.
    if !url.query_pairs().any(|(k, _)| k == "sslmode") {
        url.query_pairs_mut().append_pair("sslmode", "disable");
    }
    Some(url)
}

fn with_db(server: &url::Url, name: &str) -> url::Url {
    let mut u = server.clone();
    u.set_path(&format!("/{name}"));
    u
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// A short fingerprint of the migration files, so a changed schema gets a new
/// template database.
fn migrations_fingerprint() -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let root = super::repo_path("migrations/postgres");
    let mut files: Vec<PathBuf> = walk(&root);
    files.sort();
    for f in files {
        f.strip_prefix(&root).unwrap().hash(&mut hasher);
        std::fs::read(&f).unwrap().hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn sqlite_template() -> &'static PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mask-tests-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("template.db");
        let mut conn = DatabaseUrl::Sqlite(path.clone()).connect().unwrap();
        conn.run_migrations().unwrap();
        // Fold the WAL into the main file so one file copy is a whole database.
        conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
        drop(conn);
        path
    })
}

fn postgres_template(server: &url::Url) -> &'static String {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let name = format!("mask_test_tpl_{}", migrations_fingerprint());
        let mut admin = PgConnection::establish(server.as_str()).unwrap();
        // Several test binaries may start at once: one creates the template.
        admin
            .batch_execute("SELECT pg_advisory_lock(7215001)")
            .unwrap();
        let exists: i64 = diesel::sql_query(format!(
            "SELECT COUNT(*) AS n FROM pg_database WHERE datname = '{name}'"
        ))
        .get_result::<Count>(&mut admin)
        .unwrap()
        .n;
        if exists == 0 {
            let building = format!("{name}_building");
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {building}"))
                .unwrap();
            let mut conn = DatabaseUrl::Postgres(with_db(server, &building).to_string())
                .connect()
                .unwrap();
            conn.run_migrations().unwrap();
            drop(conn);
            admin
                .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                .unwrap();
        }
        admin
            .batch_execute("SELECT pg_advisory_unlock(7215001)")
            .unwrap();
        name
    })
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

impl TestDatabase {
    pub fn fresh() -> TestDatabase {
        match postgres_server() {
            Some(server) => {
                let template = postgres_template(&server);
                let name = format!("mask_test_{}", unique_suffix());
                let mut admin = PgConnection::establish(server.as_str()).unwrap();
                // Concurrent clones of one template can collide briefly; retry.
                let mut attempt = 0;
                loop {
                    match admin
                        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
                    {
                        Ok(()) => break,
                        Err(e) if attempt < 50 => {
                            attempt += 1;
                            let _ = e;
                            std::thread::sleep(std::time::Duration::from_millis(100));
                        }
                        Err(e) => panic!("cannot create test database: {e}"),
                    }
                }
                TestDatabase::Postgres { server, name }
            }
            None => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("app.db");
                std::fs::copy(sqlite_template(), &path).unwrap();
                TestDatabase::Sqlite { path, _dir: dir }
            }
        }
    }

    pub fn url(&self) -> DatabaseUrl {
        self.url_via(None)
    }

    /// The database's URL, with PostgreSQL traffic sent through a local proxy port.
    pub fn url_via(&self, proxy_port: Option<u16>) -> DatabaseUrl {
        match self {
            TestDatabase::Sqlite { path, .. } => DatabaseUrl::Sqlite(path.clone()),
            TestDatabase::Postgres { server, name } => {
                let mut u = with_db(server, name);
                if let Some(port) = proxy_port {
                    u.set_host(Some("127.0.0.1")).unwrap();
                    u.set_port(Some(port)).unwrap();
                }
                DatabaseUrl::Postgres(u.to_string())
            }
        }
    }

    /// Where the PostgreSQL server listens (for a proxy in front of it).
    pub fn postgres_addr(&self) -> Option<(String, u16)> {
        match self {
            TestDatabase::Postgres { server, .. } => Some((
                server.host_str().unwrap_or("127.0.0.1").to_owned(),
                server.port().unwrap_or(5432),
            )),
            TestDatabase::Sqlite { .. } => None,
        }
    }

    pub fn connect(&self) -> DbConnection {
        self.url().connect().unwrap()
    }

    /// A connection once every other session on this database has ended.
    ///
    /// After `kill -9` of a server on PostgreSQL, a transaction whose COMMIT
    /// it had sent still commits: its server process ends only when that is
    /// done. Reads made before then could miss a reservation that is, a
    /// moment later, stored. An SQLite file has no server: what the killed
    /// process wrote is there at once.
    pub fn connect_when_alone(&self) -> DbConnection {
        let mut conn = self.connect();
        if let TestDatabase::Postgres { .. } = self {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                let others: Count = diesel::sql_query(
                    "SELECT count(*) AS n FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .get_result(&mut conn)
                .unwrap();
                if others.n == 0 {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{} sessions of the killed server still open",
                    others.n
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        conn
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { server, name } = self
            && let Ok(mut admin) = PgConnection::establish(server.as_str())
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}
