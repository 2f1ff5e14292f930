//! One typed configuration, read from the environment and command-line flags.
//! Nothing else in the program reads the environment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU8;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono_tz::Tz;
use clap::Args;
use ipnet::IpNet;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::db::{DatabaseUrl, DatabaseUrlError};

/// Flags shared by every subcommand; each falls back to its environment variable.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Listen address.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8080", global = true)]
    pub bind: String,
    /// `sqlite://PATH` or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://./data/mask-reservation.db",
        global = true
    )]
    pub database_url: String,
    /// Cookie and ID-hash key: 64 or more bytes, base64. Generated once into the
    /// data directory for local runs; required in production.
    #[arg(long, env = "SECRET_KEY", hide_env_values = true, global = true)]
    pub secret_key: Option<String>,
    /// `smtp://host:port` or `file://DIR`.
    #[arg(
        long,
        env = "MAIL_URL",
        default_value = "file://./data/mail",
        global = true
    )]
    pub mail_url: String,
    /// Sender address of outgoing mail (`Name <address>` or a bare address).
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "공적 마스크 예약 <no-reply@localhost>",
        global = true
    )]
    pub mail_from: String,
    /// SMTP connections the mail sender uses at once (1–32).
    #[arg(
        long,
        env = "MAIL_CONNECTIONS",
        default_value_t = crate::mail::sender::DEFAULT_CONNECTIONS,
        global = true
    )]
    pub mail_connections: usize,
    /// Service time zone (IANA name).
    #[arg(long, env = "TIMEZONE", default_value = "Asia/Seoul", global = true)]
    pub timezone: String,
    /// `1` seeds demo data into an empty database; `0` never does. Default: on for
    /// a local run, off in production.
    #[arg(long, env = "DEMO", global = true)]
    pub demo: Option<String>,
    /// `production` or `development`. Production refuses to start without an
    /// explicit SECRET_KEY and never seeds demo data unless DEMO=1.
    #[arg(
        long = "env",
        env = "APP_ENV",
        default_value = "development",
        global = true
    )]
    pub app_env: String,
    /// Where local state lives (generated secret, default SQLite file, mail files).
    #[arg(long, env = "DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Database connections per app instance.
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 16, global = true)]
    pub db_pool_size: u32,
    /// Longest a request waits for the database (seconds, e.g. `3` or `0.5`)
    /// before it is answered 503 with a page that asks to try again.
    #[arg(long, env = "DB_TIMEOUT", default_value = "3", global = true)]
    pub db_timeout: String,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "WORKERS", global = true)]
    pub workers: Option<usize>,
    /// Public base URL used in e-mail links.
    #[arg(long, env = "BASE_URL", global = true)]
    pub base_url: Option<String>,
    /// The reverse proxies in front: how many (`1`), or their addresses and
    /// blocks, comma-separated (`10.0.0.0/8,192.168.1.5`). The client address
    /// is then the rightmost one in `X-Forwarded-For` that no trusted proxy
    /// wrote. Unset: none, the peer's address only.
    #[arg(long, env = "TRUSTED_PROXIES", global = true)]
    pub trusted_proxies: Option<String>,
    /// Replaced by TRUSTED_PROXIES; refused when set, so that an old
    /// configuration does not quietly put every client behind the proxy's
    /// one address.
    #[arg(long, env = "TRUST_FORWARDED", global = true, hide = true)]
    pub trust_forwarded: Option<String>,
    /// Client addresses that may read `/metrics` without a token, comma-separated
    /// (empty: none).
    #[arg(
        long,
        env = "METRICS_ALLOW",
        default_value = "127.0.0.1,::1",
        global = true
    )]
    pub metrics_allow: String,
    /// Bearer token that opens `/metrics` from any address (16+ characters).
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true, global = true)]
    pub metrics_token: Option<String>,
    /// Map tiles of `/map`: an `https://` (or `http://`) URL template with `{z}`,
    /// `{x}` and `{y}`. Its host is allowed for images by the CSP.
    #[arg(
        long,
        env = "MAP_TILE_URL",
        default_value = DEFAULT_MAP_TILE_URL,
        global = true
    )]
    pub map_tile_url: String,
    /// Held requests (login, store page, booking) in flight at once per
    /// instance; beyond it visitors get the waiting page. `0` turns the waiting
    /// room off. Default: 64 per worker.
    #[arg(long, env = "WAITING_ROOM_CAPACITY", global = true)]
    pub waiting_room_capacity: Option<usize>,
    /// Seconds a request body may go without bytes before the request is
    /// answered 408 and its connection closed.
    #[arg(long, env = "BODY_READ_TIMEOUT", default_value_t = 15, global = true)]
    pub body_read_timeout: u64,
    /// Seconds an answer may wait for its client to take it (unacknowledged,
    /// or unsent because the client does not read) before the connection is
    /// dropped.
    #[arg(
        long,
        env = "SEND_TIMEOUT",
        default_value_t = crate::web::connections::DEFAULT_SEND_TIMEOUT.as_secs(),
        global = true
    )]
    pub send_timeout: u64,
}

/// The most SMTP connections one instance opens at once: each is a blocking
/// thread here and a session at the relay, which limits sessions per client
/// (Postfix: 50 by default).
pub const MAX_MAIL_CONNECTIONS: usize = 32;

/// Held requests in flight per HTTP worker when `WAITING_ROOM_CAPACITY` is not set.
pub const WAITING_ROOM_PER_WORKER: usize = 64;

/// OpenStreetMap's standard tiles.
pub const DEFAULT_MAP_TILE_URL: &str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransport {
    Smtp { host: String, port: u16 },
    File(PathBuf),
}

/// The configuration the program runs with, fully validated.
#[derive(Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: DatabaseUrl,
    pub secret: SecretKey,
    pub mail: MailTransport,
    pub mail_from: String,
    /// SMTP connections the mail sender uses at once.
    pub mail_connections: usize,
    pub timezone: Tz,
    pub seed_demo: bool,
    pub app_env: AppEnv,
    pub data_dir: PathBuf,
    pub db_pool_size: u32,
    /// Longest a request waits for a connection, or for its write to be
    /// committed, before it is answered 503.
    pub db_timeout: std::time::Duration,
    pub workers: usize,
    /// Public base URL for links in e-mail; `None` means the bound address.
    pub base_url: Option<String>,
    /// The reverse proxies whose `X-Forwarded-For` is believed
    /// (`web::client_addr`).
    pub trusted_proxies: TrustedProxies,
    /// Client addresses that may read `/metrics` without a token.
    pub metrics_allow: Vec<IpAddr>,
    /// The bearer token that opens `/metrics` from anywhere.
    pub metrics_token: Option<MetricsToken>,
    /// The tile URL template of `/map` ([`parse_tile_url`]).
    pub map_tile_url: String,
    /// Held requests in flight at once (`web::waiting_room`); `0`: no room.
    pub waiting_room_capacity: usize,
    /// The longest wait for a request body's next bytes (`web::body_timeout`).
    pub body_read_timeout: Duration,
    /// The longest an answer waits for its client to take it
    /// (`web::connections`).
    pub send_timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("database_url", &self.database_url.redacted())
            .field("mail", &self.mail)
            .field("mail_connections", &self.mail_connections)
            .field("timezone", &self.timezone)
            .field("seed_demo", &self.seed_demo)
            .field("app_env", &self.app_env)
            .field("data_dir", &self.data_dir)
            .field("db_pool_size", &self.db_pool_size)
            .field("db_timeout", &self.db_timeout)
            .field("workers", &self.workers)
            .field("base_url", &self.base_url)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("metrics_allow", &self.metrics_allow)
            .field("waiting_room_capacity", &self.waiting_room_capacity)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("send_timeout", &self.send_timeout)
            .finish_non_exhaustive()
    }
}

/// At least 64 bytes of key material: signs and encrypts the session cookie and
/// keys the national-ID hash.
#[derive(Clone)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    pub const MIN_LEN: usize = 64;

    pub fn from_base64(text: &str) -> Result<Self, ConfigError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| ConfigError::SecretKeyNotBase64)?;
        if bytes.len() < Self::MIN_LEN {
            return Err(ConfigError::SecretKeyTooShort(bytes.len()));
        }
        Ok(SecretKey(bytes))
    }

    pub fn generate() -> Self {
        let mut bytes = vec![0u8; Self::MIN_LEN];
        rand::rng().fill_bytes(&mut bytes);
        SecretKey(bytes)
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.0)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The operator's token for `/metrics`. Kept as a digest, so that checking a
/// presented token takes the same time whatever its length or content.
#[derive(Clone)]
pub struct MetricsToken([u8; 32]);

impl MetricsToken {
    pub const MIN_LEN: usize = 16;

    pub fn parse(text: &str) -> Result<MetricsToken, ConfigError> {
        let text = text.trim();
        if text.chars().count() < Self::MIN_LEN {
            return Err(ConfigError::MetricsToken);
        }
        Ok(MetricsToken(Sha256::digest(text.as_bytes()).into()))
    }

    /// Whether `presented` is the token, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(self.0.ct_eq(&digest))
    }
}

/// The addresses of `METRICS_ALLOW`: exact IPv4 or IPv6 addresses, comma-separated.
/// `DB_TIMEOUT`: seconds, a whole or decimal number from 0.1 to 60.
pub fn parse_db_timeout(text: &str) -> Result<std::time::Duration, ConfigError> {
    let bad = || ConfigError::DbTimeout(text.to_owned());
    let trimmed = text.trim();
    let digits = trimmed.strip_suffix('s').unwrap_or(trimmed).trim();
    let secs: f64 = digits.parse().map_err(|_| bad())?;
    if !(0.1..=60.0).contains(&secs) {
        return Err(bad());
    }
    Ok(std::time::Duration::from_millis(
        (secs * 1000.0).round() as u64
    ))
}

pub fn parse_metrics_allow(text: &str) -> Result<Vec<IpAddr>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse::<IpAddr>()
                .map_err(|_| ConfigError::MetricsAllow(a.to_owned()))
        })
        .collect()
}

/// The reverse proxies in front of the app (`TRUSTED_PROXIES`), as
/// `web::client_addr` walks `X-Forwarded-For` through them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TrustedProxies {
    /// Clients reach the app directly: the peer is the client.
    #[default]
    None,
    /// This many proxies in a chain, the peer being the nearest.
    Count(NonZeroU8),
    /// Proxies known by address: exact addresses and CIDR blocks.
    Networks(Vec<IpNet>),
}

impl TrustedProxies {
    /// Empty or `0`: none. A whole number: that many. Otherwise addresses and
    /// blocks, comma-separated; a count and addresses do not mix.
    pub fn parse(text: &str) -> Result<TrustedProxies, ConfigError> {
        let text = text.trim();
        if text.is_empty() || text == "0" {
            return Ok(TrustedProxies::None);
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return text
                .parse::<NonZeroU8>()
                .map(TrustedProxies::Count)
                .map_err(|_| ConfigError::TrustedProxies(text.to_owned()));
        }
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| ConfigError::TrustedProxies(item.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies::Networks)
    }
}

/// Loopback only: what `METRICS_ALLOW` means when not set.
pub fn loopback() -> Vec<IpAddr> {
    vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("BIND `{0}` is not an address like 127.0.0.1:8080")]
    Bind(String),
    #[error(transparent)]
    DatabaseUrl(#[from] DatabaseUrlError),
    #[error("MAIL_URL `{0}` must be smtp://host:port or file://DIR")]
    MailUrl(String),
    #[error("TIMEZONE `{0}` is not an IANA time zone such as Asia/Seoul")]
    Timezone(String),
    #[error("DEMO must be 0 or 1, not `{0}`")]
    Demo(String),
    #[error("APP_ENV must be `development` or `production`, not `{0}`")]
    AppEnv(String),
    #[error("SECRET_KEY is not valid base64")]
    SecretKeyNotBase64,
    #[error("SECRET_KEY holds {0} bytes; at least 64 are needed")]
    SecretKeyTooShort(usize),
    #[error("SECRET_KEY must be set in production (64+ random bytes, base64)")]
    SecretKeyRequired,
    #[error(
        "TRUSTED_PROXIES: `{0}` is neither a number of proxies (1 to 255) nor an IP address \
         or CIDR block such as 10.0.0.0/8; give a number, or addresses and blocks \
         separated by commas"
    )]
    TrustedProxies(String),
    #[error(
        "TRUST_FORWARDED is no longer read: set TRUSTED_PROXIES to the number of reverse \
         proxies in front (1 for one nginx) or to their addresses, and unset TRUST_FORWARDED"
    )]
    TrustForwardedReplaced,
    #[error("METRICS_ALLOW: `{0}` is not an IP address (list exact addresses, comma-separated)")]
    MetricsAllow(String),
    #[error("METRICS_TOKEN must be at least 16 characters")]
    MetricsToken,
    #[error("MAP_TILE_URL `{0}` must be an http(s):// URL with {{z}}, {{x}} and {{y}}")]
    MapTileUrl(String),
    #[error("MAIL_CONNECTIONS must be between 1 and {max}", max = MAX_MAIL_CONNECTIONS)]
    MailConnections,
    #[error("DB_POOL_SIZE must be between 1 and 512")]
    PoolSize,
    #[error("DB_TIMEOUT `{0}` must be a number of seconds from 0.1 to 60, such as 3 or 0.5")]
    DbTimeout(String),
    #[error("BODY_READ_TIMEOUT must be whole seconds between 1 and 600")]
    BodyReadTimeout,
    #[error("SEND_TIMEOUT must be whole seconds between 1 and 600")]
    SendTimeout,
    #[error("cannot read or write the secret key file {path}: {source}")]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Config {
    /// Validates the flags. A local run without SECRET_KEY gets a key generated once
    /// into the data directory (the only side effect here).
    pub fn from_args(args: &ConfigArgs) -> Result<Config, ConfigError> {
        let app_env = match args.app_env.trim() {
            "development" | "dev" | "" => AppEnv::Development,
            "production" | "prod" => AppEnv::Production,
            other => return Err(ConfigError::AppEnv(other.into())),
        };
        let bind: SocketAddr = args
            .bind
            .parse()
            .map_err(|_| ConfigError::Bind(args.bind.clone()))?;
        let database_url = DatabaseUrl::parse(&args.database_url)?;
        let mail = parse_mail_url(&args.mail_url)?;
        let timezone: Tz = args
            .timezone
            .parse()
            .map_err(|_| ConfigError::Timezone(args.timezone.clone()))?;
        let seed_demo = match args.demo.as_deref().map(str::trim) {
            None | Some("") => app_env == AppEnv::Development,
            Some("1" | "true" | "on") => true,
            Some("0" | "false" | "off") => false,
            Some(other) => return Err(ConfigError::Demo(other.into())),
        };
        if !(1..=512).contains(&args.db_pool_size) {
            return Err(ConfigError::PoolSize);
        }
        if !(1..=MAX_MAIL_CONNECTIONS).contains(&args.mail_connections) {
            return Err(ConfigError::MailConnections);
        }
        if !(1..=600).contains(&args.body_read_timeout) {
            return Err(ConfigError::BodyReadTimeout);
        }
        if !(1..=600).contains(&args.send_timeout) {
            return Err(ConfigError::SendTimeout);
        }
        let secret = match args.secret_key.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(text) => SecretKey::from_base64(text)?,
            None if app_env == AppEnv::Production => return Err(ConfigError::SecretKeyRequired),
            None => load_or_create_secret(&args.data_dir.join(SECRET_FILE))?,
        };
        let base_url = args
            .base_url
            .as_deref()
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty());
        if let Some(old) = args.trust_forwarded.as_deref()
            && !matches!(old.trim(), "" | "0" | "false" | "off")
        {
            return Err(ConfigError::TrustForwardedReplaced);
        }
        let trusted_proxies =
            TrustedProxies::parse(args.trusted_proxies.as_deref().unwrap_or_default())?;
        let metrics_allow = parse_metrics_allow(&args.metrics_allow)?;
        let metrics_token = args
            .metrics_token
            .as_deref()
            .filter(|t| !t.trim().is_empty())
            .map(MetricsToken::parse)
            .transpose()?;
        let workers = args
            .workers
            .filter(|n| *n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        Ok(Config {
            bind,
            database_url,
            secret,
            mail,
            mail_from: args.mail_from.trim().to_owned(),
            mail_connections: args.mail_connections,
            timezone,
            seed_demo,
            app_env,
            data_dir: args.data_dir.clone(),
            db_pool_size: args.db_pool_size,
            db_timeout: parse_db_timeout(&args.db_timeout)?,
            workers,
            base_url,
            trusted_proxies,
            metrics_allow,
            metrics_token,
            map_tile_url: parse_tile_url(&args.map_tile_url)?,
            waiting_room_capacity: args
                .waiting_room_capacity
                .unwrap_or(WAITING_ROOM_PER_WORKER * workers),
            body_read_timeout: Duration::from_secs(args.body_read_timeout),
            send_timeout: Duration::from_secs(args.send_timeout),
        })
    }

    /// Where a local run keeps its generated secret.
    pub fn secret_file(&self) -> PathBuf {
        self.data_dir.join(SECRET_FILE)
    }

    /// A warning for production when a secret key file lies in the same directory
    /// as the SQLite database: whoever copies that directory has both the
    /// national-ID hashes and the key, and the ID space is small enough (a birth
    /// date and 7 digits) to hash every candidate and read the numbers back.
    pub fn secret_beside_database_warning(&self) -> Option<String> {
        let key_file = self.secret_file();
        if !key_file.exists() {
            return None;
        }
        let DatabaseUrl::Sqlite(db_file) = &self.database_url else {
            return None;
        };
        // Links and `..` resolved where the directories exist.
        let resolved = |file: &Path| {
            let dir = parent_dir(file);
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            dir.join(file.file_name().unwrap_or_default())
        };
        let beside = key_beside_database(self.app_env, &resolved(&key_file), &resolved(db_file));
        beside.then(|| {
            format!(
                "the secret key file {} lies beside the SQLite database {}: a copy of \
                 that directory lets anyone recover national IDs from their hashes. \
                 Keep SECRET_KEY only in the environment (or a secret store) and \
                 remove the file, or move the database elsewhere",
                key_file.display(),
                db_file.display()
            )
        })
    }
}

const SECRET_FILE: &str = "secret.key";

/// The directory a file lies in (`.` for a bare file name).
fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Whether production keeps the key file in the database's directory. Compares
/// the paths as given, ignoring `.` components and trailing slashes (the caller
/// resolves links and `..`).
pub fn key_beside_database(app_env: AppEnv, key_file: &Path, db_file: &Path) -> bool {
    app_env == AppEnv::Production && same_directory(&parent_dir(key_file), &parent_dir(db_file))
}

fn same_directory(a: &Path, b: &Path) -> bool {
    fn normal(p: &Path) -> impl Iterator<Item = Component<'_>> {
        p.components().filter(|c| !matches!(c, Component::CurDir))
    }
    normal(a).eq(normal(b))
}

/// A tile URL template: `http(s)://host[:port]/…{z}…{x}…{y}…`, nothing that
/// could break out of the CSP header or an HTML attribute.
pub fn parse_tile_url(url: &str) -> Result<String, ConfigError> {
    let url = url.trim();
    let ok = tile_origin(url).is_some()
        && ["{z}", "{x}", "{y}"].iter().all(|p| url.contains(p))
        && url
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '<' | '>' | ';' | ','));
    if ok {
        Ok(url.to_owned())
    } else {
        Err(ConfigError::MapTileUrl(url.to_owned()))
    }
}

/// The origin (`https://tile.openstreetmap.org`) of a tile URL template, for
/// the CSP's `img-src`. Leaflet's `{s}` subdomains become a wildcard.
pub fn tile_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let host = rest.split('/').next().filter(|h| !h.is_empty())?;
    let host = host.replace("{s}", "*");
    let valid = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*'));
    valid.then(|| format!("{scheme}://{host}"))
}

pub fn parse_mail_url(url: &str) -> Result<MailTransport, ConfigError> {
    let bad = || ConfigError::MailUrl(url.to_owned());
    if let Some(dir) = url.strip_prefix("file://") {
        if dir.is_empty() {
            return Err(bad());
        }
        return Ok(MailTransport::File(PathBuf::from(dir)));
    }
    if let Some(rest) = url.strip_prefix("smtp://") {
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad())?),
            None => (rest, 25),
        };
        if host.is_empty() {
            return Err(bad());
        }
        return Ok(MailTransport::Smtp {
            host: host.to_owned(),
            port,
        });
    }
    Err(bad())
}

fn load_or_create_secret(path: &Path) -> Result<SecretKey, ConfigError> {
    let io_err = |source| ConfigError::SecretFile {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => SecretKey::from_base64(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io_err)?;
            }
            let key = SecretKey::generate();
            write_private(path, &key.to_base64()).map_err(io_err)?;
            Ok(key)
        }
        Err(e) => Err(io_err(e)),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        config: ConfigArgs,
    }

    fn args(extra: &[&str]) -> ConfigArgs {
        let mut argv = vec!["test"];
        argv.extend_from_slice(extra);
        TestCli::try_parse_from(argv).unwrap().config
    }

    fn with_dir(dir: &tempfile::TempDir, extra: &[&str]) -> ConfigArgs {
        let mut a = args(extra);
        a.data_dir = dir.path().to_owned();
        a
    }

    #[test]
    fn defaults_match_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        // Flags are given explicitly so the test does not depend on the environment.
        let a = with_dir(
            &dir,
            &[
                "--bind",
                "127.0.0.1:8080",
                "--database-url",
                "sqlite://./data/mask-reservation.db",
                "--mail-url",
                "file://./data/mail",
                "--timezone",
                "Asia/Seoul",
                "--env",
                "development",
            ],
        );
        let c = Config::from_args(&a).unwrap();
        assert_eq!(c.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            c.database_url,
            DatabaseUrl::Sqlite(PathBuf::from("./data/mask-reservation.db"))
        );
        assert_eq!(c.mail, MailTransport::File(PathBuf::from("./data/mail")));
        assert_eq!(c.mail_connections, 4);
        assert_eq!(c.timezone, chrono_tz::Asia::Seoul);
        assert!(
            c.seed_demo,
            "a local run seeds demo data into an empty database"
        );
        assert_eq!(c.base_url, None, "links use the bound address");
        assert_eq!(c.trusted_proxies, TrustedProxies::None);
    }

    #[test]
    fn the_database_timeout_is_seconds_from_a_tenth_to_a_minute() {
        use std::time::Duration;
        assert_eq!(parse_db_timeout("3").unwrap(), Duration::from_secs(3));
        assert_eq!(
            parse_db_timeout(" 0.5 ").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_db_timeout("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_db_timeout("60").unwrap(), Duration::from_secs(60));
        for bad in ["", "0", "0.05", "61", "-1", "three", "NaN", "inf"] {
            assert!(
                matches!(parse_db_timeout(bad), Err(ConfigError::DbTimeout(_))),
                "{bad}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_args(&with_dir(&dir, &[])).unwrap();
        assert_eq!(c.db_timeout, Duration::from_secs(3), "the default");
    }

    #[test]
    fn the_waiting_room_is_sized_by_the_workers_unless_set_and_zero_turns_it_off() {
        let dir = tempfile::tempdir().unwrap();
        let off = with_dir(&dir, &["--workers", "3", "--waiting-room-capacity", "0"]);
        assert_eq!(Config::from_args(&off).unwrap().waiting_room_capacity, 0);
        let set = with_dir(&dir, &["--waiting-room-capacity", "500"]);
        assert_eq!(Config::from_args(&set).unwrap().waiting_room_capacity, 500);
        if std::env::var_os("WAITING_ROOM_CAPACITY").is_none() {
            let default = with_dir(&dir, &["--workers", "3"]);
            assert_eq!(
                Config::from_args(&default).unwrap().waiting_room_capacity,
                3 * WAITING_ROOM_PER_WORKER
            );
        }
    }

    #[test]
    fn a_local_run_generates_the_secret_once_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = with_dir(&dir, &["--env", "development"]);
        let first = Config::from_args(&a).unwrap().secret.to_base64();
        let second = Config::from_args(&a).unwrap().secret.to_base64();
        assert_eq!(first, second);
        assert!(dir.path().join("secret.key").exists());
    }

    #[test]
    fn production_requires_an_explicit_secret_and_does_not_seed() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = with_dir(&dir, &["--env", "production"]);
        a.secret_key = None;
        assert!(matches!(
            Config::from_args(&a),
            Err(ConfigError::SecretKeyRequired)
        ));
        a.secret_key = Some(SecretKey::generate().to_base64());
        a.demo = None;
        let c = Config::from_args(&a).unwrap();
        assert!(!c.seed_demo);
        assert!(!dir.path().join("secret.key").exists());
    }

    #[test]
    fn a_short_or_garbled_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = with_dir(&dir, &[]);
        a.secret_key = Some(BASE64.encode([7u8; 32]));
        assert!(matches!(
            Config::from_args(&a),
            Err(ConfigError::SecretKeyTooShort(32))
        ));
        a.secret_key = Some("not base64!".into());
        assert!(matches!(
            Config::from_args(&a),
            Err(ConfigError::SecretKeyNotBase64)
        ));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&[&str], &str); 12] = [
            (&["--mail-connections", "0"], "MAIL_CONNECTIONS"),
            (&["--mail-connections", "33"], "MAIL_CONNECTIONS"),
            (&["--body-read-timeout", "0"], "BODY_READ_TIMEOUT"),
            (&["--body-read-timeout", "601"], "BODY_READ_TIMEOUT"),
            (&["--send-timeout", "0"], "SEND_TIMEOUT"),
            (&["--send-timeout", "601"], "SEND_TIMEOUT"),
            (&["--bind", "localhost"], "BIND"),
            (&["--database-url", "mysql://x"], "DATABASE_URL"),
            (&["--mail-url", "http://x"], "MAIL_URL"),
            (&["--timezone", "Mars/Olympus"], "TIMEZONE"),
            (&["--demo", "maybe"], "DEMO"),
            (&["--env", "staging"], "APP_ENV"),
        ];
        for (flags, name) in cases {
            let err = Config::from_args(&with_dir(&dir, flags)).unwrap_err();
            assert!(err.to_string().contains(name), "{flags:?}: {err}");
        }
    }

    #[test]
    fn mail_urls_parse() {
        assert_eq!(
            parse_mail_url("smtp://relay.internal:2525").unwrap(),
            MailTransport::Smtp {
                host: "relay.internal".into(),
                port: 2525
            }
        );
        assert_eq!(
            parse_mail_url("smtp://relay").unwrap(),
            MailTransport::Smtp {
                host: "relay".into(),
                port: 25
            }
        );
        assert!(parse_mail_url("smtp://:25").is_err());
        assert!(parse_mail_url("file://").is_err());
    }

    #[test]
    fn production_warns_when_the_key_file_lies_beside_the_database() {
        let prod = AppEnv::Production;
        let cases: [(&str, &str, bool); 7] = [
            ("./data/secret.key", "./data/mask-reservation.db", true),
            ("data/secret.key", "./data/mask-reservation.db", true),
            ("/srv/data/secret.key", "/srv/data/./mask.db", true),
            ("/srv/data/secret.key", "/srv/data//mask.db", true),
            ("secret.key", "mask.db", true),
            ("/srv/keys/secret.key", "/srv/data/mask.db", false),
            ("/srv/data/secret.key", "/srv/data/db/mask.db", false),
        ];
        for (key, db, warn) in cases {
            assert_eq!(
                key_beside_database(prod, Path::new(key), Path::new(db)),
                warn,
                "{key} / {db}"
            );
            assert!(
                !key_beside_database(AppEnv::Development, Path::new(key), Path::new(db)),
                "a local run keeps both in ./data by design"
            );
        }
    }

    #[test]
    fn the_warning_needs_an_existing_key_file_and_an_sqlite_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mask.db");
        let mut a = with_dir(&dir, &["--env", "production"]);
        a.secret_key = Some(SecretKey::generate().to_base64());
        a.database_url = format!("sqlite://{}", db.display());
        let c = Config::from_args(&a).unwrap();
        assert_eq!(c.secret_beside_database_warning(), None, "no key file");

        std::fs::write(c.secret_file(), SecretKey::generate().to_base64()).unwrap();
        let warning = c.secret_beside_database_warning().unwrap();
        assert!(warning.contains("secret.key"), "{warning}");

        a.database_url = "postgres://db.internal/mask".into();
        let c = Config::from_args(&a).unwrap();
        assert_eq!(c.secret_beside_database_warning(), None, "no SQLite file");
    }

    #[test]
    fn metrics_access_settings_parse() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_args(&with_dir(&dir, &["--metrics-allow", "127.0.0.1,::1"])).unwrap();
        assert_eq!(c.metrics_allow, loopback());
        assert!(c.metrics_token.is_none());

        let c = Config::from_args(&with_dir(
            &dir,
            &[
                "--metrics-allow",
                " 10.0.0.7 , ",
                "--metrics-token",
                "s3cret-scraper-token",
            ],
        ))
        .unwrap();
        assert_eq!(c.metrics_allow, vec!["10.0.0.7".parse::<IpAddr>().unwrap()]);
        let token = c.metrics_token.unwrap();
        assert!(token.matches("s3cret-scraper-token"));
        assert!(!token.matches("s3cret-scraper-toke"));
        assert!(!token.matches(""));

        let c = Config::from_args(&with_dir(&dir, &["--metrics-allow", ""])).unwrap();
        assert!(c.metrics_allow.is_empty(), "empty: no address is trusted");

        for (flags, name) in [
            (&["--metrics-allow", "10.0.0.0/8"][..], "METRICS_ALLOW"),
            (&["--metrics-token", "short"][..], "METRICS_TOKEN"),
        ] {
            let err = Config::from_args(&with_dir(&dir, flags)).unwrap_err();
            assert!(err.to_string().contains(name), "{flags:?}: {err}");
        }
    }

    #[test]
    fn trusted_proxies_are_a_count_or_addresses_and_blocks() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let count = |n: u8| TrustedProxies::Count(NonZeroU8::new(n).unwrap());
        let good: [(&str, TrustedProxies); 8] = [
            ("", TrustedProxies::None),
            (" 0 ", TrustedProxies::None),
            ("1", count(1)),
            (" 2 ", count(2)),
            ("255", count(255)),
            (
                "10.0.0.0/8, 192.168.1.5,",
                TrustedProxies::Networks(vec![net("10.0.0.0/8"), net("192.168.1.5/32")]),
            ),
            (
                "::1,2001:db8::/32",
                TrustedProxies::Networks(vec![net("::1/128"), net("2001:db8::/32")]),
            ),
            (
                "10.1.2.3/8",
                TrustedProxies::Networks(vec![net("10.0.0.0/8")]),
            ),
        ];
        for (text, expected) in good {
            assert_eq!(TrustedProxies::parse(text).unwrap(), expected, "{text:?}");
        }
        for bad in [
            "256",
            "-1",
            "1.5",
            "one",
            "yes",
            "10.0.0.0/33",
            "10.0.0.0/8, nginx",
            "1, 10.0.0.0/8",
            "10.0.0.0/8 192.168.1.5",
        ] {
            let err = TrustedProxies::parse(bad).unwrap_err();
            assert!(
                matches!(err, ConfigError::TrustedProxies(_)),
                "{bad:?}: {err}"
            );
            assert!(err.to_string().starts_with("TRUSTED_PROXIES: `"), "{err}");
        }
    }

    #[test]
    fn the_proxies_setting_is_read_and_the_old_boolean_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_args(&with_dir(&dir, &["--trusted-proxies", "1"])).unwrap();
        assert_eq!(
            c.trusted_proxies,
            TrustedProxies::Count(NonZeroU8::new(1).unwrap())
        );
        let err = Config::from_args(&with_dir(&dir, &["--trusted-proxies", "proxy"])).unwrap_err();
        assert!(err.to_string().contains("TRUSTED_PROXIES"), "{err}");

        let err = Config::from_args(&with_dir(&dir, &["--trust-forwarded", "1"])).unwrap_err();
        assert!(matches!(err, ConfigError::TrustForwardedReplaced), "{err}");
        assert!(err.to_string().contains("TRUSTED_PROXIES"), "{err}");
        let off = Config::from_args(&with_dir(&dir, &["--trust-forwarded", "0"])).unwrap();
        assert_eq!(off.trusted_proxies, TrustedProxies::None);
    }

    #[test]
    fn the_send_timeout_is_a_minute_unless_set() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_args(&with_dir(&dir, &[])).unwrap();
        assert_eq!(c.send_timeout, Duration::from_secs(60));
        let c = Config::from_args(&with_dir(&dir, &["--send-timeout", "8"])).unwrap();
        assert_eq!(c.send_timeout, Duration::from_secs(8));
    }

    #[test]
    fn demo_flag_overrides_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::from_args(&with_dir(&dir, &["--demo", "0"])).unwrap();
        assert!(!c.seed_demo);
    }
}
