//! `wavecast`: mint LiveKit access tokens and administer rooms.
//!
//! Connection settings come from the layered configuration (`config/livekit.toml` or `--config`,
//! `LIVEKIT_URL` / `LIVEKIT_API_KEY` / `LIVEKIT_API_SECRET`, then flags).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use wavecast_config::{Config, Loader};
use wavecast_session::admin::{DataKind, NewRoom, Participant, Room, RoomAdmin};
use wavecast_token::{Keys, Preset, TokenBuilder, Verifier, VideoGrants};

mod service;

/// Mint LiveKit access tokens and administer rooms.
#[derive(Debug, Parser)]
#[command(name = "wavecast", version, about, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Config file (default: config/livekit.toml when present).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// LiveKit server URL [default: from config, else ws://127.0.0.1:7880].
    #[arg(long, global = true)]
    url: Option<String>,
    /// API key [default: from config or LIVEKIT_API_KEY].
    #[arg(long, global = true)]
    api_key: Option<String>,
    /// API secret [default: from config or LIVEKIT_API_SECRET].
    #[arg(long, global = true, hide_env_values = true)]
    api_secret: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mint, verify or decode access tokens.
    #[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
    Token(TokenCmd),
    /// Create, list, delete rooms and set their metadata.
    #[command(subcommand)]
    Room(RoomCmd),
    /// List, inspect, remove, mute and update participants.
    #[command(subcommand)]
    Participant(ParticipantCmd),
    /// Send data packets to a room.
    #[command(subcommand)]
    Data(DataCmd),
    /// Run the token service (access policy, webhooks, streams); see docs/service.md.
    Serve(service::ServeArgs),
    /// Add, list and revoke the token service's access grants (admin key).
    Grant(service::GrantArgs),
}

#[derive(Debug, Args)]
struct TokenCmd {
    #[command(subcommand)]
    action: Option<TokenAction>,
    #[command(flatten)]
    mint: MintArgs,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Verify a token's signature and validity window with the configured key, and print its claims.
    Verify {
        /// The JWT.
        token: String,
        /// Clock-skew leeway.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        leeway: Duration,
    },
    /// Print a token's claims without verifying it (for inspection only).
    Decode {
        /// The JWT.
        token: String,
    },
}

#[derive(Debug, Args)]
struct MintArgs {
    /// Room the grants apply to.
    #[arg(long, required = true)]
    room: Option<String>,
    /// Participant identity.
    #[arg(long, required = true)]
    identity: Option<String>,
    /// Grant preset: viewer, broadcaster, admin or recorder.
    #[arg(long, default_value = "viewer")]
    preset: Preset,
    /// Fully custom grants as LiveKit JSON (e.g. '{"roomJoin":true,"canSubscribe":true}'); replaces --preset.
    #[arg(long, value_name = "JSON")]
    grants: Option<String>,
    /// Display name.
    #[arg(long, default_value = "")]
    name: String,
    /// Participant metadata.
    #[arg(long, default_value = "")]
    metadata: String,
    /// Participant attribute KEY=VALUE (repeatable).
    #[arg(long = "attribute", value_name = "KEY=VALUE", value_parser = parse_kv)]
    attributes: Vec<(String, String)>,
    /// Lifetime, e.g. 30m, 1h, 2days.
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    ttl: Duration,
}

#[derive(Debug, Subcommand)]
enum RoomCmd {
    /// Create a room (returns the existing one if the name is taken).
    Create {
        /// Room name.
        name: String,
        /// Seconds an empty room is kept (0 = server default).
        #[arg(long, default_value_t = 0)]
        empty_timeout: u32,
        /// Participant limit (0 = none).
        #[arg(long, default_value_t = 0)]
        max_participants: u32,
        /// Room metadata.
        #[arg(long, default_value = "")]
        metadata: String,
    },
    /// List rooms.
    List {
        /// Only these rooms.
        names: Vec<String>,
    },
    /// Delete a room, disconnecting everyone.
    Delete {
        /// Room name.
        name: String,
    },
    /// Replace a room's metadata.
    Metadata {
        /// Room name.
        name: String,
        /// New metadata.
        metadata: String,
    },
}

#[derive(Debug, Subcommand)]
enum ParticipantCmd {
    /// List a room's participants.
    List {
        /// Room name.
        room: String,
    },
    /// Show one participant with its tracks.
    Get {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
    },
    /// Disconnect a participant.
    Remove {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
    },
    /// Mute (or with --unmute, unmute) a published track.
    Mute {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
        /// Track sid (see `participant get`).
        track_sid: String,
        /// Unmute instead.
        #[arg(long)]
        unmute: bool,
    },
    /// Update a participant's metadata, name or attributes.
    Update {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
        /// New metadata.
        #[arg(long, default_value = "")]
        metadata: String,
        /// New display name (empty: unchanged).
        #[arg(long, default_value = "")]
        name: String,
        /// Attribute KEY=VALUE (repeatable).
        #[arg(long = "attribute", value_name = "KEY=VALUE", value_parser = parse_kv)]
        attributes: Vec<(String, String)>,
    },
}

#[derive(Debug, Subcommand)]
enum DataCmd {
    /// Send a message to everyone in a room (or to --to identities).
    Send {
        /// Room name.
        room: String,
        /// The message (sent as UTF-8 bytes).
        message: String,
        /// Topic.
        #[arg(long)]
        topic: Option<String>,
        /// Send lossy instead of reliable.
        #[arg(long)]
        lossy: bool,
        /// Only to these identities (repeatable).
        #[arg(long = "to", value_name = "IDENTITY")]
        to: Vec<String>,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn load_config(g: &Global) -> Result<Config> {
    load_config_with(g, |l| l)
}

/// Load the config with the global flags plus more (`extra` adds a subcommand's own flags).
fn load_config_with(g: &Global, extra: impl FnOnce(Loader) -> Loader) -> Result<Config> {
    let mut loader = Loader::new();
    if let Some(path) = &g.config {
        loader = loader.file(path);
    }
    if let Some(url) = &g.url {
        loader = loader.flag("connection.url", "--url", url);
    }
    if let Some(key) = &g.api_key {
        loader = loader.flag("connection.api_key", "--api-key", key);
    }
    if let Some(secret) = &g.api_secret {
        loader = loader.flag("connection.api_secret", "--api-secret", secret);
    }
    Ok(extra(loader).load()?)
}

fn keys(config: &Config) -> Result<Keys> {
    match (&config.connection.api_key, &config.connection.api_secret) {
        (Some(k), Some(s)) => Ok(Keys::new(k, s.expose())),
        _ => bail!(
            "no API key and secret: set them in config/livekit.toml ([connection] api_key, api_secret), \
             LIVEKIT_API_KEY / LIVEKIT_API_SECRET, or --api-key / --api-secret"
        ),
    }
}

#[derive(Serialize)]
struct MintedToken<'a> {
    token: &'a str,
    url: &'a str,
    join_url: String,
    claims: &'a wavecast_token::Claims,
}

fn token(g: &Global, cmd: TokenCmd) -> Result<()> {
    let config = load_config(g)?;
    let keys = keys(&config)?;
    match cmd.action {
        Some(TokenAction::Verify { token, leeway }) => {
            let claims = Verifier::new([keys])
                .leeway(leeway)
                .verify(&token)
                .context("token verify: the TOKEN argument was refused")?;
            println!("{}", serde_json::to_string_pretty(&claims)?);
        }
        Some(TokenAction::Decode { token }) => {
            let claims = wavecast_token::decode_unverified(&token)
                .context("token decode: the TOKEN argument cannot be read")?;
            println!("{}", serde_json::to_string_pretty(&claims)?);
        }
        None => {
            let m = cmd.mint;
            let (room, identity) = (m.room.unwrap_or_default(), m.identity.unwrap_or_default());
            let mut builder = TokenBuilder::new(&identity)
                .room(&room)
                .name(m.name)
                .metadata(m.metadata)
                .ttl(m.ttl)
                .preset(m.preset);
            if let Some(json) = &m.grants {
                let value: serde_json::Value =
                    serde_json::from_str(json).context("--grants is not valid JSON")?;
                if !value.is_object() {
                    bail!(
                        "--grants must be a JSON object of LiveKit grants, e.g. '{{\"roomJoin\":true}}'"
                    );
                }
                let grants: VideoGrants = serde_json::from_value(value)
                    .context("--grants is not valid LiveKit grant JSON")?;
                builder = builder.grants(grants);
            }
            for (k, v) in m.attributes {
                builder = builder.attribute(k, v);
            }
            let claims = builder.claims(keys.key())?;
            let jwt = builder.mint(&keys)?;
            if g.json {
                let url = &config.connection.url;
                let join_url = format!("{}/rtc?access_token={jwt}", url.trim_end_matches('/'));
                let out = MintedToken {
                    token: &jwt,
                    url,
                    join_url,
                    claims: &claims,
                };
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{jwt}");
            }
        }
    }
    Ok(())
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    t
}

fn print_rooms(rooms: &[Room], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(rooms)?);
        return Ok(());
    }
    let mut t = table(&[
        "name",
        "sid",
        "participants",
        "publishers",
        "max",
        "metadata",
    ]);
    for r in rooms {
        t.add_row(vec![
            r.name.clone(),
            r.sid.clone(),
            r.num_participants.to_string(),
            r.num_publishers.to_string(),
            r.max_participants.to_string(),
            r.metadata.clone(),
        ]);
    }
    println!("{t}");
    Ok(())
}

fn print_participants(ps: &[Participant], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(ps)?);
        return Ok(());
    }
    let mut t = table(&["identity", "name", "state", "sid", "tracks", "metadata"]);
    for p in ps {
        let tracks: Vec<String> = p
            .tracks
            .iter()
            .map(|tr| {
                format!(
                    "{} {} {}{}",
                    tr.sid,
                    tr.kind,
                    tr.name,
                    if tr.muted { " (muted)" } else { "" }
                )
            })
            .collect();
        t.add_row(vec![
            p.identity.clone(),
            p.name.clone(),
            p.state.clone(),
            p.sid.clone(),
            tracks.join("\n"),
            p.metadata.clone(),
        ]);
    }
    println!("{t}");
    Ok(())
}

async fn admin_cmd(g: &Global, cmd: Command) -> Result<()> {
    let config = load_config(g)?;
    let admin = RoomAdmin::new(
        &config.connection.url,
        &keys(&config)?,
        config.connection.connect_timeout,
    );
    match cmd {
        Command::Room(RoomCmd::Create {
            name,
            empty_timeout,
            max_participants,
            metadata,
        }) => {
            let room = admin
                .create_room(
                    &name,
                    NewRoom {
                        empty_timeout,
                        max_participants,
                        metadata,
                    },
                )
                .await?;
            print_rooms(&[room], g.json)?;
        }
        Command::Room(RoomCmd::List { names }) => {
            print_rooms(&admin.list_rooms(&names).await?, g.json)?
        }
        Command::Room(RoomCmd::Delete { name }) => {
            admin.delete_room(&name).await?;
            if !g.json {
                println!("deleted room {name:?}");
            }
        }
        Command::Room(RoomCmd::Metadata { name, metadata }) => {
            print_rooms(
                &[admin.update_room_metadata(&name, &metadata).await?],
                g.json,
            )?;
        }
        Command::Participant(ParticipantCmd::List { room }) => {
            print_participants(&admin.list_participants(&room).await?, g.json)?;
        }
        Command::Participant(ParticipantCmd::Get { room, identity }) => {
            print_participants(&[admin.get_participant(&room, &identity).await?], g.json)?;
        }
        Command::Participant(ParticipantCmd::Remove { room, identity }) => {
            admin.remove_participant(&room, &identity).await?;
            if !g.json {
                println!("removed {identity:?} from room {room:?}");
            }
        }
        Command::Participant(ParticipantCmd::Mute {
            room,
            identity,
            track_sid,
            unmute,
        }) => {
            let track = admin
                .mute_track(&room, &identity, &track_sid, !unmute)
                .await?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&track)?);
            } else {
                println!(
                    "track {} of {identity:?} is {}",
                    track.sid,
                    if track.muted { "muted" } else { "unmuted" }
                );
            }
        }
        Command::Participant(ParticipantCmd::Update {
            room,
            identity,
            metadata,
            name,
            attributes,
        }) => {
            let attributes: HashMap<String, String> = attributes.into_iter().collect();
            let p = admin
                .update_participant(&room, &identity, &metadata, attributes, &name)
                .await?;
            print_participants(&[p], g.json)?;
        }
        Command::Data(DataCmd::Send {
            room,
            message,
            topic,
            lossy,
            to,
        }) => {
            let kind = if lossy {
                DataKind::Lossy
            } else {
                DataKind::Reliable
            };
            admin
                .send_data(&room, message.into_bytes(), kind, topic, to)
                .await?;
            if !g.json {
                println!("sent to room {room:?}");
            }
        }
        Command::Token(_) | Command::Serve(_) | Command::Grant(_) => {
            unreachable!("these commands run their own runtime")
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WAVECAST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Token(cmd) => token(&cli.global, cmd),
        Command::Serve(a) => service::serve(&cli.global, a),
        Command::Grant(a) => service::grant(&cli.global, a),
        cmd => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start the async runtime")
            .and_then(|rt| rt.block_on(admin_cmd(&cli.global, cmd))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
