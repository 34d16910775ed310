//! `-v` and `RUST_LOG=debug` logs never show the access token, the API secret, ICE passwords or
//! the end-to-end passphrase, against a real server (the whole join: signal, both SDP exchanges,
//! trickle, media).

use std::process::Command;

use wavecast_testbed::{API_SECRET, LiveKitServer};
use wavecast_token::Preset;

const BIN: &str = env!("CARGO_BIN_EXE_broadcaster");

/// Runs the broadcaster for a few seconds with every debug log on; returns stderr + stdout.
fn logs(server: &LiveKitServer, credentials: &[&str], room: &str) -> String {
    let out = Command::new(BIN)
        .args([
            "--url",
            &server.ws_url(),
            "--room",
            room,
            "--identity",
            "caster",
        ])
        .args(credentials)
        .args(["--width", "320", "--height", "180", "--fps", "15"])
        .args(["--duration", "4s", "--no-stdin", "-v"])
        .env("RUST_LOG", "debug")
        .env_remove("LIVEKIT_URL")
        .env_remove("LIVEKIT_API_KEY")
        .env_remove("LIVEKIT_API_SECRET")
        .env_remove("LIVEKIT_TOKEN")
        .output()
        .expect("run the broadcaster");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.status.success(), "broadcaster failed:\n{text}");
    // The run did reach the parts of the join that carry secrets.
    assert!(
        text.contains("connected (ICE + DTLS)"),
        "no media connection:\n{text}"
    );
    text
}

/// Every `ice-pwd:` in the text is followed by the redaction marker.
fn ice_passwords_shown(text: &str) -> Vec<String> {
    text.match_indices("ice-pwd:")
        .map(|(i, m)| &text[i + m.len()..])
        .filter(|rest| !rest.starts_with("[redacted]"))
        .map(|rest| rest.chars().take(40).collect())
        .collect()
}

#[test]
fn verbose_logs_show_no_token_secret_or_ice_password() {
    let server = LiveKitServer::start().expect("livekit-server starts");

    // A token given on the command line.
    let token = server.token("caster", "quiet", Preset::Broadcaster);
    let text = logs(&server, &["--token", &token], "quiet");
    let signature = token.rsplit('.').next().unwrap();
    assert!(!text.contains(&token), "the token is logged");
    assert!(!text.contains(signature), "the token's signature is logged");
    assert!(!text.contains("eyJ"), "something JWT-shaped is logged");
    assert_eq!(
        ice_passwords_shown(&text),
        Vec::<String>::new(),
        "ICE passwords logged"
    );
    assert!(text.contains("ice-pwd:[redacted]") || !text.contains("ice-pwd"));

    // A token minted from the API secret.
    let text = logs(
        &server,
        &["--api-key", "devkey", "--api-secret", API_SECRET],
        "quiet2",
    );
    assert!(!text.contains("eyJ"), "the minted token is logged");
    assert_eq!(
        ice_passwords_shown(&text),
        Vec::<String>::new(),
        "ICE passwords logged"
    );
    // The secret's value (`secret`) appears only inside the names of the settings that hold it.
    let scrubbed = text
        .to_lowercase()
        .replace("api_secret", "")
        .replace("api-secret", "")
        .replace("api secret", "");
    assert!(
        !scrubbed.contains(API_SECRET),
        "the API secret is logged:\n{}",
        text.lines()
            .filter(|l| l.to_lowercase().contains(API_SECRET))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // An end-to-end passphrase (issue 21): never shown, whatever the log level.
    let passphrase = "zebra-quartz-e2ee-passphrase";
    let text = logs(
        &server,
        &["--token", &token, "--e2ee-key", passphrase],
        "quiet3",
    );
    assert!(
        !text.contains(passphrase) && !text.contains("zebra"),
        "the end-to-end passphrase is logged"
    );
}
