//! The crate graph drawn in docs/ARCHITECTURE.md is the real one.
//!
//! The `deps` block of docs/ARCHITECTURE.md lists, for every workspace package, the workspace
//! packages it may depend on (normal and build dependencies, then dev-dependencies after `;`).
//! This test reads the real graph from `cargo metadata` and fails on any difference: an edge the
//! picture does not show, an edge the picture shows that no longer exists, a package missing from
//! the picture, and any dependency on an app (nothing depends on an app).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Allowed edges of one package.
#[derive(Debug, Default, PartialEq)]
struct Allowed {
    normal: BTreeSet<String>,
    dev: BTreeSet<String>,
}

/// One workspace package as `cargo metadata` sees it.
#[derive(Debug)]
struct Package {
    name: String,
    /// Whether it lives under `apps/`.
    is_app: bool,
    normal: BTreeSet<String>,
    dev: BTreeSet<String>,
}

/// Parses the ```deps block of the architecture document.
fn parse_declared(doc: &str) -> Result<BTreeMap<String, Allowed>, String> {
    let start = doc
        .find("```deps\n")
        .ok_or("docs/ARCHITECTURE.md has no ```deps block")?;
    let body = &doc[start + "```deps\n".len()..];
    let end = body.find("```").ok_or("the ```deps block is not closed")?;
    let mut out = BTreeMap::new();
    for (i, line) in body[..end].lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = line.split_once(':').ok_or_else(|| {
            format!(
                "deps block line {}: expected `crate: deps ; dev-deps`",
                i + 1
            )
        })?;
        let (normal, dev) = rest.split_once(';').unwrap_or((rest, ""));
        let list = |s: &str| -> BTreeSet<String> {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        let allowed = Allowed {
            normal: list(normal),
            dev: list(dev),
        };
        if out.insert(name.trim().to_string(), allowed).is_some() {
            return Err(format!("deps block: {} is listed twice", name.trim()));
        }
    }
    Ok(out)
}

/// The workspace packages and their edges to other workspace packages, from `cargo metadata`.
fn parse_metadata(json: &serde_json::Value, root: &Path) -> Result<Vec<Package>, String> {
    let packages = json["packages"]
        .as_array()
        .ok_or("cargo metadata: no packages array")?;
    let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut out = Vec::new();
    for p in packages {
        let name = p["name"].as_str().ok_or("package without a name")?;
        let manifest = Path::new(p["manifest_path"].as_str().ok_or("no manifest_path")?);
        let rel = manifest.strip_prefix(root).unwrap_or(manifest);
        let mut pkg = Package {
            name: name.to_string(),
            is_app: rel.starts_with("apps"),
            normal: BTreeSet::new(),
            dev: BTreeSet::new(),
        };
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let Some(dep) = d["name"].as_str().filter(|n| names.contains(n)) else {
                continue;
            };
            if d["kind"].as_str() == Some("dev") {
                pkg.dev.insert(dep.to_string());
            } else {
                pkg.normal.insert(dep.to_string());
            }
        }
        // An edge that is both normal and dev is a normal edge.
        let normal = pkg.normal.clone();
        pkg.dev.retain(|d| !normal.contains(d));
        out.push(pkg);
    }
    Ok(out)
}

/// Every difference between the real graph and the declared one, as readable lines.
fn differences(real: &[Package], declared: &BTreeMap<String, Allowed>) -> Vec<String> {
    let apps: BTreeSet<&str> = real
        .iter()
        .filter(|p| p.is_app)
        .map(|p| p.name.as_str())
        .collect();
    let mut problems = Vec::new();
    for p in real {
        for d in p.normal.iter().chain(&p.dev) {
            if apps.contains(d.as_str()) {
                problems.push(format!(
                    "{} depends on the app {d}: nothing depends on an app",
                    p.name
                ));
            }
        }
        let Some(allowed) = declared.get(&p.name) else {
            problems.push(format!(
                "{} is not in the picture: add `{}: {} ; {}`",
                p.name,
                p.name,
                p.normal.iter().cloned().collect::<Vec<_>>().join(", "),
                p.dev.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
            continue;
        };
        for (kind, have, may) in [
            ("", &p.normal, &allowed.normal),
            ("dev-", &p.dev, &allowed.dev),
        ] {
            for d in have.difference(may) {
                problems.push(format!(
                    "{} has an undeclared {kind}dependency on {d}",
                    p.name
                ));
            }
            for d in may.difference(have) {
                problems.push(format!(
                    "{} is drawn with a {kind}dependency on {d} it does not have",
                    p.name
                ));
            }
        }
    }
    let real_names: BTreeSet<&str> = real.iter().map(|p| p.name.as_str()).collect();
    for name in declared.keys() {
        if !real_names.contains(name.as_str()) {
            problems.push(format!("{name} is drawn but is not a workspace package"));
        }
    }
    problems
}

#[test]
fn the_drawn_crate_graph_is_the_real_one() {
    let root = workspace_root();
    let doc_path = root.join("docs/ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", doc_path.display()));
    let declared = parse_declared(&doc).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let real = parse_metadata(&json, root).unwrap_or_else(|e| panic!("{e}"));
    assert!(real.len() >= 10, "too few packages: {real:?}");
    let problems = differences(&real, &declared);
    assert!(
        problems.is_empty(),
        "docs/ARCHITECTURE.md's deps block differs from the real crate graph:\n  {}",
        problems.join("\n  ")
    );
}

/// What the engine's core may not contain: tokio (runtime, channels, timers), sockets, clock
/// reads, async code, the driver that owns the I/O.
const CORE_FORBIDDEN: &[&str] = &[
    "tokio",
    "UdpSocket",
    "TcpStream",
    "TcpListener",
    "std::net::Udp",
    "Instant::now",
    "SystemTime::now",
    "thread::sleep",
    "async ",
    ".await",
    "crate::engine",
    "livekit_signaling",
];

/// The forbidden words in one source file of the core, as `line: word`. Comments are not code,
/// and neither is a file's trailing `#[cfg(test)] mod tests` block (tests start virtual time
/// from a real `Instant`).
fn io_in_core(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut lines = source.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|(_, next)| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" // ").next().unwrap_or(code);
        for word in CORE_FORBIDDEN {
            if code.contains(word) {
                found.push(format!("{}: {word}", i + 1));
            }
        }
    }
    found
}

#[test]
fn the_engine_core_has_no_io() {
    let root = workspace_root();
    let files = rust_files(&root.join("crates/rtc/src/sansio"));
    assert!(files.len() >= 5, "the core's sources: {files:?}");
    let problems = scan(root, &files, io_in_core);
    assert!(
        problems.is_empty(),
        "the engine core (sans-IO) uses I/O, a clock or async code:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn io_added_to_the_core_is_caught() {
    let clean = "use std::time::Instant;\n/// Never `async`, never `tokio`.\nfn f(now: Instant) {}\n\
                 #[cfg(test)]\nmod tests {\n    fn t() { let _ = std::time::Instant::now(); }\n}\n";
    assert_eq!(io_in_core(clean), Vec::<String>::new());
    for bad in [
        "use tokio::sync::mpsc;",
        "let s = std::net::UdpSocket::bind(a)?;",
        "fn f(s: tokio::net::TcpStream) {}",
        "let now = Instant::now();",
        "pub async fn resume(&mut self) {}",
        "self.signal.send(m).await;",
        "use crate::engine::Engine;",
    ] {
        assert!(!io_in_core(bad).is_empty(), "not caught: {bad}");
    }
}

/// The session layer's own types: the room ([`wavecast_session::Room`]) is built on them, and
/// nothing above the session crate names them.
const SESSION_INTERNALS: &[&str] = &[
    "Session",
    "SessionEvent",
    "SessionEvents",
    "SessionOptions",
    "SessionState",
    "SessionStats",
    "EngineEvent",
];

/// Where `source` names one of [`SESSION_INTERNALS`] as a whole word outside comments, as
/// `line: word`.
fn session_internals_in(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" // ").next().unwrap_or(code);
        let words = code.split(|c: char| !(c.is_alphanumeric() || c == '_'));
        for word in words {
            if SESSION_INTERNALS.contains(&word) {
                found.push(format!("{}: {word}", i + 1));
            }
        }
    }
    found
}

/// The workspace root (this package is `tests/`).
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent: the workspace root")
}

/// What `check` finds in each of `files`, as `path:line: word` (paths relative to `root`).
fn scan(root: &Path, files: &[std::path::PathBuf], check: fn(&str) -> Vec<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).expect("read source");
        for p in check(&text) {
            problems.push(format!(
                "{}:{p}",
                f.strip_prefix(root).unwrap_or(f).display()
            ));
        }
    }
    problems
}

/// The Rust sources below `dir`.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// Every app, the app-support crate, the media-stream crate (broadcast, recorder) and the load
/// test use the room model ([`wavecast_session::Room`], `LocalParticipant`, `RoomEvent`), never
/// the session underneath it.
#[test]
fn apps_use_the_room_not_the_session() {
    let root = workspace_root();
    let mut dirs: Vec<std::path::PathBuf> =
        ["crates/app/src", "crates/stream/src", "crates/loadtest/src"]
            .iter()
            .map(|d| root.join(d))
            .collect();
    for app in std::fs::read_dir(root.join("apps")).expect("apps/") {
        let src = app.expect("dir entry").path().join("src");
        if src.is_dir() {
            dirs.push(src);
        }
    }
    let files: Vec<_> = dirs.iter().flat_map(|d| rust_files(d)).collect();
    assert!(files.len() >= 20, "the apps' sources: {files:?}");
    let problems = scan(root, &files, session_internals_in);
    assert!(
        problems.is_empty(),
        "apps and the crates they are built from name the session layer instead of the room:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn a_session_type_in_an_app_is_caught() {
    let clean = "use wavecast_session::{Room, RoomEvent, SessionError};\n\
                 // the Session underneath rejoins\nstruct SessionTrack;\n";
    assert_eq!(session_internals_in(clean), Vec::<String>::new());
    for bad in [
        "use wavecast_session::{Session, SessionEvents};",
        "fn f(s: &wavecast_session::Session) {}",
        "Some(SessionEvent::TrackSubscribed(t)) => {}",
        "let o = SessionOptions::new(url, c);",
        "if let EngineEvent::ParticipantJoined(p) = ev {}",
    ] {
        assert!(!session_internals_in(bad).is_empty(), "not caught: {bad}");
    }
}

// The checker itself, on small made-up graphs.

fn pkg(name: &str, is_app: bool, normal: &[&str], dev: &[&str]) -> Package {
    Package {
        name: name.into(),
        is_app,
        normal: normal.iter().map(|s| s.to_string()).collect(),
        dev: dev.iter().map(|s| s.to_string()).collect(),
    }
}

const DOC: &str = "# picture\n```deps\n# comment\na:\nb: a ; t\nt: a\napp: b\n```\n";

#[test]
fn a_matching_graph_passes() {
    let declared = parse_declared(DOC).unwrap();
    let real = [
        pkg("a", false, &[], &[]),
        pkg("b", false, &["a"], &["t"]),
        pkg("t", false, &["a"], &[]),
        pkg("app", true, &["b"], &[]),
    ];
    assert_eq!(differences(&real, &declared), Vec::<String>::new());
}

#[test]
fn an_undeclared_edge_fails() {
    let declared = parse_declared(DOC).unwrap();
    let real = [
        pkg("a", false, &["t"], &[]),
        pkg("b", false, &["a"], &["t"]),
        pkg("t", false, &["a"], &[]),
        pkg("app", true, &["b"], &[]),
    ];
    assert_eq!(
        differences(&real, &declared),
        ["a has an undeclared dependency on t"]
    );
}

#[test]
fn a_stale_edge_a_missing_package_and_an_app_dependency_fail() {
    let declared = parse_declared(DOC).unwrap();
    let real = [
        pkg("a", false, &[], &[]),
        pkg("b", false, &[], &["t", "app"]),
        pkg("app", true, &["b"], &[]),
        pkg("new", false, &["a"], &[]),
    ];
    let d = differences(&real, &declared);
    assert!(
        d.iter()
            .any(|l| l == "b depends on the app app: nothing depends on an app"),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|l| l == "b has an undeclared dev-dependency on app"),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|l| l == "b is drawn with a dependency on a it does not have"),
        "{d:?}"
    );
    assert!(
        d.iter().any(|l| l.starts_with("new is not in the picture")),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|l| l == "t is drawn but is not a workspace package"),
        "{d:?}"
    );
}

#[test]
fn a_malformed_block_is_an_error() {
    assert!(parse_declared("no block").is_err());
    assert!(parse_declared("```deps\na: b\n").is_err());
    assert!(parse_declared("```deps\nnonsense line\n```").is_err());
    assert!(parse_declared("```deps\na:\na:\n```").is_err());
}
