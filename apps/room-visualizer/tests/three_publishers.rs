//! room-visualizer headless with three publishers — two broadcasters and one official Python SDK
//! participant — renders three tiles with their names.

use wavecast_testbed::apps as common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_room-visualizer");

#[test]
fn three_publishers_three_named_tiles() {
    let (server, broadcaster) = common::server_and_broadcaster(BIN);
    let url = server.ws_url();
    let room = "grid";
    let mut casters = Vec::new();
    for (id, name, tone) in [("ada", "Ada Caster", "330"), ("bob", "Bob Caster", "550")] {
        let mut b =
            common::broadcaster_command(&broadcaster, &url, room, id, [320, 180, 15, 300], "40s");
        b.args(["--name", name, "--tone", tone]);
        casters.push(common::Background::spawn(id, &mut b));
    }
    let py = common::python_publishing(
        &server,
        "publish_tone.py",
        &[
            "--room",
            room,
            "--identity",
            "py",
            "--name",
            "Py Thon",
            "--seconds",
            "40",
        ],
    );

    // Render `frames` at 6 fps once `wait` participants show media.
    let view = |name: &str, wait: &str, frames: &str, extra: &[&str]| {
        let (dir, dump) = common::temp_path(name);
        let mut v = Command::new(BIN);
        v.args(common::join_args(&url, room, name))
            .args(["--headless", "--wait-participants", wait])
            .args(["--frames", frames, "--fps", "6"])
            .args(["--size", "1280x720", "--timeout", "40s"])
            .args(extra)
            .arg("--dump")
            .arg(&dump);
        let r = common::run(&mut v, Duration::from_secs(60));
        assert_eq!(r.code(), 0, "{}", r.output());
        (dir, dump)
    };
    let (_dir, dump) = view("grid-viewer", "3", "6", &[]);
    // The same room through a viewer allowed three decoders: five tracks are offered (two
    // broadcasters' video + audio, the Python participant's audio), three are decoded, the rest
    // are counted as refused — a hostile room cannot make a viewer start unbounded decoders.
    // Which three is a race, so it waits for two participants with media and renders 3 s more.
    let (_capped_dir, capped) = view("capped-viewer", "2", "18", &["--max-tracks", "3"]);
    drop(casters);
    drop(py);

    let capped = common::json(&capped.join("stats.json"));
    let decoded: u64 = capped["tiles"]
        .as_array()
        .expect("tiles")
        .iter()
        .map(|t| {
            u64::from(t["video_frames"].as_u64().unwrap_or(0) > 0)
                + u64::from(t["audio_packets"].as_u64().unwrap_or(0) > 0)
        })
        .sum();
    eprintln!(
        "--max-tracks 3: {decoded} tracks decoded, {} refused",
        capped["refused_tracks"]
    );
    assert_eq!(decoded, 3, "{capped}");
    assert_eq!(capped["refused_tracks"].as_u64(), Some(2), "{capped}");

    let stats = common::json(&dump.join("stats.json"));
    eprintln!("{}", serde_json::to_string_pretty(&stats["tiles"]).unwrap());
    let tiles = stats["tiles"].as_array().expect("tiles");
    assert_eq!(tiles.len(), 3, "{tiles:?}");
    let names: BTreeSet<&str> = tiles.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["Ada Caster", "Bob Caster", "Py Thon"])
    );
    for t in tiles {
        let video = t["identity"] != "py";
        assert_eq!(t["has_video"].as_bool(), Some(video), "{t}");
        assert!(t["audio_packets"].as_u64().unwrap() > 0, "{t}");
        if video {
            assert!(t["video_frames"].as_u64().unwrap() > 0, "{t}");
        }
    }

    // The last PNG: each label pill carries bright text on its dark background, and each tile
    // shows something other than the page background (bars, or the avatar's colour).
    let pngs = common::pngs(&dump);
    assert_eq!(pngs.len(), 6);
    let img = common::load_png(pngs.last().unwrap());
    let rect = |v: &serde_json::Value| {
        let f = |i: usize| v[i].as_f64().unwrap() as f32;
        (f(0), f(1), f(2), f(3))
    };
    for t in tiles {
        let (x, y, w, h) = rect(&t["label"]);
        let mut bright = 0;
        let mut dark = 0;
        for py in y as u32..(y + h) as u32 {
            for px in x as u32..(x + w) as u32 {
                let p = img.pixel(px, py).unwrap();
                if p[..3].iter().all(|c| *c > 200) {
                    bright += 1;
                } else if p[..3].iter().all(|c| *c < 70) {
                    dark += 1;
                }
            }
        }
        assert!(
            bright > 30 && dark > 100,
            "label of {} : {bright} bright, {dark} dark px",
            t["name"]
        );
        let (x, y, w, h) = rect(&t["tile"]);
        let centre = img
            .pixel((x + w * 0.3) as u32, (y + h * 0.45) as u32)
            .unwrap();
        let background = [0x12, 0x14, 0x18];
        assert!(
            common::distance(centre, background) > 20,
            "tile of {} is empty: {centre:?}",
            t["name"]
        );
    }
}
