//! The report: per subscriber, per publisher and in total; as JSON (serde) or tables.

use std::collections::HashMap;
use std::time::Instant;

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use wavecast_pipeline::AgeHistogram;
use wavecast_stream::latency::Percentiles;
use wavecast_stream::receive::{AudioStreamStats, VideoStreamStats};

use crate::config::VideoSettings;
use crate::media::PublishOutcome;
use crate::plan::Member;

/// What the load test was asked to do.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The URLs joins went to.
    pub urls: Vec<String>,
    /// Publishers.
    pub publishers: usize,
    /// Subscribers.
    pub subscribers: usize,
    /// Rooms.
    pub rooms: usize,
    /// Measurement time asked for, seconds.
    pub duration_s: f64,
    /// Joins per second (`None`: all at once).
    pub ramp_joins_per_s: Option<f64>,
    /// The published video.
    pub video: VideoSettings,
    /// Whether a tone was published too.
    pub audio: bool,
    /// How subscribers decode.
    pub decode: &'static str,
}

/// Median and 95th percentile of a set of durations, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantiles {
    /// How many values.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Quantiles {
    /// Nearest-rank quantiles of `values` (sorted in place); `None` when empty.
    pub fn of(values: &mut [f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = (q * values.len() as f64).ceil() as usize;
            values[rank.clamp(1, values.len()) - 1]
        };
        Some(Self {
            count: values.len(),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            max_ms: values[values.len() - 1],
        })
    }
}

/// One publisher.
#[derive(Debug, Clone, Serialize)]
pub struct PublisherReport {
    /// Identity.
    pub identity: String,
    /// Room.
    pub room: String,
    /// URL it joined through.
    pub url: String,
    /// Pictures numbered (stamped frame numbers `0..frames_captured`, each sent or dropped).
    pub frames_captured: u64,
    /// VP8 frames handed to the engine.
    pub frames_sent: u64,
    /// Of those, keyframes.
    pub keyframes_sent: u64,
    /// Opus packets handed to the engine.
    pub audio_packets_sent: u64,
    /// Video frames dropped: the track's queue was full, or capture ran late (the machine could
    /// not keep the pace).
    pub frames_dropped: u64,
    /// Why a publish loop ended early, when one did.
    pub error: Option<String>,
}

/// One subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriberReport {
    /// Identity.
    pub identity: String,
    /// Room.
    pub room: String,
    /// URL it joined through.
    pub url: String,
    /// Whether the join (signal and both media connections) succeeded.
    pub joined: bool,
    /// Why the join failed.
    pub error: Option<String>,
    /// Connect call → both media connections up.
    pub join_ms: Option<f64>,
    /// Connect call → first decoded picture.
    pub first_frame_ms: Option<f64>,
    /// Tracks subscribed.
    pub tracks_subscribed: u64,
    /// Tracks published in its room (video, plus audio when on).
    pub tracks_expected: u64,
    /// Encoded video frames received.
    pub video_frames: u64,
    /// Audio packets received (one Opus frame per RTP packet).
    pub audio_packets: u64,
    /// Audio packets missing from the RTP time span, percent.
    pub audio_loss_pct: Option<f64>,
    /// Frames that arrived after lost packets (the engine's contiguity flag).
    pub gaps: u64,
    /// Stamped frames the publishers captured from the first one this subscriber saw up to the
    /// in-flight allowance before the end.
    pub frames_expected: u64,
    /// Of those, how many were decoded here.
    pub frames_delivered: u64,
    /// `frames_delivered / frames_expected`, percent.
    pub frames_delivered_pct: Option<f64>,
    /// Media payload received, kilobits per second over its time in the room.
    pub bitrate_kbps: f64,
    /// Glass-to-glass latency: capture time in the frame stamp → picture decoded here (one
    /// machine clock), milliseconds, after each track's warm-up.
    pub latency: Option<Percentiles>,
    /// Video and audio decode errors.
    pub decode_errors: u64,
    /// Frames dropped by the engine because this subscriber's decoder fell behind.
    pub queue_drops: u64,
}

/// Process CPU over the measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuReport {
    /// Cores of the machine.
    pub cores: usize,
    /// CPU seconds (user + system, all threads) over the window.
    pub cpu_s: f64,
    /// The window, seconds.
    pub window_s: f64,
    /// `cpu_s / window_s`, percent of one core.
    pub percent_of_one_core: f64,
    /// Percent of the whole machine.
    pub percent_of_machine: f64,
}

/// Everything in total.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Subscribers planned.
    pub subscribers: usize,
    /// Subscribers that joined.
    pub joined: usize,
    /// `joined / subscribers`, percent.
    pub join_success_pct: f64,
    /// Join time over the joined subscribers.
    pub join_ms: Option<Quantiles>,
    /// Join → first frame over the subscribers that got one.
    pub first_frame_ms: Option<Quantiles>,
    /// Subscribers that decoded at least one picture.
    pub subscribers_with_video: usize,
    /// Tracks subscribed, all subscribers.
    pub tracks_subscribed: u64,
    /// Tracks expected, all joined subscribers.
    pub tracks_expected: u64,
    /// Video frames + audio packets received.
    pub packets: u64,
    /// Audio packet loss, percent.
    pub audio_loss_pct: Option<f64>,
    /// Received media, all subscribers, kilobits per second.
    pub bitrate_kbps: f64,
    /// Stamped frames expected, all subscribers.
    pub frames_expected: u64,
    /// Stamped frames delivered, all subscribers.
    pub frames_delivered: u64,
    /// `frames_delivered / frames_expected`, percent.
    pub frames_delivered_pct: Option<f64>,
    /// Glass-to-glass latency over every measured picture of every subscriber (their
    /// histograms merged).
    pub latency: Option<Percentiles>,
    /// Decode errors, all subscribers.
    pub decode_errors: u64,
    /// Frames dropped because decoders fell behind, all subscribers.
    pub queue_drops: u64,
}

/// The load test's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was asked.
    pub settings: Settings,
    /// Whether the run was stopped early (Ctrl-C); the figures cover what ran.
    pub interrupted: bool,
    /// Seconds spent joining (the ramp).
    pub join_phase_s: f64,
    /// Seconds measured after the joins.
    pub measured_s: f64,
    /// Per publisher.
    pub publishers: Vec<PublisherReport>,
    /// Per subscriber.
    pub subscribers: Vec<SubscriberReport>,
    /// In total.
    pub total: Totals,
    /// This process's CPU.
    pub cpu: CpuReport,
}

/// What one subscriber task brought back (internal).
#[derive(Debug)]
pub(crate) struct SubscriberOutcome {
    pub(crate) member: Member,
    pub(crate) started: Instant,
    pub(crate) joined_at: Option<Instant>,
    pub(crate) left_at: Instant,
    pub(crate) error: Option<String>,
    pub(crate) tracks_subscribed: u64,
    pub(crate) tracks_expected: u64,
    pub(crate) video: Vec<VideoStreamStats>,
    pub(crate) audio: Vec<AudioStreamStats>,
    /// Each publisher's captured-frame count when this subscriber joined.
    pub(crate) captured_at_join: HashMap<String, u64>,
}

fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| 100.0 * part as f64 / whole as f64)
}

/// Turns a subscriber's outcome into its report row. `cutoff` gives each publisher's captured
/// count at the end minus the in-flight allowance; `publishers` lists each room's publishers.
pub(crate) fn subscriber_report(
    o: &SubscriberOutcome,
    cutoff: &HashMap<String, u64>,
    publishers: &[&Member],
    latency: &mut AgeHistogram,
) -> SubscriberReport {
    let ms = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64() * 1000.0;
    let first_frame = o.video.iter().filter_map(|v| v.first_decoded_at).min();
    let (mut expected, mut delivered) = (0u64, 0u64);
    let mut own = AgeHistogram::new();
    if o.joined_at.is_some() {
        for p in publishers.iter().filter(|p| p.room == o.member.room) {
            let Some(&captured) = cutoff.get(&p.identity) else {
                continue;
            };
            let track = o.video.iter().find(|v| v.participant == p.identity);
            match track.and_then(|v| v.frame_numbers.first().map(|f| (v, f))) {
                Some((v, first)) => {
                    let first = u64::from(first);
                    if captured > first {
                        expected += captured - first;
                        let last = (captured - 1).min(u64::from(u32::MAX)) as u32;
                        delivered += v.frame_numbers.count_in(first as u32, last);
                    }
                }
                None => {
                    let at_join = o.captured_at_join.get(&p.identity).copied().unwrap_or(0);
                    expected += captured.saturating_sub(at_join);
                }
            }
        }
    }
    for v in &o.video {
        own.merge(&v.ages);
    }
    latency.merge(&own);
    let audio_packets: u64 = o.audio.iter().map(|a| a.received).sum();
    let audio_expected: u64 = o.audio.iter().map(AudioStreamStats::expected_packets).sum();
    let bytes: u64 =
        o.video.iter().map(|v| v.bytes).sum::<u64>() + o.audio.iter().map(|a| a.bytes).sum::<u64>();
    let in_room = o
        .joined_at
        .map_or(0.0, |j| o.left_at.duration_since(j).as_secs_f64());
    SubscriberReport {
        identity: o.member.identity.clone(),
        room: o.member.room.clone(),
        url: o.member.url.clone(),
        joined: o.joined_at.is_some(),
        error: o.error.clone(),
        join_ms: o.joined_at.map(|j| ms(o.started, j)),
        first_frame_ms: first_frame.map(|f| ms(o.started, f)),
        tracks_subscribed: o.tracks_subscribed,
        tracks_expected: o.tracks_expected,
        video_frames: o.video.iter().map(|v| v.frames_in).sum(),
        audio_packets,
        audio_loss_pct: pct(audio_expected.saturating_sub(audio_packets), audio_expected),
        gaps: o.video.iter().map(|v| v.gaps).sum(),
        frames_expected: expected,
        frames_delivered: delivered,
        frames_delivered_pct: pct(delivered, expected),
        bitrate_kbps: if in_room > 0.0 {
            bytes as f64 * 8.0 / 1000.0 / in_room
        } else {
            0.0
        },
        latency: Percentiles::of(&own),
        decode_errors: o.video.iter().map(|v| v.decode_errors).sum::<u64>()
            + o.audio.iter().map(|a| a.decode_errors).sum::<u64>(),
        queue_drops: o.video.iter().map(|v| v.source_drops).sum::<u64>()
            + o.audio.iter().map(|a| a.source_drops).sum::<u64>(),
    }
}

/// Sums the subscriber rows; `latency` holds every subscriber's samples merged.
pub(crate) fn totals(rows: &[SubscriberReport], latency: &AgeHistogram) -> Totals {
    let joined: Vec<&SubscriberReport> = rows.iter().filter(|r| r.joined).collect();
    let mut join: Vec<f64> = joined.iter().filter_map(|r| r.join_ms).collect();
    let mut first: Vec<f64> = rows.iter().filter_map(|r| r.first_frame_ms).collect();
    let sum = |f: fn(&SubscriberReport) -> u64| rows.iter().map(f).sum::<u64>();
    let audio_packets = sum(|r| r.audio_packets);
    // Expected audio packets per row = received / (1 − loss).
    let audio_expected: f64 = rows
        .iter()
        .filter_map(|r| {
            r.audio_loss_pct
                .map(|l| r.audio_packets as f64 / (1.0 - l / 100.0).max(1e-9))
        })
        .sum();
    let (frames_expected, frames_delivered) =
        (sum(|r| r.frames_expected), sum(|r| r.frames_delivered));
    Totals {
        subscribers: rows.len(),
        joined: joined.len(),
        join_success_pct: pct(joined.len() as u64, rows.len() as u64).unwrap_or(0.0),
        join_ms: Quantiles::of(&mut join),
        first_frame_ms: Quantiles::of(&mut first),
        subscribers_with_video: rows.iter().filter(|r| r.first_frame_ms.is_some()).count(),
        tracks_subscribed: sum(|r| r.tracks_subscribed),
        tracks_expected: joined.iter().map(|r| r.tracks_expected).sum(),
        packets: sum(|r| r.video_frames) + audio_packets,
        audio_loss_pct: (audio_expected > 0.0)
            .then(|| 100.0 * (audio_expected - audio_packets as f64).max(0.0) / audio_expected),
        bitrate_kbps: rows.iter().map(|r| r.bitrate_kbps).sum(),
        frames_expected,
        frames_delivered,
        frames_delivered_pct: pct(frames_delivered, frames_expected),
        latency: Percentiles::of(latency),
        decode_errors: sum(|r| r.decode_errors),
        queue_drops: sum(|r| r.queue_drops),
    }
}

pub(crate) fn publisher_report(m: &Member, captured: u64, o: PublishOutcome) -> PublisherReport {
    let (v, a) = (o.video.as_ref(), o.audio.as_ref());
    PublisherReport {
        identity: m.identity.clone(),
        room: m.room.clone(),
        url: m.url.clone(),
        frames_captured: captured,
        frames_sent: v.map_or(0, |v| v.sent),
        keyframes_sent: v.map_or(0, |v| v.keyframes),
        audio_packets_sent: a.map_or(0, |a| a.sent),
        frames_dropped: v.map_or(0, |v| v.dropped),
        error: v
            .and_then(|v| v.error.clone())
            .or(a.and_then(|a| a.error.clone())),
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

impl Report {
    /// Whether every subscriber joined.
    pub fn all_joined(&self) -> bool {
        self.total.joined == self.total.subscribers
    }

    /// One row per subscriber.
    pub fn subscriber_table(&self) -> Table {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "subscriber",
            "room",
            "joined",
            "first frame ms",
            "tracks",
            "packets",
            "audio loss %",
            "kbit/s",
            "frames %",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "decode err",
        ]);
        for r in &self.subscribers {
            let joined = match (&r.error, r.join_ms) {
                (_, Some(ms)) => format!("{ms:.0} ms"),
                (Some(e), None) => format!("no: {}", truncate(e, 40)),
                (None, None) => "no".into(),
            };
            t.add_row(vec![
                Cell::new(&r.identity),
                Cell::new(&r.room),
                Cell::new(joined),
                Cell::new(opt(r.first_frame_ms, 0)),
                Cell::new(format!("{}/{}", r.tracks_subscribed, r.tracks_expected)),
                Cell::new(r.video_frames + r.audio_packets),
                Cell::new(opt(r.audio_loss_pct, 2)),
                Cell::new(format!("{:.0}", r.bitrate_kbps)),
                Cell::new(opt(r.frames_delivered_pct, 1)),
                Cell::new(opt(r.latency.map(|l| l.p50_ms), 1)),
                Cell::new(opt(r.latency.map(|l| l.p95_ms), 1)),
                Cell::new(opt(r.latency.map(|l| l.p99_ms), 1)),
                Cell::new(r.decode_errors),
            ]);
        }
        for i in 2..13 {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        t
    }

    /// The totals as metric / value rows.
    pub fn total_table(&self) -> Table {
        let s = &self.total;
        let q = |q: Option<Quantiles>| {
            q.map_or_else(
                || "–".to_owned(),
                |q| format!("p50 {:.0} ms · p95 {:.0} ms", q.p50_ms, q.p95_ms),
            )
        };
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_header(vec!["total", "value"]);
        let v = self.settings.video;
        let rows: Vec<(&str, String)> =
            vec![
            (
                "load",
                format!(
                    "{} publishers × {} subscribers in {} rooms, {}x{}@{} {} kbit/s{}, {}",
                    self.settings.publishers,
                    self.settings.subscribers,
                    self.settings.rooms,
                    v.width,
                    v.height,
                    v.fps,
                    v.bitrate / 1000,
                    if self.settings.audio { " + tone" } else { "" },
                    self.settings.decode
                ),
            ),
            (
                "time",
                format!(
                    "joins {:.1} s, measured {:.1} s{}",
                    self.join_phase_s,
                    self.measured_s,
                    if self.interrupted { " (interrupted)" } else { "" }
                ),
            ),
            (
                "join success",
                format!(
                    "{}/{} ({:.1} %)",
                    s.joined, s.subscribers, s.join_success_pct
                ),
            ),
            ("join time", q(s.join_ms)),
            ("join → first frame", q(s.first_frame_ms)),
            (
                "tracks subscribed",
                format!("{}/{}", s.tracks_subscribed, s.tracks_expected),
            ),
            ("packets", s.packets.to_string()),
            ("audio loss", format!("{} %", opt(s.audio_loss_pct, 2))),
            ("bitrate (all subscribers)", format!("{:.0} kbit/s", s.bitrate_kbps)),
            (
                "frames delivered",
                format!(
                    "{}/{} ({} %)",
                    s.frames_delivered,
                    s.frames_expected,
                    opt(s.frames_delivered_pct, 2)
                ),
            ),
            (
                "glass-to-glass latency",
                s.latency.map_or_else(
                    || "–".to_owned(),
                    |l| {
                        format!(
                            "p50 {:.1} ms · p95 {:.1} ms · p99 {:.1} ms · max {:.1} ms ({} frames)",
                            l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.count
                        )
                    },
                ),
            ),
            (
                "decode errors / queue drops",
                format!("{} / {}", s.decode_errors, s.queue_drops),
            ),
            (
                "process CPU",
                format!(
                    "{:.0} % of one core ({:.0} % of {} cores)",
                    self.cpu.percent_of_one_core, self.cpu.percent_of_machine, self.cpu.cores
                ),
            ),
        ];
        for (k, v) in rows {
            t.add_row(vec![k.to_owned(), v]);
        }
        t
    }
}

fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn member(identity: &str, room: &str) -> Member {
        Member {
            identity: identity.into(),
            room: room.into(),
            room_index: 0,
            url: "ws://x".into(),
        }
    }

    #[test]
    fn quantiles_nearest_rank() {
        let mut v: Vec<f64> = (1..=20).map(f64::from).collect();
        let q = Quantiles::of(&mut v).unwrap();
        assert_eq!((q.p50_ms, q.p95_ms, q.max_ms), (10.0, 19.0, 20.0));
        assert!(Quantiles::of(&mut []).is_none());
    }

    /// Delivery counts from the first frame a subscriber saw to the publisher's cutoff, so a
    /// subscriber whose video stalls is not reported as complete.
    #[test]
    fn a_stalled_subscriber_is_not_complete() {
        let t0 = Instant::now();
        let publisher = member("pub-0", "r");
        let mut video = VideoStreamStats {
            participant: "pub-0".into(),
            first_decoded_at: Some(t0 + Duration::from_millis(300)),
            ..Default::default()
        };
        for n in 10..60 {
            video.frame_numbers.insert(n);
            video.ages.record(Duration::from_millis(40));
        }
        let o = SubscriberOutcome {
            member: member("sub-0", "r"),
            started: t0,
            joined_at: Some(t0 + Duration::from_millis(100)),
            left_at: t0 + Duration::from_secs(5),
            error: None,
            tracks_subscribed: 1,
            tracks_expected: 1,
            video: vec![video],
            audio: Vec::new(),
            captured_at_join: HashMap::new(),
        };
        let cutoff = HashMap::from([("pub-0".to_owned(), 110u64)]);
        let mut all = AgeHistogram::new();
        let r = subscriber_report(&o, &cutoff, &[&publisher], &mut all);
        assert_eq!((r.frames_expected, r.frames_delivered), (100, 50));
        assert_eq!(r.frames_delivered_pct, Some(50.0));
        assert_eq!(r.first_frame_ms.map(|v| v.round()), Some(300.0));
        assert!((r.latency.unwrap().p95_ms - 40.0).abs() < 0.5);
        assert_eq!(all.count(), 50);

        let failed = SubscriberOutcome {
            member: member("sub-1", "r"),
            joined_at: None,
            error: Some("refused".into()),
            video: Vec::new(),
            tracks_subscribed: 0,
            ..o
        };
        let f = subscriber_report(&failed, &cutoff, &[&publisher], &mut all);
        let t = totals(&[r, f], &all);
        assert_eq!((t.joined, t.subscribers), (1, 2));
        assert_eq!(t.join_success_pct, 50.0);
        assert_eq!(t.frames_delivered_pct, Some(50.0));
        assert_eq!(t.tracks_expected, 1);
    }
}
