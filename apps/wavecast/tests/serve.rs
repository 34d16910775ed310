//! `wavecast serve` and `wavecast grant` as a user runs them: a real service process on SQLite,
//! grants added, listed and revoked through the admin endpoints, and clear errors for bad setup.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use wavecast_testbed::free_tcp_port;

const ADMIN: &str = "cli-admin-key-0123456789";

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wavecast"))
}

fn cmd(dir: &Path, port: u16) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(dir)
        .env("LIVEKIT_API_KEY", "devkey")
        .env("LIVEKIT_API_SECRET", "secret")
        .env("LIVEKIT_URL", "ws://127.0.0.1:7880")
        .env("WAVECAST_SERVICE__LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "WAVECAST_SERVICE__AUTH_SECRET",
            "cli-login-secret-0123456789",
        )
        .env("WAVECAST_SERVICE__AUTH_ISSUER", "https://login.test")
        .env("WAVECAST_SERVICE__AUTH_AUDIENCE", "wavecast")
        .env("WAVECAST_SERVICE__ADMIN_KEY", ADMIN)
        .env("WAVECAST_SERVICE__DATABASE", dir.join("svc.db"));
    c
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(c: &mut Command) -> (bool, String, String) {
    let o: Output = c.output().expect("run wavecast");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn serve_then_grant_add_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port().unwrap();
    let _server = Killed(
        cmd(dir.path(), port)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "wavecast serve did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, out, err) = run(cmd(dir.path(), port).args([
        "--json",
        "grant",
        "add",
        "--user",
        "alice",
        "--room",
        "demo-*",
        "--role",
        "broadcaster",
        "--expires",
        "+1h",
    ]));
    assert!(ok, "{err}");
    let g: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = g[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(g[0]["role"], "broadcaster");
    assert!(g[0]["expires_at"].as_i64().unwrap() > 0);

    let (ok, out, err) = run(cmd(dir.path(), port).args(["grant", "list", "--user", "alice"]));
    assert!(ok, "{err}");
    assert!(
        out.contains(&id) && out.contains("user:alice") && out.contains("demo-*"),
        "{out}"
    );

    let (ok, out, err) = run(cmd(dir.path(), port).args(["--json", "grant", "revoke", &id]));
    assert!(ok, "{err}");
    let g: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(g[0]["revoked_at"].as_i64().is_some(), "{out}");

    // Refusals come back as clear errors with the service's reason.
    let (ok, _, err) = run(cmd(dir.path(), port).args(["grant", "revoke", "g_nope"]));
    assert!(!ok);
    assert!(
        err.contains("404") && err.contains("no such grant"),
        "{err}"
    );
    let (ok, _, err) =
        run(cmd(dir.path(), port).args(["grant", "add", "--group", "x", "--room", "bad room"]));
    assert!(!ok);
    assert!(err.contains("invalid_room"), "{err}");
    let (ok, _, err) =
        run(cmd(dir.path(), port).args(["grant", "list", "--admin-key", "wrong-key-0123456789"]));
    assert!(!ok);
    assert!(err.contains("401") && !err.contains(ADMIN), "{err}");
}

#[test]
fn serve_refuses_bad_setup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(cmd(dir.path(), 1).args(["serve", "--listen", "0.0.0.0:8089"]));
    assert!(!ok);
    assert!(
        err.contains("service.listen = \"0.0.0.0:8089\" (command-line flag --listen)")
            && err.contains("allow_public"),
        "{err}"
    );
    // --recordings-dir layers over service.recordings_dir like the other serve flags: a file
    // given there is refused naming the flag, and --help shows the flag with its default.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let (ok, _, err) = run(cmd(dir.path(), 1)
        .env("WAVECAST_SERVICE__RECORDINGS_DIR", dir.path())
        .args(["serve", "--recordings-dir"])
        .arg(&file));
    assert!(!ok);
    assert!(
        err.contains("service.recordings_dir")
            && err.contains("(command-line flag --recordings-dir)")
            && err.contains("is not a directory"),
        "{err}"
    );
    let (ok, out, err) = run(cmd(dir.path(), 1).args(["serve", "--help"]));
    assert!(ok, "{err}");
    assert!(
        out.contains("--recordings-dir <DIR>") && out.contains("default: service.recordings_dir"),
        "{out}"
    );
    let (ok, _, err) = run(cmd(dir.path(), 1)
        .env_remove("WAVECAST_SERVICE__AUTH_SECRET")
        .arg("serve"));
    assert!(!ok);
    assert!(
        err.contains("service.auth_secret") && err.contains("not set"),
        "{err}"
    );
    let (ok, _, err) = run(cmd(dir.path(), 1)
        .args(["grant", "list"])
        .env_remove("WAVECAST_SERVICE__ADMIN_KEY"));
    assert!(!ok);
    assert!(err.contains("no admin key"), "{err}");
}
