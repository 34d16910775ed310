//! Bench (not a test): `POST /v1/token` requests/s and latency percentiles of wavecast-service
//! (SQLite and PostgreSQL) against the chat seed's endpoint written the way the seed wrote it
//! (Flask + flask-jwt-extended + the official livekit-api under gunicorn), same machine, same
//! run, same load generator (this program: N keep-alive connections, each sending requests back
//! to back for a fixed time).
//!
//! ```text
//! cargo run --release -p wavecast-service --example token_bench -- [SECONDS] [CONNECTIONS]
//! ```
//! Needs the venv from `just setup` (gunicorn, Flask, flask-jwt-extended, livekit-api) and the
//! distro's PostgreSQL. Results go to stdout; docs/PERFORMANCE.md records them.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use wavecast_config::Secret;
use wavecast_service::auth::{AdminKey, CallerAuth};
use wavecast_service::policy::{Grant, Role, Subject};
use wavecast_service::{Service, Settings, Store};
use wavecast_testbed::{API_KEY, API_SECRET, Postgres, free_tcp_port, workspace_root};
use wavecast_token::Keys;

const SECRET: &str = "bench-login-secret-0123456789abcdef";
const ISSUER: &str = "https://login.bench";
const AUDIENCE: &str = "wavecast";

struct Outcome {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
}

fn login() -> String {
    let exp = wavecast_token::unix_now() + 3600;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({"sub": "bench-user", "iss": ISSUER, "aud": AUDIENCE, "exp": exp}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign the login JWT")
}

/// The load generator: `conns` connections, each request after the previous answer.
async fn load(url: String, body: &'static str, seconds: f64, conns: usize) -> Outcome {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(conns)
        .build()
        .expect("http client");
    let jwt = Arc::new(login());
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, url, jwt) = (client.clone(), url.clone(), jwt.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            let (mut ok, mut errors) = (0u64, 0u64);
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .bearer_auth(jwt.as_str())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let good = match r {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let us = t.elapsed().as_micros() as u64;
                if good {
                    ok += 1;
                    let _ = hist.record(us.max(1));
                } else {
                    errors += 1;
                }
            }
            (ok, errors, hist)
        }));
    }
    let mut out = Outcome {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    };
    for t in tasks {
        let (ok, errors, hist) = t.await.expect("load task");
        out.ok += ok;
        out.errors += errors;
        out.hist.add(hist).expect("same bounds");
    }
    out.elapsed = start.elapsed();
    out
}

fn report(name: &str, o: &Outcome) {
    let ms = |q: f64| o.hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:<58} {:>8.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms   ({} ok, {} errors)",
        o.ok as f64 / o.elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.99),
        o.hist.max() as f64 / 1000.0,
        o.ok,
        o.errors
    );
}

/// Start wavecast-service on its own 2-thread runtime (as `wavecast serve` would run) and return
/// its port; the thread lives until the process ends.
fn start_service(database: String) -> u16 {
    let port = free_tcp_port().expect("free port");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("service runtime");
        rt.block_on(async move {
            let listen = format!("127.0.0.1:{port}").parse().expect("addr");
            let settings = Settings {
                listen,
                database: database.clone(),
                livekit_url: "ws://127.0.0.1:7880".into(),
                public_url: "ws://127.0.0.1:7880".into(),
                keys: Keys::new(API_KEY, API_SECRET),
                caller_auth: CallerAuth::hs256(&Secret::new(SECRET), ISSUER, AUDIENCE),
                admin_key: Some(AdminKey::new(Secret::new("bench-admin-key-0123456789"))),
                max_token_ttl: Duration::from_secs(6 * 3600),
                max_body_bytes: 16 * 1024,
                rate_per_minute: 1_000_000,
                rate_burst: 100_000,
                webhook_max_age: Duration::from_secs(300),
                recordings_dir: None,
                bounds: wavecast_service::Bounds::default(),
                event_retention: Duration::from_secs(7 * 86400),
                caps: wavecast_service::Caps::default(),
            };
            let store = Store::connect(&database).await.expect("store");
            store
                .insert_grant(&Grant {
                    id: "g_bench".into(),
                    subject: Subject::User("bench-user".into()),
                    room: "bench-*".into(),
                    role: Role::Broadcaster,
                    not_before: None,
                    expires_at: None,
                    revoked_at: None,
                    created_at: 0,
                })
                .await
                .expect("grant");
            let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
            tx.send(()).expect("ready");
            Service::new(settings, store)
                .serve(listener, std::future::pending())
                .await
                .expect("serve");
        });
    });
    rx.recv().expect("service started");
    port
}

struct Gunicorn(std::process::Child);

impl Drop for Gunicorn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_seed() -> (Gunicorn, u16) {
    let root = workspace_root();
    let port = free_tcp_port().expect("free port");
    let child = Command::new(root.join(".venv/bin/gunicorn"))
        .args([
            "-w",
            "2",
            "-k",
            "gthread",
            "--threads",
            "4",
            "--log-level",
            "warning",
        ])
        .args(["-b", &format!("127.0.0.1:{port}")])
        .arg("--chdir")
        .arg(root.join("tests/python"))
        .arg("token_seed_app:app")
        .env("LOGIN_SECRET", SECRET)
        .env("LOGIN_ISSUER", ISSUER)
        .env("LOGIN_AUDIENCE", AUDIENCE)
        .env("LIVEKIT_API_KEY", API_KEY)
        .env("LIVEKIT_API_SECRET", API_SECRET)
        .env("LIVEKIT_URL", "ws://127.0.0.1:7880")
        .env("PYTHONWARNINGS", "ignore")
        .stdin(Stdio::null())
        .spawn()
        .expect("start gunicorn from .venv (run `just setup`)");
    let g = Gunicorn(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gunicorn did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (g, port)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let conns: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    wavecast_service::ensure_crypto_provider();

    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = start_service(dir.path().join("bench.db").display().to_string());
    let pg = Postgres::start().expect("start PostgreSQL");
    let postgres = start_service(pg.url());
    let (_seed, seed) = start_seed();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("load runtime");
    let ours = r#"{"room":"bench-room"}"#;
    let theirs = r#"{"room_name":"bench-room"}"#;
    let targets = [
        (
            "wavecast-service POST /v1/token (axum, SQLite)",
            format!("http://127.0.0.1:{sqlite}/v1/token"),
            ours,
        ),
        (
            "wavecast-service POST /v1/token (axum, PostgreSQL)",
            format!("http://127.0.0.1:{postgres}/v1/token"),
            ours,
        ),
        (
            "chat seed POST /token (Flask, gunicorn 2x4 gthread)",
            format!("http://127.0.0.1:{seed}/token"),
            theirs,
        ),
    ];
    println!("{conns} connections, {seconds} s per target after 2 s of warm-up");
    for (name, url, body) in targets {
        rt.block_on(load(url.clone(), body, 2.0, conns));
        let o = rt.block_on(load(url, body, seconds, conns));
        report(name, &o);
    }
}
