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

/// The size of the country the targets are set at.
pub const COUNTRY_STORES: usize = 25_000;
pub const COUNTRY_CITIZENS: usize = 1_000_000;

/// PostgreSQL's CPU per reservation in the first run that measured it (the
/// rush at 20 stores, the booking as one statement, access log on:
/// docs/benchmarks.md), which the target halves.
pub const FIRST_POSTGRES_MS_PER_RESERVATION: f64 = 2.76;

/// One target of the run's backend.
#[derive(Debug, Clone)]
pub struct Target {
    pub figure: String,
    pub target: String,
    pub measured: String,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    NotMet,
    /// A figure to give, with no bound.
    Reported,
    /// Measured, but on a smaller database than the target is set at.
    NotAtSize,
    NotMeasured,
}

impl Verdict {
    fn of(met: bool) -> Verdict {
        if met { Verdict::Met } else { Verdict::NotMet }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::NotMet => "**not met**",
            Verdict::Reported => "reported",
            Verdict::NotAtSize => "not at the target's size",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// `12345.6` as `12,346`.
fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub command: String,
    pub date: String,
    pub machine: String,
    pub backend: String,
    pub setup: String,
    /// Stores and citizens prepared (the sizes some targets are set at).
    pub stores: usize,
    pub citizens: usize,
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
        let _ = writeln!(out);
        for t in self.targets() {
            let _ = writeln!(
                out,
                "target: {} — {} (wanted {}): {}",
                t.figure,
                t.measured,
                t.target,
                t.verdict.as_str()
            );
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

    /// The row named `name`, if the run had it.
    fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    fn rush_named(&self, name: &str) -> Option<&RushFigures> {
        self.rushes.iter().find(|r| r.name == name)
    }

    /// The targets this run's backend is held to, each with what the run
    /// measured and whether that meets it (`reported` where the target is a
    /// figure to give, `–` where the run did not measure it).
    pub fn targets(&self) -> Vec<Target> {
        let postgres = self.backend == "postgres";
        let country = self.stores >= COUNTRY_STORES && self.citizens >= COUNTRY_CITIZENS;
        let at_size = |met: bool| {
            if !country {
                Verdict::NotAtSize
            } else if met {
                Verdict::Met
            } else {
                Verdict::NotMet
            }
        };
        let mut out = Vec::new();
        let (rate, p99) = if postgres {
            (3_000.0, Some(100.0))
        } else {
            (10_000.0, None)
        };
        let rush = self.row("rush: reserve (POST)");
        out.push(Target {
            figure: "rush (store page + post), reservations/s and post p99".into(),
            target: match p99 {
                Some(p) => format!("≥ {} /s, p99 ≤ {p:.0} ms", thousands(rate)),
                None => format!("≥ {} /s", thousands(rate)),
            },
            measured: rush.map_or("–".into(), |r| {
                format!("{} /s, p99 {:.0} ms", thousands(r.rate()), r.p99_ms)
            }),
            verdict: rush.map_or(Verdict::NotMeasured, |r| {
                Verdict::of(r.rate() >= rate && p99.is_none_or(|p| r.p99_ms <= p))
            }),
        });
        let hot = self.row(&format!("{}: reserve (POST)", crate::HOT_WINDOW));
        out.push(Target {
            figure: "everyone on one window (post only), reservations/s and p99".into(),
            target: if postgres {
                "≥ 2,000 /s, p99 ≤ 100 ms".into()
            } else {
                "reported".into()
            },
            measured: hot.map_or("–".into(), |r| {
                format!("{} /s, p99 {:.0} ms", thousands(r.rate()), r.p99_ms)
            }),
            verdict: match hot {
                None => Verdict::NotMeasured,
                Some(_) if !postgres => Verdict::Reported,
                Some(r) => Verdict::of(r.rate() >= 2_000.0 && r.p99_ms <= 100.0),
            },
        });
        let pickups = self.row("rush: pickups alongside");
        out.push(Target {
            figure: "pickups p99 during the rush".into(),
            target: "≤ 50 ms".into(),
            measured: pickups.map_or("–".into(), |r| format!("{:.0} ms", r.p99_ms)),
            verdict: pickups.map_or(Verdict::NotMeasured, |r| Verdict::of(r.p99_ms <= 50.0)),
        });
        if postgres {
            let one = self.rush_named("rush");
            let several = self.rushes.iter().find(|r| r.instances > 1);
            out.push(Target {
                figure: "rush over several instances ÷ one, with CPU per reservation".into(),
                target: "reported".into(),
                measured: match (one, several) {
                    (Some(a), Some(b)) => format!(
                        "{} instances {:.2} ({} ÷ {} /s); app {} → {} ms, PostgreSQL {} → {} ms per reservation",
                        b.instances,
                        b.per_second() / a.per_second().max(1e-9),
                        thousands(b.per_second()),
                        thousands(a.per_second()),
                        opt(a.app_ms_per_reservation(), 2),
                        opt(b.app_ms_per_reservation(), 2),
                        opt(a.postgres_ms_per_reservation(), 2),
                        opt(b.postgres_ms_per_reservation(), 2),
                    ),
                    _ => "–".into(),
                },
                verdict: if one.is_some() && several.is_some() {
                    Verdict::Reported
                } else {
                    Verdict::NotMeasured
                },
            });
            let cpu = one.and_then(RushFigures::postgres_ms_per_reservation);
            out.push(Target {
                figure: "PostgreSQL CPU per reservation (its processes), in the rush".into(),
                target: format!(
                    "halved from the first measurement ({FIRST_POSTGRES_MS_PER_RESERVATION} ms): ≤ {:.2} ms",
                    FIRST_POSTGRES_MS_PER_RESERVATION / 2.0
                ),
                measured: cpu.map_or("–".into(), |ms| format!("{ms:.2} ms")),
                verdict: cpu.map_or(Verdict::NotMeasured, |ms| {
                    Verdict::of(ms <= FIRST_POSTGRES_MS_PER_RESERVATION / 2.0)
                }),
            });
        }
        let reads = self.row("open-data reads");
        let fresh = self.freshness();
        out.push(Target {
            figure: format!(
                "open data, country-wide random reads ÷ /healthz, at {} stores; freshness",
                thousands(COUNTRY_STORES as f64)
            ),
            target: "≥ 0.8; ≤ 1 s".into(),
            measured: format!(
                "{} ({} /s at {} stores); {}",
                opt(reads.and_then(|r| r.ratio), 2),
                reads.map_or("–".into(), |r| thousands(r.rate())),
                thousands(self.stores as f64),
                fresh.map_or("–".into(), |f| format!(
                    "max {:.0} ms over {} bookings{}",
                    f.max_ms,
                    f.samples,
                    if f.unseen > 0 {
                        format!(", {} not seen within the limit", f.unseen)
                    } else {
                        String::new()
                    }
                )),
            ),
            verdict: match (reads.and_then(|r| r.ratio), fresh) {
                (Some(ratio), Some(f)) => {
                    at_size(ratio >= 0.8 && f.unseen == 0 && f.max_ms <= 1000.0)
                }
                _ => Verdict::NotMeasured,
            },
        });
        out.push(Target {
            figure: format!(
                "server peak RSS, {} stores + {} citizens",
                thousands(COUNTRY_STORES as f64),
                thousands(COUNTRY_CITIZENS as f64)
            ),
            target: "≤ 150 MB".into(),
            measured: self.server_peak_rss_mib.map_or("–".into(), |mb| {
                format!(
                    "{mb:.0} MB at {} stores + {} citizens",
                    thousands(self.stores as f64),
                    thousands(self.citizens as f64)
                )
            }),
            verdict: self
                .server_peak_rss_mib
                .map_or(Verdict::NotMeasured, |mb| at_size(mb <= 150.0)),
        });
        out
    }

    fn targets_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| target | measured | wanted | |");
        let _ = writeln!(out, "|---|---|---|---|");
        for t in self.targets() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.figure,
                t.measured,
                t.target,
                t.verdict.as_str()
            );
        }
        out
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
        let _ = write!(out, "\n{}", self.targets_markdown());
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
    fn targets_say_what_was_met_at_which_size() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.6), "1,000");
        let mut rush_post =
            Row::from_measured(measured("rush: reserve (POST)", &[303], Some(1)), None);
        rush_post.ops_per_second = Some(3_500.0);
        rush_post.p99_ms = 80.0;
        let mut reads = Row::from_measured(measured("open-data reads", &[200], None), None);
        reads.ratio = Some(0.9);
        let report = |backend: &str, stores: usize| Report {
            backend: backend.into(),
            stores,
            citizens: COUNTRY_CITIZENS,
            rows: vec![rush_post.clone(), reads.clone()],
            rushes: vec![rush(1000, vec![Some(300.0)])],
            server_peak_rss_mib: Some(140.0),
            ..Report::default()
        };
        let verdict = |r: &Report, figure: &str| {
            r.targets()
                .into_iter()
                .find(|t| t.figure.starts_with(figure))
                .map(|t| t.verdict)
        };
        let pg = report("postgres", COUNTRY_STORES);
        assert_eq!(verdict(&pg, "rush ("), Some(Verdict::Met));
        assert_eq!(verdict(&pg, "everyone"), Some(Verdict::NotMeasured));
        // 0.5 ms per reservation: under half of the first measurement.
        assert_eq!(verdict(&pg, "PostgreSQL CPU"), Some(Verdict::Met));
        assert_eq!(verdict(&pg, "open data"), Some(Verdict::Met));
        assert_eq!(verdict(&pg, "server peak RSS"), Some(Verdict::Met));
        // The same figures on SQLite miss its rate; at 20 stores the
        // country's targets are not judged.
        let small = report("sqlite", 20);
        assert_eq!(verdict(&small, "rush ("), Some(Verdict::NotMet));
        assert_eq!(verdict(&small, "PostgreSQL CPU"), None);
        assert_eq!(verdict(&small, "server peak RSS"), Some(Verdict::NotAtSize));
        assert!(small.markdown().contains("| server peak RSS, 25,000 stores + 1,000,000 citizens | 140 MB at 20 stores + 1,000,000 citizens | ≤ 150 MB | not at the target's size |"), "{}", small.markdown());
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
