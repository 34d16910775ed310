//! A browser as a peer: Debian's Chromium, headless, driven by playwright-core, running the
//! official JavaScript SDK (livekit-client) with its default settings — the other end most
//! users meet.
//!
//! [`BrowserPeer::publish`] and [`BrowserPeer::subscribe`] run `tests/browser/peer.mjs` with
//! Node.js. That script serves a small page on 127.0.0.1 (livekit-client's UMD build, no
//! bundler), starts `/usr/bin/chromium` (never a downloaded browser) and prints `READY {json}`,
//! `RESULT {json}` or `ERROR message` lines, which [`BrowserPeer::wait_json`] reads. The npm
//! packages are pinned by `tests/browser/package-lock.json`; `just setup` installs them.
//!
//! ```no_run
//! use std::time::Duration;
//! use wavecast_testbed::{LiveKitServer, NetNs, ServerOptions};
//! use wavecast_testbed::browser::BrowserPeer;
//! use wavecast_token::Preset;
//!
//! // libwebrtc gathers no ICE candidate on loopback alone: a namespace with an address.
//! let ns = NetNs::create()?;
//! ns.enter_current_thread()?;
//! let server = LiveKitServer::start_with(&ServerOptions {
//!     media_ip: Some(NetNs::ADDR),
//!     ..ServerOptions::default()
//! })?;
//! let token = server.token("browser", "demo", Preset::Viewer);
//! let mut page = BrowserPeer::subscribe(&server.ws_url(), &token, "caster", 8)?;
//! let result = page.wait_json("RESULT", Duration::from_secs(60))?;
//! println!("{} frames of {}x{}", result["frames"], result["video_width"], result["video_height"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//! Chromium runs with fake capture devices (`--use-fake-device-for-media-stream`, optionally
//! fed from a Y4M and a WAV file), permission prompts answered yes, autoplay allowed, and its
//! background traffic off (`--disable-background-networking` and friends); the page passes
//! livekit-client an empty ICE server list, since livekit-server hands out public STUN servers.
//! Run it inside a [`crate::NetNs`] with the server advertising [`crate::NetNs::ADDR`]: the
//! only candidates are then inside the namespace. Stdout lines are read on a thread of their
//! own, so every wait has a real deadline; stderr (the page's console) is kept for error
//! messages. Dropping a peer asks Node to end (SIGTERM: playwright closes the browser), then
//! kills it.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{TestbedError, io_err, workspace_root};

/// The browser binary: Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Environment variable that overrides [`CHROMIUM`] (read by `peer.mjs` too).
pub const CHROMIUM_ENV: &str = "WAVECAST_CHROMIUM";

/// Environment variable: a livekit-client log level (`debug`, `info`, …) for the page, whose
/// console then shows on the test's stderr as it runs (otherwise only in failures).
pub const LOG_ENV: &str = "WAVECAST_BROWSER_LOG";

/// `tests/browser/`: the driver script, the page and the npm packages.
pub fn browser_dir() -> PathBuf {
    workspace_root().join("tests/browser")
}

/// The Chromium binary the peer starts: `$WAVECAST_CHROMIUM`, else [`CHROMIUM`].
pub fn chromium() -> PathBuf {
    std::env::var_os(CHROMIUM_ENV).map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from)
}

/// Checks what a browser peer needs is installed: Chromium, Node.js and the npm packages.
pub fn check_installed() -> Result<(), TestbedError> {
    let mut missing = Vec::new();
    let browser = chromium();
    if !browser.is_file() {
        missing.push(format!(
            "{} (Debian package chromium, or set {CHROMIUM_ENV})",
            browser.display()
        ));
    }
    if Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        missing.push("node (Node.js) on PATH".into());
    }
    for package in ["playwright-core", "livekit-client"] {
        let p = browser_dir().join("node_modules").join(package);
        if !p.is_dir() {
            missing.push(p.display().to_string());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(TestbedError::BrowserNotInstalled {
            missing: missing.join(", "),
        })
    }
}

/// What a publishing page sends: files for Chromium's fake camera and microphone (each
/// looped), and an optional mid-stream change of the capture size.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// A Y4M file for the camera (`--use-file-for-fake-video-capture`); Chromium's moving
    /// pattern when `None`.
    pub video: Option<PathBuf>,
    /// A WAV file for the microphone (`--use-file-for-fake-audio-capture`); Chromium's beep
    /// when `None`.
    pub audio: Option<PathBuf>,
    /// Halve the camera's capture size this long after `READY` (what libwebrtc's own
    /// adaptation does under CPU or bandwidth pressure); the peer then prints
    /// `SCALED {"width", "height", "at_unix_ms"}`.
    pub downscale_after: Option<Duration>,
    /// End-to-end encryption with this shared passphrase (livekit-client's
    /// `ExternalE2EEKeyProvider` and e2ee worker); `RESULT` then has `e2ee.errors`.
    pub e2ee_key: Option<String>,
    /// The camera's codec: `vp8`, `vp9`, `h264` or `av1` (livekit-client's
    /// `publishDefaults.videoCodec`; its default, VP8, when `None`). livekit-client adds VP8 as
    /// a backup codec for the others (sent only when a subscriber cannot decode the primary),
    /// and publishes VP9 and AV1 as one SVC stream (`L3T3_KEY`) instead of simulcast. Debian's
    /// Chromium encodes H.264 with OpenH264 (`encoder` in the answers).
    pub video_codec: Option<String>,
    /// Simulcast for the camera (`publishDefaults.simulcast`; livekit-client's default, on,
    /// when `None`).
    pub simulcast: Option<bool>,
}

/// What a subscribing page does besides the defaults.
#[derive(Debug, Clone, Default)]
pub struct SubscribeOptions {
    /// End-to-end encryption with this shared passphrase (see [`PublishOptions::e2ee_key`]).
    pub e2ee_key: Option<String>,
}

/// How a subscribing page shows what it receives ([`BrowserPeer::subscribe_view`]).
#[derive(Debug, Clone, Default)]
pub struct ViewOptions {
    /// The `<video>` element's CSS size in pixels (640×360 when `None`). The page's room has
    /// adaptive stream on: livekit-client asks the server for the simulcast layer that fits
    /// the element (the viewport is 1280×720).
    pub element_size: Option<(u32, u32)>,
    /// Subscribe to the participant's video only: no audio is awaited or measured (`RESULT`'s
    /// `audio` is `null`), for publishers without a microphone.
    pub video_only: bool,
}

/// Chromium with livekit-client on a page, publishing or subscribing (see the module docs);
/// ended on drop.
#[derive(Debug)]
pub struct BrowserPeer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    what: String,
}

impl BrowserPeer {
    /// Joins with `token` at `url` and publishes the fake camera and microphone with
    /// livekit-client's defaults (see [`PublishOptions`]), for at most `seconds` (or until
    /// [`BrowserPeer::stop`]).
    /// Prints `READY {json}` once published, `RESULT {json}` with the encoders' figures at the
    /// end, including `layer_timeline`: every start, stop and size change of the camera's
    /// simulcast layers (`at_unix_ms`, `rid`, `sending`, `width`, `height`, `limitation`),
    /// sampled every `layer_sample_ms`.
    ///
    /// The codec each camera RTP stream actually encodes with (the sender's statistics:
    /// outbound-rtp `codecId` → codec `mimeType`, e.g. `video/H264`) is in READY's
    /// `video_layers` (`rid`, `codec`, `width`, `height`, `frames_encoded`, `encoder`,
    /// `scalability_mode`; READY waits up to 5 s for every stream to have a codec, a few ms in
    /// practice, not for frames: a layer Chromium has not started yet has null sizes and 0
    /// frames there) and in RESULT's `video_layers[].codec`; READY's `requested` echoes
    /// [`PublishOptions::video_codec`] and [`PublishOptions::simulcast`].
    pub fn publish(
        url: &str,
        token: &str,
        options: &PublishOptions,
        seconds: u32,
    ) -> Result<Self, TestbedError> {
        let mut args = vec!["publish".into()];
        if let Some(v) = &options.video {
            args.extend(["--video".into(), v.display().to_string()]);
        }
        if let Some(a) = &options.audio {
            args.extend(["--audio".into(), a.display().to_string()]);
        }
        if let Some(after) = options.downscale_after {
            args.extend(["--downscale-after".into(), after.as_secs_f64().to_string()]);
        }
        if let Some(key) = &options.e2ee_key {
            args.extend(["--e2ee-key".into(), key.clone()]);
        }
        if let Some(codec) = &options.video_codec {
            args.extend(["--video-codec".into(), codec.clone()]);
        }
        if let Some(simulcast) = options.simulcast {
            args.extend(["--simulcast".into(), simulcast.to_string()]);
        }
        Self::spawn(url, token, seconds, args, "browser publisher")
    }

    /// Joins with `token` at `url`, waits for `participant`'s video and audio and measures them
    /// for `seconds`; prints `RESULT {json}` (frames, picture size, tone frequency).
    pub fn subscribe(
        url: &str,
        token: &str,
        participant: &str,
        seconds: u32,
    ) -> Result<Self, TestbedError> {
        Self::subscribe_with(
            url,
            token,
            participant,
            seconds,
            &SubscribeOptions::default(),
        )
    }

    /// [`BrowserPeer::subscribe`] with [`SubscribeOptions`] (end-to-end encryption).
    pub fn subscribe_with(
        url: &str,
        token: &str,
        participant: &str,
        seconds: u32,
        options: &SubscribeOptions,
    ) -> Result<Self, TestbedError> {
        Self::subscribe_view(
            url,
            token,
            participant,
            seconds,
            options,
            &ViewOptions::default(),
        )
    }

    /// [`BrowserPeer::subscribe_with`] with a [`ViewOptions`]: the `<video>` element's size
    /// (which picks the simulcast layer) and video only.
    ///
    /// Besides the figures of [`BrowserPeer::subscribe`], `RESULT` has `element` (`width`,
    /// `height`), `inbound_video.codec` (the receiver's codec `mimeType` at the end, e.g.
    /// `video/VP9`) and `received`: the receiver's statistics sampled every second from the
    /// subscription on — `codecs` (every codec seen, in order), `first`, `last` and `max` (the
    /// largest by area) decoded frame sizes (`width`, `height`, `at_ms` since joining), and
    /// `samples` (`at_ms`, `codec`, `width`, `height`, `frames_decoded`).
    pub fn subscribe_view(
        url: &str,
        token: &str,
        participant: &str,
        seconds: u32,
        options: &SubscribeOptions,
        view: &ViewOptions,
    ) -> Result<Self, TestbedError> {
        let mut args = vec![
            "subscribe".into(),
            "--participant".into(),
            participant.into(),
        ];
        if let Some(key) = &options.e2ee_key {
            args.extend(["--e2ee-key".into(), key.clone()]);
        }
        if let Some((w, h)) = view.element_size {
            args.extend(["--element-size".into(), format!("{w}x{h}")]);
        }
        if view.video_only {
            args.push("--video-only".into());
        }
        Self::spawn(url, token, seconds, args, "browser subscriber")
    }

    fn spawn(
        url: &str,
        token: &str,
        seconds: u32,
        mut args: Vec<String>,
        what: &str,
    ) -> Result<Self, TestbedError> {
        check_installed()?;
        args.extend([
            "--url".into(),
            url.into(),
            "--token".into(),
            token.into(),
            "--seconds".into(),
            seconds.to_string(),
        ]);
        if let Ok(level) = std::env::var(LOG_ENV) {
            args.extend(["--log".into(), level]);
        }
        let script = browser_dir().join("peer.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .args(&args)
            .env(CHROMIUM_ENV, chromium())
            .current_dir(browser_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_err(format!("start node {}", script.display())))?;
        let stdout = child.stdout.take().expect("stdout was piped");
        let stderr = child.stderr.take().expect("stderr was piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let kept = Arc::new(Mutex::new(String::new()));
        let sink = kept.clone();
        let echo = std::env::var_os(LOG_ENV).is_some();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if echo {
                    eprintln!("{line}");
                }
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: kept,
            what: what.to_owned(),
        })
    }

    /// Joins with `token` at `url` with the data plane only (data streams, RPC, attributes:
    /// `tests/browser/data.js`) and prints `READY {json}` (`sid`, `identity`,
    /// `client_protocol`); then runs the commands given with [`BrowserPeer::command`], each
    /// answered `OK <command>` (the line protocol of the Python peers in `tests/python`), until
    /// dropped or `idle_seconds` pass without a command.
    pub fn data(url: &str, token: &str, idle_seconds: u32) -> Result<Self, TestbedError> {
        Self::data_with(url, token, idle_seconds, &SubscribeOptions::default())
    }

    /// [`BrowserPeer::data`] with end-to-end encryption ([`SubscribeOptions::e2ee_key`]):
    /// livekit-client's `encryption` option, which encrypts data packets too.
    pub fn data_with(
        url: &str,
        token: &str,
        idle_seconds: u32,
        options: &SubscribeOptions,
    ) -> Result<Self, TestbedError> {
        let mut args = vec!["data".to_owned()];
        if let Some(key) = &options.e2ee_key {
            args.extend(["--e2ee-key".into(), key.clone()]);
        }
        Self::spawn(url, token, idle_seconds, args, "browser data peer")
    }

    /// Sends a data peer one command line (see `tests/browser/data.js`).
    pub fn command(&mut self, line: &str) -> Result<(), TestbedError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.failed("its input is closed".into()));
        };
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| self.failed(format!("could not send {line:?}: {e}")))
    }

    /// Waits up to `timeout` for the line `PREFIX {json}` and returns the JSON. An `ERROR` line,
    /// the end of the script or the timeout is an error quoting the page's console.
    pub fn wait_json(
        &mut self,
        prefix: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, TestbedError> {
        let rest = self.wait_line(prefix, timeout)?;
        serde_json::from_str(&rest).map_err(|e| {
            self.failed(format!(
                "printed {prefix} with JSON that does not parse ({e})"
            ))
        })
    }

    /// Waits up to `timeout` for a line starting with `prefix` and returns the rest, trimmed.
    /// An `ERROR` line, an `ERR` line (a data command that failed), the end of the script or
    /// the timeout is an error quoting the page's console.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, TestbedError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failed(format!("printed no {prefix} line within {timeout:?}")));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map_err(io_err("wait for node"))?;
                    return Err(self.failed(format!("ended ({status}) before printing {prefix}")));
                }
            };
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.trim().to_owned());
            }
            if let Some(message) = line.strip_prefix("ERROR ") {
                return Err(self.failed(message.to_owned()));
            }
            if line.starts_with("ERR ") {
                return Err(self.failed(line));
            }
        }
    }

    /// Asks a publisher to stop now (it then prints its `RESULT`).
    pub fn stop(&mut self) {
        if let Some(stdin) = self.stdin.as_mut() {
            // A peer that already ended cannot be asked; its RESULT or ERROR tells.
            let _ = writeln!(stdin, "stop").and_then(|()| stdin.flush());
        }
    }

    /// What the script and the page printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn failed(&self, why: String) -> TestbedError {
        let log = self.stderr();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        TestbedError::BrowserPeer {
            what: self.what.clone(),
            why,
            log: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        }
    }

    /// The Node.js process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BrowserPeer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM: playwright's handler closes the browser, then Node exits.
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
