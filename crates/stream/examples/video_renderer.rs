//! Render a room's video: join with a URL and a token, wait for the first remote video track,
//! decode it on the stream crate's receive thread and draw every picture with the visualizer's
//! GPU renderer into an offscreen target, writing every Nth frame as a PNG.
//!
//! ```text
//! just dev-server   # or any LiveKit server; a publisher in room `demo`, e.g. `just broadcaster`
//! TOKEN=$(cargo run -q -p wavecast -- token --room demo --identity renderer)
//! cargo run -p wavecast-stream --example video_renderer -- ws://127.0.0.1:7880 "$TOKEN" frames 30
//! ```
//! (arguments: URL TOKEN [DIR [EVERY [FRAMES]]], defaults `frames`, 30, 300).
use std::sync::Arc;
use std::time::Duration;

use wavecast_session::{Room, RoomOptions, TrackFilter};
use wavecast_stream::receive::{ReceiveOptions, VideoOut, spawn_video};
use wavecast_visualizer::{ColorSpace, Gpu, HeadlessTarget, VideoRenderer, wgpu};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(token)) = (args.first(), args.get(1)) else {
        return Err("usage: video_renderer URL TOKEN [DIR [EVERY [FRAMES]]]".into());
    };
    let dir = std::path::PathBuf::from(args.get(2).map_or("frames", String::as_str));
    let every: u64 = args.get(3).map_or(Ok(30), |s| s.parse())?;
    let frames: u64 = args.get(4).map_or(Ok(300), |s| s.parse())?;
    std::fs::create_dir_all(&dir)?;

    let (room, mut events) = Room::connect(url, token, RoomOptions::default()).await?;
    let track = events
        .next_track(&TrackFilter::video())
        .await
        .ok_or("left before any video track")?;
    println!("rendering {}", track.key());
    let out = Arc::new(VideoOut::default());
    let decoder = spawn_video(track, out.clone(), None, ReceiveOptions::default())?;

    // The GPU work is blocking: a plain thread of its own, fed by the decoder's mailbox.
    let drawn = tokio::task::spawn_blocking(move || -> wavecast_visualizer::Result<u64> {
        let gpu = Gpu::headless()?;
        let mut target = HeadlessTarget::new(&gpu.device, 640, 360)?;
        let mut video = VideoRenderer::new(&gpu.device, target.format());
        video.resize(&gpu.queue, 640, 360);
        let mut n = 0;
        while n < frames && !decoder.is_finished() {
            let Some(frame) = out.mailbox.take() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            video.update_video_frame(&gpu.device, &gpu.queue, &frame, ColorSpace::BT601_LIMITED)?;
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            let attachment = wgpu::RenderPassColorAttachment {
                view: target.view(),
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations::default(),
            };
            video.render(&mut encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                color_attachments: &[Some(attachment)],
                ..Default::default()
            }));
            gpu.queue.submit([encoder.finish()]);
            if n % every.max(1) == 0 {
                let png = dir.join(format!("frame-{n:05}.png"));
                target.read_rgba(&gpu.device, &gpu.queue)?.save_png(&png)?;
                println!("{}x{} -> {}", frame.width(), frame.height(), png.display());
            }
            n += 1;
        }
        Ok(n)
    })
    .await??;
    println!("drew {drawn} frames");
    room.close().await;
    Ok(())
}
