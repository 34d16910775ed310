//! Cross-verification with the official Python `livekit-api`: tokens minted on one side verify on
//! the other with identical claims, and a token signed with another secret is refused by both.

use std::process::Command;

use serde_json::Value;
use wavecast_testbed::{API_KEY, API_SECRET, python, python_script};
use wavecast_token::{Keys, Preset, TokenBuilder, Verifier};

fn token_tool(args: &[&str], secret: &str) -> (bool, Value) {
    let out = Command::new(python().expect("python venv (run `just setup`)"))
        .arg(python_script("token_tool.py"))
        .args(args)
        .env("LIVEKIT_API_KEY", API_KEY)
        .env("LIVEKIT_API_SECRET", secret)
        .output()
        .expect("run token_tool.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "token_tool.py printed no JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), json)
}

#[test]
fn python_minted_token_verifies_here_with_identical_claims() {
    let (ok, minted) = token_tool(
        &[
            "mint",
            "--identity",
            "py-alice",
            "--room",
            "interop",
            "--name",
            "Alice from Python",
            "--metadata",
            "{\"k\":[1,2]}",
            "--attr",
            "team=blue",
            "--attr",
            "seat=7",
            "--ttl",
            "600",
            "--hidden",
        ],
        API_SECRET,
    );
    assert!(ok);
    let token = minted["token"].as_str().unwrap();
    let payload = &minted["payload"];
    let claims = Verifier::new([Keys::new(API_KEY, API_SECRET)])
        .verify(token)
        .expect("verify a Python token");

    assert_eq!(claims.iss, API_KEY);
    assert_eq!(claims.sub, "py-alice");
    assert_eq!(claims.name, "Alice from Python");
    assert_eq!(claims.metadata, "{\"k\":[1,2]}");
    assert_eq!(claims.attributes.len(), 2);
    assert_eq!(claims.attributes["team"], "blue");
    assert_eq!(claims.attributes["seat"], "7");
    assert_eq!(claims.exp as u64, payload["exp"].as_u64().unwrap());
    assert_eq!(claims.nbf as u64, payload["nbf"].as_u64().unwrap());
    assert_eq!(claims.exp - claims.nbf, 600);
    let v = &claims.video;
    assert!(v.room_join && v.hidden);
    assert_eq!(v.room, "interop");
    assert!(v.can_publish() && v.can_subscribe() && !v.can_publish_data());
    // Every grant Python wrote reads back the same here.
    let ours = serde_json::to_value(&claims.video).unwrap();
    for (key, there) in payload["video"].as_object().unwrap() {
        // We omit default-valued grants when serialising; Python writes some of them out.
        let here = ours
            .get(key)
            .cloned()
            .unwrap_or_else(|| default_like(there));
        assert_eq!(&here, there, "grant {key}");
    }
}

/// A boolean grant as Python reports it: absent grants are `null`, which means false.
fn flag(video: &Value, key: &str) -> bool {
    video[key].as_bool().unwrap_or(false)
}

fn default_like(v: &Value) -> Value {
    match v {
        Value::Bool(_) => Value::Bool(false),
        Value::String(_) => Value::String(String::new()),
        Value::Array(_) => Value::Array(Vec::new()),
        Value::Number(_) => Value::from(0),
        _ => Value::Null,
    }
}

#[test]
fn token_minted_here_verifies_in_python_with_identical_claims() {
    for preset in Preset::ALL {
        let token = TokenBuilder::new("rs-bob")
            .name("Bob from Rust")
            .metadata("meta")
            .attribute("lang", "rust")
            .room("interop")
            .preset(preset)
            .ttl(std::time::Duration::from_secs(900))
            .mint(&Keys::new(API_KEY, API_SECRET))
            .unwrap();
        let (ok, claims) = token_tool(&["verify", &token], API_SECRET);
        assert!(ok, "{preset}: python refused our token: {claims}");
        assert_eq!(claims["identity"], "rs-bob");
        assert_eq!(claims["name"], "Bob from Rust");
        assert_eq!(claims["metadata"], "meta");
        assert_eq!(claims["attributes"]["lang"], "rust");
        assert_eq!(claims["iss"], API_KEY);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["nbf"].as_u64().unwrap(),
            900
        );
        let expected = preset.grants("interop");
        let video = &claims["video"];
        assert_eq!(
            flag(video, "room_join"),
            expected.room_join,
            "{preset}: room_join"
        );
        assert_eq!(
            flag(video, "room_create"),
            expected.room_create,
            "{preset}: room_create"
        );
        assert_eq!(
            flag(video, "room_list"),
            expected.room_list,
            "{preset}: room_list"
        );
        assert_eq!(
            flag(video, "room_admin"),
            expected.room_admin,
            "{preset}: room_admin"
        );
        assert_eq!(flag(video, "hidden"), expected.hidden, "{preset}: hidden");
        assert_eq!(
            flag(video, "recorder"),
            expected.recorder,
            "{preset}: recorder"
        );
        assert_eq!(video["room"], "interop");
        if expected.room_join {
            assert_eq!(
                flag(video, "can_publish"),
                expected.can_publish(),
                "{preset}: can_publish"
            );
            assert_eq!(
                flag(video, "can_subscribe"),
                expected.can_subscribe(),
                "{preset}: can_subscribe"
            );
            assert_eq!(
                video["can_publish_data"],
                expected.can_publish_data(),
                "{preset}"
            );
        }
        let sources: Vec<&str> = video["can_publish_sources"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            sources,
            expected
                .can_publish_sources
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            "{preset}"
        );
    }
}

#[test]
fn a_token_signed_with_another_secret_is_refused_on_both_sides() {
    let token = TokenBuilder::new("eve")
        .room("interop")
        .preset(Preset::Viewer)
        .mint(&Keys::new(API_KEY, "another-secret"))
        .unwrap();
    let (ok, answer) = token_tool(&["verify", &token], API_SECRET);
    assert!(
        !ok,
        "python accepted a token with the wrong secret: {answer}"
    );
    assert_eq!(answer["error"], "InvalidSignatureError");

    let (ok, minted) = token_tool(
        &["mint", "--identity", "eve", "--room", "interop"],
        "another-secret",
    );
    assert!(ok);
    let err =
        Verifier::new([Keys::new(API_KEY, API_SECRET)]).verify(minted["token"].as_str().unwrap());
    assert!(
        matches!(err, Err(wavecast_token::TokenError::BadSignature { .. })),
        "{err:?}"
    );
}
