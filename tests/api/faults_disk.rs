//! A full disk. On a 30 MB volume the SQLite WAL once grew until the disk was
//! full; its checkpoint then needed room it could not get, and the database
//! stayed jammed — every write a 500, `/healthz` "up", a backtrace per
//! request in the log. Now a write that finds no room is refused whole with
//! the 503 page that says storage is full, `/healthz` says `storage_full`,
//! the log has one line for the episode, and freeing room is enough: the
//! writer's checkpoint empties the WAL and writes succeed again, without a
//! restart.
//!
//! The drill fills a real volume (a small tmpfs, mounted for the test) under
//! the real binary; the episode's bookkeeping is also checked on both
//! backends by telling the database's storage of a refused write.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use diesel::prelude::*;
use mask_reservation::db::schema::{settings, stores};
use mask_reservation::db::storage::free_bytes;
use mask_reservation::db::{Backend, DatabaseUrl, Tx};
use serde_json::Value;

use crate::common::server::{Binary, Server};
use crate::common::{
    TestDatabase, Visitor, assert_status_page_says, eventually, fixtures, spawn_app,
};

/// The end of an episode. On PostgreSQL (whose volume this instance cannot
/// see) only a write that changes something ends it; on SQLite the writer's
/// own checkpoint also ends it once it finds room on the volume — which a
/// test database always has, so an episode told to it ends by itself.
#[tokio::test]
async fn writes_refused_for_lack_of_room_say_storage_full_until_there_is_room() {
    let app = spawn_app().await;
    let storage = app.db.storage();
    storage.refused(1, "database or disk is full");
    let healthz = || async {
        let res = app.get("/healthz").await;
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap())
    };
    if app.backend() == Backend::Sqlite {
        eventually(
            Duration::from_secs(20),
            "the writer to find room",
            || async { (!storage.is_full()).then_some(()) },
        )
        .await;
        eventually(Duration::from_secs(10), "/healthz to say ok", || async {
            (healthz().await.0 == 200).then_some(())
        })
        .await;
        return;
    }

    let (status, health) = healthz().await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "storage_full", "{health}");
    assert_eq!(health["database"]["state"], "storage_full", "{health}");
    assert_eq!(health["database"]["writes_refused"], 1, "{health}");
    assert_status_page_says(app.get("/status").await, "storage_full").await;

    // A write that changes nothing (a claim of mail when none is due) does
    // not show there is room again…
    app.db
        .write(|tx: &mut Tx<'_>| diesel::sql_query("SELECT 1").execute(tx.conn()))
        .await
        .unwrap();
    assert!(storage.is_full());
    // …one that changes a row does.
    let changed = app
        .db
        .write(|tx: &mut Tx<'_>| {
            diesel::update(settings::table.find("quota_per_period"))
                .set(settings::value.eq("2"))
                .execute(tx.conn())
        })
        .await
        .unwrap();
    assert_eq!(changed, 1);
    assert!(!storage.is_full());
    eventually(Duration::from_secs(10), "/healthz to say ok", || async {
        (healthz().await.0 == 200).then_some(())
    })
    .await;
}

/// A tmpfs mounted for one test, unmounted when dropped (also when the test
/// fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a server killed by the test's end may still hold files open.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the volume of `dir` until `leave` bytes are free.
fn ballast(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("ballast");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut left = free_bytes(dir).unwrap().saturating_sub(leave);
    while left > 0 {
        let n = usize::try_from(left).unwrap().min(chunk.len());
        file.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    file.sync_all().unwrap();
    path
}

/// Batch `batch` of stores to import: the file and the codes in it.
fn stores_csv(batch: u32, n: u32) -> (Vec<u8>, Vec<String>) {
    let mut csv = String::from("code,name,addr,type,lat,lng\n");
    let mut codes = Vec::new();
    for i in 0..n {
        let code = format!("{:08}", 20_000_000 + batch * 1_000 + i);
        csv.push_str(&format!(
            "{code},가득찬디스크약국 {batch}-{i},서울특별시 중구 세종대로 {batch}길 {i},01,37.5,127.0\n"
        ));
        codes.push(code);
    }
    (csv.into_bytes(), codes)
}

async fn import(admin: &Visitor, batch: u32) -> (u16, String, Vec<String>) {
    let (file, codes) = stores_csv(batch, 200);
    let res = admin
        .post_file("/admin/stores/import", &[], "stores.csv", file)
        .await;
    (res.status().as_u16(), res.text().await.unwrap(), codes)
}

async fn health(server: &Server) -> (u16, Value) {
    let res = reqwest::get(server.url("/healthz")).await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// The log's warnings and errors.
/// The warnings and errors of the log, but the mail sender's line that
/// delivery is postponed: it runs on its own minute, says so once per outage
/// of any kind, and may come at any moment of the episode (counted apart).
fn alarms(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| !l.contains(MAIL_POSTPONED))
        .map(str::to_owned)
        .collect()
}

const MAIL_POSTPONED: &str = "mail delivery postponed";

fn wal_bytes(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len())
}

#[derive(QueryableByName)]
struct Integrity {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

/// The real binary on a 24 MiB volume with 2 MiB left: store imports until
/// the database cannot grow; then room is made, and the same process writes
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_503_and_recovers_without_a_restart_once_room_is_made() {
    if crate::common::db::postgres_server().is_some() {
        // PostgreSQL's files are its server's: this drill fills SQLite's.
        return;
    }
    let volume = match Tmpfs::mount("24m") {
        Ok(volume) => volume,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let fresh = TestDatabase::fresh();
    let DatabaseUrl::Sqlite(template) = fresh.url() else {
        unreachable!("an SQLite test database")
    };
    let db = volume.path().join("app.db");
    std::fs::copy(&template, &db).unwrap();
    let url = DatabaseUrl::Sqlite(db.clone());
    let binary = Binary::new(&url);
    let created = binary
        .command(&[
            "create-admin",
            "--email",
            "admin@example.com",
            "--name",
            "관리자",
        ])
        .env("ADMIN_PASSWORD", fixtures::PASSWORD)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let mut server = binary.serve(&[
        ("LOG", "warn,mask_reservation::db=info"),
        // Before, every refused write logged a backtrace.
        ("RUST_BACKTRACE", "1"),
    ]);
    server.healthy().await;
    let admin = Visitor::new(&server.base);
    let res = admin.login("admin@example.com", fixtures::PASSWORD).await;
    assert_eq!(res.status(), 303, "the administrator logs in");

    let ballast = ballast(volume.path(), 2 * 1024 * 1024);
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    let mut batch = 0;
    // Until the first import is refused.
    loop {
        assert!(batch < 200, "2 MiB never ran out");
        let (status, page, codes) = import(&admin, batch).await;
        batch += 1;
        match status {
            200 => acknowledged.extend(codes),
            503 => {
                assert!(page.contains("data-reason=\"storage_full\""), "{page}");
                assert!(page.contains("저장 공간이 가득 찼습니다"), "{page}");
                refused.extend(codes);
                break;
            }
            other => panic!("an import answered {other}:\n{page}"),
        }
    }
    assert!(!acknowledged.is_empty(), "some imports fitted");
    let (imports_fitted, wal_at_refusal) = (batch - 1, wal_bytes(&db));
    // The log is written by a thread of its own: wait for the line.
    eventually(
        Duration::from_secs(10),
        "the episode's log line",
        || async {
            server
                .log_text()
                .contains("writes refused: no room left")
                .then_some(())
        },
    )
    .await;
    let alarms_at_first_refusal = alarms(&server.log_text());

    // Every later write of the episode: the same page, and no log line.
    for _ in 0..10 {
        let (status, page, codes) = import(&admin, batch).await;
        batch += 1;
        assert_eq!(status, 503, "{page}");
        assert!(page.contains("data-reason=\"storage_full\""), "{page}");
        refused.extend(codes);
    }
    let (status, body) = health(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "storage_full", "{body}");
    assert_eq!(body["database"]["state"], "storage_full", "{body}");
    assert!(
        body["database"]["writes_refused"].as_u64().unwrap() >= 11,
        "{body}"
    );
    assert_status_page_says(
        reqwest::get(server.url("/status")).await.unwrap(),
        "storage_full",
    )
    .await;
    let log = server.log_text();
    assert_eq!(
        alarms(&log),
        alarms_at_first_refusal,
        "ten more refusals logged nothing"
    );
    assert!(log.matches(MAIL_POSTPONED).count() <= 1, "{log}");
    assert_eq!(
        log.matches("writes refused: no room left").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("less than 2 × the WAL's limit").count(),
        1,
        "start-up warns of the small volume: {log}"
    );

    // Room is made; nobody restarts anything, nothing is written: the
    // writer's own checkpoint finds the room.
    std::fs::remove_file(&ballast).unwrap();
    let freed = std::time::Instant::now();
    eventually(Duration::from_secs(20), "/healthz to say ok", || async {
        (health(&server).await.0 == 200).then_some(())
    })
    .await;
    let back_after = freed.elapsed();
    let (status, page, codes) = import(&admin, batch).await;
    assert_eq!(status, 200, "{page}");
    acknowledged.extend(codes);
    eventually(Duration::from_secs(20), "the WAL to be emptied", || async {
        (wal_bytes(&db) == 0).then_some(())
    })
    .await;
    eprintln!(
        "{imports_fitted} imports of 200 stores fitted, then {} refused; the WAL was {wal_at_refusal} bytes at the first refusal; /healthz said ok {back_after:?} after room was made; the log:\n{}",
        refused.len() / 200,
        server.log_text(),
    );
    eventually(
        Duration::from_secs(10),
        "the recovery's log line",
        || async {
            server
                .log_text()
                .contains("writes succeed again")
                .then_some(())
        },
    )
    .await;
    let log = server.log_text();
    assert_eq!(log.matches("writes succeed again").count(), 1, "{log}");
    assert!(
        !log.to_lowercase().contains("backtrace"),
        "no backtrace in the log: {log}"
    );
    assert!(!log.contains("request failed"), "no 500 was logged: {log}");

    let stopped = server.stop().await;
    assert!(stopped.success(), "{stopped:?}");
    let verify = binary.command(&["verify"]).output().unwrap();
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{said}");
    assert!(said.contains("every invariant holds"), "{said}");

    let mut conn = url.connect().unwrap();
    let integrity = diesel::sql_query("PRAGMA integrity_check")
        .get_result::<Integrity>(&mut conn)
        .unwrap();
    assert_eq!(integrity.integrity_check, "ok");
    let stored: HashSet<String> = stores::table
        .select(stores::code)
        .load(&mut conn)
        .unwrap()
        .into_iter()
        .collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|c| !stored.contains(*c))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    let kept: Vec<_> = refused.iter().filter(|c| stored.contains(*c)).collect();
    assert!(kept.is_empty(), "refused but stored: {kept:?}");
}
