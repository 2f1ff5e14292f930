//! The figures of a run: one row per measured load, then one line per rush
//! (what a reservation cost: CPU of the app and of PostgreSQL, mail, how soon
//! the open data showed a booking), as a plain-text table for the terminal
//! and as Markdown for `docs/benchmarks.md`.

use std::fmt::Write as _;

use crate::client::percentile;
use crate::phases::Measured;

/// The server's memory and CPU over one phase (absent when the server is not
/// ours to watch).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerUse {
    pub peak_rss_mib: f64,
    /// % of one core, averaged over the phase.
    pub cpu_percent: f64,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub requests: u64,
    pub per_second: f64,
    /// Successful operations per second (reservations, logins, pickups), where
    /// that is not every request.
    pub ops_per_second: Option<f64>,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// `200×1234 503×5`, status 0 written `none` (no answer).
    pub statuses: String,
    pub unplanned: u64,
    pub server: Option<ServerUse>,
    /// Operations (or requests) per second ÷ the run's /healthz rate.
    pub ratio: Option<f64>,
    pub paced_at: Option<u64>,
}

impl Row {
    pub fn from_measured(m: Measured, server: Option<ServerUse>) -> Row {
        let mut micros = m.recorder.micros.clone();
        micros.sort_unstable();
        let ms = |us: u32| f64::from(us) / 1000.0;
        let secs = m.elapsed.as_secs_f64().max(1e-9);
        let requests = m.recorder.requests();
        let statuses = m
            .recorder
            .statuses
            .iter()
            .map(|(s, n)| {
                if *s == 0 {
                    format!("none×{n}")
                } else {
                    format!("{s}×{n}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        Row {
            unplanned: m.unplanned(),
            name: m.name,
            requests,
            per_second: requests as f64 / secs,
            ops_per_second: m.ops.map(|n| n as f64 / secs),
            p50_ms: ms(percentile(&micros, 50.0)),
            p95_ms: ms(percentile(&micros, 95.0)),
            p99_ms: ms(percentile(&micros, 99.0)),
            max_ms: ms(micros.last().copied().unwrap_or(0)),
            statuses,
            server,
            ratio: None,
            paced_at: m.paced_at,
        }
    }

    /// The rate the ratio to /healthz is taken of.
    pub fn rate(&self) -> f64 {
        self.ops_per_second.unwrap_or(self.per_second)
    }
}

/// One rush as a whole: its rate, what its reservations cost, and how soon
/// the open data showed a booking meanwhile.
#[derive(Debug, Clone)]
pub struct RushFigures {
    pub name: String,
    /// App instances the users were spread over.
    pub instances: usize,
    /// The servers' `LOG` (unknown for a server surge did not start).
    pub log: Option<String>,
    /// Acknowledged reservations of the rush's users.
    pub reservations: u64,
    pub seconds: f64,
    /// Per freshness probe and instance: milliseconds from the booking's
    /// acknowledgement until the instance's open data showed it; `None`: not
    /// within `phases::FRESHNESS_LIMIT`.
    pub freshness_ms: Vec<Option<f64>>,
    /// CPU time (user + system) over the rush of the app's processes, and of
    /// PostgreSQL's processes serving its database.
    pub app_cpu_seconds: Option<f64>,
    pub postgres_cpu_seconds: Option<f64>,
    /// When the rush ran (UTC, the app's clock), for the mail sent meanwhile.
    pub from: chrono::NaiveDateTime,
    pub to: chrono::NaiveDateTime,
    /// Messages the outbox marked sent while the rush ran.
    pub mails_sent: Option<i64>,
}

/// The two figures of a set of freshness samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Freshness {
    pub samples: usize,
    /// Samples not seen within the limit (counted in neither figure).
    pub unseen: usize,
    pub p50_ms: f64,
    pub max_ms: f64,
}

impl Freshness {
    pub fn of(samples: &[Option<f64>]) -> Option<Freshness> {
        let mut seen: Vec<f64> = samples.iter().flatten().copied().collect();
        if samples.is_empty() {
            return None;
        }
        seen.sort_by(f64::total_cmp);
        let p50 = match seen.len() {
            0 => f64::NAN,
            n => seen[(n.div_ceil(2)).clamp(1, n) - 1],
        };
        Some(Freshness {
            samples: samples.len(),
            unseen: samples.len() - seen.len(),
            p50_ms: p50,
            max_ms: seen.last().copied().unwrap_or(f64::NAN),
        })
    }
}

impl RushFigures {
    pub fn per_second(&self) -> f64 {
        self.reservations as f64 / self.seconds.max(1e-9)
    }

    pub fn freshness(&self) -> Option<Freshness> {
        Freshness::of(&self.freshness_ms)
    }

    fn per_reservation_ms(&self, cpu_seconds: Option<f64>) -> Option<f64> {
        (self.reservations > 0).then_some(())?;
        Some(cpu_seconds? * 1000.0 / self.reservations as f64)
    }

    /// Milliseconds of the app's CPU per reservation (everything its
    /// processes did during the rush: store pages, pickups, reads alongside,
    /// mail, the log).
    pub fn app_ms_per_reservation(&self) -> Option<f64> {
        self.per_reservation_ms(self.app_cpu_seconds)
    }

    pub fn postgres_ms_per_reservation(&self) -> Option<f64> {
        self.per_reservation_ms(self.postgres_cpu_seconds)
    }

    /// Reservations per second one PostgreSQL of `cores` cores would carry
    /// at this CPU cost per reservation (cores ÷ CPU-seconds per
    /// reservation: as if it scaled to every core, with nothing else).
    pub fn postgres_carries(&self, cores: f64) -> Option<f64> {
        let ms = self.postgres_ms_per_reservation()?;
        (ms > 0.0).then(|| cores * 1000.0 / ms)
    }

    pub fn mails_per_second(&self) -> Option<f64> {
        self.mails_sent.map(|n| n as f64 / self.seconds.max(1e-9))
    }

    /// The line's figures, in the order of [`RUSH_COLUMNS`].
    fn figures(&self) -> [String; 12] {
        let fresh = self.freshness();
        let fresh_max = match fresh {
            Some(f) if f.unseen > 0 => format!(
                "{} > {} s",
                f.unseen,
                crate::phases::FRESHNESS_LIMIT.as_secs()
            ),
            Some(f) => format!("{:.0}", f.max_ms),
            None => "–".to_owned(),
        };
        [
            self.instances.to_string(),
            self.log.clone().unwrap_or_else(|| "–".to_owned()),
            format!("{:.0}", self.per_second()),
            fresh.map_or_else(|| "–".to_owned(), |f| f.samples.to_string()),
            opt(fresh.map(|f| f.p50_ms).filter(|v| v.is_finite()), 0),
            fresh_max,
            self.mails_sent
                .map_or_else(|| "–".to_owned(), |n| n.to_string()),
            opt(self.mails_per_second(), 0),
            opt(self.app_ms_per_reservation(), 3),
            opt(self.postgres_ms_per_reservation(), 3),
            opt(self.postgres_carries(8.0), 0),
            opt(self.postgres_carries(32.0), 0),
        ]
    }
}

/// The rush lines' columns: the Markdown heading, the terminal's and its width.
const RUSH_COLUMNS: [(&str, &str, usize); 12] = [
    ("instances", "inst", 4),
    ("LOG", "LOG", 4),
    ("reservations/s", "res/s", 7),
    ("freshness samples", "fresh n", 7),
    ("freshness p50 ms", "p50 ms", 7),
    ("freshness max ms", "max ms", 9),
    ("mails sent", "mails", 7),
    ("mails/s", "mails/s", 7),
    ("app CPU ms/res", "app ms", 7),
    ("PostgreSQL CPU ms/res", "PG ms", 7),
    ("PostgreSQL 8 cores res/s", "PG 8c/s", 8),
    ("PostgreSQL 32 cores res/s", "PG 32c/s", 8),
];

/// The outbox after the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outbox {
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
}

/// What was checked after the server was killed.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    pub acknowledged: usize,
    /// Acknowledged reservations not found, or found with another user or a
    /// status other than active / picked up.
    pub missing_or_wrong: Vec<String>,
    /// Active or picked-up reservations of the rush day in the database.
    pub stored_in_rush: i64,
    /// Rush reservations whose answer never came (they may or may not exist).
    pub unresolved: u64,
    pub verify_findings: Vec<String>,
}

impl Checks {
    /// Every problem found, in words; empty when all holds.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in &self.missing_or_wrong {
            out.push(format!("acknowledged but not stored as such: {m}"));
        }
        let acked = i64::try_from(self.acknowledged).unwrap_or(i64::MAX);
        let unresolved = i64::try_from(self.unresolved).unwrap_or(i64::MAX);
        if self.stored_in_rush < acked || self.stored_in_rush > acked + unresolved {
            out.push(format!(
                "{} reservations of the rush day stored, {} acknowledged ({} unresolved): \
                 a phantom or a lost reservation",
                self.stored_in_rush, self.acknowledged, self.unresolved
            ));
        }
        for f in &self.verify_findings {
            out.push(format!("verify: {f}"));
        }
        out
    }
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub command: String,
    pub date: String,
    pub machine: String,
    pub backend: String,
    pub setup: String,
    pub healthz_per_second: f64,
    pub rows: Vec<Row>,
    /// Peak resident size of the server over the whole run (VmHWM).
    pub server_peak_rss_mib: Option<f64>,
    pub checks: Checks,
    pub rushes: Vec<RushFigures>,
    /// The outbox once the servers were killed.
    pub outbox: Option<Outbox>,
}

impl Report {
    pub fn unplanned(&self) -> u64 {
        self.rows.iter().map(|r| r.unplanned).sum()
    }

    /// Freshness over every rush.
    pub fn freshness(&self) -> Option<Freshness> {
        let all: Vec<Option<f64>> = self
            .rushes
            .iter()
            .flat_map(|r| r.freshness_ms.iter().copied())
            .collect();
        Freshness::of(&all)
    }

    /// The lines under the tables: the outbox, freshness, and how CPU was counted.
    fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(o) = self.outbox {
            out.push(format!(
                "outbox at the end: {} pending, {} sent, {} failed",
                o.pending, o.sent, o.failed
            ));
        }
        if let Some(f) = self.freshness() {
            out.push(format!(
                "open-data freshness (booking acknowledged → {STOCK} shows it): p50 {} ms, max {} ms over {} reads{} (SPEC: ≤ 1 s)",
                opt(Some(f.p50_ms).filter(|v| v.is_finite()), 0),
                opt(Some(f.max_ms).filter(|v| v.is_finite()), 0),
                f.samples,
                if f.unseen > 0 {
                    format!(", {} not seen within the limit", f.unseen)
                } else {
                    String::new()
                },
                STOCK = "/opendata/stock.json",
            ));
        }
        if !self.rushes.is_empty() {
            out.push(format!(
                "CPU: user + system time from /proc/<pid>/stat ({:.0} clock ticks/s) of the app's processes, \
                 and of PostgreSQL's processes on this machine that serve the run's database; \
                 PostgreSQL N cores res/s = N ÷ its CPU-seconds per reservation",
                crate::server::clock_ticks()
            ));
        }
        out
    }

    fn rush_table(&self) -> String {
        let mut out = String::new();
        if self.rushes.is_empty() {
            return out;
        }
        let _ = write!(out, "{:<42}", "rush");
        for (_, heading, width) in RUSH_COLUMNS {
            let _ = write!(out, " {heading:>width$}");
        }
        let _ = writeln!(out);
        for r in &self.rushes {
            let _ = write!(out, "{:<42}", r.name);
            for (figure, (_, _, width)) in r.figures().iter().zip(RUSH_COLUMNS) {
                let _ = write!(out, " {figure:>width$}");
            }
            let _ = writeln!(out);
        }
        out
    }

    fn rush_markdown(&self) -> String {
        let mut out = String::new();
        if self.rushes.is_empty() {
            return out;
        }
        let headings: Vec<&str> = RUSH_COLUMNS.iter().map(|c| c.0).collect();
        let _ = writeln!(out, "| rush | {} |", headings.join(" | "));
        let _ = writeln!(out, "|---|{}", "---:|".repeat(RUSH_COLUMNS.len()));
        for r in &self.rushes {
            let _ = writeln!(out, "| {} | {} |", r.name, r.figures().join(" | "));
        }
        out
    }

    /// Sets every row's ratio to the /healthz rate.
    pub fn set_ratios(&mut self) {
        let h = self.healthz_per_second;
        for r in &mut self.rows {
            r.ratio = (h > 0.0).then(|| r.rate() / h);
        }
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{} — {}", self.backend, self.setup);
        let _ = write!(out, "{:<42}", "phase");
        for (_, heading, width) in COLUMNS {
            let _ = write!(out, " {heading:>width$}");
        }
        let _ = writeln!(out, "  statuses");
        for r in &self.rows {
            let _ = write!(out, "{:<42}", r.name);
            for (figure, (_, _, width)) in r.figures().iter().zip(COLUMNS) {
                let _ = write!(out, " {figure:>width$}");
            }
            let unplanned = if r.unplanned > 0 {
                format!("  UNPLANNED {}", r.unplanned)
            } else {
                String::new()
            };
            let _ = writeln!(out, "  {}{unplanned}", r.statuses);
        }
        let _ = writeln!(out, "{}", self.summary());
        let rushes = self.rush_table();
        if !rushes.is_empty() {
            let _ = write!(out, "\n{rushes}");
        }
        for note in self.notes() {
            let _ = writeln!(out, "{note}");
        }
        out
    }

    fn summary(&self) -> String {
        let c = &self.checks;
        format!(
            "server peak RSS {} MB; acknowledged {}, stored {} ({} unresolved); verify: {}; unplanned answers: {}",
            opt(self.server_peak_rss_mib, 0),
            c.acknowledged,
            c.stored_in_rush,
            c.unresolved,
            if c.verify_findings.is_empty() {
                "ok".to_owned()
            } else {
                format!("{} violation(s)", c.verify_findings.len())
            },
            self.unplanned()
        )
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "`{}`\n", self.command);
        let _ = writeln!(
            out,
            "{} · {} · {} · {}\n",
            self.date, self.machine, self.backend, self.setup
        );
        let headings: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
        let _ = writeln!(out, "| phase | {} | statuses |", headings.join(" | "));
        let _ = writeln!(out, "|---|{}---|", "---:|".repeat(COLUMNS.len()));
        for r in &self.rows {
            let paced = r
                .paced_at
                .map(|p| format!(" (paced at {p}/s)"))
                .unwrap_or_default();
            let unplanned = if r.unplanned > 0 {
                format!(" **unplanned {}**", r.unplanned)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| {}{paced} | {} | {}{unplanned} |",
                r.name,
                r.figures().join(" | "),
                r.statuses
            );
        }
        let _ = writeln!(out, "\n{}", self.summary());
        let rushes = self.rush_markdown();
        if !rushes.is_empty() {
            let _ = write!(out, "\n{rushes}");
        }
        let notes = self.notes();
        if !notes.is_empty() {
            let _ = writeln!(out);
        }
        for note in notes {
            let _ = writeln!(out, "{note}\n");
        }
        out
    }
}

/// The figures' columns, between the phase and the statuses: the Markdown
/// heading, the terminal's shorter one and the terminal's width.
const COLUMNS: [(&str, &str, usize); 10] = [
    ("requests", "requests", 9),
    ("req/s", "req/s", 10),
    ("ops/s", "ops/s", 10),
    ("p50 ms", "p50 ms", 8),
    ("p95 ms", "p95 ms", 8),
    ("p99 ms", "p99 ms", 8),
    ("max ms", "max ms", 8),
    ("server RSS MB", "RSS MB", 7),
    ("server CPU %", "CPU %", 6),
    ("÷ healthz", "÷healthz", 8),
];

impl Row {
    /// The row's figures, formatted, in the order of [`COLUMNS`].
    fn figures(&self) -> [String; 10] {
        [
            self.requests.to_string(),
            format!("{:.0}", self.per_second),
            opt(self.ops_per_second, 0),
            format!("{:.2}", self.p50_ms),
            format!("{:.2}", self.p95_ms),
            format!("{:.2}", self.p99_ms),
            format!("{:.1}", self.max_ms),
            opt(self.server.map(|s| s.peak_rss_mib), 0),
            opt(self.server.map(|s| s.cpu_percent), 0),
            opt(self.ratio, 3),
        ]
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map(|v| format!("{v:.decimals$}"))
        .unwrap_or_else(|| "–".to_owned())
}

/// Cores, memory and kernel of this machine, for the Markdown header.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_default();
    format!("{cores} cores, {mem_gib:.1} GiB RAM, Linux {kernel}")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper::StatusCode;

    use super::*;
    use crate::client::Recorder;

    fn measured(name: &str, statuses: &[u16], ops: Option<u64>) -> Measured {
        let mut recorder = Recorder::default();
        for (i, s) in statuses.iter().enumerate() {
            recorder.record(
                StatusCode::from_u16(*s).ok(),
                Duration::from_millis(i as u64 + 1),
            );
        }
        Measured {
            name: name.into(),
            recorder,
            expected: vec![200, 303],
            ops,
            elapsed: Duration::from_secs(2),
            paced_at: None,
        }
    }

    #[test]
    fn rows_carry_rates_percentiles_and_ratios() {
        let mut report = Report {
            healthz_per_second: 2.0,
            rows: vec![
                Row::from_measured(measured("healthz", &[200, 200, 200, 200], None), None),
                Row::from_measured(measured("rush", &[303, 503], Some(1)), None),
            ],
            ..Report::default()
        };
        report.set_ratios();
        let h = &report.rows[0];
        assert_eq!(h.requests, 4);
        assert!((h.per_second - 2.0).abs() < 1e-9);
        assert!((h.p50_ms - 2.0).abs() < 1e-9 && (h.max_ms - 4.0).abs() < 1e-9);
        assert!((report.rows[1].ratio.unwrap() - 0.25).abs() < 1e-9);
        assert_eq!(report.rows[1].statuses, "303×1 503×1");
        assert_eq!(report.unplanned(), 0);
        let md = report.markdown();
        assert!(md.contains("| healthz | 4 | 2 |"), "{md}");
        assert!(report.table().contains("rush"));
    }

    fn rush(reservations: u64, freshness: Vec<Option<f64>>) -> RushFigures {
        let t = chrono::DateTime::UNIX_EPOCH.naive_utc();
        RushFigures {
            name: "rush".into(),
            instances: 1,
            log: Some("info".into()),
            reservations,
            seconds: 2.0,
            freshness_ms: freshness,
            app_cpu_seconds: Some(1.0),
            postgres_cpu_seconds: Some(0.5),
            from: t,
            to: t,
            mails_sent: Some(10),
        }
    }

    #[test]
    fn a_rush_line_says_what_a_reservation_cost() {
        let r = rush(1000, vec![Some(300.0), Some(900.0), Some(500.0), None]);
        assert!((r.per_second() - 500.0).abs() < 1e-9);
        assert!((r.app_ms_per_reservation().unwrap() - 1.0).abs() < 1e-9);
        assert!((r.postgres_ms_per_reservation().unwrap() - 0.5).abs() < 1e-9);
        // 8 cores ÷ 0.5 ms per reservation.
        assert!((r.postgres_carries(8.0).unwrap() - 16_000.0).abs() < 1e-6);
        assert!((r.mails_per_second().unwrap() - 5.0).abs() < 1e-9);
        let f = r.freshness().unwrap();
        assert_eq!((f.samples, f.unseen), (4, 1));
        assert!((f.p50_ms - 500.0).abs() < 1e-9 && (f.max_ms - 900.0).abs() < 1e-9);
        assert_eq!(rush(0, vec![]).app_ms_per_reservation(), None);
        assert_eq!(rush(0, vec![]).freshness(), None);
        let report = Report {
            rushes: vec![r],
            outbox: Some(Outbox {
                pending: 1,
                sent: 2,
                failed: 0,
            }),
            ..Report::default()
        };
        let md = report.markdown();
        assert!(md.contains("| rush | 1 | info | 500 | 4 | 500 | 1 > 10 s | 10 | 5 | 1.000 | 0.500 | 16000 | 64000 |"), "{md}");
        assert!(md.contains("1 pending, 2 sent, 0 failed"), "{md}");
        assert!(report.table().contains("PG 32c/s"));
    }

    #[test]
    fn checks_fail_on_a_lost_or_phantom_reservation() {
        let ok = Checks {
            acknowledged: 3,
            stored_in_rush: 3,
            ..Checks::default()
        };
        assert!(ok.failures().is_empty());
        let phantom = Checks {
            stored_in_rush: 4,
            ..ok.clone()
        };
        assert_eq!(phantom.failures().len(), 1);
        let unresolved = Checks {
            unresolved: 1,
            ..phantom.clone()
        };
        assert!(unresolved.failures().is_empty());
        let lost = Checks {
            stored_in_rush: 2,
            ..ok
        };
        assert_eq!(lost.failures().len(), 1);
    }
}
