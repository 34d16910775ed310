//! Publish a Y4M video file and a WAV audio file (48 kHz, mono or stereo) into a room, both
//! looping, with the stream crate's paced publish loops (file → VP8/Opus encoder → track).
//!
//! ```text
//! just dev-server   # or any LiveKit server
//! TOKEN=$(cargo run -q -p wavecast -- token --room demo --identity files --preset broadcaster)
//! cargo run -p wavecast-stream --example publish_files -- ws://127.0.0.1:7880 "$TOKEN" \
//!     clip.y4m tone.wav 30
//! ```
//! (arguments: URL TOKEN VIDEO.y4m AUDIO.wav [SECONDS], default 30; Ctrl-C ends it early).
//! The files are opened and checked before joining, so a broken file fails without a connection.
use std::path::PathBuf;
use std::time::Duration;

use wavecast_session::{Room, RoomOptions};
use wavecast_stream::broadcast::{Broadcast, VideoTrackInfo};
use wavecast_stream::publish::{
    AudioInput, AudioSourceOpen, VideoInput, VideoSettings, start_audio, start_video,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, token, y4m, wav, ..] = args.as_slice() else {
        return Err("usage: publish_files URL TOKEN VIDEO.y4m AUDIO.wav [SECONDS]".into());
    };
    let seconds: u64 = args.get(4).map_or(Ok(30), |s| s.parse())?;

    // Open both files first (a bad file is an error naming it, before any connection).
    let settings = VideoSettings {
        file: Some(PathBuf::from(y4m)),
        width: 0,
        height: 0,
        fps: None,
        bitrate: 1_000_000,
        min_bitrate: 100_000,
        codec: wavecast_session::VideoCodec::Vp8,
        simulcast: false,
        stamp_files: false,
        snapshot: None,
    };
    let video = VideoInput::open(&settings)?;
    let info = VideoTrackInfo {
        size: video.size(),
        screen: false,
        publish: None,
    };
    let audio = AudioSourceOpen::open(&AudioInput::File(PathBuf::from(wav)))?;
    println!("video: {}\naudio: {}", video.describe(), audio.describe());

    let (room, _events) = Room::connect(url, token, RoomOptions::default()).await?;
    let video = start_video(video, &settings)?;
    let audio = start_audio(audio, 32_000)?;
    let mut broadcast = Broadcast::new(Some((video, info, false)), Some((audio, false)));
    broadcast.publish(room.local_participant()).await?;
    println!("publishing into {:?} for {seconds} s", room.name());
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(seconds)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    for (kind, summary) in broadcast.stop() {
        println!(
            "{kind}: {} frames sent, {} dropped",
            summary.sent, summary.dropped
        );
    }
    room.close().await;
    Ok(())
}
