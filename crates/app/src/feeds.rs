//! The scenes' status, read from what the room task and the decoders keep: the participant
//! scene's [`ParticipantStatus`] and the grid's [`RoomStatus`], built fresh at each update from
//! atomics and watch channels (no locks on the media path).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;
use wavecast_stream::receive::{AudioOut, VideoOut};
use wavecast_visualizer::ConnectionQuality;
use wavecast_visualizer::scenes::{
    CaptionLine, LinkStatus, ParticipantFeeds, ParticipantStatus, RoomStatus, StatusFn, TileFeed,
};

use crate::Link;
use crate::captions::Captions;
use crate::follow::Watching;
use crate::roster::Roster;
use wavecast_session::ConnectionState;

/// What a window shows of the link.
fn link_status(l: &Link) -> LinkStatus {
    match l.state {
        ConnectionState::Connected => LinkStatus::Connected {
            room: l.room.clone(),
        },
        ConnectionState::Reconnecting { attempt } => LinkStatus::Reconnecting {
            attempt,
            max: l.max_attempts,
            cause: l.cause.clone(),
        },
        ConnectionState::Disconnected => LinkStatus::Disconnected {
            reason: l.cause.clone(),
        },
        // Connecting, and whatever state a later session version adds.
        _ => LinkStatus::Connecting,
    }
}

/// The participant scene's sinks: the video mailbox and the audio render queue.
pub fn participant_feeds(video: &VideoOut, audio: &AudioOut) -> ParticipantFeeds {
    ParticipantFeeds {
        video: video.mailbox.clone(),
        audio: audio.render.clone(),
    }
}

/// `speaker`'s captions now, as a scene draws them.
fn caption_lines(captions: &Captions, speaker: &str) -> Vec<CaptionLine> {
    captions
        .now_for(speaker)
        .into_iter()
        .map(|c| CaptionLine {
            text: c.text,
            alpha: c.alpha,
        })
        .collect()
}

/// The participant scene's status source (`captions`: those of the watched participant).
pub fn participant_status(
    video: Arc<VideoOut>,
    audio: Arc<AudioOut>,
    conn: watch::Receiver<Link>,
    watching: watch::Receiver<Watching>,
    url: String,
    close: Arc<AtomicBool>,
    captions: Captions,
) -> StatusFn<ParticipantStatus> {
    Box::new(move || {
        let w = watching.borrow().clone();
        let shown = w
            .identity
            .as_deref()
            .map(|id| caption_lines(&captions, id))
            .unwrap_or_default();
        let size = video.size.load(Ordering::Relaxed);
        ParticipantStatus {
            link: link_status(&conn.borrow()),
            url: url.clone(),
            identity: w.identity,
            name: w.name,
            quality: w.quality,
            audio_muted: w.audio_muted,
            video_muted: w.video_muted,
            video_frames: video.frames.load(Ordering::Relaxed),
            video_bytes: video.bytes.load(Ordering::Relaxed),
            video_size: (size >> 16, size & 0xffff),
            stamped: video.stamped.load(Ordering::Relaxed),
            last_latency_us: video.last_latency_us.load(Ordering::Relaxed),
            p50_latency_us: video.p50_latency_us.load(Ordering::Relaxed),
            last_frame_number: video.last_frame_number.load(Ordering::Relaxed),
            audio_packets: audio.packets.load(Ordering::Relaxed),
            captions: shown,
            close: close.load(Ordering::Relaxed),
        }
    })
}

/// The grid scene's status source: one tile per roster member, with its captions.
pub fn room_status(
    roster: watch::Receiver<Roster>,
    conn: watch::Receiver<Link>,
    url: String,
    close: Arc<AtomicBool>,
    captions: Captions,
) -> StatusFn<RoomStatus> {
    Box::new(move || {
        let members = roster.borrow().clone();
        let flag = |a: &AtomicBool| a.load(Ordering::Relaxed);
        RoomStatus {
            link: link_status(&conn.borrow()),
            url: url.clone(),
            tiles: members
                .iter()
                .map(|m| TileFeed {
                    key: m.identity.clone(),
                    name: m.name.clone(),
                    video: m.video.mailbox.clone(),
                    audio: m.audio.render.clone(),
                    video_on: flag(&m.video_on),
                    mic_muted: flag(&m.mic_muted),
                    speaking: flag(&m.speaking),
                    quality: ConnectionQuality::from_level(m.quality.load(Ordering::Relaxed)),
                    screen_share: flag(&m.screen_share),
                    video_frames: m.video.frames.load(Ordering::Relaxed),
                    audio_packets: m.audio.packets.load(Ordering::Relaxed),
                    captions: caption_lines(&captions, &m.identity),
                })
                .collect(),
            close: close.load(Ordering::Relaxed),
        }
    })
}
