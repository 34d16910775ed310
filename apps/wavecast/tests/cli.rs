//! The admin CLI as a user runs it: help with defaults, tokens, tables and JSON against a real
//! server, and clear errors for bad flags and bad configuration.

use std::path::PathBuf;
use std::process::{Command, Output};

use wavecast_testbed::{LiveKitServer, workspace_root};
use wavecast_token::{Keys, Verifier};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wavecast"))
}

/// Run the CLI in an empty directory (so no config/livekit.toml is picked up) with a clean env.
fn run(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("LIVEKIT_URL")
        .env_remove("LIVEKIT_API_KEY")
        .env_remove("LIVEKIT_API_SECRET")
        .output()
        .expect("run wavecast")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn help_lists_flags_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = text(&run(&["token", "--help"], dir.path()));
    for want in [
        "--room",
        "--identity",
        "--preset",
        "[default: viewer]",
        "--ttl",
        "[default: 6h]",
        "--grants",
    ] {
        assert!(out.contains(want), "token --help lacks {want}:\n{out}");
    }
    let (out, _) = text(&run(&["--help"], dir.path()));
    for want in [
        "token",
        "room",
        "participant",
        "data",
        "--config",
        "--url",
        "--json",
    ] {
        assert!(out.contains(want), "--help lacks {want}:\n{out}");
    }
}

#[test]
fn token_json_verifies_and_bad_flags_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &[
            "--api-key",
            "devkey",
            "--api-secret",
            "secret",
            "token",
            "--room",
            "demo",
            "--identity",
            "alice",
            "--preset",
            "broadcaster",
            "--ttl",
            "1h",
            "--json",
        ],
        dir.path(),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let claims = Verifier::new([Keys::new("devkey", "secret")])
        .verify(json["token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.exp - claims.nbf, 3600);
    assert!(claims.video.can_publish());
    assert_eq!(json["url"], "ws://127.0.0.1:7880");

    let o = run(
        &[
            "--api-key",
            "k",
            "--api-secret",
            "s",
            "token",
            "--room",
            "r",
            "--identity",
            "a",
            "--preset",
            "boss",
        ],
        dir.path(),
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("--preset") && err.contains("viewer, broadcaster, admin, recorder"),
        "{err}"
    );

    for ttl in ["0s", "100000000000days", "367days"] {
        let o = run(
            &[
                "--api-key",
                "k",
                "--api-secret",
                "s",
                "token",
                "--room",
                "r",
                "--identity",
                "a",
                "--ttl",
                ttl,
            ],
            dir.path(),
        );
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "--ttl {ttl} accepted: {out}");
        assert!(
            err.contains("--ttl") && err.contains("at most"),
            "--ttl {ttl}: {err}"
        );
    }

    let o = run(&["token", "--room", "r", "--identity", "a"], dir.path());
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("no API key and secret"), "{err}");
}

#[test]
fn bad_config_file_errors_name_key_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[connection]\nurl = \"ftp://x\"\n[video]\nfps = 0\n").unwrap();
    let o = run(
        &["--config", cfg.to_str().unwrap(), "room", "list"],
        dir.path(),
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("connection.url = \"ftp://x\" (bad.toml:2)"),
        "{err}"
    );
    assert!(
        err.contains("video.fps = 0 (bad.toml:4): must be between 1 and 120"),
        "{err}"
    );

    let o = run(&["--config", "missing.toml", "room", "list"], dir.path());
    let (_, err) = text(&o);
    assert!(
        err.contains("cannot read config file missing.toml"),
        "{err}"
    );
    // The cause is printed once (as a cause), not also inside the message.
    assert_eq!(
        err.to_lowercase().matches("no such file").count(),
        1,
        "{err}"
    );
}

#[test]
fn the_committed_config_file_is_valid() {
    let config = wavecast_config::Loader::new()
        .file(workspace_root().join("config/livekit.toml"))
        .env_vars(Vec::<(String, String)>::new())
        .load()
        .expect("config/livekit.toml is valid");
    assert_eq!(config.connection.api_key.as_deref(), Some("devkey"));
}

#[test]
fn room_commands_print_tables_and_json_against_a_real_server() {
    let server = LiveKitServer::start().expect("start livekit-server");
    let dir = tempfile::tempdir().unwrap();
    let url = server.ws_url();
    let base = [
        "--url",
        url.as_str(),
        "--api-key",
        "devkey",
        "--api-secret",
        "secret",
    ];
    let with =
        |rest: &[&str]| -> Vec<String> { base.iter().chain(rest).map(|s| s.to_string()).collect() };
    let call = |rest: &[&str]| {
        let args = with(rest);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&refs, dir.path());
        let (out, err) = text(&o);
        assert!(o.status.success(), "wavecast {rest:?} failed: {err}");
        out
    };
    let table = call(&[
        "room",
        "create",
        "cli-room",
        "--metadata",
        "from-cli",
        "--max-participants",
        "3",
    ]);
    assert!(
        table.contains("cli-room") && table.contains("from-cli"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&call(&["room", "list", "--json"])).unwrap();
    let room = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "cli-room")
        .expect("listed");
    assert_eq!(room["metadata"], "from-cli");
    assert_eq!(room["max_participants"], 3);
    assert_eq!(
        call(&["participant", "list", "cli-room", "--json"]).trim(),
        "[]"
    );
    call(&["room", "delete", "cli-room"]);
    let json: serde_json::Value = serde_json::from_str(&call(&["room", "list", "--json"])).unwrap();
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .all(|r| r["name"] != "cli-room")
    );

    // Errors from the server are printed, not panicked on.
    let args = with(&["room", "delete", "cli-room"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&refs, dir.path());
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("delete room \"cli-room\": not found"), "{err}");
}
