//! Opens the demo dashboard in a window.
//!
//! ```text
//! cargo run -p wavecast-visualizer --example window -- [--frames N] [--screenshot PATH]
//!     [--size WxH] [--participants N] [--no-vsync] [--resize-script]
//! ```
//! Keys: F toggles fullscreen, Q or Esc quits. Under Xvfb: `xvfb-run -a cargo run ...`.

use std::path::PathBuf;
use std::process::ExitCode;

use wavecast_visualizer::demo::DemoScene;
use wavecast_visualizer::window::{WindowOptions, run};

fn parse() -> Result<(WindowOptions, usize), String> {
    let mut opts = WindowOptions {
        title: "wavecast visualizer".into(),
        ..WindowOptions::default()
    };
    let mut participants = 9;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--frames" => {
                let v = value("--frames")?;
                opts.frames = Some(v.parse().map_err(|e| format!("--frames {v:?}: {e}"))?);
            }
            "--screenshot" => opts.screenshot = Some(PathBuf::from(value("--screenshot")?)),
            "--size" => {
                let v = value("--size")?;
                let (w, h) = v
                    .split_once('x')
                    .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                    .ok_or(format!("--size {v:?}: expected WxH, e.g. 1280x720"))?;
                opts.size = (w, h);
            }
            "--participants" => {
                let v = value("--participants")?;
                participants = v
                    .parse()
                    .map_err(|e| format!("--participants {v:?}: {e}"))?;
            }
            "--no-vsync" => opts.vsync = false,
            "--resize-script" => opts.resize_script = true,
            "-h" | "--help" => {
                return Err(
                    "usage: window [--frames N] [--screenshot PATH] [--size WxH] \
                            [--participants N] [--no-vsync] [--resize-script]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if opts.screenshot.is_some() && opts.frames.is_none() {
        return Err("--screenshot needs --frames".into());
    }
    Ok((opts, participants))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wgpu_core=warn,wgpu_hal=warn".into()),
        )
        .init();
    let (opts, participants) = match parse() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(opts, |gpu, format| {
        Ok(DemoScene::new(gpu, format, (1280, 720), participants))
    }) {
        Ok(report) => {
            let secs = report.elapsed.as_secs_f64();
            println!(
                "rendered {} frames ({} skipped, {} reconfigures) in {secs:.2} s ({:.1} fps) on {} as {:?}",
                report.frames_rendered,
                report.frames_skipped,
                report.reconfigures,
                report.frames_rendered as f64 / secs.max(1e-9),
                report.adapter,
                report.format,
            );
            if let Some(p) = report.screenshot {
                println!("screenshot: {}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
