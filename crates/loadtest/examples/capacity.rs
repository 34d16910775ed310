//! Capacity bench: how many 360p30 subscribers one machine sustains (≥ 99 % frames delivered and
//! glass-to-glass p95 < 200 ms), wavecast against the official Python SDK, same run, same server.
//!
//! ```text
//! cargo run --release -p wavecast-loadtest --example capacity -- [--ladder 10,20,30] [--seconds 20] [--cluster] [--no-python]
//! ```
//!
//! Starts a private livekit-server (or, with `--cluster`, two nodes sharing a Redis) through the
//! test bed. For each N of the ladder, two steps back to back:
//!
//! - **wavecast**: one load test in this process: 1 publisher (640x360 at 30 fps, 600 kbit/s, tone)
//!   and N subscribers that decode every frame;
//! - **Python**: the same publisher (a load test in this process with 1 publisher and 1 wavecast
//!   subscriber) while `tests/python/load_subscribers.py` runs N official-SDK subscribers in one
//!   asyncio process, decoding every frame and reading the same stamps.
//!
//! Prints one Markdown row per step and, at the end, the largest N each side sustained.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use wavecast_loadtest::{LoadTest, LoadTestConfig, Report};
use wavecast_testbed::{API_KEY, API_SECRET, Servers};
use wavecast_token::Keys;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn config(urls: &[String], room_prefix: &str, subscribers: usize, seconds: u64) -> LoadTestConfig {
    let mut c = LoadTestConfig::new(urls[0].clone(), Keys::new(API_KEY, API_SECRET));
    c.extra_urls = urls[1..].to_vec();
    c.publishers = 1;
    c.subscribers = subscribers;
    c.rooms = 1;
    c.room_prefix = room_prefix.into();
    c.duration = Duration::from_secs(seconds);
    c.join_timeout = Duration::from_secs(20);
    c
}

async fn load(c: LoadTestConfig, decode: tokio::runtime::Handle) -> Report {
    LoadTest::new(c)
        .expect("valid bench config")
        .decode_on(decode)
        .run(CancellationToken::new())
        .await
        .expect("load test runs")
}

fn sustained(delivered: Option<f64>, p95: Option<f64>, joined_all: bool) -> bool {
    joined_all && delivered.is_some_and(|d| d >= 99.0) && p95.is_some_and(|p| p < 200.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ladder: Vec<usize> = arg(&args, "--ladder")
        .unwrap_or_else(|| "5,10,20,30".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("--ladder takes numbers, e.g. 10,20,30")
        })
        .collect();
    let seconds: u64 = arg(&args, "--seconds").map_or(20, |s| s.parse().expect("--seconds N"));
    let cluster_mode = args.iter().any(|a| a == "--cluster");
    let python = !args.iter().any(|a| a == "--no-python");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let net = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("runtime");
    let decode = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("decode")
        .enable_all()
        .build()
        .expect("runtime");

    let servers = Servers::start(if cluster_mode { 2 } else { 1 }).expect("server(s) start");
    let urls = servers.ws_urls();
    eprintln!("server(s): {urls:?}; ladder {ladder:?}; {seconds} s per step");
    println!(
        "| N | SDK | joined | frames delivered % | g2g p50 / p95 / p99 (ms) | first frame p50 / p95 (ms) | CPU subscribers process (% core) | CPU publisher process (% core) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let (mut best_ours, mut best_py) = (0usize, 0usize);
    for (step, &n) in ladder.iter().enumerate() {
        // wavecast: publisher and N subscribers in this process.
        let r = net.block_on(load(
            config(&urls, &format!("cap-rs{step}"), n, seconds),
            decode.handle().clone(),
        ));
        let t = &r.total;
        let lat = t.latency;
        println!(
            "| {n} | wavecast | {}/{} | {:.2} | {:.1} / {:.1} / {:.1} | {:.0} / {:.0} | {:.0} (incl. publisher) | – |",
            t.joined,
            t.subscribers,
            t.frames_delivered_pct.unwrap_or(f64::NAN),
            lat.map_or(f64::NAN, |l| l.p50_ms),
            lat.map_or(f64::NAN, |l| l.p95_ms),
            lat.map_or(f64::NAN, |l| l.p99_ms),
            t.first_frame_ms.map_or(f64::NAN, |q| q.p50_ms),
            t.first_frame_ms.map_or(f64::NAN, |q| q.p95_ms),
            r.cpu.percent_of_one_core,
        );
        if sustained(
            t.frames_delivered_pct,
            lat.map(|l| l.p95_ms),
            r.all_joined(),
        ) {
            best_ours = best_ours.max(n);
        }
        if !python {
            continue;
        }
        // Python: the same publisher (plus one wavecast subscriber) here, N SDK subscribers there.
        let room = format!("cap-py{step}");
        let publisher = config(&urls, &room, 1, seconds + 300);
        let cancel = CancellationToken::new();
        let test = LoadTest::new(publisher)
            .expect("valid")
            .decode_on(decode.handle().clone());
        let stop = cancel.clone();
        let pub_task = net.spawn(async move { test.run(stop).await });
        std::thread::sleep(Duration::from_secs(2));
        let mut cmd = Command::new(wavecast_testbed::python().expect("venv"));
        cmd.arg(wavecast_testbed::python_script("load_subscribers.py"))
            .args([
                "--room",
                &format!("{room}-0"),
                "--subscribers",
                &n.to_string(),
            ])
            .args(["--seconds", &seconds.to_string()])
            .env("LIVEKIT_URL", &urls[step % urls.len()])
            .env("LIVEKIT_API_KEY", API_KEY)
            .env("LIVEKIT_API_SECRET", API_SECRET)
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("start python");
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let mut result = Value::Null;
        for line in out.lines().map_while(Result::ok) {
            if let Some(j) = line.strip_prefix("RESULT ") {
                result = serde_json::from_str(j).expect("RESULT is JSON");
            }
        }
        let _ = child.wait();
        cancel.cancel();
        let pub_report = net
            .block_on(pub_task)
            .expect("publisher task")
            .expect("publisher runs");
        let f = |k: &str| result[k].as_f64().unwrap_or(f64::NAN);
        let joined = result["joined"].as_u64().unwrap_or(0);
        println!(
            "| {n} | Python SDK | {joined}/{n} | {:.2} | {:.1} / {:.1} / {:.1} | {:.0} / {:.0} | {:.0} | {:.0} (publisher + 1 wavecast subscriber) |",
            f("frames_delivered_pct"),
            f("latency_ms_p50"),
            f("latency_ms_p95"),
            f("latency_ms_p99"),
            f("first_frame_ms_p50"),
            f("first_frame_ms_p95"),
            f("cpu_percent_of_one_core"),
            pub_report.cpu.percent_of_one_core,
        );
        if sustained(
            result["frames_delivered_pct"].as_f64(),
            result["latency_ms_p95"].as_f64(),
            joined == n as u64,
        ) {
            best_py = best_py.max(n);
        }
    }
    println!();
    println!(
        "sustained (≥ 99 % delivered, p95 < 200 ms, all joined): wavecast {best_ours}{}",
        if python {
            format!(", Python SDK {best_py}")
        } else {
            String::new()
        }
    );
}
