//! The first seed's scenario: join a room with a URL and a token, take the first remote audio
//! track and feed its PCM to an audio analyser — a level meter and the dominant frequency, drawn
//! as a line of text ten times a second.
//!
//! `cargo run -p wavecast-session --example audio_visualizer -- URL TOKEN [--headless SECONDS]`
//! (headless: after SECONDS of audio print `DOMINANT <hz>` and leave).
use std::time::{Duration, Instant};

use wavecast_pipeline::analysis::{Levels, SpectrumAnalyzer};
use wavecast_session::{AudioSubscriber, Room, RoomOptions, TrackFilter};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(token)) = (args.first(), args.get(1)) else {
        return Err("usage: audio_visualizer URL TOKEN [--headless SECONDS]".into());
    };
    let headless = match args.iter().position(|a| a == "--headless") {
        Some(i) => Some(
            args.get(i + 1)
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or("--headless needs SECONDS")?,
        ),
        None => None,
    };
    let (room, mut events) = Room::connect(url, token, RoomOptions::default()).await?;
    let track = events
        .next_track(&TrackFilter::audio())
        .await
        .ok_or("left before any audio track")?;
    println!("listening to {}", track.key());
    let mut audio = AudioSubscriber::new(track, 1)?;
    let mut spectrum = SpectrumAnalyzer::new(4096, 48_000)?;
    let (start, mut drawn) = (Instant::now(), Instant::now());
    while let Some(pcm) = audio.recv().await {
        spectrum.push(pcm.samples, pcm.channels);
        let level = Levels::of(pcm.samples);
        if drawn.elapsed() < Duration::from_millis(100) {
            continue;
        }
        drawn = Instant::now();
        spectrum.compute();
        let hz = spectrum.dominant_frequency().map_or(0.0, |(hz, _)| hz);
        match headless {
            Some(secs) if start.elapsed().as_secs_f64() >= secs => {
                println!("DOMINANT {hz:.1}");
                break;
            }
            Some(_) => {}
            None => {
                let bar = "#".repeat(((level.rms_dbfs + 60.0).max(0.0) / 1.5) as usize);
                println!("{:>7.1} dBFS {hz:>7.1} Hz |{bar:<40}|", level.rms_dbfs);
            }
        }
    }
    room.close().await;
    Ok(())
}
