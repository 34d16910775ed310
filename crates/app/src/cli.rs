//! Flags every wavecast app shares (server, room, credentials, reconnect policy), loading the
//! layered configuration from them, logging set-up and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use wavecast_config::{Config, ConfigError, Loader};
use wavecast_token::{Keys, Preset};

use crate::AppError;

/// Exit code for bad flags or configuration (clap uses 2 for usage errors too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the server could not be reached and the reconnect policy gave up.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit code when the server refused us (bad token, bad URL): retrying cannot help.
pub const EXIT_REFUSED: u8 = 4;

/// Appended to every app's `--help`.
pub const LAYERS_HELP: &str = "\
Settings are layered: built-in defaults (shown above) < config/livekit.toml or --config FILE <
environment (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET, WAVECAST_<SECTION>__<KEY>) < flags.

Exit codes: 0 done, 1 runtime error, 2 bad flags or configuration, 3 server unreachable (the
reconnect policy gave up), 4 the server refused the token or URL.";

/// The built-in configuration defaults (what `--help` shows).
pub fn defaults() -> Config {
    Config::default()
}

/// Where to connect and as whom.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Config file [default: config/livekit.toml when present].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// LiveKit server URL (connection.url).
    #[arg(long, value_name = "URL", default_value_t = defaults().connection.url)]
    pub url: String,
    /// Room to join (connection.room).
    #[arg(long, default_value_t = defaults().connection.room)]
    pub room: String,
    /// Participant identity (connection.identity) [default: <app>-<random>].
    #[arg(long)]
    pub identity: Option<String>,
    /// Display name others see [default: the identity].
    #[arg(long)]
    pub name: Option<String>,
    /// Join with this access token instead of minting one from the API key and secret.
    #[arg(long, env = "LIVEKIT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// API key that mints the token (connection.api_key).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// API secret that mints the token (connection.api_secret).
    #[arg(long, value_name = "SECRET", hide_default_value = true)]
    pub api_secret: Option<String>,
    /// Retries before giving up when the server cannot be reached (reconnect.max_attempts).
    #[arg(long, value_name = "N", default_value_t = defaults().reconnect.max_attempts)]
    pub max_attempts: u32,
    /// Delay before the first retry, growing 2x per attempt (reconnect.initial_delay).
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub retry_delay: Duration,
    /// Longest delay between retries (reconnect.max_delay).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub max_retry_delay: Duration,
    /// Time one connection attempt may take (connection.connect_timeout).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// How media reaches the server: auto (UDP, then ICE over TCP when UDP does not connect
    /// within 2 s), udp, or tcp where UDP is blocked (connection.transport).
    #[arg(long, value_name = "HOW", default_value = "auto", value_parser = ["auto", "udp", "tcp"])]
    pub transport: String,
    /// End-to-end encryption with this shared passphrase, as livekit-client's
    /// ExternalE2EEKeyProvider and the SDKs' shared key take it: our tracks are encrypted, and
    /// encrypted tracks decrypted (a wrong key: their frames are dropped, never shown).
    #[arg(
        long,
        value_name = "PASSPHRASE",
        env = "WAVECAST_E2EE_KEY",
        hide_env_values = true,
        conflicts_with = "e2ee_key_file"
    )]
    pub e2ee_key: Option<E2eeKey>,
    /// The end-to-end passphrase from a file (its first line; keeps it out of the process list).
    #[arg(long, value_name = "FILE")]
    pub e2ee_key_file: Option<PathBuf>,
}

/// An end-to-end encryption passphrase from the command line: never printed.
#[derive(Clone)]
pub struct E2eeKey(String);

impl std::fmt::Debug for E2eeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("E2eeKey([redacted])")
    }
}

impl std::str::FromStr for E2eeKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("the passphrase is empty".into());
        }
        Ok(Self(s.to_owned()))
    }
}

impl ConnectArgs {
    /// The end-to-end encryption the flags ask for (`None`: none).
    ///
    /// # Errors
    /// [`AppError::E2eeKey`] when the key file cannot be read or holds no passphrase.
    pub fn e2ee(&self) -> Result<Option<wavecast_session::E2eeOptions>, AppError> {
        let passphrase = match (&self.e2ee_key, &self.e2ee_key_file) {
            (Some(k), _) => k.0.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|source| AppError::E2eeKey {
                    path: path.clone(),
                    reason: source.to_string(),
                })?;
                let line = text.lines().next().unwrap_or_default().to_owned();
                if line.is_empty() {
                    return Err(AppError::E2eeKey {
                        path: path.clone(),
                        reason: "its first line is empty".into(),
                    });
                }
                line
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(wavecast_session::E2eeOptions::shared_passphrase(
            &passphrase,
        )))
    }
}

/// Video size, rate and bitrate of a local source (the broadcaster's capture, the viewer's
/// loopback).
#[derive(Debug, Clone, Args)]
pub struct VideoArgs {
    /// Video width in pixels (video.width; synthetic and loopback sources).
    #[arg(long, default_value_t = defaults().video.width)]
    pub width: u32,
    /// Video height in pixels (video.height; synthetic and loopback sources).
    #[arg(long, default_value_t = defaults().video.height)]
    pub height: u32,
    /// Frames per second (video.fps) [files: the file's rate unless given].
    #[arg(long, default_value_t = defaults().video.fps)]
    pub fps: u32,
    /// Video bitrate in kbit/s (video.bitrate).
    #[arg(long, value_name = "KBPS", default_value_t = defaults().video.bitrate)]
    pub bitrate: u32,
}

/// The codec library's name of a configured video codec.
pub fn video_codec(codec: wavecast_config::VideoCodec) -> wavecast_session::VideoCodec {
    match codec {
        wavecast_config::VideoCodec::Vp8 => wavecast_session::VideoCodec::Vp8,
        wavecast_config::VideoCodec::Vp9 => wavecast_session::VideoCodec::Vp9,
        wavecast_config::VideoCodec::H264 => wavecast_session::VideoCodec::H264,
    }
}

impl VideoArgs {
    /// Adds the flags the user gave to `l` (defaults must not mask lower layers).
    pub fn layer(&self, mut l: Loader, m: &ArgMatches) -> Loader {
        for (id, key, flag, v) in [
            ("width", "video.width", "--width", self.width),
            ("height", "video.height", "--height", self.height),
            ("fps", "video.fps", "--fps", self.fps),
            ("bitrate", "video.bitrate", "--bitrate", self.bitrate),
        ] {
            if given(m, id) {
                l = l.flag(key, flag, v);
            }
        }
        l
    }
}

/// Parses the command line into `C` (exiting with clap's message and code 2 on bad flags) and
/// keeps the matches (to tell given flags from defaults).
pub fn parse<C: clap::Parser>() -> (C, ArgMatches) {
    let matches = C::command().get_matches();
    match C::from_arg_matches(&matches) {
        Ok(c) => (c, matches),
        Err(e) => e.exit(),
    }
}

/// Whether the user gave flag `id` on the command line (defaults must not mask lower layers).
pub fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(m.value_source(id), Some(ValueSource::CommandLine))
}

/// The loader with the config file and every connection flag the user gave.
pub fn loader(args: &ConnectArgs, m: &ArgMatches) -> Loader {
    let mut l = match &args.config {
        Some(path) => Loader::new().file(path),
        None => Loader::new(),
    };
    if given(m, "url") {
        l = l.flag("connection.url", "--url", &args.url);
    }
    if given(m, "room") {
        l = l.flag("connection.room", "--room", &args.room);
    }
    if let Some(v) = &args.identity {
        l = l.flag("connection.identity", "--identity", v);
    }
    if let Some(v) = &args.api_key {
        l = l.flag("connection.api_key", "--api-key", v);
    }
    if let Some(v) = &args.api_secret {
        l = l.flag("connection.api_secret", "--api-secret", v);
    }
    if given(m, "max_attempts") {
        l = l.flag(
            "reconnect.max_attempts",
            "--max-attempts",
            args.max_attempts,
        );
    }
    let human = |d: Duration| humantime::format_duration(d).to_string();
    if given(m, "retry_delay") {
        l = l.flag(
            "reconnect.initial_delay",
            "--retry-delay",
            human(args.retry_delay),
        );
    }
    if given(m, "max_retry_delay") {
        l = l.flag(
            "reconnect.max_delay",
            "--max-retry-delay",
            human(args.max_retry_delay),
        );
    }
    if given(m, "connect_timeout") {
        l = l.flag(
            "connection.connect_timeout",
            "--connect-timeout",
            human(args.connect_timeout),
        );
    }
    if given(m, "transport") {
        l = l.flag("connection.transport", "--transport", &args.transport);
    }
    l
}

/// Loads the layered configuration for `args` (file, environment, the flags given).
///
/// # Errors
/// [`AppError::Config`] with every problem found, each naming its key and source.
pub fn load_config(args: &ConnectArgs, m: &ArgMatches) -> Result<Config, AppError> {
    loader(args, m).load().map_err(|e| AppError::Config {
        message: config_error_message(&e),
        source: e,
    })
}

/// Turns a configuration error into the message printed before exiting with [`EXIT_USAGE`].
pub fn config_error_message(e: &ConfigError) -> String {
    match e {
        ConfigError::Invalid(problems) => {
            let mut s = String::from("invalid configuration:");
            for p in problems {
                s.push_str("\n  ");
                s.push_str(&p.to_string());
            }
            s
        }
        other => {
            // The message, then its causes (each printed once: messages do not repeat them).
            let mut s = format!("invalid configuration: {other}");
            let mut cause = std::error::Error::source(other);
            while let Some(c) = cause {
                s.push_str(&format!(": {c}"));
                cause = c.source();
            }
            s
        }
    }
}

/// How the app gets a token for each connection attempt.
#[derive(Clone)]
pub enum Credentials {
    /// A token given on the command line or in `LIVEKIT_TOKEN`.
    Token(String),
    /// Mint a fresh token per attempt (so a long outage never leaves us with an expired one).
    Mint {
        /// The API key and secret.
        keys: Keys,
        /// Identity.
        identity: String,
        /// Display name.
        name: String,
        /// Room.
        room: String,
        /// Grants.
        preset: Preset,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Credentials::Token([redacted])"),
            Credentials::Mint {
                identity,
                room,
                preset,
                ..
            } => write!(f, "Credentials::Mint({identity} in {room}, {preset:?})"),
        }
    }
}

impl Credentials {
    /// The credentials for `config` (token flag first, then key and secret).
    ///
    /// # Errors
    /// [`AppError::NoCredentials`] when neither a token nor a key and secret are given.
    pub fn from_config(
        config: &Config,
        args: &ConnectArgs,
        app: &str,
        preset: Preset,
    ) -> Result<Self, AppError> {
        if let Some(t) = &args.token {
            return Ok(Credentials::Token(t.clone()));
        }
        let c = &config.connection;
        let (Some(key), Some(secret)) = (&c.api_key, &c.api_secret) else {
            return Err(AppError::NoCredentials);
        };
        let identity = c
            .identity
            .clone()
            .unwrap_or_else(|| format!("{app}-{:04x}", random_u64() & 0xffff));
        let name = args.name.clone().unwrap_or_else(|| identity.clone());
        Ok(Credentials::Mint {
            keys: Keys::new(key.clone(), secret.expose()),
            identity,
            name,
            room: c.room.clone(),
            preset,
        })
    }
}

impl Credentials {
    /// The session's credentials: the token as given, or a fresh token per join (6 h TTL).
    pub fn session_credentials(&self) -> wavecast_session::Credentials {
        match self {
            Credentials::Token(t) => wavecast_session::Credentials::token(t.clone()),
            Credentials::Mint {
                keys,
                identity,
                name,
                room,
                preset,
            } => wavecast_session::Credentials::Mint {
                keys: keys.clone(),
                builder: wavecast_token::TokenBuilder::new(identity.clone())
                    .name(name.clone())
                    .room(room.clone())
                    .preset(*preset)
                    .ttl(Duration::from_secs(6 * 3600))
                    .into(),
            },
        }
    }
}

/// A random number (default identities) from rand's thread-local generator.
pub fn random_u64() -> u64 {
    rand::random()
}

/// Logs to stderr: `RUST_LOG` if set, else `info` for our crates and `warn` for the rest; every
/// line redacted (no ICE password or token at any level, see `wavecast_rtc::redact`).
/// Also stops the `XDG_RUNTIME_DIR is invalid` noise of a Wayland probe (see
/// [`crate::env::quiet_wayland_probe`]).
pub fn init_logging(verbose: bool) {
    crate::env::quiet_wayland_probe();
    let default = if verbose {
        "debug,wgpu_core=warn,wgpu_hal=warn,naga=warn,str0m=info,livekit_signaling=info"
    } else {
        "info,wgpu_core=warn,wgpu_hal=warn,naga=warn,str0m=warn,livekit_signaling=error,\
         livekit_api=error,wavecast_rtc=warn,cosmic_text=warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Every line through the redaction: dependencies log secrets at debug/trace (str0m its ICE
    // credentials, tungstenite the bearer token of its handshake) that no filter here can
    // see, and `RUST_LOG` may ask for any level.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(|| wavecast_session::engine::redact::RedactingWriter(std::io::stderr()))
        .try_init();
}

/// Prints `error: …` with the cause chain and returns `code`.
pub fn fail(e: &anyhow::Error, code: u8) -> ExitCode {
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    ExitCode::from(code)
}

/// The exit code at the end of a run that watched a room: the room task's `failure` (its
/// message printed, its code), else 1 with `shortfall` printed when the run fell short of its
/// goal (`--frames` within `--timeout`, …), else success.
pub fn end_of_run(failure: Option<(u8, String)>, shortfall: Option<String>) -> ExitCode {
    match (failure, shortfall) {
        (Some((code, msg)), _) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
        (None, Some(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
        (None, None) => ExitCode::SUCCESS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_duration_defaults_match_the_config_defaults() {
        let d = defaults();
        let parse = |s: &str| humantime::parse_duration(s).unwrap();
        assert_eq!(parse("500ms"), d.reconnect.initial_delay);
        assert_eq!(parse("10s"), d.reconnect.max_delay);
        assert_eq!(parse("10s"), d.connection.connect_timeout);
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        conn: ConnectArgs,
    }

    fn parse_args(args: &[&str]) -> Result<Cli, clap::Error> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("app").chain(args.iter().copied()))
    }

    #[test]
    fn the_e2ee_passphrase_comes_from_the_flag_or_the_first_line_of_a_file_and_is_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "s3cret-from-file\nignored\n").unwrap();
        let none = parse_args(&[]).unwrap();
        assert!(none.conn.e2ee().unwrap().is_none());
        let flag = parse_args(&["--e2ee-key", "s3cret-flag"]).unwrap();
        assert!(flag.conn.e2ee().unwrap().is_some());
        let from_file = parse_args(&["--e2ee-key-file", file.to_str().unwrap()]).unwrap();
        let options = from_file.conn.e2ee().unwrap().expect("options");
        for shown in [format!("{flag:?}"), format!("{from_file:?} {options:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        // Both, an empty flag, an empty or missing file: refused, naming no secret.
        assert!(parse_args(&["--e2ee-key", "a", "--e2ee-key-file", "f"]).is_err());
        assert!(parse_args(&["--e2ee-key", ""]).is_err());
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        for path in [empty, dir.path().join("missing")] {
            let cli = parse_args(&["--e2ee-key-file", path.to_str().unwrap()]).unwrap();
            let e = cli.conn.e2ee().unwrap_err();
            assert!(matches!(e, AppError::E2eeKey { .. }), "{e}");
            assert!(e.to_string().contains(path.to_str().unwrap()), "{e}");
        }
    }
}
