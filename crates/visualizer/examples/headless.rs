//! Renders the demo dashboard headless and writes it as a PNG (no window system needed).
//!
//! ```text
//! cargo run -p wavecast-visualizer --example headless -- [--out PATH] [--size WxH] [--frame N]
//!     [--participants N]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use wavecast_visualizer::demo::DemoScene;
use wavecast_visualizer::headless::HEADLESS_FORMAT;
use wavecast_visualizer::{Gpu, render_headless};

struct Args {
    out: PathBuf,
    size: (u32, u32),
    frame: u64,
    participants: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        out: PathBuf::from("dashboard.png"),
        size: (1280, 720),
        frame: 0,
        participants: 9,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => a.out = PathBuf::from(value()?),
            "--size" => {
                let v = value()?;
                a.size = v
                    .split_once('x')
                    .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                    .ok_or(format!("--size {v:?}: expected WxH, e.g. 1280x720"))?;
            }
            "--frame" => {
                let v = value()?;
                a.frame = v.parse().map_err(|e| format!("--frame {v:?}: {e}"))?;
            }
            "--participants" => {
                let v = value()?;
                a.participants = v
                    .parse()
                    .map_err(|e| format!("--participants {v:?}: {e}"))?;
            }
            "-h" | "--help" => {
                return Err(
                    "usage: headless [--out PATH] [--size WxH] [--frame N] [--participants N]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = Gpu::headless().and_then(|gpu| {
        let mut scene = DemoScene::new(&gpu, HEADLESS_FORMAT, (1280, 720), args.participants);
        let img = render_headless(&gpu, &mut scene, args.size.0, args.size.1, args.frame)?;
        img.save_png(&args.out)?;
        Ok(gpu.info().name)
    });
    match result {
        Ok(adapter) => {
            println!(
                "wrote {} ({}x{}) on {adapter}",
                args.out.display(),
                args.size.0,
                args.size.1
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
