//! The real binary as a child process: the command line run against a test
//! database, and `serve` on a port of its own — what the fault drills break
//! (kill it, cut its database, fill its disk, wrong its clock).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mask_reservation::config::SecretKey;
use mask_reservation::db::DatabaseUrl;

use super::eventually;

/// `DATABASE_URL` as the binary reads it.
pub fn url_text(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
        DatabaseUrl::Postgres(u) => u.clone(),
    }
}

/// A free port on loopback for a server the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary's configuration for one database: its own data directory (mail
/// files, logs) and secret, shared by every command and server made from it.
pub struct Binary {
    pub database_url: String,
    pub data_dir: tempfile::TempDir,
    pub secret: String,
}

impl Binary {
    pub fn new(url: &DatabaseUrl) -> Binary {
        Binary::with_url(&url_text(url))
    }

    pub fn with_url(database_url: &str) -> Binary {
        Binary {
            database_url: database_url.to_owned(),
            data_dir: tempfile::tempdir().unwrap(),
            secret: SecretKey::generate().to_base64(),
        }
    }

    fn configure(&self, cmd: &mut Command) {
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database_url)
            .env("DATA_DIR", self.data_dir.path())
            .env("SECRET_KEY", &self.secret)
            .env(
                "MAIL_URL",
                format!("file://{}/mail", self.data_dir.path().display()),
            )
            .env("LOG", "warn");
    }

    /// `mask-reservation ARGS` with this configuration (add or override
    /// variables with `.env`).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mask-reservation"));
        cmd.args(args);
        self.configure(&mut cmd);
        cmd
    }

    /// The same command under libfaketime, the clock moved by `offset`
    /// (`+3d`).
    pub fn command_faked(&self, offset: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("faketime");
        cmd.args(["-f", offset, env!("CARGO_BIN_EXE_mask-reservation")])
            .args(args);
        self.configure(&mut cmd);
        cmd
    }

    /// Starts `serve` on a free port, with `envs` added (they override the
    /// defaults), its standard error written to a log file of its own.
    pub fn serve(&self, envs: &[(&str, &str)]) -> Server {
        let port = free_port();
        let log = self.data_dir.path().join(format!("serve-{port}.log"));
        let mut cmd = self.command(&["serve"]);
        cmd.env("BIND", format!("127.0.0.1:{port}"))
            .env("DEMO", "0");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = tokio::process::Command::from(cmd)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Server {
            base: format!("http://127.0.0.1:{port}"),
            port,
            log,
            child,
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }
}

/// A running `mask-reservation serve`; killed when dropped.
pub struct Server {
    pub base: String,
    pub port: u16,
    pub log: PathBuf,
    child: tokio::process::Child,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits until the server answers `/healthz` at all (any status).
    pub async fn answering(&self) -> reqwest::Response {
        let client = reqwest::Client::new();
        let url = self.url("/healthz");
        eventually(Duration::from_secs(60), "the server to answer", || async {
            client.get(&url).send().await.ok()
        })
        .await
    }

    /// Waits until `/healthz` says the server is up (200).
    pub async fn healthy(&self) {
        self.until_ok("/healthz").await;
    }

    /// Waits until `path` answers 200.
    pub async fn until_ok(&self, path: &str) {
        let client = reqwest::Client::new();
        let url = self.url(path);
        eventually(
            Duration::from_secs(60),
            &format!("{path} to answer 200"),
            || async {
                let res = client.get(&url).send().await.ok()?;
                (res.status() == 200).then_some(())
            },
        )
        .await;
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server is running")
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// `kill -9`: no shutdown, no flush — what a crash or the OOM killer does.
    pub async fn kill9(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// `kill -TERM`, then waits for the process to end (a clean stop: the
    /// server finishes what it has and closes the database).
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {}", self.pid());
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the server stops within a minute of SIGTERM")
            .unwrap()
    }

    /// What the server has written to standard error so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process's resident memory now, in bytes (Linux).
    pub fn rss_bytes(&self) -> u64 {
        rss_of(self.pid())
    }
}

/// `VmRSS` of a process, in bytes (0 when it cannot be read).
pub fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
