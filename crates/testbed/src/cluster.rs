//! A private Redis and a multi-node LiveKit cluster sharing it, on free loopback ports.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{LiveKitServer, READY_TIMEOUT, TestbedError, free_tcp_port, io_err};

/// Environment variable that overrides the redis-server binary's path.
pub const REDIS_ENV: &str = "WAVECAST_REDIS_SERVER";

/// Find redis-server: `$WAVECAST_REDIS_SERVER`, then `redis-server` on `PATH`, then
/// `/usr/bin/redis-server` (where the Debian package puts it).
pub fn redis_binary() -> Result<PathBuf, TestbedError> {
    let mut looked = Vec::new();
    if let Some(p) = std::env::var_os(REDIS_ENV) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        looked.push(format!("${REDIS_ENV}={}", p.display()));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("redis-server");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    looked.push("PATH".into());
    let debian = PathBuf::from("/usr/bin/redis-server");
    if debian.is_file() {
        return Ok(debian);
    }
    looked.push(debian.display().to_string());
    Err(TestbedError::RedisNotFound {
        looked: looked.join(", "),
    })
}

/// A private redis-server on a free loopback port, in its own temporary directory (no
/// persistence), killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Start redis-server bound to 127.0.0.1 only and wait until it answers `PING`.
    pub fn start() -> Result<Self, TestbedError> {
        let binary = redis_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("wavecast-redis-")
            .tempdir()
            .map_err(io_err("create a temp dir for redis"))?;
        let port = free_tcp_port()?;
        let log_path = dir.path().join("redis.log");
        let log = std::fs::File::create(&log_path)
            .map_err(io_err(format!("create {}", log_path.display())))?;
        let log2 = log.try_clone().map_err(io_err("clone log handle"))?;
        // Everything on the command line: no config file, no snapshots, no append-only file,
        // loopback only, protected mode on.
        let child = Command::new(&binary)
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--protected-mode", "yes"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io_err(format!("start {}", binary.display())))?;
        tracing::debug!(pid = child.id(), port, "redis-server started");
        let mut redis = Self {
            dir,
            port,
            child: Some(child),
        };
        redis.wait_ready()?;
        Ok(redis)
    }

    fn wait_ready(&mut self) -> Result<(), TestbedError> {
        let addr = self.addr();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(TestbedError::NotReady {
                    addr,
                    why: format!("redis-server exited with {status}"),
                    log: self.log(),
                });
            }
            if redis_ping(addr) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestbedError::NotReady {
                    addr,
                    why: format!("redis-server gave no PONG within {READY_TIMEOUT:?}"),
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The process id (`None` once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Redis's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// Kill redis-server.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `PING` → `+PONG` over the Redis protocol.
fn redis_ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// Several livekit-server nodes sharing one private Redis: one LiveKit deployment.
///
/// Each node has its own free HTTP port and UDP media port on 127.0.0.1 (the same loopback-only
/// settings as [`LiveKitServer::start`]); the nodes find each other and route rooms through the
/// Redis. A room is hosted by one node; a participant who connects to another node has its
/// signalling relayed to the host (its media goes to the host's UDP port, which the join tells
/// it). Dropping the cluster stops the nodes, then Redis.
///
/// ```no_run
/// use wavecast_testbed::Cluster;
/// use wavecast_token::Preset;
///
/// let cluster = Cluster::start(2)?;
/// let (a, b) = (cluster.node(0), cluster.node(1));
/// let publisher = (a.ws_url(), a.token("pub", "demo", Preset::Broadcaster));
/// let viewer = (b.ws_url(), b.token("sub", "demo", Preset::Viewer));
/// # let _ = (publisher, viewer);
/// # Ok::<(), wavecast_testbed::TestbedError>(())
/// ```
#[derive(Debug)]
pub struct Cluster {
    // Field order is drop order: the nodes go before the Redis they use.
    nodes: Vec<LiveKitServer>,
    redis: RedisServer,
}

impl Cluster {
    /// Start Redis, then `nodes` livekit-server nodes (at least one), and wait until each
    /// answers.
    pub fn start(nodes: usize) -> Result<Self, TestbedError> {
        let redis = RedisServer::start()?;
        let mut started = Vec::with_capacity(nodes.max(1));
        for _ in 0..nodes.max(1) {
            started.push(LiveKitServer::start_node(redis.addr())?);
        }
        Ok(Self {
            nodes: started,
            redis,
        })
    }

    /// Node `i` (0-based).
    ///
    /// # Panics
    /// When `i` is not below the node count given to [`Cluster::start`].
    pub fn node(&self, i: usize) -> &LiveKitServer {
        &self.nodes[i]
    }

    /// Node `i`, mutable (to stop or restart it).
    ///
    /// # Panics
    /// When `i` is not below the node count given to [`Cluster::start`].
    pub fn node_mut(&mut self, i: usize) -> &mut LiveKitServer {
        &mut self.nodes[i]
    }

    /// Every node.
    pub fn nodes(&self) -> &[LiveKitServer] {
        &self.nodes
    }

    /// The shared Redis.
    pub fn redis(&self) -> &RedisServer {
        &self.redis
    }

    /// The process ids of Redis and every running node.
    pub fn pids(&self) -> Vec<u32> {
        self.redis
            .pid()
            .into_iter()
            .chain(self.nodes.iter().filter_map(LiveKitServer::pid))
            .collect()
    }
}

/// One livekit-server, or a cluster of nodes sharing Redis — what a bench or a load example
/// runs against when it offers both (`--cluster`). Dropping it stops everything it started.
#[derive(Debug)]
pub enum Servers {
    /// One server, no Redis.
    Single(LiveKitServer),
    /// Nodes sharing one Redis.
    Cluster(Cluster),
}

impl Servers {
    /// One server when `nodes` is 0 or 1, else a cluster of `nodes` nodes.
    pub fn start(nodes: usize) -> Result<Self, TestbedError> {
        if nodes > 1 {
            Cluster::start(nodes).map(Self::Cluster)
        } else {
            LiveKitServer::start().map(Self::Single)
        }
    }

    /// Every server.
    pub fn nodes(&self) -> &[LiveKitServer] {
        match self {
            Self::Single(s) => std::slice::from_ref(s),
            Self::Cluster(c) => c.nodes(),
        }
    }

    /// Every server's WebSocket URL (clients may connect to any of them).
    pub fn ws_urls(&self) -> Vec<String> {
        self.nodes().iter().map(LiveKitServer::ws_url).collect()
    }
}
