//! Debian's nginx as a child process, running the shipped site file
//! `deploy/nginx/mask-reservation.conf` in front of instances the test
//! started: its own prefix, pid file, logs and temporary files in a
//! directory of its own, a free port on loopback, stopped when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::server::free_port;

/// Where Debian puts the binary (`apt-get install nginx`).
pub const NGINX: &str = "/usr/sbin/nginx";

/// The upstream ports the shipped file names, in its order.
const SHIPPED_UPSTREAMS: [&str; 2] = ["127.0.0.1:8081", "127.0.0.1:8082"];

/// A running nginx; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Nginx {
    /// `http://127.0.0.1:PORT`: the site that proxies to the instances.
    pub base: String,
    /// `http://127.0.0.1:PORT`: the plain-HTTP site that sends to HTTPS.
    pub plain_base: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Nginx {
    /// Starts nginx with the shipped site in front of `upstreams` (the
    /// instances' ports, in place of 8081 and 8082), and waits until it
    /// accepts connections.
    pub async fn start(upstreams: [u16; 2]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        // Started as root, nginx's workers run as `nobody`: they must reach
        // the temporary directories in here.
        set_mode(dir.path(), 0o755);
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        set_mode(&logs, 0o755);
        let (port, plain_port) = (free_port(), free_port());
        let site = site(
            &std::fs::read_to_string(super::repo_path("deploy/nginx/mask-reservation.conf"))
                .unwrap(),
            port,
            plain_port,
            upstreams,
            &logs,
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, main_conf(dir.path(), &site)).unwrap();
        let stderr = std::fs::File::create(logs.join("stderr.log")).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(logs.join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {NGINX} (apt-get install nginx): {e}"));
        let mut nginx = Nginx {
            base: format!("http://127.0.0.1:{port}"),
            plain_base: format!("http://127.0.0.1:{plain_port}"),
            dir,
            child,
        };
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!(
                    "nginx exited ({status}):\n{}\n{}",
                    nginx.log("stderr.log"),
                    nginx.log("error.log")
                );
            }
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "nginx does not listen on {addr}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        nginx
    }

    /// A log file of nginx's (`access.log` is the site's access log).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("logs").join(name)).unwrap_or_default()
    }

    /// The site's access log, one entry per line, parsed.
    pub fn access_log(&self) -> Vec<Access> {
        self.log("mask-reservation.access.log")
            .lines()
            .filter_map(Access::parse)
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers and exits; a SIGKILL alone
        // would leave the workers running, holding the port.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of the site's access log (the shipped `mask_reservation` format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The address nginx saw the client at.
    pub client: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// `127.0.0.1:PORT` of the instance that answered; `-` when none did.
    pub upstream: String,
}

impl Access {
    fn parse(line: &str) -> Option<Access> {
        let client = line.split(' ').next()?.to_owned();
        let (_, request) = line.split_once('"')?;
        let (request, rest) = request.split_once('"')?;
        let (method, path) = request.split_once(' ')?;
        let status = rest.split_whitespace().next()?.parse().ok()?;
        let upstream = rest
            .split_whitespace()
            .find_map(|w| w.strip_prefix("upstream="))?
            .to_owned();
        Some(Access {
            client,
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            upstream,
        })
    }
}

/// The shipped site as the test runs it: the HTTPS server on `port` in plain
/// HTTP (its `ssl_` lines dropped), the redirecting one on `plain_port`, the
/// upstream's two servers at `upstreams`, the logs in `logs`; IPv6 listeners
/// dropped (loopback only).
pub fn site(shipped: &str, port: u16, plain_port: u16, upstreams: [u16; 2], logs: &Path) -> String {
    let mut out = String::new();
    let (mut listens, mut servers) = (0, 0);
    for line in shipped.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("ssl_") || trimmed.starts_with("listen [::]") {
            continue;
        }
        let line = if trimmed.starts_with("listen 443") {
            listens += 1;
            format!("    listen 127.0.0.1:{port};")
        } else if trimmed.starts_with("listen 80") {
            listens += 1;
            format!("    listen 127.0.0.1:{plain_port};")
        } else if let Some(i) = SHIPPED_UPSTREAMS
            .iter()
            .position(|u| trimmed.starts_with(&format!("server {u}")))
        {
            servers += 1;
            line.replace(SHIPPED_UPSTREAMS[i], &format!("127.0.0.1:{}", upstreams[i]))
        } else {
            line.replace("/var/log/nginx/", &format!("{}/", logs.display()))
        };
        out.push_str(&line);
        out.push('\n');
    }
    assert_eq!(
        (listens, servers),
        (2, 2),
        "the shipped site has one plain and one TLS listener and two upstream servers"
    );
    out
}

/// The main configuration around the site, as Debian's /etc/nginx/nginx.conf
/// has it, every path in `prefix`.
fn main_conf(prefix: &Path, site: &str) -> String {
    let p = prefix.display();
    format!(
        "worker_processes 2;\n\
         pid {p}/nginx.pid;\n\
         events {{ worker_connections 768; }}\n\
         http {{\n\
         sendfile on;\n\
         tcp_nopush on;\n\
         types_hash_max_size 2048;\n\
         include /etc/nginx/mime.types;\n\
         default_type application/octet-stream;\n\
         access_log {p}/logs/access.log;\n\
         gzip on;\n\
         client_body_temp_path {p}/client_body;\n\
         proxy_temp_path {p}/proxy;\n\
         fastcgi_temp_path {p}/fastcgi;\n\
         uwsgi_temp_path {p}/uwsgi;\n\
         scgi_temp_path {p}/scgi;\n\
         {site}\n\
         }}\n"
    )
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
