//! Dev server + broadcaster (synthetic bars and tone) + viewer `--headless --dump --record`:
//! the PNGs show the bars, the stats report ≥ 90% of the sent frames and a latency figure, and
//! the recording plays back (WAV duration, IVF frame count).

use wavecast_testbed::apps as common;

use std::process::Command;
use std::time::Duration;

use wavecast_codec::Vp8Decoder;
use wavecast_media::WavReader;

const VIEWER: &str = env!("CARGO_BIN_EXE_viewer");

#[test]
fn viewer_watches_a_broadcaster_headless_and_records() {
    let (server, broadcaster) = common::server_and_broadcaster(VIEWER);
    let url = server.ws_url();
    let room = "watch";
    let mut b = common::broadcaster_command(
        &broadcaster,
        &url,
        room,
        "caster",
        [640, 360, 30, 800],
        "25s",
    );
    b.args(["--stats-interval", "1s"]);
    let caster = common::Background::spawn("broadcaster", &mut b);

    let (dir, dump) = common::temp_path("dump");
    let rec = dir.path().join("rec");
    let mut v = Command::new(VIEWER);
    v.args(common::join_args(&url, room, "watcher"))
        .args([
            "--headless",
            "--frames",
            "120",
            "--dump-every",
            "15",
            "--timeout",
            "40s",
        ])
        .arg("--dump")
        .arg(&dump)
        .arg("--record")
        .arg(&rec)
        .arg("--audio-out")
        .arg(format!("wav:{}", dir.path().join("out.wav").display()))
        .args(["--participant", "caster", "--size", "960x540"]);
    let r = common::run(&mut v, Duration::from_secs(60));
    let caster = caster.finish(Duration::from_millis(1));
    assert_eq!(
        r.code(),
        0,
        "viewer failed\n{}\n--- broadcaster\n{}",
        r.output(),
        caster.output()
    );
    eprintln!("{}", r.stderr);

    let stats = common::json(&dump.join("stats.json"));
    eprintln!("{}", serde_json::to_string_pretty(&stats).unwrap());
    let video = &stats["video"];
    let received = video["frames_received"].as_u64().unwrap();
    assert!(received >= 120, "{video}");
    let pct = video["received_pct"]
        .as_f64()
        .expect("stamped frames give a delivery ratio");
    assert!(pct >= 90.0, "only {pct:.1}% of the sent frames arrived");
    let p50 = video["latency_ms"]["p50_ms"]
        .as_f64()
        .expect("a latency figure");
    let p95 = video["latency_ms"]["p95_ms"].as_f64().unwrap();
    assert!(
        p50 > 0.0 && p50 <= p95 && p95 < 2000.0,
        "latency p50 {p50} p95 {p95}"
    );
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(640), Some(360))
    );

    // The PNGs show the colour bars where the picture is drawn.
    let rect = common::rect(&stats["render"]["picture_rect"]);
    let pngs = common::pngs(&dump);
    assert!(pngs.len() >= 3, "{} PNGs", pngs.len());
    for png in pngs.iter().skip(1) {
        let (worst, notes) = common::bar_errors(png, rect);
        assert!(
            worst <= 40,
            "{} does not show the bars:\n{notes}",
            png.display()
        );
    }

    // The recording plays back: every received frame is in the IVF and decodes; the WAV lasts
    // as long as the audio stream did.
    let ivf = std::fs::read(rec.join("video.ivf")).unwrap();
    assert_eq!(&ivf[..4], b"DKIF");
    let header_count = u32::from_le_bytes(ivf[24..28].try_into().unwrap()) as u64;
    let mut decoder = Vp8Decoder::new().unwrap();
    let (mut pos, mut decoded) = (32usize, 0u64);
    while pos + 12 <= ivf.len() {
        let len = u32::from_le_bytes(ivf[pos..pos + 4].try_into().unwrap()) as usize;
        let frame = &ivf[pos + 12..pos + 12 + len];
        let img = decoder
            .decode(frame)
            .expect("recorded frame decodes")
            .expect("a picture");
        assert_eq!((img.image.width, img.image.height), (640, 360));
        decoded += 1;
        pos += 12 + len;
    }
    assert_eq!(pos, ivf.len(), "IVF ends on a frame boundary");
    assert_eq!(decoded, header_count);
    assert_eq!(decoded, received, "IVF frames = received frames");
    assert_eq!(stats["recording"]["video_frames"].as_u64(), Some(received));

    let wav = WavReader::open(rec.join("audio.wav")).expect("WAV opens");
    let wav_s = f64::from(wav.duration_samples()) / 48_000.0;
    let stream = &stats["streams"]["audio"][0];
    let wall = stream["wall_seconds"].as_f64().unwrap();
    assert!(wav_s > 2.0, "{wav_s} s of audio");
    assert!(
        (wav_s - wall).abs() <= 0.5,
        "WAV {wav_s:.2} s vs {wall:.2} s of audio stream"
    );
}
