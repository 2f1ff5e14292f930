//! The server under load: started as a child process (the `surge` binary run
//! again with its hidden `serve-child` subcommand, so that one command does
//! everything), logging as production does (`LOG=info`: an access-log line
//! per request, into a file), watched through `/proc/<pid>` (resident memory
//! and CPU time), and killed with SIGKILL at the end — an acknowledged
//! reservation must survive that (SPEC §4.5). PostgreSQL's processes are
//! watched through `/proc` too, for its CPU time per reservation.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Clock ticks per second of `/proc/<pid>/stat` times (`sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// How the child is started.
pub struct ChildOptions<'a> {
    pub database_url: &'a str,
    pub secret_base64: &'a str,
    pub mail_dir: &'a Path,
    pub data_dir: &'a Path,
    pub workers: Option<usize>,
    pub db_pool_size: Option<usize>,
    /// `LOG`: `info` as production (the access log on), `warn` to see what
    /// the log costs.
    pub log: &'a str,
    /// Where the server's standard error (its log) goes.
    pub log_file: &'a Path,
}

/// A server process of our own.
pub struct ServerChild {
    child: Child,
    pub addr: SocketAddr,
}

impl ServerChild {
    /// Starts `current_exe serve-child` on a free loopback port and waits
    /// (with a deadline) until it answers `/healthz`.
    pub fn start(options: &ChildOptions<'_>) -> anyhow::Result<ServerChild> {
        let addr = free_port()?;
        let exe = std::env::current_exe().context("finding the surge binary")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(options.log_file)
            .with_context(|| format!("opening {}", options.log_file.display()))?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve-child")
            .env("DATABASE_URL", options.database_url)
            .env("SECRET_KEY", options.secret_base64)
            .env("BIND", addr.to_string())
            .env("MAIL_URL", format!("file://{}", options.mail_dir.display()))
            .env("DATA_DIR", options.data_dir)
            .env("TRUSTED_PROXIES", "1")
            .env("LOG", options.log)
            .env_remove("LOG_FORMAT")
            .env_remove("DEMO")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        if let Some(w) = options.workers {
            cmd.env("WORKERS", w.to_string());
        }
        if let Some(p) = options.db_pool_size {
            cmd.env("DB_POOL_SIZE", p.to_string());
        }
        let child = cmd.spawn().context("starting the server")?;
        let mut server = ServerChild { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!("the server exited at start: {status}");
            }
            if healthz_answers(addr) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                server.kill()?;
                bail!("the server did not answer /healthz within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("killing the server")?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How many lines of a server's log are warnings or errors, and the first
/// `keep` of them (the log itself goes with the run's temporary directory).
pub fn log_problems(log: &Path, keep: usize) -> (usize, Vec<String>) {
    let Ok(text) = std::fs::read_to_string(log) else {
        return (0, Vec::new());
    };
    let mut lines = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "));
    let first: Vec<String> = lines.by_ref().take(keep).map(str::to_owned).collect();
    (first.len() + lines.count(), first)
}

fn free_port() -> anyhow::Result<SocketAddr> {
    // The port is released before the child binds it; another process taking
    // it in between makes the start fail loudly, never measure something else.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

fn healthz_answers(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Memory and CPU time of a process at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub rss_kib: u64,
    /// Peak resident size since the process started.
    pub hwm_kib: u64,
    /// User + system time, in clock ticks.
    pub cpu_ticks: u64,
}

/// Reads `/proc/<pid>/status` and `/proc/<pid>/stat`.
pub fn sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(Sample {
        rss_kib: status_kib(&status, "VmRSS:")?,
        hwm_kib: status_kib(&status, "VmHWM:")?,
        cpu_ticks: cpu_ticks(&stat)?,
    })
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// utime + stime: fields 14 and 15, counted after the command name, which is
/// in parentheses and may itself hold spaces.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds between two tick counts.
pub fn cpu_seconds(start_ticks: u64, end_ticks: u64) -> f64 {
    end_ticks.saturating_sub(start_ticks) as f64 / clock_ticks()
}

/// CPU use over `elapsed`, in % of one core.
pub fn cpu_percent(cpu_seconds: f64, elapsed: Duration) -> f64 {
    100.0 * cpu_seconds / elapsed.as_secs_f64().max(1e-9)
}

/// utime + stime, in clock ticks, of PostgreSQL's processes on this machine
/// that work for `database`: the postmaster and its helpers (checkpointer,
/// WAL writer, …) and the backends of that database, but not the backends
/// of other databases (another program's tests on the same server). `None`
/// when no `postgres` process is visible (PostgreSQL on another machine).
///
/// A backend that exits between two readings takes its time with it; the
/// app's pool keeps its connections open, so that is little.
pub fn postgres_cpu_ticks(database: &str) -> Option<u64> {
    let mut found = false;
    let mut ticks = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if command_name(&stat) != Some("postgres") {
            continue;
        }
        let title = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let title = String::from_utf8_lossy(&title).replace('\0', " ");
        if backend_database(&title).is_some_and(|db| db != database) {
            continue;
        }
        if let Some(t) = cpu_ticks(&stat) {
            found = true;
            ticks += t;
        }
    }
    found.then_some(ticks)
}

/// The command name of a `/proc/<pid>/stat` line (between the parentheses).
fn command_name(stat: &str) -> Option<&str> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    stat.get(open + 1..close)
}

/// The database a PostgreSQL client backend serves, from its process title
/// (`postgres: [cluster: ]USER DATABASE HOST(PORT) STATE`, or `[local]` for a
/// Unix socket); `None` for the postmaster and the helper processes.
fn backend_database(title: &str) -> Option<&str> {
    let words: Vec<&str> = title.split_whitespace().collect();
    let host = words
        .iter()
        .position(|w| *w == "[local]" || (w.contains('(') && w.ends_with(')')))?;
    words.get(host.checked_sub(1)?).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_stat_are_read() {
        let status = "Name:\tsurge\nVmHWM:\t  123456 kB\nVmRSS:\t   65432 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(65432));
        assert_eq!(status_kib(status, "VmHWM:"), Some(123456));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let stat = "4242 (surge (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 9 0";
        assert_eq!(cpu_ticks(stat), Some(300));
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib);
    }

    #[test]
    fn cpu_percent_is_of_one_core() {
        let p = cpu_percent(2.0, Duration::from_secs(1));
        assert!((p - 200.0).abs() < 1e-9);
        let ticks = clock_ticks();
        assert!(ticks > 0.0);
        assert!((cpu_seconds(100, 100 + ticks as u64) - 1.0).abs() < 1e-9);
        assert_eq!(cpu_seconds(300, 100), 0.0);
    }

    #[test]
    fn postgres_backends_of_other_databases_are_told_apart() {
        let title = "postgres: 15/main: postgres surge_42 127.0.0.1(51234) idle";
        assert_eq!(backend_database(title), Some("surge_42"));
        assert_eq!(
            backend_database("postgres: app other [local] UPDATE"),
            Some("other")
        );
        assert_eq!(backend_database("postgres: 15/main: checkpointer"), None);
        assert_eq!(
            backend_database("/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main"),
            None
        );
        assert_eq!(command_name("12 (postgres) S 1 2"), Some("postgres"));
        assert_eq!(command_name("12 (a (b)) S 1 2"), Some("a (b)"));
    }
}
