//! The command line, run as a real process against the test database.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use diesel::prelude::*;
use mask_reservation::db::schema::{pickup_windows, store_days, stores, users};

use crate::common::server::Binary;

struct Cli {
    db: crate::common::TestDatabase,
    binary: Binary,
}

impl Cli {
    fn new() -> Cli {
        let db = crate::common::TestDatabase::fresh();
        let binary = Binary::new(&db.url());
        Cli { db, binary }
    }

    fn command(&self, args: &[&str]) -> Command {
        self.binary.command(args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn seeded_demo_data_passes_verify_and_seeding_twice_changes_nothing() {
    let cli = Cli::new();
    let out = cli.run(&["seed-demo"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    assert!(printed.contains("admin@example.com"));
    assert!(printed.contains("citizen@example.com"));

    let mut conn = cli.db.connect();
    let n_stores: i64 = stores::table.count().get_result(&mut conn).unwrap();
    let n_pharmacists: i64 = users::table
        .filter(users::role.eq("pharmacist"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(n_stores, 20);
    assert_eq!(n_pharmacists, 20);
    let days: i64 = store_days::table.count().get_result(&mut conn).unwrap();
    assert_eq!(days, 20 * 7);
    let windows: i64 = pickup_windows::table.count().get_result(&mut conn).unwrap();
    assert_eq!(windows, 20 * 7 * 3);

    let out = cli.run(&["verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("every invariant holds"));

    let out = cli.run(&["seed-demo"]);
    assert!(out.status.success());
    assert!(text(&out).contains("nothing seeded"));
    let again: i64 = stores::table.count().get_result(&mut conn).unwrap();
    assert_eq!(again, 20);
}

#[test]
fn verify_exits_non_zero_and_names_each_violation() {
    let cli = Cli::new();
    assert!(cli.run(&["seed-demo"]).status.success());
    let mut conn = cli.db.connect();
    // A counter moved without its ledger row: oversold and unrecorded.
    let window: i64 = pickup_windows::table
        .select(pickup_windows::id)
        .order(pickup_windows::id)
        .first(&mut conn)
        .unwrap();
    // The CHECK constraint refuses an oversell outright...
    let oversell = diesel::update(pickup_windows::table.find(window))
        .set(pickup_windows::reserved.eq(pickup_windows::capacity + 1))
        .execute(&mut conn);
    assert!(oversell.is_err(), "the database refuses an oversold window");
    // ...so break the ledger instead: a counter changed without its row.
    diesel::update(pickup_windows::table.find(window))
        .set(pickup_windows::reserved.eq(1))
        .execute(&mut conn)
        .unwrap();
    let out = cli.run(&["verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("window counters differ from reservations"),
        "{report}"
    );
    assert!(
        report.contains("window counters differ from the ledger"),
        "{report}"
    );
    assert!(report.contains(&format!("window {window}")), "{report}");
}

#[test]
fn create_admin_reads_the_password_from_stdin_and_refuses_duplicates() {
    let cli = Cli::new();
    let out = cli.run_with_stdin(
        &[
            "create-admin",
            "--email",
            "Chief@Example.com",
            "--name",
            "Chief",
        ],
        "a long enough password\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let mut conn = cli.db.connect();
    let (role, hash): (String, String) = users::table
        .filter(users::email.eq("chief@example.com"))
        .select((users::role, users::password_hash))
        .first(&mut conn)
        .unwrap();
    assert_eq!(role, "admin");
    assert!(hash.starts_with("$argon2id$"));
    assert!(mask_reservation::accounts::password::verify(
        "a long enough password",
        &hash
    ));

    let out = cli.run_with_stdin(
        &[
            "create-admin",
            "--email",
            "chief@example.com",
            "--name",
            "Again",
        ],
        "another long password\n",
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("already exists"), "{}", text(&out));

    let out = cli.run_with_stdin(
        &[
            "create-admin",
            "--email",
            "short@example.com",
            "--name",
            "Short",
        ],
        "short\n",
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("8–128"), "{}", text(&out));
}

#[test]
fn a_mistyped_database_url_is_an_error_not_a_new_file() {
    let cli = Cli::new();
    let out = cli
        .command(&["migrate"])
        .env("DATABASE_URL", "postgress://localhost/db")
        .current_dir(cli.binary.data_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("DATABASE_URL"), "{}", text(&out));
    let files: Vec<_> = std::fs::read_dir(cli.binary.data_dir()).unwrap().collect();
    assert!(files.is_empty(), "nothing was created");
}

#[test]
fn production_refuses_to_start_without_a_secret_key() {
    let cli = Cli::new();
    let out = cli
        .command(&["migrate"])
        .env_remove("SECRET_KEY")
        .env("APP_ENV", "production")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("SECRET_KEY must be set"),
        "{}",
        text(&out)
    );
}

#[test]
fn import_stores_writes_a_good_file_and_counts_what_it_did() {
    let cli = Cli::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stores.csv");
    std::fs::write(
        &file,
        "code,name,addr,type,lat,lng,phone\n\
         31802095,중앙약국,서울특별시 중구 세종대로 1,01,37.56,126.97,02-123-4567\n\
         31802096,광화문우체국,서울특별시 종로구 세종대로 2,02,37.57,126.97,\n",
    )
    .unwrap();
    let out = cli.run(&["import-stores", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2 created"), "{}", text(&out));
    let mut conn = cli.db.connect();
    let n: i64 = stores::table.count().get_result(&mut conn).unwrap();
    assert_eq!(n, 2);

    // Again with one store renamed: one updated, one unchanged.
    std::fs::write(
        &file,
        "code,name,addr,type,lat,lng\n\
         31802095,중앙약국,서울특별시 중구 세종대로 1,01,37.56,126.97\n",
    )
    .unwrap();
    let out = cli.run(&["import-stores", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("0 created, 1 updated, 0 unchanged"),
        "the phone went away: {}",
        text(&out)
    );
}

#[test]
fn import_stores_prints_every_bad_line_and_imports_nothing() {
    let cli = Cli::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stores.csv");
    let mut csv = String::from("code,name,addr,type,lat,lng\n");
    csv.push_str("31802095,중앙약국,서울특별시 중구 1,01,37.56,126.97\n");
    for i in 0..60 {
        csv.push_str(&format!(
            "3190{i:04},약국,서울특별시 중구 1,09,37.56,126.97\n"
        ));
    }
    std::fs::write(&file, csv).unwrap();
    let out = cli.run(&["import-stores", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let report = text(&out);
    assert!(report.contains("line 3: type “09”"), "{report}");
    assert!(report.contains("line 52:"), "{report}");
    assert!(
        !report.contains("line 53:"),
        "only 50 are printed: {report}"
    );
    assert!(report.contains("10 more"), "{report}");
    assert!(report.contains("60 lines"), "{report}");
    let mut conn = cli.db.connect();
    let n: i64 = stores::table.count().get_result(&mut conn).unwrap();
    assert_eq!(n, 0);

    let out = cli.run(&["import-stores", "/no/such/file.csv"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("cannot read"), "{}", text(&out));
}
