//! A private PostgreSQL server (the distro's `postgresql` package) in a temporary directory on a
//! free loopback port, stopped and deleted on drop.
//!
//! PostgreSQL refuses to run as root; when the tests run as root (CI does) the server runs as the
//! `postgres` system user that the package creates, in a directory handed to that user.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TestbedError, free_tcp_port, io_err};

/// Environment variable naming the directory that holds `initdb` and `postgres`.
pub const POSTGRES_BIN_ENV: &str = "WAVECAST_POSTGRES_BIN";
/// The database user the test server trusts.
pub const POSTGRES_USER: &str = "wavecast";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Find the directory with `initdb` and `postgres`: `$WAVECAST_POSTGRES_BIN`, the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout), then `PATH`.
pub fn postgres_bin_dir() -> Result<PathBuf, TestbedError> {
    if let Some(p) = std::env::var_os(POSTGRES_BIN_ENV) {
        let p = PathBuf::from(p);
        if p.join("initdb").is_file() {
            return Ok(p);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
                return Ok(dir);
            }
        }
    }
    Err(TestbedError::ServerNotFound {
        looked: format!(
            "PostgreSQL: ${POSTGRES_BIN_ENV}, /usr/lib/postgresql/*/bin, PATH \
             (install the distro's `postgresql` package: `just setup`)"
        ),
    })
}

/// uid and gid of a system user, from /etc/passwd.
fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// A running PostgreSQL server; stopped (and its directory removed) on drop.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Postgres {
    /// initdb a fresh cluster in a temporary directory and start it on a free loopback port.
    pub fn start() -> Result<Self, TestbedError> {
        let bin = postgres_bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("wavecast-postgres-")
            .tempdir()
            .map_err(io_err("create a temp dir for PostgreSQL"))?;
        let as_root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        let user = if as_root {
            let (uid, gid) = system_user("postgres").ok_or_else(|| TestbedError::Io {
                what: "PostgreSQL refuses to run as root and there is no `postgres` user \
                       (install the distro's `postgresql` package)"
                    .into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(io_err(format!("hand {} to postgres", dir.path().display())))?;
            Some((uid, gid))
        } else {
            None
        };
        let command = |program: &str| {
            let mut c = Command::new(bin.join(program));
            if let Some((uid, gid)) = user {
                c.uid(uid).gid(gid);
            }
            c.current_dir(dir.path()).stdin(Stdio::null());
            c
        };
        let data = dir.path().join("data");
        let log_path = dir.path().join("postgres.log");
        let log = std::fs::File::create(&log_path).map_err(io_err("create postgres.log"))?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&log_path, Some(uid), Some(gid))
                .map_err(io_err("hand postgres.log to postgres"))?;
        }
        let out = command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", POSTGRES_USER, "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .map_err(io_err(format!("run {}", bin.join("initdb").display())))?;
        if !out.status.success() {
            return Err(TestbedError::Io {
                what: format!(
                    "initdb failed ({}): {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
                source: std::io::Error::other("initdb"),
            });
        }
        let port = free_tcp_port()?;
        let child = command("postgres")
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .stdout(log.try_clone().map_err(io_err("clone log handle"))?)
            .stderr(log)
            .spawn()
            .map_err(io_err(format!("start {}", bin.join("postgres").display())))?;
        let mut pg = Self {
            dir,
            port,
            child: Some(child),
        };
        pg.wait_ready(&bin)?;
        Ok(pg)
    }

    fn wait_ready(&mut self, bin: &Path) -> Result<(), TestbedError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(self.not_ready(format!("postgres exited with {status}")));
            }
            let ok = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", POSTGRES_USER, "-d", "postgres"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.not_ready(format!("no answer within {READY_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn not_ready(&self, why: String) -> TestbedError {
        TestbedError::Io {
            what: format!("PostgreSQL on 127.0.0.1:{} did not start: {why}\n{}", self.port, self.log()),
            source: std::io::Error::from(std::io::ErrorKind::TimedOut),
        }
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://wavecast@127.0.0.1:PORT/postgres` (trust authentication, loopback only).
    pub fn url(&self) -> String {
        format!("postgres://{POSTGRES_USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Create a fresh database and return its URL (one per test keeps tests independent).
    pub fn create_database(&self, name: &str) -> Result<String, TestbedError> {
        let bin = postgres_bin_dir()?;
        let out = Command::new(bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", POSTGRES_USER, name])
            .output()
            .map_err(io_err("run createdb"))?;
        if !out.status.success() {
            return Err(TestbedError::Io {
                what: format!("createdb {name}: {}", String::from_utf8_lossy(&out.stderr)),
                source: std::io::Error::other("createdb"),
            });
        }
        Ok(format!(
            "postgres://{POSTGRES_USER}@127.0.0.1:{}/{name}",
            self.port
        ))
    }

    /// Stop the server (fast shutdown, then kill if it lingers).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_starts_answers_and_stops() {
        let mut pg = Postgres::start().expect("start PostgreSQL");
        let bin = postgres_bin_dir().unwrap();
        let ready = |pg: &Postgres| {
            Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &pg.port().to_string()])
                .status()
                .unwrap()
                .success()
        };
        assert!(ready(&pg));
        let url = pg.create_database("t1").unwrap();
        assert!(url.ends_with("/t1"), "{url}");
        pg.stop();
        assert!(!ready(&pg), "stopped server still answers");
    }
}
