//! Bad-input corpus for the admin CLI: malformed and mutated tokens (`token verify`, `token
//! decode`), broken configuration files and bad flags. Every case must exit non-zero with an
//! `error:` line that names what was wrong and where (the TOKEN argument, the file and key, the
//! flag) — and must not panic. Offline: nothing here reaches a server.
//!
//! The corpus is generated (deterministic mutations of a valid token and of a valid config file,
//! kept only when the library itself refuses them) plus hand-written nasty cases.

use std::ffi::OsString;
use std::process::Command;
use std::sync::LazyLock;
use std::time::Duration;

use wavecast_config::Loader;
use wavecast_testbed::corpus::{
    Case, Check, Outcome, Rng, TIMEOUT, bad_config_value_cases, good_config, run_case,
};
use wavecast_token::{Keys, Preset, TokenBuilder, Verifier};

const BIN: &str = env!("CARGO_BIN_EXE_wavecast");
const KEYS: [&str; 4] = ["--api-key", "devkey", "--api-secret", "secret"];

/// The valid configuration the config cases break (as config/livekit.toml ships).
static GOOD_CONFIG: LazyLock<String> =
    LazyLock::new(|| good_config("ws://127.0.0.1:7880", 10, (1280, 720), 1500));

fn mutate_token(t: &str, rng: &mut Rng) -> String {
    let mut c: Vec<char> = t.chars().collect();
    const ALPHABET: &[char] = &[
        'A', 'z', '0', '-', '_', '.', '=', '+', '/', ' ', 'é', '\u{7f}',
    ];
    match rng.below(6) {
        0 => {
            let i = rng.below(c.len());
            c[i] = ALPHABET[rng.below(ALPHABET.len())];
        }
        1 => {
            let i = rng.below(c.len());
            c.remove(i);
        }
        2 => {
            let i = rng.below(c.len() + 1);
            c.insert(i, ALPHABET[rng.below(ALPHABET.len())]);
        }
        3 => c.truncate(rng.below(c.len())),
        4 => {
            let mut parts: Vec<&str> = t.split('.').collect();
            // A mutated token may no longer have three parts.
            let (a, b) = (rng.below(parts.len()), rng.below(parts.len()));
            parts.swap(a, b);
            if a == b {
                parts.push("x");
            }
            return parts.join(".");
        }
        _ => {
            // Duplicate a span.
            let i = rng.below(c.len());
            let j = (i + 1 + rng.below(20)).min(c.len());
            let span: Vec<char> = c[i..j].to_vec();
            c.splice(i..i, span);
        }
    }
    c.into_iter().collect()
}

fn token_cases() -> Vec<Case> {
    let keys = Keys::new("devkey", "secret");
    let good = TokenBuilder::new("alice")
        .room("demo")
        .preset(Preset::Viewer)
        .mint(&keys)
        .unwrap();
    let verifier = Verifier::new([keys.clone()]);
    let mut cases = Vec::new();
    let mut rng = Rng::seeded(0x9e37_79b9_7f4a_7c15);
    let mut made = 0;
    while made < 70 {
        let steps = 1 + rng.below(3);
        let mut t = good.clone();
        for _ in 0..steps {
            t = mutate_token(&t, &mut rng);
        }
        // Only what the library refuses is a bad input; args cannot hold NUL.
        if verifier.verify(&t).is_ok() || t.contains('\0') {
            continue;
        }
        made += 1;
        cases.push(Case::new(
            format!("mutated token #{made}"),
            &["token", "verify", &t],
            &["token verify", "TOKEN argument"],
        ));
    }

    // Hand-written: shapes, algorithms, times, keys.
    let claims = TokenBuilder::new("alice")
        .room("demo")
        .preset(Preset::Viewer)
        .claims("devkey")
        .unwrap();
    let sign = |alg, secret: &[u8], claims: &wavecast_token::Claims| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let hs384 = sign(jsonwebtoken::Algorithm::HS384, b"secret", &claims);
    let hs512 = sign(jsonwebtoken::Algorithm::HS512, b"secret", &claims);
    let other_secret = sign(jsonwebtoken::Algorithm::HS256, b"nope", &claims);
    let other_key = TokenBuilder::new("a")
        .room("r")
        .preset(Preset::Viewer)
        .mint(&Keys::new("otherkey", "secret"))
        .unwrap();
    let expired = TokenBuilder::new("a")
        .room("r")
        .preset(Preset::Viewer)
        .issued_at(1_000_000_000)
        .ttl(Duration::from_secs(60))
        .mint(&keys)
        .unwrap();
    let future = TokenBuilder::new("a")
        .room("r")
        .preset(Preset::Viewer)
        .not_before(4_000_000_000)
        .mint(&keys)
        .unwrap();
    let (_, rest) = good.split_once('.').unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let alg_none = format!("{}.{rest}", b64.encode(r#"{"alg":"none","typ":"JWT"}"#));
    let no_alg = format!("{}.{rest}", b64.encode(r#"{"typ":"JWT"}"#));
    let header_array = format!("{}.{rest}", b64.encode("[1,2,3]"));
    let payload_garbage = format!(
        "{}.{}.{}",
        good.split('.').next().unwrap(),
        b64.encode("{\"exp\":\"soon\"}"),
        good.rsplit('.').next().unwrap()
    );
    let huge = format!("{}.{}.{}", "eyJ".repeat(30_000), "A".repeat(30_000), "B");
    let hand: Vec<(&str, String, &str)> = vec![
        ("empty", String::new(), "TOKEN argument"),
        ("space", " ".into(), "TOKEN argument"),
        ("one part", "abc".into(), "three dot-separated parts"),
        ("two parts", "a.b".into(), "three dot-separated parts"),
        ("four parts", "a.b.c.d".into(), "three dot-separated parts"),
        ("dots", "....".into(), "TOKEN argument"),
        ("empty parts", "..".into(), "TOKEN argument"),
        ("not base64", "!!.??.**".into(), "malformed token"),
        ("emoji", "🦀.🦀.🦀".into(), "malformed token"),
        ("HS384", hs384, "HS256 only"),
        ("HS512", hs512, "HS256 only"),
        ("alg none", alg_none, "HS256 only"),
        ("no alg", no_alg, "HS256 only"),
        ("header is an array", header_array, "TOKEN argument"),
        (
            "payload with a string exp",
            payload_garbage,
            "malformed token",
        ),
        ("other secret", other_secret, "bad signature"),
        ("unknown key", other_key, "unknown API key"),
        ("expired", expired, "expired"),
        ("not yet valid", future, "not valid before"),
        ("60 kB token", huge, "TOKEN argument"),
    ];
    for (name, t, needle) in hand {
        cases.push(Case::new(
            format!("token verify: {name}"),
            &["token", "verify", &t],
            &["TOKEN argument", needle],
        ));
    }
    for (name, t) in [
        ("empty", ""),
        ("one part", "abc"),
        ("not base64", "!!.??.**"),
        ("payload not JSON", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln"),
        ("payload an array", "eyJhbGciOiJIUzI1NiJ9.WzEsMl0.c2ln"),
        (
            "exp a string",
            "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOiJzb29uIn0.c2ln",
        ),
        ("exp negative", "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOi0xfQ.c2ln"),
        (
            "video a number",
            "eyJhbGciOiJIUzI1NiJ9.eyJ2aWRlbyI6MX0.c2ln",
        ),
    ] {
        cases.push(Case::new(
            format!("token decode: {name}"),
            &["token", "decode", t],
            &["token decode", "TOKEN argument"],
        ));
    }
    cases
}

/// Does the library refuse this file? (The corpus keeps only inputs that are really bad.)
fn refused(text: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.toml");
    std::fs::write(&path, text).unwrap();
    Loader::new()
        .file(&path)
        .env_vars(Vec::<(String, String)>::new())
        .load()
        .is_err()
}

fn config_cases() -> Vec<Case> {
    let mint = [
        "token",
        "--room",
        "r",
        "--identity",
        "i",
        "--config",
        "bad.toml",
    ];
    let mut cases = bad_config_value_cases(&GOOD_CONFIG, &mint, refused);
    // Unknown keys and sections, with the suggestion.
    for (text, needle) in [
        ("[video]\nfsp = 30\n", "did you mean `video.fps`"),
        ("[vidoe]\nfps = 30\n", "did you mean `video`"),
        (
            "[connection]\napi_sercet = \"x\"\n",
            "connection.api_sercet",
        ),
        ("fps = 30\n", "fps"),
    ] {
        let mut c = Case::new(
            format!("config unknown: {text:?}"),
            &mint,
            &["bad.toml", needle],
        );
        c.files.push(("bad.toml".into(), text.as_bytes().to_vec()));
        cases.push(c);
    }
    // Syntax and encoding: mutations of the good file that the parser refuses.
    let mut rng = Rng::seeded(0x0123_4567_89ab_cdef);
    let mut made = 0;
    let mut tries = 0;
    while made < 30 && tries < 10_000 {
        tries += 1;
        let mut b = GOOD_CONFIG.as_bytes().to_vec();
        const JUNK: &[&[u8]] = &[
            b"=",
            b"[",
            b"]",
            b"\"",
            b"\n",
            b"\0",
            b"\xff",
            b"\xef\xbb\xbf",
            b"= =",
            b"[[",
            b"nan",
            b"#",
        ];
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(b.len());
            match rng.below(3) {
                0 => {
                    b.remove(i);
                }
                1 => {
                    let j = JUNK[rng.below(JUNK.len())];
                    b.splice(i..i, j.iter().copied());
                }
                _ => b.truncate(i),
            }
        }
        if !refused(&b) {
            continue;
        }
        made += 1;
        let mut c = Case::new(format!("config mutation #{made}"), &mint, &["bad.toml"]);
        c.files.push(("bad.toml".into(), b));
        cases.push(c);
    }
    assert_eq!(made, 30, "mutations refused by the parser");
    // Hand-written files.
    for (name, bytes) in [
        ("binary", vec![0u8, 159, 146, 150, 255, 0, 1]),
        ("not UTF-8", b"[video]\nfps = \"\xff\xfe\"\n".to_vec()),
        ("duplicate key", b"[video]\nfps = 30\nfps = 31\n".to_vec()),
        ("duplicate table", b"[video]\n[video]\n".to_vec()),
        ("table as value", b"video = 3\n".to_vec()),
        (
            "deep nesting",
            format!("x = {}1{}\n", "[".repeat(200), "]".repeat(200)).into_bytes(),
        ),
        ("NUL in key", b"[video]\nf\0ps = 30\n".to_vec()),
        (
            "huge integer",
            b"[video]\nfps = 99999999999999999999999\n".to_vec(),
        ),
    ] {
        assert!(refused(&bytes), "{name}");
        let mut c = Case::new(format!("config {name}"), &mint, &["bad.toml"]);
        c.files.push(("bad.toml".into(), bytes));
        cases.push(c);
    }
    // A directory and a missing file where the config should be.
    cases.push(Case::new(
        "config is a directory",
        &["token", "--room", "r", "--identity", "i", "--config", "."],
        &["config"],
    ));
    cases.push(Case::new(
        "config missing",
        &[
            "token",
            "--room",
            "r",
            "--identity",
            "i",
            "--config",
            "missing.toml",
        ],
        &["missing.toml"],
    ));
    cases
}

fn flag_cases() -> Vec<Case> {
    let mint = |extra: &[&str]| {
        let mut a = vec!["token", "--room", "r", "--identity", "i"];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let mut cases = Vec::new();
    for (extra, needle) in [
        (&["--ttl", "forever"][..], "--ttl"),
        (&["--ttl=-1s"], "--ttl"),
        (&["--ttl", "-1s"], "'-1'"),
        (&["--ttl", ""], "--ttl"),
        (&["--preset", "root"], "--preset"),
        (&["--preset", ""], "--preset"),
        (&["--attribute", "novalue"], "--attribute"),
        (&["--attribute", "=v"], "--attribute"),
        (&["--grants", "{"], "--grants"),
        (&["--grants", "[]"], "--grants"),
        (&["--grants", "{\"roomJoin\":\"yes\"}"], "--grants"),
        (&["--grants", "null"], "--grants"),
        (&["--grants", "3"], "--grants"),
        (&["--url", "ftp://127.0.0.1"], "--url"),
        (&["--url", ""], "--url"),
        (&["--url", "ws://"], "--url"),
        (&["--url", "127.0.0.1:7880"], "--url"),
        (&["--api-key", "devkey"], "--api-secret"),
        (&["--bogus"], "--bogus"),
    ] {
        let args = mint(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cases.push(Case::new(format!("flags {extra:?}"), &args, &[needle]));
    }
    for (args, needle) in [
        (
            &["token", "verify", "x", "--leeway", "forever"][..],
            "--leeway",
        ),
        (&["token", "verify", "x", "--leeway=-5s"], "--leeway"),
        (&["token", "verify", "x", "--leeway", "-5s"], "'-5'"),
        (&["token", "verify"], "<TOKEN>"),
        (&["token", "frobnicate"], "frobnicate"),
        (&["token"], "--room"),
        (&["token", "--room", "r"], "--identity"),
    ] {
        cases.push(Case::new(format!("flags {args:?}"), args, &[needle]));
    }
    // An argument that is not UTF-8.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let mut c = Case::new(
            "non-UTF-8 identity",
            &["token", "--room", "r", "--identity"],
            &["UTF-8"],
        );
        c.args.push(OsString::from_vec(vec![b'a', 0xff, b'b']));
        cases.push(c);
    }
    cases
}

fn run(case: &Case) -> Outcome {
    let mut cmd = Command::new(BIN);
    // Credentials first (config cases override them from their file), in an empty directory
    // so no config/livekit.toml is picked up.
    if !case.has_arg("--config") && !case.has_arg("--api-key") {
        cmd.args(KEYS);
    }
    run_case(cmd, case, TIMEOUT)
}

#[test]
fn bad_tokens_configs_and_flags_fail_clearly_without_panicking() {
    let cases = [token_cases(), config_cases(), flag_cases()].concat();
    assert!(cases.len() >= 200, "corpus has {} cases", cases.len());
    Check::failure().assert_all(&cases, run);
}
