//! Bad flags and files are clear errors naming what is wrong, before anything connects.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_recorder");

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("LIVEKIT_TOKEN")
        .output()
        .expect("run recorder");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_are_named_and_exit_2() {
    for (args, needle) in [
        (&["--max-cluster", "20s"][..], "--max-cluster"),
        (&["--duration", "0s"][..], "--duration"),
        (&["--participant", "a*b"][..], "a*b"),
        (&["--track", ""][..], "track"),
        (
            &["--url", "ws://127.0.0.1:1", "--duration", "x"][..],
            "--duration",
        ),
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn recover_names_a_missing_or_foreign_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let (code, err) = run(&["--recover", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("nope.json"), "{err}");
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"not\": \"a manifest\"").unwrap();
    let (code, err) = run(&["--recover", junk.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("junk.json") && err.contains("manifest"),
        "{err}"
    );
}

#[test]
fn an_unreachable_server_is_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, err) = run(&[
        "--url",
        "ws://127.0.0.1:9",
        "--api-key",
        "k",
        "--api-secret",
        "a-secret-long-enough-for-hs256-0123456789",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
}
