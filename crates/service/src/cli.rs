//! The `wavecast serve` and `wavecast grant` commands as a library: their flags (clap), how the
//! flags layer over the configuration, running the service until a shutdown signal, and the
//! grant table. An admin tool of its own embeds them the same way the `wavecast` app does:
//!
//! ```no_run
//! use clap::Parser;
//! use wavecast_service::cli::{GrantArgs, grants_table};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     grant: GrantArgs,
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cli = Cli::parse();
//! let config = wavecast_config::Loader::new().load()?;
//! let client = cli.grant.client(&config)?;
//! println!("{}", grants_table(&cli.grant.run(&client).await?));
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use comfy_table::Table;
use wavecast_config::{Config, Loader};

use crate::policy::{Grant, Role};
use crate::{AdminClient, ClientError, NewGrant, Service, ServiceError, Settings, Store};

/// `wavecast serve` flags (each overrides the `[service]` config key of the same name).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Listen address, IP:port [default: service.listen, else 127.0.0.1:8089].
    #[arg(long)]
    pub listen: Option<String>,
    /// Storage: a SQLite file path or a postgres:// URL [default: service.database, else
    /// wavecast-service.db].
    #[arg(long, value_name = "PATH|URL")]
    pub database: Option<String>,
    /// Allow a non-loopback listen address although this process serves no TLS (a TLS proxy
    /// in front) [default: service.allow_public, else false].
    #[arg(long)]
    pub allow_public: bool,
    /// Directory for stream recordings (`POST /v1/streams/{id}/recording`), created when missing
    /// [default: service.recordings_dir, else none: recording off].
    #[arg(long, value_name = "DIR")]
    pub recordings_dir: Option<PathBuf>,
    /// Read the LiveKit API secret from this file (first line; kept out of the process list,
    /// unlike --api-secret) [default: connection.api_secret, e.g. LIVEKIT_API_SECRET].
    #[arg(long, value_name = "PATH")]
    pub api_secret_file: Option<PathBuf>,
    /// Read the admin key from this file (first line) [default: service.admin_key].
    #[arg(long, value_name = "PATH")]
    pub admin_key_file: Option<PathBuf>,
    /// Read the login's HS256 secret from this file (first line) [default: service.auth_secret].
    #[arg(long, value_name = "PATH")]
    pub auth_secret_file: Option<PathBuf>,
    /// Development mode: accept well-known development secrets and secrets shorter than
    /// 32 bytes (refused otherwise). Never in production.
    #[arg(long)]
    pub dev: bool,
}

/// Shortest secret `serve` accepts without `--dev` (LiveKit API secret, login HS256 secret,
/// admin key).
pub const MIN_SECRET_LEN: usize = 32;

/// Secrets everyone knows: the LiveKit dev server's (`livekit-server --dev`, config/livekit.toml)
/// and the ones this repository's recipes, docs and examples use. `serve` refuses them without
/// `--dev`.
pub const DEVELOPMENT_SECRETS: &[&str] = &[
    "secret",
    "devkey",
    "dev-login-secret-change-me",
    "dev-admin-key-change-me",
    "0123456789abcdef0123",
    "admin-0123456789abcdef",
];

/// The first line of a secret file (without its line ending); errors name the flag and path.
pub fn read_secret_file(
    flag: &'static str,
    path: &std::path::Path,
) -> Result<String, ServiceError> {
    let text = std::fs::read_to_string(path).map_err(|e| ServiceError::Config {
        key: flag,
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    let secret = text.lines().next().unwrap_or("").to_owned();
    if secret.is_empty() {
        return Err(ServiceError::Config {
            key: flag,
            message: format!("{} is empty (the secret is its first line)", path.display()),
        });
    }
    Ok(secret)
}

/// Refuse to serve with a secret everyone knows or one shorter than [`MIN_SECRET_LEN`] bytes
/// (unless `dev`): the LiveKit API secret, the login HS256 secret and the admin key. Errors
/// name the key, never the value.
pub fn check_secrets(config: &Config, dev: bool) -> Result<(), ServiceError> {
    if dev {
        return Ok(());
    }
    let secrets = [
        (
            "connection.api_secret",
            config.connection.api_secret.as_ref(),
        ),
        ("service.auth_secret", config.service.auth_secret.as_ref()),
        ("service.admin_key", config.service.admin_key.as_ref()),
    ];
    for (key, secret) in secrets {
        let Some(secret) = secret else { continue };
        let v = secret.expose();
        let why = if DEVELOPMENT_SECRETS.contains(&v) {
            "is a well-known development secret".to_owned()
        } else if v.len() < MIN_SECRET_LEN {
            format!("is shorter than {MIN_SECRET_LEN} bytes ({} bytes)", v.len())
        } else {
            continue;
        };
        return Err(ServiceError::Config {
            key,
            message: format!(
                "{why}: serve refuses it outside development. Set a random secret of at least \
                 {MIN_SECRET_LEN} bytes (e.g. `openssl rand -base64 48`), from a file \
                 (--api-secret-file, --auth-secret-file, --admin-key-file) or the environment; \
                 or pass --dev on a development machine"
            ),
        });
    }
    Ok(())
}

impl ServeArgs {
    /// Layers the flags given over `loader` (as `service.listen`, `service.database`,
    /// `service.allow_public`, `service.recordings_dir`, and the secrets read from the `--…-file`
    /// flags as `connection.api_secret`, `service.auth_secret`, `service.admin_key`; named by
    /// their flag in errors). Fails when a secret file cannot be read.
    pub fn apply(&self, mut loader: Loader) -> Result<Loader, ServiceError> {
        for (file, key, flag) in [
            (
                &self.api_secret_file,
                "connection.api_secret",
                "--api-secret-file",
            ),
            (
                &self.auth_secret_file,
                "service.auth_secret",
                "--auth-secret-file",
            ),
            (
                &self.admin_key_file,
                "service.admin_key",
                "--admin-key-file",
            ),
        ] {
            if let Some(path) = file {
                loader = loader.flag(key, flag, read_secret_file(flag, path)?);
            }
        }
        if let Some(v) = &self.listen {
            loader = loader.flag("service.listen", "--listen", v);
        }
        if let Some(v) = &self.database {
            loader = loader.flag("service.database", "--database", v);
        }
        if self.allow_public {
            loader = loader.flag("service.allow_public", "--allow-public", true);
        }
        if let Some(v) = &self.recordings_dir {
            loader = loader.flag("service.recordings_dir", "--recordings-dir", v);
        }
        Ok(loader)
    }
}

/// Opens the store (applying the migrations), listens on `settings.listen`, calls `on_listening`
/// with the bound address, and serves until `shutdown` completes.
pub async fn serve(
    settings: Settings,
    on_listening: impl FnOnce(SocketAddr, &Settings),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    let store = Store::connect(&settings.database).await?;
    let listen_err = |source| ServiceError::Io {
        what: format!("listen on {}", settings.listen),
        source,
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(listen_err)?;
    on_listening(listener.local_addr().map_err(listen_err)?, &settings);
    Service::new(settings, store)
        .serve(listener, shutdown)
        .await
}

/// Completes on the first Ctrl-C (SIGINT) or SIGTERM (what process managers — systemd, Docker,
/// Kubernetes — send to stop a service): `serve` then stops the same way for both, finalising
/// its recordings. Poll it inside the runtime (the handlers are installed on first poll).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: stopping"),
                    _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot handle SIGTERM; only Ctrl-C stops the service");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `wavecast grant` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum GrantCmd {
    /// Give a user or a group a role in a room or a room pattern (`prefix*`, `*`).
    Add {
        /// The user (the `sub` of their login JWT).
        #[arg(long, required_unless_present = "group", conflicts_with = "group")]
        user: Option<String>,
        /// The group (listed in their login JWT's groups claim).
        #[arg(long)]
        group: Option<String>,
        /// Room name or pattern.
        #[arg(long)]
        room: String,
        /// Role: viewer, broadcaster, admin or recorder.
        #[arg(long, default_value = "viewer")]
        role: Role,
        /// Valid from: RFC 3339 time or +DURATION from now (e.g. +10m) [default: now].
        #[arg(long, value_parser = parse_when)]
        not_before: Option<i64>,
        /// Valid until: RFC 3339 time or +DURATION from now (e.g. +30d) [default: no end].
        #[arg(long, value_parser = parse_when)]
        expires: Option<i64>,
    },
    /// List grants (all, or of one user or group).
    List {
        /// Only this user's grants.
        #[arg(long, conflicts_with = "group")]
        user: Option<String>,
        /// Only this group's grants.
        #[arg(long)]
        group: Option<String>,
    },
    /// Revoke a grant (kept for the record; refused from now on).
    Revoke {
        /// Grant id (see `grant list`).
        id: String,
    },
}

/// `wavecast grant`: the subcommand, the service to talk to, and its admin key.
#[derive(Debug, Clone, Args)]
pub struct GrantArgs {
    /// What to do.
    #[command(subcommand)]
    pub cmd: GrantCmd,
    /// Service URL [default: http:// + service.listen].
    #[arg(long, global = true)]
    pub service: Option<String>,
    /// Admin key (visible in the process list: prefer --admin-key-file or the environment)
    /// [default: service.admin_key, e.g. WAVECAST_SERVICE__ADMIN_KEY].
    #[arg(long, global = true, hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Read the admin key from this file (first line).
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "admin_key")]
    pub admin_key_file: Option<PathBuf>,
}

impl GrantArgs {
    /// The admin client: `--service` (else `http://` + `service.listen`) with `--admin-key`
    /// (else `service.admin_key`; an error naming both when neither is set).
    pub fn client(&self, config: &Config) -> Result<AdminClient, ServiceError> {
        let base = self
            .service
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.service.listen));
        let from_file = match &self.admin_key_file {
            Some(path) => Some(read_secret_file("--admin-key-file", path)?),
            None => None,
        };
        let key = match (
            from_file.as_ref().or(self.admin_key.as_ref()),
            &config.service.admin_key,
        ) {
            (Some(k), _) => k.clone(),
            (None, Some(k)) => k.expose().to_owned(),
            (None, None) => {
                return Err(ServiceError::Config {
                    key: "service.admin_key",
                    message: "no admin key: set service.admin_key (WAVECAST_SERVICE__ADMIN_KEY) \
                              or pass --admin-key"
                        .into(),
                });
            }
        };
        Ok(AdminClient::new(&base, &key))
    }

    /// Runs the subcommand; returns the grants it added, listed or revoked.
    pub async fn run(&self, client: &AdminClient) -> Result<Vec<Grant>, ClientError> {
        Ok(match &self.cmd {
            GrantCmd::Add {
                user,
                group,
                room,
                role,
                not_before,
                expires,
            } => vec![
                client
                    .add_grant(&NewGrant {
                        user: user.clone(),
                        group: group.clone(),
                        room: room.clone(),
                        role: *role,
                        not_before: *not_before,
                        expires_at: *expires,
                    })
                    .await?,
            ],
            GrantCmd::List { user, group } => {
                client
                    .list_grants(user.as_deref(), group.as_deref())
                    .await?
            }
            GrantCmd::Revoke { id } => vec![client.revoke_grant(id).await?],
        })
    }
}

/// Seconds since the Unix epoch now (0 if the clock is before it).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A point in time as Unix seconds: `+DURATION` from now (`+30d`) or an RFC 3339 time
/// (`2026-12-31T00:00:00Z`); the error quotes the input and shows both forms.
pub fn parse_when(s: &str) -> Result<i64, String> {
    if let Some(d) = s.strip_prefix('+') {
        let d: Duration = humantime::parse_duration(d).map_err(|e| format!("{s:?}: {e}"))?;
        return Ok(unix_now() + d.as_secs() as i64);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?}: {e} (use e.g. 2026-12-31T00:00:00Z or +30d)"))?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0))
}

/// The grants as a table: id, subject, room, role, not before, expires, revoked (times in
/// RFC 3339, empty when unset).
pub fn grants_table(grants: &[Grant]) -> String {
    let when = |t: Option<i64>| {
        t.and_then(|t| u64::try_from(t).ok())
            .map(|t| {
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
            })
            .unwrap_or_default()
    };
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
        .set_header(vec![
            "id",
            "subject",
            "room",
            "role",
            "not before",
            "expires",
            "revoked",
        ]);
    for g in grants {
        t.add_row(vec![
            g.id.clone(),
            format!("{}:{}", g.subject.kind(), g.subject.name()),
            g.room.clone(),
            g.role.to_string(),
            when(g.not_before),
            when(g.expires_at),
            when(g.revoked_at),
        ]);
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn recordings_dir_flag_overrides_the_environment_and_is_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (from_env, from_flag) = (dir.path().join("env"), dir.path().join("flag"));
        let env = [(
            "WAVECAST_SERVICE__RECORDINGS_DIR",
            from_env.display().to_string(),
        )];
        let load = |args: &[&str]| {
            let a = Serve::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
                .unwrap()
                .serve;
            a.apply(Loader::new().no_file().env_vars(env.clone()))
                .unwrap()
                .load()
        };
        let flag = from_flag.display().to_string();
        let c = load(&["--recordings-dir", &flag]).unwrap();
        assert_eq!(c.service.recordings_dir, Some(from_flag));
        let c = load(&[]).unwrap();
        assert_eq!(c.service.recordings_dir, Some(from_env));

        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        let e = load(&["--recordings-dir", &file.display().to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("service.recordings_dir")
                && e.contains("--recordings-dir")
                && e.contains("is not a directory"),
            "{e}"
        );
    }

    #[test]
    fn parse_when_reads_offsets_and_times_and_names_bad_input() {
        let now = unix_now();
        let later = parse_when("+10m").unwrap();
        assert!((now + 600..=now + 601).contains(&later), "{later} vs {now}");
        assert_eq!(parse_when("2026-12-31T00:00:00Z"), Ok(1_798_675_200));
        let err = parse_when("tomorrow").unwrap_err();
        assert!(
            err.contains("\"tomorrow\"") && err.contains("+30d"),
            "{err}"
        );
    }
}
