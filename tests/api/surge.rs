//! The launch-morning benchmark in a tiny configuration against the test's own
//! server: no figure is asserted, only what must hold whatever the speed —
//! no unplanned answer, every acknowledged reservation stored (and nothing
//! more), the invariants, and that each kind of work really happened — the
//! freshness probe and the outbox included.

use std::time::Duration;

use ::surge::phases::Limit;
use ::surge::prepare::Sizes;
use ::surge::{self, Options};

use crate::common::spawn_app;

fn budget(ops: u64) -> Limit {
    // The budget ends each phase; the time is only a backstop.
    Limit {
        duration: Duration::from_secs(60),
        max_ops: Some(ops),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_launch_morning_stores_every_acknowledged_reservation_and_keeps_the_invariants() {
    let app = spawn_app().await;
    let options = Options {
        sizes: Sizes {
            stores: 3,
            citizens: 200,
            pickup_stores: 2,
            pickups_per_store: 10,
            freshness_probes: 20,
            hot_window: true,
        },
        connections: 8,
        read_connections: 4,
        login_connections: 2,
        phase: budget(60),
        login_phase: budget(4),
        reads_alongside: 200,
        pickup_every: Duration::from_millis(5),
        min_pickups: 1,
        overload: None,
        hot_window: Some(4),
    };
    let addr = app.address.trim_start_matches("http://").parse().unwrap();
    // The app runs inside this process: its CPU is the test's (the load
    // generator's included), enough to see the figures exist.
    let report = surge::run_against(
        &[addr],
        &app.database.url(),
        app.state.config.secret.bytes(),
        &options,
        &[std::process::id()],
    )
    .await
    .unwrap();
    let table = report.table();

    assert_eq!(report.unplanned(), 0, "{table}");
    assert!(
        report.checks.failures().is_empty(),
        "{:?}\n{table}",
        report.checks.failures()
    );
    assert!(report.checks.verify_findings.is_empty(), "{table}");
    assert!(report.checks.acknowledged > 0, "{table}");
    assert_eq!(report.checks.unresolved, 0, "{table}");
    assert_eq!(
        report.checks.stored_in_rush,
        i64::try_from(report.checks.acknowledged).unwrap(),
        "{table}"
    );
    let ops = |name: &str| {
        report
            .rows
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| r.ops_per_second)
            .unwrap_or_else(|| panic!("no row {name}: {table}"))
    };
    assert!(ops("rush: reserve (POST)") > 0.0, "{table}");
    assert!(ops("rush: pickups alongside") > 0.0, "{table}");
    assert!(
        ops(&format!("{}: reserve (POST)", surge::HOT_WINDOW)) > 0.0,
        "{table}"
    );
    assert!(ops("login storm: log in (POST)") > 0.0, "{table}");
    assert!(report.healthz_per_second > 0.0, "{table}");
    assert!(
        report
            .rows
            .iter()
            .any(|r| r.name == "rush + reads: open-data reads alongside"),
        "{table}"
    );

    // Each rush as a whole: a probe's booking seen in the open data, the CPU
    // it took, and every reservation's confirmation in the outbox.
    let names: Vec<&str> = report.rushes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["rush", "rush + reads", surge::HOT_WINDOW],
        "{table}"
    );
    let freshness = report.freshness().unwrap_or_else(|| panic!("{table}"));
    assert!(freshness.samples >= 2, "{table}");
    assert_eq!(freshness.unseen, 0, "{table}");
    assert!(freshness.max_ms >= freshness.p50_ms, "{table}");
    for rush in &report.rushes {
        assert!(rush.reservations > 0, "{table}");
        assert!(
            rush.app_ms_per_reservation().is_some_and(|ms| ms > 0.0),
            "{table}"
        );
        assert!(rush.mails_sent.is_some(), "{table}");
    }
    let outbox = report.outbox.unwrap_or_else(|| panic!("{table}"));
    let mails = outbox.pending + outbox.sent + outbox.failed;
    assert!(
        mails >= i64::try_from(report.checks.acknowledged).unwrap() + 2,
        "a confirmation per reservation and per probe: {outbox:?}\n{table}"
    );
}
