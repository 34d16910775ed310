//! Test support for wavecast: a private, real `livekit-server` per test, and the official LiveKit
//! Python SDK as an interop peer.
//!
//! Nothing here is a fake. [`LiveKitServer::start`] runs the pinned server binary (installed by
//! `just setup`) in `--dev` mode on free loopback ports, waits until it answers, and kills it when
//! dropped. [`python`] is the project-local venv's interpreter holding the pinned official SDK, and
//! [`PythonPeer`] runs one of the scripts in `tests/python/` against a server.
//! [`browser::BrowserPeer`] is the other official SDK users meet: Debian's Chromium, headless,
//! running livekit-client (the npm packages in `tests/browser/`, installed by `just setup`).
//!
//! ```no_run
//! use wavecast_testbed::LiveKitServer;
//! use wavecast_token::Preset;
//!
//! let server = LiveKitServer::start()?;
//! let token = server.token("alice", "demo", Preset::Viewer);
//! println!("join {} with {token}", server.ws_url());
//! # Ok::<(), wavecast_testbed::TestbedError>(())
//! ```
//!
//! # Design
//! Every server binds 127.0.0.1 only: HTTP/WebSocket on one free TCP port, all media on one free UDP
//! port (single-port mode), the ICE/TCP fallback off. Nothing listens on another address
//! ([`listening_sockets`] checks it from `/proc`). Each server's log goes to a file in its own
//! temporary directory; start-up failures quote its tail.
//!
//! [`Cluster::start`] runs several livekit-server nodes sharing one private `redis-server`, the way
//! LiveKit scales out: a room lives on one node, clients may connect to any node, and the node
//! they reach relays their signalling to the room's node. `just cluster` runs one for people.
#![deny(missing_docs)]

mod cluster;
mod sockets;

pub use cluster::{Cluster, REDIS_ENV, RedisServer, Servers, redis_binary};
pub use sockets::{Listener, listening_sockets};

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wavecast_token::{Keys, Preset, TokenBuilder};

mod postgres;
pub use postgres::{POSTGRES_BIN_ENV, POSTGRES_USER, Postgres, postgres_bin_dir};
pub mod apps;
pub mod browser;
pub mod cli;
pub mod corpus;
pub mod netns;
pub mod scripted;
pub use netns::{NetNs, UdpLeg};
pub mod tmpfs;
pub use tmpfs::Tmpfs;

/// The API key every test server accepts.
pub const API_KEY: &str = "devkey";
/// The secret of [`API_KEY`].
pub const API_SECRET: &str = "secret";
/// Environment variable that overrides the server binary's path.
pub const SERVER_ENV: &str = "WAVECAST_LIVEKIT_SERVER";

/// How long a server may take to answer after start.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors while bringing up the test bed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestbedError {
    /// No livekit-server binary was found.
    #[error(
        "no livekit-server binary: set {SERVER_ENV}, put livekit-server on PATH, or run `just setup` \
         (looked in {looked})"
    )]
    ServerNotFound {
        /// The places searched.
        looked: String,
    },
    /// The venv with the official Python SDK is missing.
    #[error("no Python venv with the LiveKit SDK at {0}: run `just setup`")]
    PythonNotFound(PathBuf),
    /// An IO operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No redis-server binary was found (a [`Cluster`] needs one).
    #[error(
        "no redis-server binary: set {REDIS_ENV}, or install the Debian package `redis-server` \
         (`just setup` does) (looked in {looked})"
    )]
    RedisNotFound {
        /// The places searched.
        looked: String,
    },
    /// Something a [`browser::BrowserPeer`] needs is not installed.
    #[error("the browser peer needs {missing}: run `just setup`")]
    BrowserNotInstalled {
        /// What is missing.
        missing: String,
    },
    /// A [`browser::BrowserPeer`] failed, ended early or did not answer in time.
    #[error("{what} {why}\n--- its log tail ---\n{log}")]
    BrowserPeer {
        /// Which peer (`browser publisher`, `browser subscriber`).
        what: String,
        /// What went wrong (the script's `ERROR` message, or the wait that ran out).
        why: String,
        /// The last lines of its stderr (the page's console).
        log: String,
    },
    /// The server did not become ready in time, or exited.
    #[error("livekit-server on {addr} did not become ready: {why}\n--- server log tail ---\n{log}")]
    NotReady {
        /// The HTTP address.
        addr: SocketAddr,
        /// Why (timeout or exit status).
        why: String,
        /// The last lines of the server's log.
        log: String,
    },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestbedError {
    let what = what.into();
    move |source| TestbedError::Io { what, source }
}

/// The workspace root (the folder holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testbed sits two levels below the workspace root")
        .to_path_buf()
}

/// Find the livekit-server binary: `$WAVECAST_LIVEKIT_SERVER`, then `.tools/bin/livekit-server`
/// (where `just setup` installs the pinned version), then `livekit-server` on `PATH`.
pub fn server_binary() -> Result<PathBuf, TestbedError> {
    let mut looked = Vec::new();
    if let Some(p) = std::env::var_os(SERVER_ENV) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        looked.push(format!("${SERVER_ENV}={}", p.display()));
    }
    let local = workspace_root().join(".tools/bin/livekit-server");
    if local.is_file() {
        return Ok(local);
    }
    looked.push(local.display().to_string());
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("livekit-server");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    looked.push("PATH".into());
    Err(TestbedError::ServerNotFound {
        looked: looked.join(", "),
    })
}

/// A free TCP port on 127.0.0.1 (free when this returns; the kernel may hand it out again later).
pub fn free_tcp_port() -> Result<u16, TestbedError> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_err("bind a free TCP port"))?;
    Ok(l.local_addr().map_err(io_err("read local address"))?.port())
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> Result<u16, TestbedError> {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_err("bind a free UDP port"))?;
    Ok(s.local_addr().map_err(io_err("read local address"))?.port())
}

/// Extra server settings for [`LiveKitServer::start_with`].
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Webhook endpoints (`webhook.urls`), signed with [`API_KEY`] (`webhook.api_key`).
    pub webhook_urls: Vec<String>,
    /// `room.auto_create` (the server's default, true, when `None`).
    pub auto_create_rooms: Option<bool>,
    /// A Redis shared with other nodes of a cluster (`redis.address`); `None` for a single node.
    pub redis: Option<SocketAddr>,
    /// A second address for media, advertised as the node IP instead of 127.0.0.1: inside a
    /// [`NetNs`], [`NetNs::ADDR`], for libwebrtc peers that gather no candidate on loopback.
    /// Never an address outside a namespace the test made.
    pub media_ip: Option<Ipv4Addr>,
    /// The log level of this server (`debug` also logs its simulcast layer decisions, which a
    /// test may read from [`LiveKitServer::log`]); `None`: `WAVECAST_SERVER_LOG_LEVEL` or `info`.
    pub log_level: Option<&'static str>,
    /// A TCP port for ICE over TCP (`rtc.tcp_port`, on the media addresses); `None`: off.
    pub ice_tcp_port: Option<u16>,
}

/// The server configuration for the given ports (loopback only).
pub fn server_config(http_port: u16, udp_port: u16) -> String {
    server_config_with(http_port, udp_port, &ServerOptions::default())
}

/// The server configuration for the given ports and options (loopback only).
pub fn server_config_with(http_port: u16, udp_port: u16, options: &ServerOptions) -> String {
    let mut extra = String::new();
    if !options.webhook_urls.is_empty() {
        extra.push_str(&format!("webhook:\n  api_key: {API_KEY}\n  urls:\n"));
        for u in &options.webhook_urls {
            extra.push_str(&format!("    - {u}\n"));
        }
    }
    if let Some(auto) = options.auto_create_rooms {
        extra.push_str(&format!("room:\n  auto_create: {auto}\n"));
    }
    if let Some(redis) = options.redis {
        extra.push_str(&format!("redis:\n  address: {redis}\n"));
    }
    let level = options.log_level.unwrap_or_else(server_log_level);
    let mut base = server_base_config(http_port, udp_port, level);
    if let Some(ip) = options.media_ip {
        base = base
            .replace("  node_ip: 127.0.0.1\n", &format!("  node_ip: {ip}\n"))
            .replace("  interfaces:\n    includes: [lo]\n", "")
            .replace(
                "    includes: [127.0.0.1/32]\n",
                &format!("    includes: [127.0.0.1/32, {ip}/32]\n"),
            );
    }
    if let Some(port) = options.ice_tcp_port {
        base = base.replace("  tcp_port: 0\n", &format!("  tcp_port: {port}\n"));
    }
    base + &extra
}

/// The servers' log level: `info`, or `WAVECAST_SERVER_LOG_LEVEL` (`debug`, `info`, `warn`,
/// `error`) for a closer look at what a test's server did (its RTT and NACK lines are at
/// `debug`). Any other value is named on stderr and `info` is used.
fn server_log_level() -> &'static str {
    const LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];
    match std::env::var("WAVECAST_SERVER_LOG_LEVEL") {
        Err(_) => "info",
        Ok(v) => LEVELS.into_iter().find(|l| *l == v).unwrap_or_else(|| {
            eprintln!(
                "testbed: WAVECAST_SERVER_LOG_LEVEL={v:?} is not one of {LEVELS:?}; using info"
            );
            "info"
        }),
    }
}

fn server_base_config(http_port: u16, udp_port: u16, level: &str) -> String {
    format!(
        "port: {http_port}
bind_addresses: [127.0.0.1]
rtc:
  tcp_port: 0
  udp_port: {udp_port}
  use_external_ip: false
  enable_loopback_candidate: true
  node_ip: 127.0.0.1
  interfaces:
    includes: [lo]
  ips:
    includes: [127.0.0.1/32]
keys:
  {API_KEY}: {API_SECRET}
logging:
  level: {level}
"
    )
}

/// [`server_config`] for a node of a cluster: the same loopback-only settings, plus the shared
/// Redis at `redis` (which makes the nodes one LiveKit deployment).
pub fn node_config(http_port: u16, udp_port: u16, redis: SocketAddr) -> String {
    server_config_with(
        http_port,
        udp_port,
        &ServerOptions {
            redis: Some(redis),
            ..ServerOptions::default()
        },
    )
}

/// A real livekit-server on free loopback ports, killed on drop.
#[derive(Debug)]
pub struct LiveKitServer {
    binary: PathBuf,
    dir: tempfile::TempDir,
    http_port: u16,
    udp_port: u16,
    child: Option<Child>,
    starts: u32,
}

impl LiveKitServer {
    /// Start a server and wait until it answers.
    pub fn start() -> Result<Self, TestbedError> {
        Self::start_with(&ServerOptions::default())
    }

    /// Start one node of a cluster: a server that shares the Redis at `redis` with the other
    /// nodes (see [`Cluster`], which also starts that Redis).
    pub fn start_node(redis: SocketAddr) -> Result<Self, TestbedError> {
        Self::start_with(&ServerOptions {
            redis: Some(redis),
            ..ServerOptions::default()
        })
    }

    /// Start a server with extra settings (webhooks, room auto-creation) and wait until it
    /// answers.
    pub fn start_with(options: &ServerOptions) -> Result<Self, TestbedError> {
        let binary = server_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("wavecast-livekit-")
            .tempdir()
            .map_err(io_err("create a temp dir for the server"))?;
        let http_port = free_tcp_port()?;
        let udp_port = free_udp_port()?;
        let config = dir.path().join("livekit-server.yaml");
        std::fs::write(&config, server_config_with(http_port, udp_port, options))
            .map_err(io_err(format!("write {}", config.display())))?;
        let mut server = Self {
            binary,
            dir,
            http_port,
            udp_port,
            child: None,
            starts: 0,
        };
        server.spawn()?;
        Ok(server)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("server-{}.log", self.starts))
    }

    fn spawn(&mut self) -> Result<(), TestbedError> {
        self.starts += 1;
        let log_path = self.log_path();
        let log = std::fs::File::create(&log_path)
            .map_err(io_err(format!("create {}", log_path.display())))?;
        let log2 = log.try_clone().map_err(io_err("clone log handle"))?;
        let child = Command::new(&self.binary)
            .arg("--dev")
            .arg("--config")
            .arg(self.dir.path().join("livekit-server.yaml"))
            .arg("--bind")
            .arg("127.0.0.1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io_err(format!("start {}", self.binary.display())))?;
        tracing::debug!(
            pid = child.id(),
            port = self.http_port,
            "livekit-server started"
        );
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), TestbedError> {
        let addr = self.http_addr();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(TestbedError::NotReady {
                    addr,
                    why: format!("the server exited with {status}"),
                    log: self.log_tail(40),
                });
            }
            if http_ok(addr) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestbedError::NotReady {
                    addr,
                    why: format!("no answer within {READY_TIMEOUT:?}"),
                    log: self.log_tail(40),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of the current server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The whole log of the current server process.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The HTTP address, 127.0.0.1:port.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.http_port))
    }

    /// `ws://127.0.0.1:port`, for clients.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.http_port)
    }

    /// `http://127.0.0.1:port`, for the server API.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The UDP port media uses.
    pub fn udp_port(&self) -> u16 {
        self.udp_port
    }

    /// The API key and secret this server accepts.
    pub fn keys(&self) -> Keys {
        Keys::new(API_KEY, API_SECRET)
    }

    /// A fresh token for `identity` in `room` with a preset's grants.
    pub fn token(&self, identity: &str, room: &str, preset: Preset) -> String {
        TokenBuilder::new(identity)
            .room(room)
            .preset(preset)
            .mint(&self.keys())
            .expect("test tokens have an identity, a room and non-empty keys")
    }

    /// The server process's id (`None` while stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kill the server (as a crash would). The ports stay reserved for [`LiveKitServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freeze the server (`SIGSTOP`): its sockets stay open but nothing answers, as with a
    /// hung host or a dead network path. [`LiveKitServer::resume`] thaws it.
    pub fn pause(&mut self) -> Result<(), TestbedError> {
        self.signal("STOP")
    }

    /// Thaw a server frozen by [`LiveKitServer::pause`] (`SIGCONT`).
    pub fn resume(&mut self) -> Result<(), TestbedError> {
        self.signal("CONT")
    }

    /// Ask the server to shut down (`SIGTERM`, as an orchestrator does). The first one starts
    /// livekit-server's drain: it takes no new participants and waits for the present ones to
    /// leave; a second one closes every room at once (each participant gets a `Leave` with
    /// reason SERVER_SHUTDOWN) and exits. See [`LiveKitServer::wait_exit`].
    pub fn terminate(&mut self) -> Result<(), TestbedError> {
        self.signal("TERM")
    }

    /// Wait up to `timeout` for the server process to exit by itself; true when it did (the
    /// ports stay reserved for [`LiveKitServer::restart`]).
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.as_mut().map(Child::try_wait) {
                None | Some(Ok(Some(_))) => {
                    self.child = None;
                    return true;
                }
                _ if Instant::now() >= deadline => return false,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn signal(&mut self, name: &str) -> Result<(), TestbedError> {
        let pid = self.pid().ok_or_else(|| TestbedError::Io {
            what: format!("send SIG{name} to the server"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "the server is stopped"),
        })?;
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .map_err(io_err("run kill"))?;
        if status.success() {
            Ok(())
        } else {
            Err(TestbedError::Io {
                what: format!("send SIG{name} to the server (pid {pid})"),
                source: std::io::Error::other(format!("kill exited with {status}")),
            })
        }
    }

    /// Start the server again on the same ports (after [`LiveKitServer::stop`], or kill and start).
    pub fn restart(&mut self) -> Result<(), TestbedError> {
        self.stop();
        self.spawn()
    }
}

impl Drop for LiveKitServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One plain HTTP/1.0 GET of `/`; true when the server answers `200`.
pub(crate) fn http_ok(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if n >= 12 && buf[..n].starts_with(b"HTTP/1.") && &buf[9..12] == b"200")
}

/// The interpreter of the project-local venv that holds the pinned official LiveKit Python SDK.
pub fn python() -> Result<PathBuf, TestbedError> {
    let p = workspace_root().join(".venv/bin/python");
    if p.is_file() {
        Ok(p)
    } else {
        Err(TestbedError::PythonNotFound(p))
    }
}

/// The path of a script in `tests/python/`.
pub fn python_script(name: &str) -> PathBuf {
    workspace_root().join("tests/python").join(name)
}

/// A command running a script from `tests/python/` with the venv interpreter, with
/// `LIVEKIT_URL`, `LIVEKIT_API_KEY` and `LIVEKIT_API_SECRET` set for `server`.
pub fn python_command(server: &LiveKitServer, script: &str) -> Result<Command, TestbedError> {
    let mut cmd = Command::new(python()?);
    cmd.arg(python_script(script))
        .env("LIVEKIT_URL", server.ws_url())
        .env("LIVEKIT_API_KEY", API_KEY)
        .env("LIVEKIT_API_SECRET", API_SECRET)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONWARNINGS", "ignore")
        .stdin(Stdio::null());
    Ok(cmd)
}

/// A Python SDK peer running in the background; killed on drop.
#[derive(Debug)]
pub struct PythonPeer {
    child: Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl PythonPeer {
    /// Spawn `script` from `tests/python/` with `args` against `server`, stdout piped.
    pub fn spawn(
        server: &LiveKitServer,
        script: &str,
        args: &[&str],
    ) -> Result<Self, TestbedError> {
        let mut child = python_command(server, script)?
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(io_err(format!("start python {script}")))?;
        let stdout = child.stdout.take().expect("stdout was piped");
        Ok(Self {
            child,
            stdout: std::io::BufReader::new(stdout),
        })
    }

    /// The script's process id (for its CPU time in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Read stdout lines until one starts with `prefix` (scripts print `READY`, `RESULT {json}`, …).
    /// Returns the rest of that line, or an error when the script ends first or `timeout` passes.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, TestbedError> {
        use std::io::BufRead;
        let deadline = Instant::now() + timeout;
        let mut line = String::new();
        loop {
            line.clear();
            // Lines come from a child we own; reads block, so bound the wait with the deadline check
            // between lines (scripts print regularly).
            let n = self
                .stdout
                .read_line(&mut line)
                .map_err(io_err("read python stdout"))?;
            if n == 0 {
                let status = self.child.wait().map_err(io_err("wait for python"))?;
                return Err(TestbedError::Io {
                    what: format!("python peer ended ({status}) before printing {prefix:?}"),
                    source: std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                });
            }
            if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                return Ok(rest.trim().to_owned());
            }
            if Instant::now() > deadline {
                return Err(TestbedError::Io {
                    what: format!("python peer did not print {prefix:?} within {timeout:?}"),
                    source: std::io::Error::from(std::io::ErrorKind::TimedOut),
                });
            }
        }
    }

    /// Wait for the script to exit and return its status.
    pub fn wait(mut self) -> Result<std::process::ExitStatus, TestbedError> {
        self.child.wait().map_err(io_err("wait for python"))
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_binds_loopback_only() {
        let c = server_config(1234, 5678);
        assert!(c.contains("port: 1234") && c.contains("udp_port: 5678"));
        assert!(c.contains("bind_addresses: [127.0.0.1]"));
        assert!(c.contains("tcp_port: 0"));
        assert!(!c.contains("0.0.0.0"));
    }

    #[test]
    fn node_config_adds_the_shared_redis() {
        let c = node_config(1234, 5678, SocketAddr::from((Ipv4Addr::LOCALHOST, 6380)));
        assert!(c.starts_with(&server_config(1234, 5678)));
        assert!(c.contains("redis:\n  address: 127.0.0.1:6380\n"), "{c}");
    }

    #[test]
    fn config_points_webhooks_at_the_given_urls() {
        let c = server_config_with(
            1,
            2,
            &ServerOptions {
                webhook_urls: vec!["http://127.0.0.1:9/hook".into()],
                auto_create_rooms: Some(false),
                ..ServerOptions::default()
            },
        );
        assert!(
            c.contains("webhook:\n  api_key: devkey\n  urls:\n    - http://127.0.0.1:9/hook\n"),
            "{c}"
        );
        assert!(c.contains("room:\n  auto_create: false\n"), "{c}");
    }

    #[test]
    fn media_ip_is_advertised_next_to_loopback() {
        let c = server_config_with(
            1,
            2,
            &ServerOptions {
                media_ip: Some(NetNs::ADDR),
                ..ServerOptions::default()
            },
        );
        assert!(c.contains("  node_ip: 192.0.2.10\n"), "{c}");
        assert!(c.contains("[127.0.0.1/32, 192.0.2.10/32]"), "{c}");
        assert!(c.contains("bind_addresses: [127.0.0.1]"), "{c}");
        assert!(!c.contains("includes: [lo]"), "{c}");
    }

    #[test]
    fn free_ports_are_nonzero() {
        assert_ne!(free_tcp_port().unwrap(), 0);
        assert_ne!(free_udp_port().unwrap(), 0);
    }

    /// Two nodes and their Redis: both nodes register in the shared Redis (LiveKit's `nodes`
    /// hash), and no process of the cluster listens on anything but loopback.
    #[test]
    fn cluster_nodes_share_redis_and_listen_on_loopback_only() {
        let cluster = Cluster::start(2).expect("start the cluster");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut reply = String::new();
        while Instant::now() < deadline {
            reply = redis_command(cluster.redis().addr(), "HLEN nodes");
            if reply.trim() == ":2" {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(reply.trim(), ":2", "both nodes registered in redis");
        let pids = cluster.pids();
        assert_eq!(pids.len(), 3);
        for pid in pids {
            let sockets = listening_sockets(pid).expect("read /proc");
            assert!(!sockets.is_empty(), "process {pid} listens on nothing");
            for s in &sockets {
                assert!(s.addr.ip().is_loopback(), "process {pid} listens on {s}");
            }
        }
        let (a, b) = (cluster.node(0), cluster.node(1));
        assert_ne!(a.http_addr(), b.http_addr());
        assert_ne!(a.udp_port(), b.udp_port());
        let udp_ports: Vec<u16> = cluster
            .nodes()
            .iter()
            .flat_map(|n| listening_sockets(n.pid().unwrap()).unwrap())
            .filter(|l| l.protocol == "udp")
            .map(|l| l.addr.port())
            .collect();
        assert!(udp_ports.contains(&a.udp_port()) && udp_ports.contains(&b.udp_port()));
    }

    fn redis_command(addr: SocketAddr, command: &str) -> String {
        let mut s = TcpStream::connect(addr).expect("connect redis");
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(format!("{command}\r\n").as_bytes()).unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// The real server starts, answers, is killed on stop and comes back on the same port.
    #[test]
    fn server_starts_stops_and_restarts_on_the_same_port() {
        let mut server = LiveKitServer::start().expect("start livekit-server");
        assert!(http_ok(server.http_addr()));
        let port = server.http_addr().port();
        server.stop();
        assert!(!http_ok(server.http_addr()), "stopped server still answers");
        server.restart().expect("restart");
        assert_eq!(server.http_addr().port(), port);
        assert!(http_ok(server.http_addr()));
        assert!(
            server.log().contains("starting LiveKit server"),
            "{}",
            server.log_tail(10)
        );
    }
}
