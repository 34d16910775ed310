//! Windowed run (its own `main`: winit wants the main thread). Opens a window, renders at least
//! 60 frames while the resize script shrinks it to 1×1 and back and minimises it, writes a
//! screenshot, and checks it.
//!
//! Without a display it re-runs itself under `xvfb-run -a`; without Xvfb either it says why it
//! skipped (and fails when `WAVECAST_REQUIRE_GPU=1`, as in CI, where both exist).

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use wavecast_visualizer::demo::DemoScene;
use wavecast_visualizer::window::{WindowOptions, run};
use wavecast_visualizer::{RgbaImage, VisualizerError};

const MARKER: &str = "WAVECAST_WINDOWED_UNDER_XVFB";

fn required() -> bool {
    std::env::var("WAVECAST_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

fn main() -> ExitCode {
    // `cargo test` passes harness flags such as `--nocapture` or a name filter; a filter that does
    // not match this test's name skips it, as the built-in harness would.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        // The libtest listing format (nextest asks for it); no ignored tests here.
        if !args.iter().any(|a| a == "--ignored") {
            println!("windowed_run_with_resizes: test");
        }
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--ignored") {
        println!("0 passed, 0 failed");
        return ExitCode::SUCCESS;
    }
    if let Some(filter) = args.iter().find(|a| !a.starts_with('-'))
        && !"windowed_run_with_resizes".contains(filter.as_str())
    {
        println!("0 passed, 0 failed, 1 skipped");
        return ExitCode::SUCCESS;
    }
    let has_display = std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty());
    if !has_display {
        if std::env::var_os(MARKER).is_some() {
            eprintln!("windowed: xvfb-run gave no DISPLAY");
            return ExitCode::FAILURE;
        }
        let exe = std::env::current_exe().expect("own executable path");
        return match Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1920x1080x24"])
            .arg(exe)
            .args(&args)
            .env(MARKER, "1")
            .status()
        {
            Ok(s) if s.success() => ExitCode::SUCCESS,
            Ok(s) => {
                eprintln!("windowed: run under xvfb-run failed: {s}");
                ExitCode::FAILURE
            }
            Err(e) if !required() => {
                eprintln!(
                    "SKIPPED windowed_run_with_resizes: no DISPLAY and xvfb-run unavailable ({e})"
                );
                println!("0 passed, 0 failed, 1 skipped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("windowed: WAVECAST_REQUIRE_GPU=1 but xvfb-run cannot start: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Inside our own Xvfb, a window manager (when installed) makes minimising and fullscreen real;
    // without one X11 ignores those requests and the zero-size step stands in for minimising.
    let mut wm = None;
    if std::env::var_os(MARKER).is_some() {
        match Command::new("openbox")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(child) => {
                std::thread::sleep(Duration::from_millis(500));
                wm = Some(child);
            }
            Err(_) => eprintln!("windowed: no openbox, running without a window manager"),
        }
    }
    let outcome = windowed_run_with_resizes();
    if let Some(mut child) = wm {
        let _ = child.kill();
        let _ = child.wait();
    }
    match outcome {
        Ok(()) => {
            println!("test windowed_run_with_resizes ... ok");
            println!("1 passed, 0 failed");
            ExitCode::SUCCESS
        }
        Err(Skip(reason)) => {
            eprintln!("SKIPPED windowed_run_with_resizes: {reason}");
            println!("0 passed, 0 failed, 1 skipped");
            ExitCode::SUCCESS
        }
    }
}

struct Skip(String);

fn windowed_run_with_resizes() -> Result<(), Skip> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("visualizer-window");
    let shot = dir.join("windowed.png");
    let _ = std::fs::remove_file(&shot);
    let (w, h) = (960, 540);
    let opts = WindowOptions {
        title: "wavecast windowed test".into(),
        size: (w, h),
        frames: Some(60),
        screenshot: Some(shot.clone()),
        vsync: true,
        resize_script: true,
        timeout: Duration::from_secs(240),
    };
    let report = match run(opts, |gpu, format| {
        Ok(DemoScene::new(gpu, format, (640, 360), 9))
    }) {
        Ok(r) => r,
        Err(e @ VisualizerError::NoAdapter { .. }) if !required() => {
            return Err(Skip(e.to_string()));
        }
        Err(e) => panic!(
            "windowed run failed: {e} ({:?})",
            std::error::Error::source(&e)
        ),
    };
    println!(
        "windowed: {} frames rendered, {} skipped, {} reconfigures, sizes {:?}, {:.2} s, adapter {}",
        report.frames_rendered,
        report.frames_skipped,
        report.reconfigures,
        report.sizes,
        report.elapsed.as_secs_f64(),
        report.adapter
    );
    assert!(report.frames_rendered >= 60, "{report:?}");
    assert!(
        report.sizes.contains(&(1, 1)),
        "the window never became 1x1: {:?}",
        report.sizes
    );
    assert!(
        report.frames_skipped >= 1,
        "the zero-size state skipped no frame: {report:?}"
    );
    assert_eq!(
        report.sizes.last(),
        Some(&(w, h)),
        "not restored: {:?}",
        report.sizes
    );
    let img = RgbaImage::load_png(&shot).expect("screenshot written");
    assert_eq!((img.width, img.height), (w, h));
    // The screenshot shows the dashboard: not a single flat colour, and the video's first colour
    // bar (75 % white) appears in the video panel.
    let distinct: std::collections::HashSet<[u8; 4]> = img
        .data
        .chunks_exact(4)
        .map(|p| [p[0], p[1], p[2], p[3]])
        .take(200_000)
        .collect();
    assert!(
        distinct.len() > 50,
        "screenshot looks blank ({} colours)",
        distinct.len()
    );
    let layout = wavecast_visualizer::scene::DashboardLayout::new(w, h);
    let pic = layout.video.fit_aspect(16.0 / 9.0);
    let p = img
        .pixel((pic.x + pic.w / 16.0) as u32, (pic.y + pic.h * 0.1) as u32)
        .unwrap();
    assert!(
        p[..3].iter().all(|c| c.abs_diff(191) <= 6),
        "first bar pixel {p:?}"
    );
    Ok(())
}
