//! The outbox sender: delivery over SMTP and into files, retry after an outage,
//! permanent failures, one delivery per message with several instances, each
//! message settled as soon as the server took it and named by one Message-ID
//! on every attempt, several kept connections at once, and the subject and
//! body erased once a message is settled.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::fixtures;
use crate::common::smtp::{ReceivedMail, SmtpSink, Then};
use crate::common::{TestDatabase, spawn_app};
use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use mask_reservation::config::MailTransport;
use mask_reservation::db::schema::mail_outbox;
use mask_reservation::db::{DatabaseUrl, Db, PoolOptions, write_tx};
use mask_reservation::mail::outbox::{self, OutgoingMail};
use mask_reservation::mail::sender::{MAX_ATTEMPTS, MessageIds, Sender};
use tokio::sync::Notify;

const SUBJECT: &str = "마스크 예약 확인";
const BODY: &str = "홍길동님, 공적 마스크 예약이 확정되었습니다.\n\
    수령 코드: 7K3F-92QD\n\
    확인 링크: http://127.0.0.1/reservations/42?token=a1b2c3\n";

fn open(database: &TestDatabase) -> Db {
    Db::new(
        &database.url(),
        PoolOptions {
            max_size: 4,
            acquire_timeout: Duration::from_secs(10),
        },
    )
}

fn smtp(port: u16) -> MailTransport {
    MailTransport::Smtp {
        host: "127.0.0.1".into(),
        port,
    }
}

fn sender(db: &Db, transport: MailTransport) -> Sender {
    Sender::new(
        db.clone(),
        transport,
        "공적 마스크 예약 <noreply@mask.example>".into(),
        MessageIds::for_base_url(BASE_URL),
        Arc::new(Notify::new()),
    )
}

const BASE_URL: &str = "https://mask.example";

fn enqueue(db: &Db, to: &str) -> i64 {
    let mut conn = db.get().unwrap();
    write_tx(&mut conn, |tx| {
        outbox::enqueue(
            tx,
            &OutgoingMail {
                to,
                kind: "reservation_confirmed",
                subject: SUBJECT,
                body_text: BODY,
            },
        )
    })
    .unwrap()
}

#[derive(Debug, Queryable)]
struct Row {
    status: String,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    last_error: Option<String>,
    sent_at: Option<NaiveDateTime>,
}

fn row(db: &Db, id: i64) -> Row {
    mail_outbox::table
        .find(id)
        .select((
            mail_outbox::status,
            mail_outbox::attempts,
            mail_outbox::next_attempt_at,
            mail_outbox::last_error,
            mail_outbox::sent_at,
        ))
        .first(&mut *db.get().unwrap())
        .unwrap()
}

/// The stored subject and body of a message.
fn content(db: &Db, id: i64) -> (String, String, Option<String>) {
    mail_outbox::table
        .find(id)
        .select((
            mail_outbox::subject,
            mail_outbox::body_text,
            mail_outbox::body_html,
        ))
        .first(&mut *db.get().unwrap())
        .unwrap()
}

fn assert_erased(db: &Db, id: i64) {
    assert_eq!(
        content(db, id),
        (String::new(), String::new(), None),
        "message {id} keeps its subject or body"
    );
}

fn make_due(db: &Db, id: i64) {
    diesel::update(mail_outbox::table.find(id))
        .set(mail_outbox::next_attempt_at.eq(Utc::now().naive_utc() - TimeDelta::seconds(1)))
        .execute(&mut *db.get().unwrap())
        .unwrap();
}

#[tokio::test]
async fn a_pending_message_is_delivered_with_its_recipient_subject_and_korean_body_and_marked_sent()
{
    let database = TestDatabase::fresh();
    let db = open(&database);
    let sink = SmtpSink::start().await;
    let id = enqueue(&db, "citizen@example.com");

    let delivered = sender(&db, smtp(sink.port)).deliver_due().await.unwrap();

    assert_eq!(delivered, 1);
    let mails = sink.wait_for(1).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.recipients, ["citizen@example.com"]);
    assert_eq!(mail.from, "noreply@mask.example");
    assert_eq!(mail.subject(), SUBJECT);
    assert!(mail.header("Message-ID").is_some());
    assert!(
        mail.header("Content-Type")
            .unwrap()
            .to_ascii_lowercase()
            .starts_with("text/plain; charset=utf-8")
    );
    let body = mail.text_body();
    assert!(
        body.contains("공적 마스크 예약이 확정되었습니다."),
        "{body}"
    );
    assert!(
        body.contains("http://127.0.0.1/reservations/42?token=a1b2c3"),
        "{body}"
    );

    let row = row(&db, id);
    assert_eq!(row.status, "sent");
    assert_eq!(row.attempts, 1);
    assert!(row.sent_at.is_some());
    assert_eq!(row.last_error, None);
    assert_erased(&db, id);
}

#[tokio::test]
async fn during_a_rush_a_round_sends_one_batch_and_the_rest_follows_once_it_is_over() {
    let database = TestDatabase::fresh();
    let db = open(&database);
    let sink = SmtpSink::start().await;
    for i in 0..25 {
        enqueue(&db, &format!("citizen{i}@example.com"));
    }
    let rush = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let in_rush = rush.clone();
    let sender = sender(&db, smtp(sink.port))
        .yielding_to(move || in_rush.load(std::sync::atomic::Ordering::Relaxed));

    assert_eq!(sender.deliver_round().await.unwrap(), 20, "one batch");
    let pending = |db: &Db| -> i64 {
        mail_outbox::table
            .filter(mail_outbox::status.eq("pending"))
            .count()
            .get_result(&mut *db.get().unwrap())
            .unwrap()
    };
    assert_eq!(pending(&db), 5);
    // The five left were never claimed: no attempt spent on them.
    let untouched: i64 = mail_outbox::table
        .filter(mail_outbox::attempts.eq(0))
        .count()
        .get_result(&mut *db.get().unwrap())
        .unwrap();
    assert_eq!(untouched, 5);

    rush.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(sender.deliver_round().await.unwrap(), 5);
    assert_eq!(pending(&db), 0);
    assert_eq!(sink.wait_for(25).await.len(), 25);
}

#[tokio::test]
async fn a_sent_message_is_not_sent_again() {
    let database = TestDatabase::fresh();
    let db = open(&database);
    let sink = SmtpSink::start().await;
    enqueue(&db, "citizen@example.com");
    let sender = sender(&db, smtp(sink.port));

    assert_eq!(sender.deliver_due().await.unwrap(), 1);
    assert_eq!(sender.deliver_due().await.unwrap(), 0);
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn an_smtp_outage_keeps_the_message_pending_with_back_off_and_it_is_delivered_once_smtp_returns()
 {
    let database = TestDatabase::fresh();
    let db = open(&database);
    let smtp_server = SmtpSink::start_down().await;
    let sender = sender(&db, smtp(smtp_server.port));
    let id = enqueue(&db, "citizen@example.com");

    assert_eq!(sender.deliver_due().await.unwrap(), 0);
    let waiting = row(&db, id);
    assert_eq!(waiting.status, "pending");
    assert_eq!(waiting.attempts, 1);
    assert!(waiting.last_error.is_some_and(|e| !e.is_empty()));
    assert!(waiting.next_attempt_at > Utc::now().naive_utc());
    assert_eq!(waiting.sent_at, None);
    // Kept for the retry.
    assert_eq!(
        content(&db, id),
        (SUBJECT.to_owned(), BODY.to_owned(), None)
    );
    // Not due yet: a second pass leaves it alone rather than hammering the server.
    assert_eq!(sender.deliver_due().await.unwrap(), 0);
    assert_eq!(row(&db, id).attempts, 1);

    smtp_server.come_back();
    make_due(&db, id);
    assert_eq!(sender.deliver_due().await.unwrap(), 1);

    let mails = smtp_server.wait_for(1).await;
    assert_eq!(mails[0].recipients, ["citizen@example.com"]);
    let sent = row(&db, id);
    assert_eq!(sent.status, "sent");
    assert_eq!(sent.attempts, 2);
    assert_eq!(sent.last_error, None);
    assert!(mails[0].text_body().contains("수령 코드: 7K3F-92QD"));
    assert_erased(&db, id);
}

#[tokio::test]
async fn during_an_smtp_outage_a_round_stops_at_the_first_failure_instead_of_spending_every_attempt()
 {
    let database = TestDatabase::fresh();
    let db = open(&database);
    let down = SmtpSink::start_down().await;
    let sender = sender(&db, smtp(down.port));
    let ids: Vec<i64> = (0..3)
        .map(|i| enqueue(&db, &format!("citizen{i}@example.com")))
        .collect();

    assert_eq!(sender.deliver_due().await.unwrap(), 0);

    let attempts: Vec<i32> = ids.iter().map(|&id| row(&db, id).attempts).collect();
    assert_eq!(attempts, [1, 0, 0]);
    assert!(ids.iter().all(|&id| row(&db, id).status == "pending"));
}

#[tokio::test]
async fn a_message_that_keeps_failing_is_given_up_after_the_last_attempt() {
    let database = TestDatabase::fresh();
    let db = open(&database);
    let down = SmtpSink::start_down().await;
    let sender = sender(&db, smtp(down.port));
    let id = enqueue(&db, "citizen@example.com");
    diesel::update(mail_outbox::table.find(id))
        .set(mail_outbox::attempts.eq(MAX_ATTEMPTS - 1))
        .execute(&mut *db.get().unwrap())
        .unwrap();

    assert_eq!(sender.deliver_due().await.unwrap(), 0);

    let given_up = row(&db, id);
    assert_eq!(given_up.status, "failed");
    assert_eq!(given_up.attempts, MAX_ATTEMPTS);
    assert!(given_up.last_error.is_some());
    assert_erased(&db, id);
}

#[tokio::test]
async fn the_file_transport_writes_one_eml_per_message() {
    let database = TestDatabase::fresh();
    let db = open(&database);
    let dir = tempfile::tempdir().unwrap();
    // Not there yet: the sender creates it.
    let mail_dir = dir.path().join("mail").join("out");
    let recipients = ["a@example.com", "b@example.com", "c@example.com"];
    let ids: Vec<i64> = recipients.iter().map(|to| enqueue(&db, to)).collect();

    let delivered = sender(&db, MailTransport::File(mail_dir.clone()))
        .deliver_due()
        .await
        .unwrap();

    assert_eq!(delivered, 3);
    let files: Vec<_> = std::fs::read_dir(&mail_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    let mut addressed = HashSet::new();
    for file in &files {
        assert_eq!(file.extension().unwrap(), "eml");
        let mail = ReceivedMail::from_eml(std::fs::read_to_string(file).unwrap());
        addressed.insert(mail.header("To").unwrap());
        assert_eq!(mail.subject(), SUBJECT);
        assert!(mail.text_body().contains("수령 코드: 7K3F-92QD"));
    }
    assert_eq!(
        addressed,
        recipients.iter().map(|r| r.to_string()).collect()
    );
    for id in ids {
        assert_eq!(row(&db, id).status, "sent");
        assert_erased(&db, id);
    }
}

#[tokio::test]
async fn an_invalid_recipient_fails_at_once_without_holding_up_the_others() {
    let database = TestDatabase::fresh();
    let db = open(&database);
    let sink = SmtpSink::start().await;
    let first = enqueue(&db, "first@example.com");
    let invalid = enqueue(&db, "not an address");
    let last = enqueue(&db, "last@example.com");

    let delivered = sender(&db, smtp(sink.port)).deliver_due().await.unwrap();

    assert_eq!(delivered, 2);
    let failed = row(&db, invalid);
    assert_eq!(failed.status, "failed");
    assert_eq!(failed.attempts, 1);
    assert!(failed.last_error.is_some());
    assert_erased(&db, invalid);
    assert_eq!(row(&db, first).status, "sent");
    assert_eq!(row(&db, last).status, "sent");
    let recipients: Vec<_> = sink
        .wait_for(2)
        .await
        .into_iter()
        .flat_map(|m| m.recipients)
        .collect();
    assert_eq!(recipients, ["first@example.com", "last@example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sending_at_once_deliver_each_message_exactly_once() {
    const MESSAGES: usize = 60;
    let database = TestDatabase::fresh();
    let sink = SmtpSink::start().await;
    // Separate pools, as two app processes would have.
    let (db_a, db_b) = (open(&database), open(&database));
    for i in 0..MESSAGES {
        enqueue(&db_a, &format!("citizen{i}@example.com"));
    }
    let a = sender(&db_a, smtp(sink.port));
    let b = sender(&db_b, smtp(sink.port));

    let mut delivered = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (from_a, from_b) = tokio::join!(a.deliver_due(), b.deliver_due());
        delivered += from_a.unwrap() + from_b.unwrap();
        let pending: i64 = mail_outbox::table
            .filter(mail_outbox::status.ne("sent"))
            .count()
            .get_result(&mut *db_a.get().unwrap())
            .unwrap();
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending} messages still unsent");
    }

    assert_eq!(delivered, MESSAGES);
    let received = sink.wait_for(MESSAGES).await;
    assert_eq!(received.len(), MESSAGES);
    let distinct: HashSet<_> = received.iter().flat_map(|m| &m.recipients).collect();
    assert_eq!(distinct.len(), MESSAGES, "a message went out twice");
    // Each row was claimed once: no claim was won twice.
    let attempts: Vec<i32> = mail_outbox::table
        .select(mail_outbox::attempts)
        .load(&mut *db_a.get().unwrap())
        .unwrap();
    assert!(attempts.iter().all(|&n| n == 1), "{attempts:?}");
}

#[tokio::test]
async fn the_running_sender_delivers_mail_enqueued_after_it_started() {
    let database = TestDatabase::fresh();
    let db = open(&database);
    let sink = SmtpSink::start().await;
    let wake = Arc::new(Notify::new());
    let sender = Sender::new(
        db.clone(),
        smtp(sink.port),
        "noreply@mask.example".into(),
        MessageIds::for_base_url(BASE_URL),
        wake.clone(),
    );
    let running = tokio::spawn(sender.run());

    let id = enqueue(&db, "citizen@example.com");
    wake.notify_one();

    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0].recipients, ["citizen@example.com"]);
    crate::common::eventually(Duration::from_secs(10), "the row marked sent", || {
        let status = row(&db, id).status;
        async move { (status == "sent").then_some(()) }
    })
    .await;
    running.abort();
}

#[tokio::test]
async fn an_unreachable_database_is_an_error_to_retry_not_a_panic() {
    // A port held by a server that is not PostgreSQL: the connection fails.
    let down = SmtpSink::start_down().await;
    let url = DatabaseUrl::Postgres(format!(
        "postgres://postgres@127.0.0.1:{}/nothing",
        down.port
    ));
    let db = Db::new(
        &url,
        PoolOptions {
            max_size: 1,
            acquire_timeout: Duration::from_millis(500),
        },
    );

    let result = sender(&db, smtp(down.port)).deliver_due().await;

    assert!(result.is_err());
}

fn count_with_status(db: &Db, status: &str) -> i64 {
    mail_outbox::table
        .filter(mail_outbox::status.eq(status))
        .count()
        .get_result(&mut *db.get().unwrap())
        .unwrap()
}

/// Every pending message due now, as if its claim's lease had run out.
fn make_all_due(db: &Db) {
    diesel::update(mail_outbox::table.filter(mail_outbox::status.eq("pending")))
        .set(mail_outbox::next_attempt_at.eq(Utc::now().naive_utc() - TimeDelta::seconds(1)))
        .execute(&mut *db.get().unwrap())
        .unwrap();
}

fn recipient(mail: &ReceivedMail) -> String {
    mail.recipients.join(",")
}

#[tokio::test]
async fn every_attempt_of_a_message_carries_its_one_message_id_and_another_message_its_own() {
    let database = TestDatabase::fresh();
    let db = open(&database);
    let sink = SmtpSink::start().await;
    sink.refuse_next(1);
    let first = enqueue(&db, "first@example.com");
    let second = enqueue(&db, "second@example.com");

    assert_eq!(sender(&db, smtp(sink.port)).deliver_due().await.unwrap(), 0);
    let refused = sink.refused();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].recipients, ["first@example.com"]);
    let refused_id = refused[0].header("Message-ID").unwrap();
    assert!(
        refused_id.starts_with(&format!("<outbox-{first}.")),
        "{refused_id}"
    );
    assert!(refused_id.ends_with("@mask.example>"), "{refused_id}");
    let waiting = row(&db, first);
    assert_eq!((waiting.status.as_str(), waiting.attempts), ("pending", 1));
    assert!(waiting.last_error.unwrap().contains("451"));

    // The retry, by another instance of the same deployment.
    make_due(&db, first);
    let other_instance = sender(&db, smtp(sink.port));
    assert_eq!(other_instance.deliver_due().await.unwrap(), 2);

    let delivered = sink.wait_for(2).await;
    let id_of = |to: &str| {
        delivered
            .iter()
            .find(|m| m.recipients == [to])
            .and_then(|m| m.header("Message-ID"))
            .unwrap()
    };
    assert_eq!(id_of("first@example.com"), refused_id);
    assert_ne!(id_of("second@example.com"), refused_id);
    assert!(id_of("second@example.com").starts_with(&format!("<outbox-{second}.")));
    assert_eq!(row(&db, first).attempts, 2);
}

#[tokio::test]
async fn what_the_server_took_before_a_crash_is_settled_and_never_sent_again() {
    const MESSAGES: usize = 30;
    const TAKEN: usize = 7;
    let database = TestDatabase::fresh();
    let db = open(&database);
    let sink = SmtpSink::start().await;
    for i in 0..MESSAGES {
        enqueue(&db, &format!("citizen{i}@example.com"));
    }
    // After seven messages the server keeps what it is sent but its answers
    // never come: the sender is stuck in the middle of its batch.
    sink.accept_only(TAKEN, Then::Hang);
    let crashing = sender(&db, smtp(sink.port)).connections(4);
    let running = tokio::spawn(async move { crashing.deliver_due().await });

    // Each message the server answered is settled without waiting for the rest.
    crate::common::eventually(Duration::from_secs(10), "the taken mail settled", || {
        let sent = count_with_status(&db, "sent");
        async move { (sent == TAKEN as i64).then_some(()) }
    })
    .await;
    // Every lane is then stuck on a message of its own.
    sink.wait_for(TAKEN + 4).await;
    // The process dies (kill -9) while sends are unanswered.
    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());
    sink.hang_up();
    let taken: Vec<String> = sink.messages().iter().map(recipient).collect();
    let unsure = taken.len() - TAKEN;
    assert_eq!(unsure, 4, "one message per connection is in doubt");
    assert_eq!(count_with_status(&db, "sent"), TAKEN as i64);

    // A restarted instance, once the leases have run out.
    sink.accept_all();
    make_all_due(&db);
    let restarted = sender(&db, smtp(sink.port));
    assert_eq!(restarted.deliver_due().await.unwrap(), MESSAGES - TAKEN);

    let received = sink.wait_for(MESSAGES + unsure).await;
    assert_eq!(received.len(), MESSAGES + unsure);
    let mut copies: std::collections::HashMap<String, Vec<String>> = Default::default();
    for mail in &received {
        copies
            .entry(recipient(mail))
            .or_default()
            .push(mail.header("Message-ID").unwrap());
    }
    assert_eq!(copies.len(), MESSAGES);
    let answered: HashSet<&String> = taken[..TAKEN].iter().collect();
    for (to, ids) in &copies {
        if answered.contains(to) {
            assert_eq!(ids.len(), 1, "{to} was settled, then sent again");
        } else if taken.contains(to) {
            // In doubt at the crash: sent again, under the same Message-ID,
            // which the receiver drops.
            assert_eq!(ids.len(), 2, "{to}");
            assert_eq!(ids[0], ids[1], "{to}");
        } else {
            assert_eq!(ids.len(), 1, "{to}");
        }
    }
    assert_eq!(count_with_status(&db, "sent"), MESSAGES as i64);
}

#[tokio::test]
async fn when_the_server_starts_refusing_mid_batch_what_it_took_stays_settled() {
    const MESSAGES: usize = 20;
    let database = TestDatabase::fresh();
    let db = open(&database);
    let sink = SmtpSink::start().await;
    for i in 0..MESSAGES {
        enqueue(&db, &format!("citizen{i}@example.com"));
    }
    sink.accept_only(7, Then::Refuse);
    let sender = sender(&db, smtp(sink.port));

    assert_eq!(sender.deliver_due().await.unwrap(), 7);

    assert_eq!(count_with_status(&db, "sent"), 7);
    assert_eq!(count_with_status(&db, "pending"), 13);
    let refused = sink.refused().len();
    // The lanes already under way when the first refusal came may each have
    // had one; the rest were given back without an attempt.
    assert!((1..=4).contains(&refused), "{refused}");
    let tried_and_waiting: i64 = mail_outbox::table
        .filter(mail_outbox::status.eq("pending"))
        .filter(mail_outbox::attempts.eq(1))
        .count()
        .get_result(&mut *db.get().unwrap())
        .unwrap();
    assert_eq!(tried_and_waiting, refused as i64);

    sink.accept_all();
    make_all_due(&db);
    assert_eq!(sender.deliver_due().await.unwrap(), 13);
    let received = sink.wait_for(MESSAGES).await;
    assert_eq!(received.len(), MESSAGES);
    let distinct: HashSet<String> = received.iter().map(recipient).collect();
    assert_eq!(distinct.len(), MESSAGES, "a taken message went again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_go_over_several_kept_connections_at_once() {
    let database = TestDatabase::fresh();
    let db = open(&database);
    let sink = SmtpSink::start().await;
    // Slow enough that the lanes overlap.
    sink.delay_each(Duration::from_millis(30));
    for i in 0..24 {
        enqueue(&db, &format!("citizen{i}@example.com"));
    }
    let sender = sender(&db, smtp(sink.port)).connections(4);

    assert_eq!(sender.deliver_due().await.unwrap(), 24);
    for i in 24..32 {
        enqueue(&db, &format!("citizen{i}@example.com"));
    }
    assert_eq!(sender.deliver_due().await.unwrap(), 8);

    assert_eq!(sink.wait_for(32).await.len(), 32);
    assert!(
        (2..=4).contains(&sink.most_at_once()),
        "{} at once",
        sink.most_at_once()
    );
    // One per lane, kept from message to message and round to round.
    assert!(
        sink.connections() <= 4,
        "{} connections",
        sink.connections()
    );
    assert_eq!(count_with_status(&db, "sent"), 32);
}

#[tokio::test]
async fn with_one_connection_messages_go_one_at_a_time_over_it() {
    let database = TestDatabase::fresh();
    let db = open(&database);
    let sink = SmtpSink::start().await;
    sink.delay_each(Duration::from_millis(5));
    for i in 0..10 {
        enqueue(&db, &format!("citizen{i}@example.com"));
    }

    let sender = sender(&db, smtp(sink.port)).connections(1);
    assert_eq!(sender.deliver_due().await.unwrap(), 10);

    assert_eq!(sink.most_at_once(), 1);
    assert_eq!(sink.connections(), 1);
}

/// Throughput of the sender against a local SMTP server that takes 3 ms per
/// message (docs/benchmarks.md, "Mail"):
/// `MAIL_BENCH_MESSAGES=3260 MAIL_BENCH_CONNECTIONS=4 $API mail_throughput --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run on its own with --ignored --nocapture"]
async fn mail_throughput() {
    let setting = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let messages = setting("MAIL_BENCH_MESSAGES", 3260);
    let connections = setting("MAIL_BENCH_CONNECTIONS", 4);
    let delay = setting("MAIL_BENCH_DELAY_MS", 3);
    let database = TestDatabase::fresh();
    let db = open(&database);
    let sink = SmtpSink::start().await;
    sink.delay_each(Duration::from_millis(delay as u64));
    let mut conn = db.get().unwrap();
    write_tx(&mut conn, |tx| {
        for i in 0..messages {
            outbox::enqueue(
                tx,
                &OutgoingMail {
                    to: &format!("citizen{i}@example.com"),
                    kind: "reservation_confirmed",
                    subject: SUBJECT,
                    body_text: BODY,
                },
            )?;
        }
        diesel::QueryResult::Ok(())
    })
    .unwrap();
    drop(conn);
    let sender = sender(&db, smtp(sink.port)).connections(connections);

    let started = Instant::now();
    let delivered = sender.deliver_due().await.unwrap();
    let took = started.elapsed();

    assert_eq!(delivered, messages);
    assert_eq!(sink.messages().len(), messages);
    println!(
        "{:?}: {messages} mails over {connections} connections, {delay} ms each at the server: \
         {:.2} s, {:.0} mails/s; at most {} at once, {} connections",
        db.backend(),
        took.as_secs_f64(),
        messages as f64 / took.as_secs_f64(),
        sink.most_at_once(),
        sink.connections(),
    );
}

/// The first http link in a mail body, as a path with its query.
fn link_path(body: &str) -> String {
    let start = body.find("http://").expect("a link in the mail");
    let link = body[start..].split_whitespace().next().unwrap();
    let url = url::Url::parse(link).unwrap();
    format!("{}?{}", url.path(), url.query().unwrap_or(""))
}

/// Every subject and body the outbox holds, as one text to search.
fn outbox_text(db: &Db) -> String {
    let rows: Vec<(String, String, String)> = mail_outbox::table
        .select((
            mail_outbox::status,
            mail_outbox::subject,
            mail_outbox::body_text,
        ))
        .load(&mut *db.get().unwrap())
        .unwrap();
    rows.into_iter()
        .map(|(status, subject, body)| format!("{status}\n{subject}\n{body}\n"))
        .collect()
}

async fn wait_until_settled(db: &Db, count: i64) {
    crate::common::eventually(Duration::from_secs(10), "mail marked sent", || {
        let sent: i64 = mail_outbox::table
            .filter(mail_outbox::status.eq("sent"))
            .count()
            .get_result(&mut *db.get().unwrap())
            .unwrap();
        async move { (sent >= count).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn once_delivered_verification_and_reset_links_are_gone_from_the_outbox_and_still_work() {
    let app = spawn_app().await;
    let res = app
        .post_form(
            "/signup",
            &[
                ("national_id", &fixtures::unique_national_id()),
                ("name", "홍길동"),
                ("email", "hong@example.com"),
                ("password", fixtures::PASSWORD),
                ("password_confirm", fixtures::PASSWORD),
                ("consent", "on"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let verify = link_path(&app.smtp.wait_for(1).await[0].text_body());
    let res = app
        .post_form("/password/forgot", &[("email", "hong@example.com")])
        .await;
    assert_eq!(res.status(), 200);
    let reset = link_path(&app.smtp.wait_for(2).await[1].text_body());
    wait_until_settled(&app.db, 2).await;

    let stored = outbox_text(&app.db);
    for path in [&verify, &reset] {
        let token = path.split("token=").nth(1).unwrap();
        assert!(token.len() >= 16, "{path}");
        assert!(!stored.contains(token), "a link is still stored: {stored}");
    }
    assert!(!stored.contains("홍길동"), "{stored}");

    // The links in the delivered mail still work.
    let res = app.get(&verify).await;
    assert_eq!(res.status(), 200);
    let token = reset.split("token=").nth(1).unwrap();
    let res = app
        .post_form(
            "/password/reset",
            &[
                ("token", token),
                ("password", "a brand new password"),
                ("password_confirm", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let v = app.new_visitor();
    assert_eq!(
        v.login("hong@example.com", "a brand new password")
            .await
            .status(),
        303
    );
}

/// Rows settled before messages were erased on settling lose their subject and
/// body when the database is migrated; pending rows keep theirs.
#[tokio::test]
async fn migrating_erases_what_earlier_settled_messages_kept() {
    use diesel::connection::SimpleConnection;
    let database = TestDatabase::fresh();
    let db = open(&database);
    let pending = enqueue(&db, "pending@example.com");
    let sent = enqueue(&db, "sent@example.com");
    let failed = enqueue(&db, "failed@example.com");
    let mut conn = db.get().unwrap();
    for (id, status) in [(sent, "sent"), (failed, "failed")] {
        diesel::update(mail_outbox::table.find(id))
            .set((
                mail_outbox::status.eq(status),
                mail_outbox::body_html.eq(Some("<a href=\"http://x/?token=t\">")),
            ))
            .execute(&mut conn)
            .unwrap();
    }

    let up = match db.backend() {
        mask_reservation::db::Backend::Sqlite => include_str!(
            "../../migrations/sqlite/2026-11-26-131500_erase_settled_mail_bodies/up.sql"
        ),
        mask_reservation::db::Backend::Postgres => include_str!(
            "../../migrations/postgres/2026-11-26-131500_erase_settled_mail_bodies/up.sql"
        ),
    };
    conn.batch_execute(up).unwrap();

    assert_erased(&db, sent);
    assert_erased(&db, failed);
    assert_eq!(
        content(&db, pending),
        (SUBJECT.to_owned(), BODY.to_owned(), None)
    );
}
