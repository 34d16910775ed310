//! Property tests for configuration values from files and the environment: NaN and infinities are
//! refused, durations are bounded, every refusal names the key and where the value came from, and
//! the reconnect policy's arithmetic is total.

use std::io::Write;
use std::time::Duration;

use proptest::prelude::*;
use wavecast_config::{ConfigError, Loader, ReconnectPolicy};

fn toml_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn load_file(text: &str) -> (tempfile::NamedTempFile, Result<wavecast_config::Config, ConfigError>) {
    let f = toml_file(text);
    let r = Loader::new()
        .file(f.path())
        .env_vars(Vec::<(String, String)>::new())
        .load();
    (f, r)
}

/// How TOML writes a float (`nan`, `inf` and `-inf` included).
fn toml_float(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        // Debug always has a `.` or an exponent, as TOML floats need.
        format!("{v:?}")
    }
}

/// Floats, with the special values and the range edges over-represented.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(-f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(1.0),
        Just(10.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        -20.0f64..20.0,
        any::<f64>(),
    ]
}

/// The problems of a failed load, which must all be about one key from one source: that key,
/// that source, the whole message.
fn only_problem(e: &ConfigError) -> Result<(String, String, String), TestCaseError> {
    let problems = e.problems();
    prop_assert!(!problems.is_empty(), "{}", e);
    let p = &problems[0];
    for other in problems {
        prop_assert_eq!(&other.key, &p.key, "{}", e);
        prop_assert_eq!(&other.origin, &p.origin, "{}", e);
    }
    Ok((p.key.clone(), p.origin.clone(), e.to_string()))
}

/// Cases per property; failures are not persisted to files (the shrunk input is printed).
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(200))]

    /// Regression: `multiplier = nan` and `jitter = nan` passed validation (NaN fails every
    /// comparison, so `v < lo || v > hi` is false) and reached the backoff arithmetic.
    #[test]
    fn reconnect_floats_from_a_file(multiplier in any::<bool>(), v in float()) {
        let key = if multiplier { "multiplier" } else { "jitter" };
        let (lo, hi) = if multiplier { (1.0, 10.0) } else { (0.0, 1.0) };
        let (f, r) = load_file(&format!("[reconnect]\n{key} = {}\n", toml_float(v)));
        let valid = v.is_finite() && (lo..=hi).contains(&v);
        match r {
            Ok(c) => {
                prop_assert!(valid, "{key} = {v} accepted");
                let got = if multiplier { c.reconnect.multiplier } else { c.reconnect.jitter };
                prop_assert_eq!(got.to_bits(), v.to_bits());
            }
            Err(e) => {
                prop_assert!(!valid, "{key} = {v} refused: {e}");
                let (k, origin, text) = only_problem(&e)?;
                prop_assert_eq!(k, format!("reconnect.{key}"));
                prop_assert_eq!(origin, format!("{}:2", f.path().display()));
                prop_assert!(text.contains(&format!("between {lo} and {hi}")), "{text}");
                if !v.is_finite() {
                    prop_assert!(text.contains("must be a finite number"), "{text}");
                }
            }
        }
    }

    #[test]
    fn reconnect_floats_from_the_environment(value in prop_oneof![
        Just("NaN".to_owned()), Just("nan".to_owned()), Just("inf".to_owned()),
        Just("-inf".to_owned()), Just("infinity".to_owned()), Just("1e999".to_owned()),
        "[-+]?[0-9]{0,3}(\\.[0-9]{0,3})?(e[-+]?[0-9]{1,3})?", any::<String>(),
    ]) {
        let var = "WAVECAST_RECONNECT__JITTER";
        let r = Loader::new().no_file().env_vars([(var, value.as_str())]).load();
        match r {
            Ok(c) => {
                let j = c.reconnect.jitter;
                prop_assert!(j.is_finite() && (0.0..=1.0).contains(&j), "{value:?} gave {j}");
            }
            Err(e) => {
                let (k, origin, _) = only_problem(&e)?;
                prop_assert_eq!(k, "reconnect.jitter");
                prop_assert_eq!(origin, format!("environment variable {var}"));
            }
        }
    }

    #[test]
    fn durations_are_bounded(key in prop_oneof![
        Just(("reconnect", "initial_delay", Duration::from_secs(300))),
        Just(("reconnect", "max_delay", Duration::from_secs(3600))),
        Just(("connection", "connect_timeout", Duration::from_secs(300))),
    ], ms in prop_oneof![0u64..10, 0u64..5_000_000, any::<u64>()]) {
        let (section, name, hi) = key;
        // Keep the other delay out of the way: initial_delay must not exceed max_delay.
        let other = match name {
            "initial_delay" => "max_delay = \"1h\"\n",
            "max_delay" => "initial_delay = \"1ms\"\n",
            _ => "",
        };
        let text = format!("[{section}]\n{name} = \"{ms}ms\"\n{other}");
        let (f, r) = load_file(&text);
        let d = Duration::from_millis(ms);
        let valid = d >= Duration::from_millis(1) && d <= hi;
        match r {
            Ok(_) => prop_assert!(valid, "{text} accepted"),
            Err(e) => {
                prop_assert!(!valid, "{text} refused: {e}");
                // The value's own problem comes first; a too-small max_delay may also put
                // initial_delay (from the next line) over it.
                let p = &e.problems()[0];
                prop_assert_eq!(&p.key, &format!("{section}.{name}"), "{}", e);
                prop_assert_eq!(&p.origin, &format!("{}:2", f.path().display()));
                prop_assert!(p.message.contains("must be between 1ms and") || p.message.contains("not allowed"), "{}", e);
                for other in &e.problems()[1..] {
                    prop_assert_eq!(other.key.as_str(), "reconnect.initial_delay", "{}", e);
                    prop_assert!(other.message.contains("must not exceed reconnect.max_delay"), "{}", e);
                }
            }
        }
    }

    /// Regression: `max_delay` of centuries passed validation and overflowed clock arithmetic.
    #[test]
    fn huge_duration_text_is_refused(n in 1u64..u64::MAX, unit in prop_oneof![
        Just("y"), Just("months"), Just("w"), Just("d"), Just("h"), Just("s"),
    ]) {
        let text = format!("[reconnect]\nmax_delay = \"{n}{unit}\"\ninitial_delay = \"1ms\"\n");
        let (f, r) = load_file(&text);
        let secs = match unit { "y" => 31_557_600, "months" => 2_630_016, "w" => 604_800, "d" => 86_400, "h" => 3_600, _ => 1 };
        match r {
            Ok(c) => {
                prop_assert!(n.saturating_mul(secs) <= 3600, "{text}");
                prop_assert!(c.reconnect.max_delay <= Duration::from_secs(3600));
            }
            Err(e) => {
                let (k, origin, _) = only_problem(&e)?;
                prop_assert_eq!(k, "reconnect.max_delay");
                prop_assert_eq!(origin, format!("{}:2", f.path().display()));
            }
        }
    }

    /// Any value of any type under any known key: a config or problems that each name a key and
    /// the file (or a syntax error naming the file) — never a panic.
    #[test]
    fn any_value_under_any_key(section in prop_oneof![
        Just("connection"), Just("reconnect"), Just("audio"), Just("video"), Just("bogus"),
    ], key in prop_oneof![
        Just("url"), Just("room"), Just("api_key"), Just("api_secret"), Just("identity"),
        Just("connect_timeout"), Just("initial_delay"), Just("max_delay"), Just("multiplier"),
        Just("jitter"), Just("max_attempts"), Just("sample_rate"), Just("channels"),
        Just("width"), Just("height"), Just("fps"), Just("codec"), Just("bitrate"), Just("x"),
    ], value in prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        float().prop_map(toml_float),
        any::<String>().prop_map(|s| toml::Value::String(s).to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("[1, 2]".to_owned()),
        Just("{ a = 1 }".to_owned()),
        "\"[0-9]{1,25}(ns|ms|s|m|h|d|y)\"",
        "[ -~]{0,20}",
    ]) {
        let text = format!("[{section}]\n{key} = {value}\n");
        let (f, r) = load_file(&text);
        let path = f.path().display().to_string();
        match r {
            Ok(_) => {}
            Err(ConfigError::Syntax { path: p, .. }) => prop_assert_eq!(p.as_path(), f.path()),
            Err(e) => {
                prop_assert!(!e.problems().is_empty(), "{e:?}");
                for p in e.problems() {
                    prop_assert!(!p.key.is_empty(), "{e}");
                    prop_assert!(p.origin.contains(&path) || p.origin == "default", "{e}");
                }
                if key == "api_secret" && section == "connection" {
                    let shown = e.to_string();
                    let raw = value.trim_matches('"');
                    if raw.len() >= 8 && !path.contains(raw) {
                        prop_assert!(!shown.contains(raw), "secret echoed: {shown}");
                    }
                }
            }
        }
    }

    /// The backoff arithmetic is total even for values the loader would refuse, and never exceeds
    /// the cap.
    #[test]
    fn backoff_delay_is_total_and_capped(initial in any::<(u64, u32)>(), max in any::<(u64, u32)>(),
                                         multiplier in float(), jitter in float(),
                                         attempt in any::<u32>(), unit in float()) {
        let p = ReconnectPolicy {
            initial_delay: Duration::new(initial.0, initial.1 % 1_000_000_000),
            max_delay: Duration::new(max.0, max.1 % 1_000_000_000),
            multiplier,
            jitter,
            max_attempts: 10,
        };
        let d = p.delay(attempt, unit);
        prop_assert!(d <= p.max_delay, "{d:?} > {:?}", p.max_delay);
    }

    /// For valid policies, with the jitter pinned at its midpoint, delays never shrink.
    #[test]
    fn valid_backoff_grows_monotonically(initial_ms in 1u64..300_000, max_ms in 1u64..3_600_000,
                                         multiplier in 1.0f64..=10.0, jitter in 0.0f64..=1.0) {
        let p = ReconnectPolicy {
            initial_delay: Duration::from_millis(initial_ms.min(max_ms)),
            max_delay: Duration::from_millis(max_ms),
            multiplier,
            jitter,
            max_attempts: 10,
        };
        let mut last = Duration::ZERO;
        for attempt in 1..80 {
            let d = p.delay(attempt, 0.5);
            prop_assert!(d + Duration::from_micros(1) >= last, "attempt {attempt}: {d:?} < {last:?}");
            prop_assert!(d <= p.max_delay);
            last = d;
        }
    }
}
