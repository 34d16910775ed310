//! The test bed of the service suite: a real livekit-server whose webhooks point at the service
//! under test, the service in-process on a free loopback port over SQLite or PostgreSQL, and the
//! official Python SDK as the peer that joins with the service's tokens.
//!
//! The scenarios are `async fn`s here; `sqlite.rs` and `postgres.rs` run the same list through
//! [`suite!`], each on its own database engine.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::Digest;
use wavecast_config::Secret;
use wavecast_service::auth::{AdminKey, CallerAuth};
use wavecast_service::{Service, Settings, Store};
use wavecast_testbed::{API_KEY, API_SECRET, LiveKitServer, Postgres, ServerOptions};
use wavecast_token::Keys;

pub const LOGIN_SECRET: &str = "the-apps-login-secret-0123456789";
pub const ISSUER: &str = "https://login.example.test";
pub const AUDIENCE: &str = "wavecast";
pub const ADMIN_KEY: &str = "admin-key-for-tests-0123456789";

/// Which database the service runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Limits of one bed.
#[derive(Debug, Clone)]
pub struct Limits {
    pub rate_per_minute: u32,
    pub rate_burst: u32,
    pub max_body_bytes: usize,
    pub bounds: wavecast_service::Bounds,
    pub event_retention: Duration,
    pub caps: wavecast_service::Caps,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            rate_per_minute: 6000,
            rate_burst: 1000,
            max_body_bytes: 16 * 1024,
            bounds: wavecast_service::Bounds::default(),
            event_retention: Duration::from_secs(7 * 86400),
            caps: wavecast_service::Caps {
                min_free_disk: 0,
                ..Default::default()
            },
        }
    }
}

pub struct Bed {
    pub base: String,
    /// `service.recordings_dir` of this bed (a temporary directory).
    pub recordings: std::path::PathBuf,
    _recordings_dir: tempfile::TempDir,
    pub server: LiveKitServer,
    pub http: reqwest::Client,
    pub store: Store,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _sqlite_dir: Option<tempfile::TempDir>,
    _postgres: Option<Postgres>,
}

impl Bed {
    pub async fn start(backend: Backend) -> Bed {
        Self::start_with(backend, Limits::default()).await
    }

    pub async fn start_with(backend: Backend, limits: Limits) -> Bed {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("WAVECAST_LOG")
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        wavecast_service::ensure_crypto_provider();
        let (database, sqlite_dir, postgres) = tokio::task::spawn_blocking(move || match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("service.db");
                (path.display().to_string(), Some(dir), None)
            }
            Backend::Postgres => {
                let pg = Postgres::start().expect("start PostgreSQL (apt package postgresql)");
                (pg.url(), None, Some(pg))
            }
        })
        .await
        .unwrap();
        let recordings_dir = tempfile::tempdir().expect("temp dir");
        let recordings = recordings_dir.path().join("recordings");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hook = format!("http://{addr}/v1/livekit/webhook");
        let server = tokio::task::spawn_blocking(move || {
            LiveKitServer::start_with(&ServerOptions {
                webhook_urls: vec![hook],
                ..Default::default()
            })
            .expect("start livekit-server")
        })
        .await
        .unwrap();
        let settings = Settings {
            listen: addr,
            database: database.clone(),
            livekit_url: server.ws_url(),
            public_url: server.ws_url(),
            keys: Keys::new(API_KEY, API_SECRET),
            caller_auth: CallerAuth::hs256(&Secret::new(LOGIN_SECRET), ISSUER, AUDIENCE),
            admin_key: Some(AdminKey::new(Secret::new(ADMIN_KEY))),
            max_token_ttl: Duration::from_secs(3600),
            max_body_bytes: limits.max_body_bytes,
            rate_per_minute: limits.rate_per_minute,
            rate_burst: limits.rate_burst,
            webhook_max_age: Duration::from_secs(300),
            recordings_dir: Some(recordings.clone()),
            bounds: limits.bounds.clone(),
            event_retention: limits.event_retention,
            caps: limits.caps.clone(),
        };
        let store = Store::connect(&database).await.expect("open the store");
        let service = Service::new(settings, store.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            service
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
        });
        Bed {
            base: format!("http://{addr}"),
            recordings,
            _recordings_dir: recordings_dir,
            server,
            http: reqwest::Client::new(),
            store,
            shutdown: Some(tx),
            task: Some(task),
            _sqlite_dir: sqlite_dir,
            _postgres: postgres,
        }
    }

    /// A stream of `owner` (a login JWT), taken live; returns (id, room).
    pub async fn live_stream(&self, owner: &str, name: &str) -> (String, String) {
        let (s, st) = self
            .call(
                "POST",
                "/v1/streams",
                Some(owner),
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(s, 201, "{st}");
        let id = st["id"].as_str().unwrap().to_owned();
        let (s, live) = self
            .call("POST", &format!("/v1/streams/{id}/live"), Some(owner), None)
            .await;
        assert_eq!(s, 200, "{live}");
        (id, st["room"].as_str().unwrap().to_owned())
    }

    /// `POST /v1/streams/{id}/recording {"action": action}` as `bearer`.
    pub async fn recording(&self, id: &str, bearer: Option<&str>, action: &str) -> (u16, Value) {
        self.call(
            "POST",
            &format!("/v1/streams/{id}/recording"),
            bearer,
            Some(json!({ "action": action })),
        )
        .await
    }

    /// Stop serving (before the database goes away).
    pub async fn stop(mut self) {
        self.stop_serving().await;
        self.store.close().await;
    }

    /// Stop serving: the service finishes its requests and finalizes its recordings.
    pub async fn stop_serving(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
    }

    /// A login JWT as the application's own login would issue it.
    pub fn login(&self, user: &str, groups: &[&str]) -> String {
        login_jwt(user, groups, LOGIN_SECRET)
    }

    /// One request; returns status and JSON body (`Value::Null` when not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        self.raw(method, path, bearer, body, Some("application/json"))
            .await
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        };
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.expect("the service answers");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, Some(ADMIN_KEY), body).await
    }

    /// Add a grant through the admin endpoint; returns its id.
    pub async fn grant(&self, grant: Value) -> String {
        let (s, g) = self.admin("POST", "/v1/admin/grants", Some(grant)).await;
        assert_eq!(s, 201, "{g}");
        g["id"].as_str().unwrap().to_owned()
    }

    pub async fn token(&self, jwt: &str, room: &str) -> (u16, Value) {
        self.call(
            "POST",
            "/v1/token",
            Some(jwt),
            Some(json!({ "room": room })),
        )
        .await
    }

    pub async fn counts(&self) -> (i64, i64, i64) {
        self.store.counts().await.unwrap()
    }

    /// Poll `GET path` until `done(body)` or `timeout`.
    pub async fn wait_for(
        &self,
        path: &str,
        jwt: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (s, v) = self.call("GET", path, Some(jwt), None).await;
            assert_eq!(s, 200, "{v}");
            if done(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {path}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The LiveKit server API's rooms (names).
    pub async fn server_rooms(&self) -> Vec<String> {
        let rooms = livekit_api::services::room::RoomClient::with_api_key(
            &self.server.http_url(),
            API_KEY,
            API_SECRET,
        );
        rooms
            .list_rooms(vec![])
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect()
    }

    /// The LiveKit server API's participants of a room: (identity, published track count).
    pub async fn server_participants(&self, room: &str) -> Vec<(String, usize)> {
        let rooms = livekit_api::services::room::RoomClient::with_api_key(
            &self.server.http_url(),
            API_KEY,
            API_SECRET,
        );
        rooms
            .list_participants(room)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.identity, p.tracks.len()))
            .collect()
    }
}

pub fn now() -> i64 {
    wavecast_token::unix_now() as i64
}

pub fn login_jwt(user: &str, groups: &[&str], secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": user, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "groups": groups}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// LiveKit's webhook signature: a JWT from `key`/`secret` carrying the body's sha256.
pub fn sign_webhook(body: &str, key: &str, secret: &str) -> String {
    let sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body));
    livekit_api::access_token::AccessToken::with_api_key(key, secret)
        .with_sha256(&sha)
        .to_jwt()
        .unwrap()
}

/// One stream as the distro's ffprobe (an independent reader) sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    pub codec: String,
    pub packets: u64,
}

/// ffprobe's streams of a media file (codec, packets read) and its duration in seconds.
pub fn ffprobe(path: &std::path::Path) -> (Vec<Probed>, f64) {
    let v = wavecast_testbed::apps::ffprobe_json(
        &[
            "-count_packets",
            "-show_entries",
            "stream=codec_name,nb_read_packets:format=duration",
        ],
        path,
    );
    let streams = v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| Probed {
                    codec: s["codec_name"].as_str().unwrap_or("").to_owned(),
                    packets: s["nb_read_packets"]
                        .as_str()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    (streams, duration)
}

/// Run a python peer call that blocks (reading its stdout) without stalling the runtime.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Every scenario, as one `#[tokio::test]` per scenario for `$backend`.
#[macro_export]
macro_rules! suite {
    ($backend:expr) => {
        $crate::suite!(@each $backend,
            token_joins_and_viewer_cannot_publish,
            expired_revoked_and_future_grants_are_refused,
            mint_reads_grants_and_the_ended_stream_in_one_query,
            stream_goes_live_shows_viewers_and_ends,
            forged_tampered_and_replayed_webhooks_are_refused,
            bad_input_gets_clear_4xx_and_stores_nothing,
            bursts_are_rate_limited_per_caller,
            recording_starts_stops_and_refuses_bad_requests,
            recordings_end_with_the_stream_and_the_service,
            a_user_named_admin_has_no_admin_powers,
            anonymous_requests_get_401_whatever_the_body,
            streams_are_visible_only_to_owner_admin_key_and_grant_holders,
            slow_clients_get_408_and_concurrency_is_bounded,
            shutdown_stops_waiting_for_slow_clients_then_finalises,
            admin_token_for_one_room_cannot_touch_others,
            healthz_is_cheap_and_says_when_the_database_is_gone,
            stored_webhook_events_expire_after_the_retention,
            webhook_followups_survive_a_livekit_outage,
            revoke_races_mints_and_evicts_whom_the_grant_admitted,
            per_caller_caps_hold,
            recording_refuses_to_start_below_the_free_disk_threshold,
            recording_stops_cleanly_when_the_disk_fills,
            metrics_count_requests_tokens_denials_webhooks_and_recordings,
            hostile_corpus_gets_no_5xx,
        );
    };
    (@each $backend:expr, $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                common::scenarios::$name($backend).await;
            }
        )*
    };
}

pub mod scenarios;
