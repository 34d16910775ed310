//! `wavecast serve` and `wavecast grant`: thin wiring over the `wavecast-service` crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use comfy_table::Table;
use wavecast_service::policy::{Grant, Role};
use wavecast_service::{AdminClient, NewGrant, Service, Settings, Store};

use crate::{Global, load_config_with};

/// `wavecast serve` flags (each overrides the `[service]` config key of the same name).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address, IP:port [default: service.listen, else 127.0.0.1:8089].
    #[arg(long)]
    listen: Option<String>,
    /// Storage: a SQLite file path or a postgres:// URL [default: service.database, else
    /// wavecast-service.db].
    #[arg(long, value_name = "PATH|URL")]
    database: Option<String>,
    /// Allow a non-loopback listen address although this process serves no TLS (a TLS proxy
    /// in front) [default: service.allow_public, else false].
    #[arg(long)]
    allow_public: bool,
}

/// `wavecast grant` subcommands.
#[derive(Debug, Subcommand)]
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

/// The service to talk to for `grant`, and its admin key.
#[derive(Debug, Args)]
pub struct GrantArgs {
    #[command(subcommand)]
    cmd: GrantCmd,
    /// Service URL [default: http:// + service.listen].
    #[arg(long, global = true)]
    service: Option<String>,
    /// Admin key [default: service.admin_key, e.g. WAVECAST_SERVICE__ADMIN_KEY].
    #[arg(long, global = true, hide_env_values = true)]
    admin_key: Option<String>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn parse_when(s: &str) -> Result<i64, String> {
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

/// `wavecast serve`.
pub fn serve(g: &Global, a: ServeArgs) -> Result<()> {
    let config = load_config_with(g, |mut l| {
        if let Some(v) = &a.listen {
            l = l.flag("service.listen", "--listen", v);
        }
        if let Some(v) = &a.database {
            l = l.flag("service.database", "--database", v);
        }
        if a.allow_public {
            l = l.flag("service.allow_public", "--allow-public", true);
        }
        l
    })?;
    let settings = Settings::from_config(&config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(async move {
        let store = Store::connect(&settings.database).await?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("listen on {}", settings.listen))?;
        eprintln!(
            "wavecast service on http://{} (LiveKit {}); Ctrl-C stops it",
            listener.local_addr()?,
            settings.livekit_url
        );
        Service::new(settings, store)
            .serve(listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}

fn print_grants(grants: &[Grant], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(grants)?);
        return Ok(());
    }
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
    println!("{t}");
    Ok(())
}

/// `wavecast grant add|list|revoke`.
pub fn grant(g: &Global, a: GrantArgs) -> Result<()> {
    let config = load_config_with(g, |l| l)?;
    let base = a
        .service
        .unwrap_or_else(|| format!("http://{}", config.service.listen));
    let key = match (a.admin_key, &config.service.admin_key) {
        (Some(k), _) => k,
        (None, Some(k)) => k.expose().to_owned(),
        (None, None) => bail!(
            "no admin key: set service.admin_key (WAVECAST_SERVICE__ADMIN_KEY) or pass --admin-key"
        ),
    };
    let client = AdminClient::new(&base, &key);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    rt.block_on(async {
        match a.cmd {
            GrantCmd::Add {
                user,
                group,
                room,
                role,
                not_before,
                expires,
            } => {
                let grant = client
                    .add_grant(&NewGrant {
                        user,
                        group,
                        room,
                        role,
                        not_before,
                        expires_at: expires,
                    })
                    .await?;
                print_grants(&[grant], g.json)
            }
            GrantCmd::List { user, group } => print_grants(
                &client
                    .list_grants(user.as_deref(), group.as_deref())
                    .await?,
                g.json,
            ),
            GrantCmd::Revoke { id } => print_grants(&[client.revoke_grant(&id).await?], g.json),
        }
    })
}
