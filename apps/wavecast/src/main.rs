//! `wavecast`: mint LiveKit access tokens, administer rooms and (feature `room`, on by
//! default) chat and call RPC methods in a room as a participant.
//!
//! Connection settings come from the layered configuration (`config/livekit.toml` or `--config`,
//! `LIVEKIT_URL` / `LIVEKIT_API_KEY` / `LIVEKIT_API_SECRET`, then flags).

#[cfg(feature = "room")]
mod room;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use wavecast_config::{Config, Loader};
use wavecast_server_api::RoomAdmin;
use wavecast_server_api::cli::{AdminCommand, parse_kv};
use wavecast_service::Settings;
use wavecast_service::cli::{GrantArgs, ServeArgs, grants_table};
use wavecast_token::{Keys, Preset, TokenBuilder, Verifier, VideoGrants};

/// Mint LiveKit access tokens, administer rooms, chat and call RPC methods in them.
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
    #[command(flatten)]
    Admin(AdminCommand),
    /// Run the token service (access policy, webhooks, streams); see docs/service.md.
    Serve(ServeArgs),
    /// Add, list and revoke the token service's access grants (admin key).
    Grant(GrantArgs),
    /// Chat in a room, and read its transcriptions.
    ///
    /// Lines on stdin are sent as chat (topic lk.chat); chat messages and transcriptions
    /// (lk.transcription) print as `HH:MM:SS sender: text` (UTC), or one JSON object per line
    /// with --json. End of stdin, Ctrl-C or SIGTERM leaves the room.
    #[cfg(feature = "room")]
    Chat(room::ChatArgs),
    /// Call or serve RPC methods in a room.
    #[cfg(feature = "room")]
    #[command(subcommand)]
    Rpc(room::RpcCmd),
    /// (Not built: needs the `room` feature.)
    #[cfg(not(feature = "room"))]
    #[command(hide = true)]
    Chat(NotBuilt),
    /// (Not built: needs the `room` feature.)
    #[cfg(not(feature = "room"))]
    #[command(hide = true)]
    Rpc(NotBuilt),
}

/// The arguments of a command this build leaves out.
#[cfg(not(feature = "room"))]
#[derive(Debug, Args)]
struct NotBuilt {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
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
    /// Lifetime, e.g. 30m, 1h, 2days; more than 0s and at most 366days.
    #[arg(long, default_value = "6h", value_parser = parse_ttl)]
    ttl: Duration,
}

/// `--ttl`: a humantime duration the token crate accepts (clap names the flag in the error).
fn parse_ttl(s: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    wavecast_token::check_ttl(ttl).map_err(|e| e.to_string())
}

fn load_config(g: &Global) -> Result<Config> {
    load_config_with(g, Ok)
}

/// Load the config with the global flags plus more (`extra` adds a subcommand's own flags).
fn load_config_with(g: &Global, extra: impl FnOnce(Loader) -> Result<Loader>) -> Result<Config> {
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
    Ok(extra(loader)?.load()?)
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

async fn admin_cmd(g: &Global, cmd: AdminCommand) -> Result<()> {
    let config = load_config(g)?;
    let admin = RoomAdmin::new(
        &config.connection.url,
        &keys(&config)?,
        config.connection.connect_timeout,
    );
    print!("{}", cmd.run(&admin, g.json).await?);
    Ok(())
}

/// Warn about a secret given inline on the command line (every local user sees it in `ps`).
fn warn_inline(flag: &str, instead: &str) {
    eprintln!(
        "warning: {flag} puts the secret in the process list, where every local user can read \
         it; use {instead}"
    );
}

fn serve(g: &Global, a: ServeArgs) -> Result<()> {
    if g.api_secret.is_some() {
        warn_inline("--api-secret", "--api-secret-file or LIVEKIT_API_SECRET");
    }
    let config = load_config_with(g, |l| Ok(a.apply(l)?))?;
    wavecast_service::cli::check_secrets(&config, a.dev)?;
    if a.dev {
        eprintln!("warning: --dev: development secrets are accepted; never run this in production");
    }
    let settings = Settings::from_config(&config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let on_listening = |addr, s: &Settings| {
        let lk = &s.livekit_url;
        eprintln!("wavecast service on http://{addr} (LiveKit {lk}); Ctrl-C or SIGTERM stops it");
    };
    let stop = wavecast_service::cli::shutdown_signal();
    Ok(rt.block_on(wavecast_service::cli::serve(settings, on_listening, stop))?)
}

fn grant(g: &Global, a: GrantArgs) -> Result<()> {
    if a.admin_key.is_some() {
        warn_inline(
            "--admin-key",
            "--admin-key-file or WAVECAST_SERVICE__ADMIN_KEY",
        );
    }
    let client = a.client(&load_config(g)?)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let grants = rt.block_on(a.run(&client))?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&grants)?);
    } else {
        println!("{}", grants_table(&grants));
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
        #[cfg(feature = "room")]
        Command::Chat(a) => return exit(room::chat(&cli.global, a)),
        #[cfg(feature = "room")]
        Command::Rpc(cmd) => return exit(room::rpc(&cli.global, cmd)),
        #[cfg(not(feature = "room"))]
        Command::Chat(_) | Command::Rpc(_) => Err(anyhow::anyhow!(
            "this wavecast was built without chat and rpc (the `room` feature): \
             cargo build -p wavecast --features room"
        )),
        Command::Token(cmd) => token(&cli.global, cmd),
        Command::Serve(a) => serve(&cli.global, a),
        Command::Grant(a) => grant(&cli.global, a),
        Command::Admin(cmd) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start the async runtime")
            .and_then(|rt| rt.block_on(admin_cmd(&cli.global, cmd))),
    };
    exit(result.map(|()| ExitCode::SUCCESS))
}

/// The exit code of a command's result (an error printed with its causes: exit 1).
fn exit(result: Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
