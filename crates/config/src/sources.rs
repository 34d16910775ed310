//! The layers (defaults, file, environment, flags) and turning figment's errors into [`Problem`]s.

use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use crate::error::{ConfigError, Problem};
use crate::model::Config;

/// The config file read when no `--config` is given (relative to the working directory; optional).
pub const DEFAULT_FILE: &str = "config/livekit.toml";

/// Environment variables with their own names, and the keys they set.
const LIVEKIT_VARS: [(&str, &str); 3] = [
    ("LIVEKIT_URL", "connection.url"),
    ("LIVEKIT_API_KEY", "connection.api_key"),
    ("LIVEKIT_API_SECRET", "connection.api_secret"),
];
/// Prefix of the generic variables: `WAVECAST_<SECTION>__<KEY>`.
const PREFIX: &str = "WAVECAST_";

/// Keys that hold secrets: their values are never echoed in messages.
const SECRET_KEYS: [&str; 3] = [
    "connection.api_secret",
    "service.auth_secret",
    "service.admin_key",
];

/// Collects the layers and loads a validated [`Config`].
#[derive(Debug, Clone)]
pub struct Loader {
    file: Option<(PathBuf, bool)>,
    env: Option<Vec<(String, String)>>,
    flags: Vec<(String, String, Value)>,
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

impl Loader {
    /// Defaults, the optional [`DEFAULT_FILE`], the process environment, no flags.
    pub fn new() -> Self {
        Self {
            file: Some((PathBuf::from(DEFAULT_FILE), false)),
            env: None,
            flags: Vec::new(),
        }
    }

    /// Read `path` instead of the default file; it must exist.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some((path.into(), true));
        self
    }

    /// Read no file at all.
    pub fn no_file(mut self) -> Self {
        self.file = None;
        self
    }

    /// Use these variables instead of the process environment (for tests and embedding).
    pub fn env_vars<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// A value set by command-line flag `flag` (e.g. `--fps`) for dotted `key` (e.g. `video.fps`).
    /// Call only for flags the user actually gave, so that unset flags do not mask lower layers.
    pub fn flag(mut self, key: &str, flag: &str, value: impl serde::Serialize) -> Self {
        let value = Value::serialize(value).unwrap_or_else(|e| Value::from(e.to_string()));
        self.flags.push((key.to_owned(), flag.to_owned(), value));
        self
    }

    /// The layered figment, before extraction (for inspection).
    pub fn figment(&self) -> Result<Figment, ConfigError> {
        let mut fig = Figment::from(Named(
            Serialized::defaults(Config::default()),
            Metadata::named("default"),
        ));
        if let Some((path, required)) = &self.file {
            if path.is_file() {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                if let Err(e) = text.parse::<toml::Table>() {
                    let line = e.span().map(|s| text[..s.start].lines().count().max(1));
                    return Err(ConfigError::Syntax {
                        path: path.clone(),
                        line,
                        message: e.message().to_owned(),
                    });
                }
                fig = fig.merge(Toml::file_exact(path));
            } else if *required {
                let source = if path.exists() {
                    std::io::Error::other("not a regular file")
                } else {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
                };
                return Err(ConfigError::Read {
                    path: path.clone(),
                    source,
                });
            }
        }
        let env: Vec<(String, String)> = self
            .env
            .clone()
            .unwrap_or_else(|| std::env::vars().collect());
        for (var, key) in LIVEKIT_VARS {
            if let Some((_, v)) = env.iter().find(|(k, _)| k == var) {
                fig = fig.merge(Named(
                    Serialized::global(key, v.clone()),
                    Metadata::named(format!("environment variable {var}")),
                ));
            }
        }
        for (var, v) in &env {
            let Some(rest) = var.strip_prefix(PREFIX) else {
                continue;
            };
            let Some((section, name)) = rest.split_once("__") else {
                continue;
            };
            let key = format!("{}.{}", section.to_lowercase(), name.to_lowercase());
            let value: Value = v.parse().unwrap_or_else(|_| Value::from(v.clone()));
            fig = fig.merge(Named(
                Serialized::global(&key, value),
                Metadata::named(format!("environment variable {var}")),
            ));
        }
        for (key, flag, value) in &self.flags {
            fig = fig.merge(Named(
                Serialized::global(key, value.clone()),
                Metadata::named(format!("command-line flag {flag}")),
            ));
        }
        Ok(fig)
    }

    /// Layer, extract and validate. Every problem is reported at once.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let fig = self.figment()?;
        let config: Config = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(problems_of(e)))?;
        let problems: Vec<Problem> = config
            .violations()
            .into_iter()
            .map(|v| {
                let meta = fig.find_metadata(v.key);
                let value = if SECRET_KEYS.contains(&v.key) && v.value != "<missing>" {
                    "[redacted]".to_owned()
                } else {
                    v.value
                };
                let origin = match v.required_by {
                    Some(other) => format!(
                        "{other} is set by {}",
                        origin(fig.find_metadata(other), &split_key(other))
                    ),
                    None => origin(meta, &split_key(v.key)),
                };
                Problem {
                    key: v.key.to_owned(),
                    value: Some(value),
                    origin,
                    message: v.message,
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

fn split_key(key: &str) -> Vec<String> {
    key.split('.').map(str::to_owned).collect()
}

/// A provider with our own metadata (so each value's source reads as a person would name it).
struct Named<P>(P, Metadata);

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        self.1.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.0.data()
    }
}

/// Where a value came from, with the line for files.
fn origin(meta: Option<&Metadata>, path: &[String]) -> String {
    let Some(meta) = meta else {
        return "unknown source".into();
    };
    match &meta.source {
        Some(Source::File(file)) => match find_line(file, path) {
            Some(line) => format!("{}:{line}", display_path(file)),
            None => display_path(file),
        },
        _ => meta.name.to_string(),
    }
}

/// Paths under the working directory are shown relative to it, as the user typed them.
fn display_path(file: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    match cwd.as_deref().and_then(|c| file.strip_prefix(c).ok()) {
        Some(rel) => rel.display().to_string(),
        None => file.display().to_string(),
    }
}

/// The 1-based line that sets `path` (`[section]` then `key = …`) in a TOML file.
fn find_line(file: &Path, path: &[String]) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
    let (section, key) = match path {
        [s, k, ..] => (s.as_str(), Some(k.as_str())),
        [s] => (s.as_str(), None),
        [] => return None,
    };
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = h.trim().to_owned();
            if key.is_none() && current == section {
                return Some(i + 1);
            }
            continue;
        }
        let Some((k, _)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim().trim_matches('"');
        let hit = match key {
            Some(key) => {
                (current == section && k == key)
                    || (current.is_empty() && k == format!("{section}.{key}"))
            }
            None => current.is_empty() && (k == section || k.starts_with(&format!("{section}."))),
        };
        if hit {
            return Some(i + 1);
        }
    }
    None
}

/// Turn figment's extraction errors into problems.
fn problems_of(err: figment::Error) -> Vec<Problem> {
    use figment::error::Kind;
    err.into_iter()
        .map(|e| {
            let mut path = e.path.clone();
            let (value, message) = match &e.kind {
                Kind::UnknownField(field, expected) => {
                    // figment's path already ends with the unknown field.
                    if path.last() != Some(field) {
                        path.push(field.clone());
                    }
                    let prefix = path[..path.len() - 1].join(".");
                    let suggestion = expected
                        .iter()
                        .map(|c| (strsim::osa_distance(field, c), *c))
                        .filter(|(d, c)| *d <= 2 && *d < c.len().min(field.len()))
                        .min_by_key(|(d, _)| *d)
                        .map(|(_, c)| {
                            let full = if prefix.is_empty() {
                                c.to_owned()
                            } else {
                                format!("{prefix}.{c}")
                            };
                            format!("; did you mean `{full}`?")
                        })
                        .unwrap_or_default();
                    (
                        None,
                        format!("unknown key{suggestion} (known: {})", expected.join(", ")),
                    )
                }
                Kind::InvalidType(actual, expected) => (
                    Some(actual.to_string()),
                    format!("has the wrong type: expected {expected}"),
                ),
                Kind::InvalidValue(actual, expected) => (
                    Some(actual.to_string()),
                    format!("is not allowed: expected {expected}"),
                ),
                Kind::UnknownVariant(v, expected) => (
                    Some(format!("{v:?}")),
                    format!("must be one of {}", expected.join(", ")),
                ),
                other => (None, other.to_string()),
            };
            let key = path.join(".");
            let value = if SECRET_KEYS.contains(&key.as_str()) {
                value.map(|_| "[redacted]".into())
            } else {
                value
            };
            Problem {
                key,
                value,
                origin: origin(e.metadata.as_ref(), &path),
                message,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn err(loader: Loader) -> ConfigError {
        loader
            .env_vars(Vec::<(String, String)>::new())
            .load()
            .expect_err("should fail")
    }

    #[test]
    fn layers_override_in_order() {
        let f =
            file("[video]\nfps = 10\nwidth = 640\nheight = 360\n[connection]\nroom = \"file\"\n");
        let c = Loader::new()
            .file(f.path())
            .env_vars([
                ("WAVECAST_VIDEO__FPS", "20"),
                ("LIVEKIT_URL", "wss://example.test"),
            ])
            .flag("video.width", "--width", 320u32)
            .load()
            .unwrap();
        assert_eq!(c.video.fps, 20, "env beats file");
        assert_eq!(c.video.width, 320, "flag beats file");
        assert_eq!(c.video.height, 360, "file beats default");
        assert_eq!(c.connection.room, "file");
        assert_eq!(c.connection.url, "wss://example.test");
        assert_eq!(c.video.bitrate, 1500, "default stays");
    }

    #[test]
    fn out_of_range_names_key_file_and_line() {
        let f = file("# comment\n[video]\nwidth = 640\nfps = 0\n");
        let e = err(Loader::new().file(f.path()));
        let text = e.to_string();
        let want = format!(
            "video.fps = 0 ({}:4): must be between 1 and 120",
            f.path().display()
        );
        assert_eq!(text, want);
    }

    #[test]
    fn out_of_range_from_env_and_flag_name_them() {
        let e = Loader::new()
            .no_file()
            .env_vars([("WAVECAST_AUDIO__CHANNELS", "7")])
            .flag("video.fps", "--fps", 500u32)
            .load()
            .unwrap_err()
            .to_string();
        assert!(e.contains("audio.channels = 7 (environment variable WAVECAST_AUDIO__CHANNELS): must be between 1 and 2"), "{e}");
        assert!(
            e.contains("video.fps = 500 (command-line flag --fps): must be between 1 and 120"),
            "{e}"
        );
    }

    #[test]
    fn malformed_toml_names_file_and_line() {
        let f = file("[video]\nfps = 30\nwidth = = 3\n");
        match err(Loader::new().file(f.path())) {
            ConfigError::Syntax {
                path,
                line,
                message,
            } => {
                assert_eq!(path, f.path());
                assert_eq!(line, Some(3));
                assert!(!message.is_empty());
            }
            other => panic!("expected a syntax error, got {other}"),
        }
    }

    #[test]
    fn wrong_type_names_key_and_source() {
        let f = file("[video]\nfps = \"fast\"\n");
        let e = err(Loader::new().file(f.path())).to_string();
        assert!(e.starts_with("video.fps = string \"fast\""), "{e}");
        assert!(e.contains(&format!("({}:2)", f.path().display())), "{e}");
        assert!(e.contains("wrong type: expected u32"), "{e}");
    }

    #[test]
    fn transport_takes_its_three_words_and_names_a_wrong_one() {
        let f = file("[connection]\ntransport = \"tcp\"\n");
        let c = Loader::new()
            .file(f.path())
            .load()
            .expect("tcp is a transport");
        assert_eq!(c.connection.transport, crate::Transport::Tcp);
        let c = Loader::new()
            .no_file()
            .flag("connection.transport", "--transport", "udp")
            .load()
            .expect("udp is a transport");
        assert_eq!(c.connection.transport, crate::Transport::Udp);
        let f = file("[connection]\ntransport = \"pigeon\"\n");
        let e = Loader::new().file(f.path()).load().unwrap_err().to_string();
        assert!(e.contains("connection.transport"), "{e}");
        assert!(e.contains("pigeon"), "{e}");
    }

    #[test]
    fn unknown_key_suggests_the_close_one() {
        let f = file("[video]\nfsp = 30\n");
        let e = err(Loader::new().file(f.path())).to_string();
        assert!(e.contains("video.fsp"), "{e}");
        assert!(e.contains("did you mean `video.fps`?"), "{e}");
        assert!(e.contains(&format!("{}:2", f.path().display())), "{e}");
        let f = file("[vidoe]\nfps = 30\n");
        let e = err(Loader::new().file(f.path())).to_string();
        assert!(
            e.contains("vidoe") && e.contains("did you mean `video`?"),
            "{e}"
        );
    }

    #[test]
    fn missing_secret_names_both_keys() {
        let e = Loader::new()
            .no_file()
            .env_vars([("LIVEKIT_API_KEY", "devkey")])
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "connection.api_secret = <missing> (connection.api_key is set by environment variable LIVEKIT_API_KEY): is missing"
            ),
            "{e}"
        );
        assert!(e.contains("LIVEKIT_API_SECRET"), "{e}");
    }

    #[test]
    fn url_scheme_is_checked_and_names_the_source() {
        let e = Loader::new()
            .no_file()
            .env_vars([("LIVEKIT_URL", "ftp://127.0.0.1:7880")])
            .load()
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "connection.url = \"ftp://127.0.0.1:7880\" (environment variable LIVEKIT_URL): scheme \"ftp\" is not allowed: use ws, wss, http or https"
        );
        let e = Loader::new()
            .no_file()
            .env_vars([("LIVEKIT_URL", "127.0.0.1:7880")])
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("connection.url = \"127.0.0.1:7880\" (environment variable LIVEKIT_URL)"),
            "{e}"
        );
    }

    #[test]
    fn secrets_are_never_echoed() {
        let f = file("[connection]\napi_key = \"k\"\napi_secret = 42\n");
        let e = err(Loader::new().file(f.path())).to_string();
        assert!(e.contains("connection.api_secret = [redacted]"), "{e}");
        assert!(!e.contains("42"), "{e}");
    }

    #[test]
    fn explicit_missing_file_is_an_error_but_default_file_is_optional() {
        let e = err(Loader::new().file("/nonexistent/wavecast.toml"));
        assert!(e.to_string().contains("/nonexistent/wavecast.toml"), "{e}");
        // Tests run in crates/config, where no config/livekit.toml exists: the default file is optional.
        assert!(!Path::new(DEFAULT_FILE).exists());
        assert!(
            Loader::new()
                .env_vars(Vec::<(String, String)>::new())
                .load()
                .is_ok()
        );
    }

    #[test]
    fn all_problems_are_reported_together() {
        let f = file("[video]\nfps = 0\nwidth = 17\n");
        let e = err(Loader::new().file(f.path()));
        let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["video.width", "video.fps"]);
    }

    #[test]
    fn durations_parse_from_human_text() {
        let f = file("[reconnect]\ninitial_delay = \"250ms\"\nmax_delay = \"5s\"\n");
        let c = Loader::new()
            .file(f.path())
            .env_vars(Vec::<(String, String)>::new())
            .load()
            .unwrap();
        assert_eq!(
            c.reconnect.initial_delay,
            std::time::Duration::from_millis(250)
        );
        assert_eq!(c.reconnect.max_delay, std::time::Duration::from_secs(5));
    }
}
