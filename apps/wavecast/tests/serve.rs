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
            .args(["serve", "--dev"])
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
        .args(["serve", "--dev"]));
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

const LOGIN_SECRET: &str = "cli-login-secret-0123456789";

/// A login JWT as the application's login would sign it (the secret, issuer and audience `cmd`
/// gives the service).
fn login(user: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": user, "iss": "https://login.test", "aud": "wavecast",
                            "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(LOGIN_SECRET.as_bytes()),
    )
    .unwrap()
}

/// One HTTP/1.1 request on its own connection: status and JSON body (`Null` when not JSON).
fn http(port: u16, method: &str, path: &str, bearer: &str, body: &str) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bearer}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "wavecast serve did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 18: SIGTERM (what a process manager sends) stops `serve` the way Ctrl-C does — the
/// running recording is finalised (manifest `finalized`, row `stopped` with reason `service
/// shutdown`) and the process exits 0. Against a real livekit-server.
#[test]
fn sigterm_finalises_a_running_recording() {
    let server = wavecast_testbed::LiveKitServer::start().expect("start livekit-server");
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port().unwrap();
    let recordings = dir.path().join("recordings");
    let mut child = Killed(
        cmd(dir.path(), port)
            .env("LIVEKIT_URL", server.ws_url())
            .args(["serve", "--dev", "--recordings-dir"])
            .arg(&recordings)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_listening(port);
    let owner = login("tess");
    let (s, st) = http(port, "POST", "/v1/streams", &owner, r#"{"name":"t"}"#);
    assert_eq!(s, 201, "{st}");
    let id = st["id"].as_str().unwrap().to_owned();
    let (s, live) = http(port, "POST", &format!("/v1/streams/{id}/live"), &owner, "");
    assert_eq!(s, 200, "{live}");
    let (s, rec) = http(
        port,
        "POST",
        &format!("/v1/streams/{id}/recording"),
        &owner,
        r#"{"action":"start"}"#,
    );
    assert_eq!(s, 201, "{rec}");
    let manifest = recordings.join(rec["manifest"].as_str().unwrap());
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    assert_eq!(read(&manifest)["state"], "recording");
    std::thread::sleep(Duration::from_secs(1));

    let pid = child.0.id().to_string();
    let (ok, _, err) = run(Command::new("kill").args(["-TERM", &pid]));
    assert!(ok, "kill: {err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "serve exited with {status:?} on SIGTERM");
    assert_eq!(
        read(&manifest)["state"],
        "finalized",
        "not finalised on SIGTERM"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let row = rt.block_on(async {
        let store =
            wavecast_service::Store::connect(&dir.path().join("svc.db").display().to_string())
                .await
                .unwrap();
        store
            .recording(rec["id"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap()
    });
    assert_eq!(
        (row.state.as_str(), row.end_reason.as_deref()),
        ("stopped", Some("service shutdown")),
        "{row:?}"
    );
}

/// `serve` until it listens, then stop it; returns its stderr.
fn serve_briefly(c: &mut Command, port: u16) -> String {
    use std::io::Read;
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("serve exited with {status}: {err}");
        }
        assert!(Instant::now() < deadline, "wavecast serve did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

/// Issue 18: `serve` refuses a well-known development secret or one shorter than 32 bytes
/// unless `--dev` is given (the errors name the key, never the value); secrets come from files
/// (`--api-secret-file`, `--auth-secret-file`, `--admin-key-file`, and `grant --admin-key-file`);
/// the flags that take a secret inline warn that it shows in the process list.
#[test]
fn serve_refuses_development_and_short_secrets_unless_dev() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port().unwrap();
    // The LiveKit dev server's secret (`cmd` sets LIVEKIT_API_SECRET=secret).
    let (ok, _, err) = run(cmd(dir.path(), port).arg("serve"));
    assert!(!ok, "served with the dev secret");
    assert!(
        err.contains("connection.api_secret")
            && err.contains("well-known development secret")
            && err.contains("--dev"),
        "{err}"
    );
    let api_secret = "a-livekit-api-secret-of-forty-bytes-0000";
    // A proper API secret, but the login secret of `cmd` is 27 bytes.
    let (ok, _, err) = run(cmd(dir.path(), port)
        .env("LIVEKIT_API_SECRET", api_secret)
        .arg("serve"));
    assert!(!ok, "served with a 27-byte login secret");
    assert!(
        err.contains("service.auth_secret") && err.contains("shorter than 32 bytes"),
        "{err}"
    );
    assert!(
        !err.contains("cli-login-secret"),
        "the secret is printed: {err}"
    );
    let (ok, _, err) = run(cmd(dir.path(), port)
        .env("LIVEKIT_API_SECRET", api_secret)
        .env(
            "WAVECAST_SERVICE__AUTH_SECRET",
            "a-login-secret-that-is-long-enough-000",
        )
        .arg("serve"));
    assert!(!ok, "served with a 24-byte admin key");
    assert!(err.contains("service.admin_key"), "{err}");

    // Every secret from a file: serves, no warning; `grant --admin-key-file` reaches it.
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let admin = "an-admin-key-of-at-least-32-bytes-0000000";
    let files = [
        ("--api-secret-file", file("api", &format!("{api_secret}\n"))),
        (
            "--auth-secret-file",
            file("auth", "a-login-secret-that-is-long-enough-000\n"),
        ),
        ("--admin-key-file", file("admin", &format!("{admin}\n"))),
    ];
    let mut c = cmd(dir.path(), port);
    c.env_remove("LIVEKIT_API_SECRET")
        .env_remove("WAVECAST_SERVICE__AUTH_SECRET")
        .env_remove("WAVECAST_SERVICE__ADMIN_KEY")
        .arg("serve");
    for (flag, path) in &files {
        c.arg(flag).arg(path);
    }
    let mut server = Killed(
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port);
    let (ok, _, err) = run(cmd(dir.path(), port)
        .env_remove("WAVECAST_SERVICE__ADMIN_KEY")
        .args(["grant", "list", "--admin-key-file"])
        .arg(&files[2].1));
    assert!(ok, "{err}");
    assert!(!err.contains("warning"), "{err}");
    let (ok, _, err) = run(cmd(dir.path(), port)
        .env_remove("WAVECAST_SERVICE__ADMIN_KEY")
        .args(["grant", "list", "--admin-key", admin]));
    assert!(ok, "{err}");
    assert!(
        err.contains("warning: --admin-key puts the secret in the process list"),
        "{err}"
    );
    let _ = server.0.kill();
    let _ = server.0.wait();

    // Inline --api-secret: serves, and warns.
    let err = serve_briefly(
        cmd(dir.path(), port)
            .env(
                "WAVECAST_SERVICE__AUTH_SECRET",
                "a-login-secret-that-is-long-enough-000",
            )
            .env("WAVECAST_SERVICE__ADMIN_KEY", admin)
            .args(["serve", "--api-secret", api_secret]),
        port,
    );
    assert!(
        err.contains("warning: --api-secret puts the secret in the process list"),
        "{err}"
    );
    // --dev accepts the dev secrets, and says so.
    let err = serve_briefly(cmd(dir.path(), port).args(["serve", "--dev"]), port);
    assert!(err.contains("warning: --dev"), "{err}");
    // An unreadable secret file is named.
    let (ok, _, err) = run(cmd(dir.path(), port)
        .args(["serve", "--api-secret-file"])
        .arg(dir.path().join("missing")));
    assert!(!ok);
    assert!(
        err.contains("--api-secret-file") && err.contains("missing"),
        "{err}"
    );
}
