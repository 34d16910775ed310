//! Decoding a received Opus stream through packet loss: in-band FEC and concealment (PLC).

use crate::CodecError;
use crate::opus::{MAX_OPUS_DECODED, OPUS_SAMPLE_RATE, OpusDecoder, packet_has_fec};

/// The longest gap [`OpusStreamDecoder`] conceals by default: 200 ms (ten 20 ms packets).
pub const DEFAULT_MAX_CONCEAL: usize = 9_600;

/// Packets this far (or less) behind the stream are late or duplicates and are dropped; further
/// behind, the stream is taken to have restarted (500 ms at 48 kHz).
const LATE_WINDOW: u64 = 24_000;

/// Concealment works in whole 2.5 ms steps (what libopus accepts).
const STEP: usize = (OPUS_SAMPLE_RATE / 400) as usize;

/// What one [`OpusStreamDecoder::decode`] call wrote, in samples per channel.
#[derive(Debug, Default)]
pub struct StreamDecoded {
    /// Samples written to the output in all (`concealed + recovered + packet`); the
    /// interleaved output is `out[..samples × channels]`.
    pub samples: usize,
    /// Of those, synthesised by packet loss concealment for lost audio (first in the output).
    pub concealed: usize,
    /// Of those, rebuilt from the packet's in-band FEC (the lost frame just before it).
    pub recovered: usize,
    /// Of those, the packet itself (last in the output).
    pub packet: usize,
    /// The packet was late or a duplicate: nothing written, nothing changed.
    pub late: bool,
    /// The packet followed a gap too long to conceal (or jumped backwards): the decoder
    /// restarted at it and nothing was filled in.
    pub restarted: bool,
    /// The packet did not decode (its slot is concealed or recovered from the next packet, as
    /// if it had been lost); what came before it in this call is still valid.
    pub error: Option<CodecError>,
}

/// Totals of an [`OpusStreamDecoder`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Packets decoded.
    pub packets: u64,
    /// Packets that failed to decode.
    pub errors: u64,
    /// Lost frames rebuilt from the next packet's in-band FEC.
    pub fec_frames: u64,
    /// Lost frames (counted in the duration of the packet after them) concealed by PLC.
    pub plc_frames: u64,
    /// Samples per channel concealed by PLC.
    pub plc_samples: u64,
    /// Samples per channel rebuilt from FEC.
    pub fec_samples: u64,
    /// Late or duplicate packets dropped.
    pub late: u64,
    /// Gaps too long to conceal (or backward jumps): the decoder restarted.
    pub restarts: u64,
    /// Samples per channel of those gaps, left out (not filled).
    pub skipped_samples: u64,
}

/// An Opus decoder for a received stream: packets come with their RTP time (48 kHz), and a
/// gap in those times is filled before the packet that ends it, so the output stays continuous
/// through loss.
///
/// A gap of one packet is rebuilt from the in-band FEC of the packet after it (when the sender
/// put FEC there — see [`crate::OpusEncoder::set_expected_loss`]); a longer gap is concealed by
/// libopus's PLC, with the FEC rebuilding its last frame. Gaps longer than the concealment
/// bound (a pause, a sender restart, a long outage) are not filled: the decoder restarts at the
/// next packet. Late and duplicate packets (whose time was already played) are dropped, so
/// reordering never produces garbage. Nothing allocates after [`OpusStreamDecoder::new`]: the
/// caller owns the output buffer ([`OpusStreamDecoder::output_len`] samples).
///
/// ```
/// use wavecast_codec::{MAX_OPUS_PACKET, OPUS_FRAME_SAMPLES, OpusEncoder, OpusStreamDecoder};
/// let mut enc = OpusEncoder::new(1, 32_000)?;
/// let mut dec = OpusStreamDecoder::new(1)?;
/// let mut out = vec![0i16; dec.output_len()];
/// let (mut packet, pcm) = ([0u8; MAX_OPUS_PACKET], [0i16; OPUS_FRAME_SAMPLES]);
/// let mut played = 0;
/// for n in 0..10u64 {
///     let len = enc.encode(&pcm, &mut packet)?;
///     if n == 4 {
///         continue; // lost on the way
///     }
///     let d = dec.decode(n * 960, &packet[..len], &mut out)?;
///     played += d.samples; // out[..d.samples] is what to play
/// }
/// assert_eq!(played, 10 * OPUS_FRAME_SAMPLES);
/// assert_eq!(dec.stats().fec_frames + dec.stats().plc_frames, 1);
/// # Ok::<(), wavecast_codec::CodecError>(())
/// ```
#[derive(Debug)]
pub struct OpusStreamDecoder {
    decoder: OpusDecoder,
    max_conceal: usize,
    /// RTP time the next packet should have (None before the first and after a restart).
    next: Option<u64>,
    stats: StreamStats,
}

impl OpusStreamDecoder {
    /// A decoder producing `channels` (1 or 2) interleaved channels, concealing gaps up to
    /// [`DEFAULT_MAX_CONCEAL`].
    pub fn new(channels: u16) -> Result<Self, CodecError> {
        Self::with_max_conceal(channels, DEFAULT_MAX_CONCEAL)
    }

    /// As [`OpusStreamDecoder::new`], concealing gaps up to `max_conceal` samples per channel
    /// (rounded down to 2.5 ms; 0 conceals nothing, lost audio is left out).
    pub fn with_max_conceal(channels: u16, max_conceal: usize) -> Result<Self, CodecError> {
        Ok(Self {
            decoder: OpusDecoder::new(channels)?,
            max_conceal: max_conceal - max_conceal % STEP,
            next: None,
            stats: StreamStats::default(),
        })
    }

    /// Channel count.
    pub fn channels(&self) -> u16 {
        self.decoder.channels()
    }

    /// Output samples (interleaved) one [`OpusStreamDecoder::decode`] may write: the longest
    /// concealed gap plus the longest packet.
    pub fn output_len(&self) -> usize {
        (self.max_conceal + MAX_OPUS_DECODED) * usize::from(self.channels())
    }

    /// Totals so far.
    pub fn stats(&self) -> &StreamStats {
        &self.stats
    }

    /// Decode the packet whose first sample has RTP time `rtp_time` (48 kHz, extended to 64
    /// bits) into `out`, preceded by whatever fills the gap since the last packet (see the type
    /// docs). Returns what was written.
    ///
    /// # Errors
    /// `out` is shorter than [`OpusStreamDecoder::output_len`]. A packet that does not decode
    /// is not an error here: see [`StreamDecoded::error`].
    pub fn decode(
        &mut self,
        rtp_time: u64,
        packet: &[u8],
        out: &mut [i16],
    ) -> Result<StreamDecoded, CodecError> {
        if out.len() < self.output_len() {
            return Err(CodecError::BadFrame {
                what: format!(
                    "Opus stream output of {} samples (want {})",
                    out.len(),
                    self.output_len()
                ),
            });
        }
        let mut done = StreamDecoded::default();
        let mut gap = 0usize;
        match self.next {
            Some(next) if rtp_time < next => {
                if next - rtp_time <= LATE_WINDOW {
                    self.stats.late += 1;
                    done.late = true;
                    return Ok(done);
                }
                self.restart(&mut done, 0);
            }
            Some(next) if rtp_time > next => {
                let missing = rtp_time - next;
                match usize::try_from(missing) {
                    Ok(m) if m <= self.max_conceal => gap = m - m % STEP,
                    _ => self.restart(&mut done, missing),
                }
            }
            _ => {}
        }
        let ch = usize::from(self.channels());
        if gap > 0 {
            self.fill_gap(packet, gap, out, &mut done);
        }
        match self.decoder.decode(packet, &mut out[done.samples * ch..]) {
            Ok(n) if n > 0 => {
                done.packet = n;
                done.samples += n;
                self.stats.packets += 1;
                self.next = Some(rtp_time + n as u64);
            }
            Ok(_) => self.bad_packet(rtp_time, &mut done, None),
            Err(e) => self.bad_packet(rtp_time, &mut done, Some(e)),
        }
        Ok(done)
    }

    /// Fill `gap` samples per channel before `packet`: FEC for its last frame when the packet
    /// carries some, PLC for the rest. A failing library call leaves silence (never garbage).
    fn fill_gap(&mut self, packet: &[u8], gap: usize, out: &mut [i16], done: &mut StreamDecoded) {
        let ch = usize::from(self.channels());
        let frame = crate::opus::packet_samples(packet).unwrap_or(0);
        let fec = frame > 0 && frame <= gap && packet_has_fec(packet);
        let result = if fec {
            self.decoder.decode_fec(packet, gap, out)
        } else {
            self.decoder.conceal(gap, out)
        };
        let (plc, recovered) = match result {
            Ok(n) if n == gap => {
                if fec {
                    (gap - frame, frame)
                } else {
                    (gap, 0)
                }
            }
            Ok(n) => {
                tracing::debug!("Opus concealment gave {n} samples for a gap of {gap}");
                out[n.min(gap) * ch..gap * ch].fill(0);
                (gap, 0)
            }
            Err(e) => {
                tracing::debug!("Opus concealment of {gap} samples: {e}");
                out[..gap * ch].fill(0);
                (gap, 0)
            }
        };
        // Frames in the duration of the packet that ends the gap (20 ms when unknown).
        let unit = if frame > 0 { frame } else { 960 };
        self.stats.plc_samples += plc as u64;
        self.stats.plc_frames += plc.div_ceil(unit) as u64;
        if recovered > 0 {
            self.stats.fec_samples += recovered as u64;
            self.stats.fec_frames += 1;
        }
        done.concealed = plc;
        done.recovered = recovered;
        done.samples = gap;
    }

    /// A packet that does not decode is treated as lost: the next packet's gap covers it.
    fn bad_packet(&mut self, rtp_time: u64, done: &mut StreamDecoded, e: Option<CodecError>) {
        self.stats.errors += 1;
        if self.next.is_some() {
            self.next = Some(rtp_time);
        }
        done.error = Some(e.unwrap_or_else(|| CodecError::BadFrame {
            what: "an Opus packet that decodes to nothing".into(),
        }));
    }

    /// The packets that follow belong to a new stream (the sender rejoined, the track moved to
    /// a new RTP stream): start over at the next packet instead of judging its RTP time
    /// against the old stream's, which could drop up to 500 ms of it as late. Counted
    /// as a restart.
    pub fn new_stream(&mut self) {
        self.restart(&mut StreamDecoded::default(), 0);
    }

    fn restart(&mut self, done: &mut StreamDecoded, skipped: u64) {
        self.stats.restarts += 1;
        self.stats.skipped_samples += skipped;
        done.restarted = true;
        self.next = None;
        if let Err(e) = self.decoder.reset() {
            tracing::debug!("Opus decoder reset: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opus::{MAX_OPUS_PACKET, OPUS_FRAME_SAMPLES, OpusEncoder};

    const TONE_HZ: f64 = 440.0;

    /// `n` 20 ms frames of a 440 Hz tone in "syllables" of 175 ms at 10 000 with 75 ms at 5 %
    /// between them: libopus sends FEC only while its voice activity detector hears speech, and
    /// a steady tone stops sounding like speech within a second.
    fn source(n: usize) -> Vec<i16> {
        (0..n * OPUS_FRAME_SAMPLES)
            .map(|i| {
                let t = i as f64 / 48_000.0;
                let envelope = if (t * 4.0).fract() < 0.7 { 1.0 } else { 0.05 };
                ((t * TONE_HZ * std::f64::consts::TAU).sin() * 10_000.0 * envelope) as i16
            })
            .collect()
    }

    /// `n` packets of [`source`] from a 32 kbit/s mono encoder, with their RTP times.
    fn tone_packets(n: usize, expected_loss: u8) -> Vec<(u64, Vec<u8>)> {
        let mut enc = OpusEncoder::new(1, 32_000).unwrap();
        enc.set_expected_loss(expected_loss).unwrap();
        let mut packet = [0u8; MAX_OPUS_PACKET];
        source(n)
            .chunks_exact(OPUS_FRAME_SAMPLES)
            .enumerate()
            .map(|(f, pcm)| {
                let len = enc.encode(pcm, &mut packet).unwrap();
                (
                    90_000 + (f * OPUS_FRAME_SAMPLES) as u64,
                    packet[..len].to_vec(),
                )
            })
            .collect()
    }

    /// Decodes `arrivals` in order; returns the output and the decoder.
    fn play(arrivals: &[(u64, Vec<u8>)]) -> (Vec<i16>, OpusStreamDecoder) {
        let mut dec = OpusStreamDecoder::new(1).unwrap();
        let mut out = vec![0i16; dec.output_len()];
        let mut played = Vec::new();
        for (rtp, p) in arrivals {
            let d = dec.decode(*rtp, p, &mut out).unwrap();
            assert!(d.error.is_none(), "{d:?}");
            assert_eq!(d.samples, d.concealed + d.recovered + d.packet);
            played.extend_from_slice(&out[..d.samples]);
        }
        (played, dec)
    }

    fn dominant_hz(pcm: &[i16]) -> f32 {
        let mut spectrum =
            wavecast_pipeline::analysis::SpectrumAnalyzer::new(16_384, 48_000).unwrap();
        spectrum.push(&pcm[pcm.len() - 16_384..], 1);
        spectrum.compute();
        spectrum.dominant_frequency().unwrap().0
    }

    fn rms(pcm: &[i16]) -> f64 {
        let s: f64 = pcm.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        (s / pcm.len() as f64).sqrt()
    }

    /// Asserts the output is as long as the stream up to its last packet that arrived, has the
    /// tone's frequency, and no 20 ms of it (after the encoder's first half second) is quieter
    /// than `min_level` × what was sent there; returns the quietest 20 ms's share.
    fn assert_continuous(name: &str, played: &[i16], frames: usize, min_level: f64) -> f64 {
        assert_eq!(
            played.len(),
            frames * OPUS_FRAME_SAMPLES,
            "{name}: output as long as the stream"
        );
        let f = dominant_hz(played);
        assert!((f64::from(f) - TONE_HZ).abs() < 5.0, "{name}: {f} Hz");
        let sent = source(frames);
        let sent: Vec<&[i16]> = sent.chunks_exact(OPUS_FRAME_SAMPLES).collect();
        // Inside syllables only (the frame and its neighbours loud), past the first half second.
        let loud = |i: usize| rms(sent[i]) > 5_000.0;
        let quietest = played
            .chunks_exact(OPUS_FRAME_SAMPLES)
            .enumerate()
            .skip(25)
            .filter(|&(i, _)| {
                loud(i - 1) && loud(i) && sent.get(i + 1).is_some_and(|_| loud(i + 1))
            })
            .map(|(i, out)| rms(out) / rms(sent[i]))
            .fold(f64::INFINITY, f64::min);
        assert!(
            quietest >= min_level,
            "{name}: a 20 ms stretch at {:.0} % of the level sent",
            quietest * 100.0
        );
        quietest
    }

    /// A rejoined sender's new stream may start a little behind the old one's RTP time:
    /// without `new_stream` its first half second would be dropped as late.
    #[test]
    fn a_new_stream_is_played_from_its_first_packet() {
        let old = tone_packets(20, 0);
        let end = old.last().unwrap().0 + OPUS_FRAME_SAMPLES as u64;
        // The new stream starts 200 ms behind where the old one stopped.
        let new: Vec<_> = tone_packets(10, 0)
            .into_iter()
            .enumerate()
            .map(|(i, (_, p))| (end - 9_600 + (i * OPUS_FRAME_SAMPLES) as u64, p))
            .collect();
        let mut out = vec![0i16; OpusStreamDecoder::new(1).unwrap().output_len()];
        let mut played = |told: bool| {
            let mut dec = OpusStreamDecoder::new(1).unwrap();
            for (t, p) in &old {
                dec.decode(*t, p, &mut out).unwrap();
            }
            if told {
                dec.new_stream();
            }
            let n: usize = new
                .iter()
                .map(|(t, p)| dec.decode(*t, p, &mut out).unwrap().samples)
                .sum();
            (n, dec.stats().late, dec.stats().restarts)
        };
        assert_eq!(played(true), (10 * OPUS_FRAME_SAMPLES, 0, 1));
        // Not told: all 200 ms of the new stream land behind the old one and are "late".
        assert_eq!(played(false), (0, 10, 0));
    }

    #[test]
    fn nothing_lost_is_decoded_as_is() {
        let packets = tone_packets(100, 10);
        let (played, dec) = play(&packets);
        assert_continuous("no loss", &played, 100, 0.5);
        let s = dec.stats();
        assert_eq!(
            (s.packets, s.fec_frames, s.plc_frames, s.late),
            (100, 0, 0, 0)
        );
    }

    #[test]
    fn every_third_packet_lost_is_rebuilt_from_fec() {
        let packets = tone_packets(151, 10);
        let arrivals: Vec<_> = packets
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 2)
            .map(|(_, p)| p.clone())
            .collect();
        let (played, dec) = play(&arrivals);
        let quietest = assert_continuous("every 3rd lost", &played, 151, 0.4);
        let s = *dec.stats();
        eprintln!(
            "every 3rd lost: {s:?}, quietest 20 ms at {:.0} %",
            quietest * 100.0
        );
        assert_eq!(s.packets, 101);
        // Syllables carry FEC (40 of the 50 in a run), the quiet stretches between them none.
        assert!(s.fec_frames >= 35, "{s:?}");
        assert_eq!(s.fec_frames + s.plc_frames, 50, "{s:?}");
    }

    #[test]
    fn bursts_are_concealed_and_their_last_frame_rebuilt() {
        let packets = tone_packets(150, 10);
        // Bursts of 1, 2, 3 and 4 lost packets.
        let lost = |i: usize| matches!(i % 25, 10 | 14..=15 | 18..=20 | 0..=3) && i > 5;
        let arrivals: Vec<_> = packets
            .iter()
            .enumerate()
            .filter(|(i, _)| !lost(*i))
            .map(|(_, p)| p.clone())
            .collect();
        let dropped = 150 - arrivals.len();
        let (played, dec) = play(&arrivals);
        // Concealment fades out over a long burst (the third frame concealed is near silent):
        // only length and frequency are asserted.
        let quietest = assert_continuous("bursts", &played, 150, 0.0);
        let s = *dec.stats();
        eprintln!("bursts: {s:?}, quietest 20 ms at {:.0} %", quietest * 100.0);
        assert_eq!(s.fec_frames + s.plc_frames, dropped as u64, "{s:?}");
        assert!(s.fec_frames >= 12 && s.plc_frames >= 30, "{s:?}");
        assert_eq!(s.restarts, 0);
    }

    #[test]
    fn reordered_and_duplicated_packets_are_dropped_not_played() {
        let packets = tone_packets(100, 10);
        let mut arrivals = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            arrivals.push(p.clone());
            if i % 10 == 5 {
                arrivals.push(p.clone()); // duplicate
            }
        }
        // Swap neighbours: the later packet arrives first, the earlier one is then late.
        for i in (20..arrivals.len() - 1).step_by(17) {
            arrivals.swap(i, i + 1);
        }
        let (played, dec) = play(&arrivals);
        let s = *dec.stats();
        eprintln!("reorder + duplicates: {s:?}");
        // Each swap: one gap of a packet (rebuilt from FEC), one late packet dropped.
        assert_continuous("reorder + duplicates", &played, 100, 0.4);
        assert!(s.late >= 10 + 4, "{s:?}");
        assert_eq!(s.fec_frames + s.plc_frames, s.late - 10, "{s:?}");
    }

    #[test]
    fn a_long_gap_restarts_instead_of_concealing() {
        let packets = tone_packets(60, 10);
        // 400 ms missing (longer than the 200 ms concealed), then a jump back by 10 s.
        let mut arrivals: Vec<_> = packets[..20].to_vec();
        arrivals.extend_from_slice(&packets[40..50]);
        arrivals.extend(packets[50..].iter().map(|(t, p)| (t - 60_000, p.clone())));
        let (played, dec) = play(&arrivals);
        let s = *dec.stats();
        assert_eq!(played.len(), 40 * OPUS_FRAME_SAMPLES, "nothing filled");
        assert_eq!((s.restarts, s.skipped_samples), (2, 20 * 960), "{s:?}");
        assert_eq!((s.fec_frames, s.plc_frames, s.late), (0, 0, 0), "{s:?}");
    }

    #[test]
    fn gaps_within_the_bound_are_filled_exactly() {
        let packets = tone_packets(30, 10);
        let mut dec = OpusStreamDecoder::with_max_conceal(1, 3 * 960).unwrap();
        let mut out = vec![0i16; dec.output_len()];
        dec.decode(packets[0].0, &packets[0].1, &mut out).unwrap();
        // 3 packets lost: filled (2 concealed, 1 rebuilt), then the packet.
        let d = dec.decode(packets[4].0, &packets[4].1, &mut out).unwrap();
        assert_eq!((d.concealed, d.recovered, d.packet), (1920, 960, 960));
        // 4 lost: more than the bound.
        let d = dec.decode(packets[9].0, &packets[9].1, &mut out).unwrap();
        assert!(d.restarted && d.samples == 960, "{d:?}");
        // A buffer too small is an error, not a panic.
        assert!(
            dec.decode(packets[10].0, &packets[10].1, &mut out[..100])
                .is_err()
        );
    }

    #[test]
    fn a_corrupt_packet_is_treated_as_lost() {
        let packets = tone_packets(10, 10);
        let mut dec = OpusStreamDecoder::new(1).unwrap();
        let mut out = vec![0i16; dec.output_len()];
        let mut total = 0;
        for (i, (t, p)) in packets.iter().enumerate() {
            let data: &[u8] = if i == 5 { &[0xff, 0xff, 0xff] } else { p };
            let d = dec.decode(*t, data, &mut out).unwrap();
            assert_eq!(d.error.is_some(), i == 5, "{d:?}");
            total += d.samples;
        }
        assert_eq!(total, 10 * 960);
        assert_eq!(dec.stats().errors, 1);
        assert_eq!(dec.stats().fec_frames + dec.stats().plc_frames, 1);
    }

    #[test]
    fn fec_is_sent_only_when_loss_is_expected() {
        let with = tone_packets(20, 10);
        assert!(
            !packet_has_fec(&with[0].1),
            "the first packet has no previous frame"
        );
        // Within the first syllable (175 ms) every packet after the first has FEC.
        assert!(with[1..8].iter().all(|(_, p)| packet_has_fec(p)));
        let without = tone_packets(20, 0);
        assert!(without.iter().all(|(_, p)| !packet_has_fec(p)));
        // And the receiver then conceals instead.
        let arrivals: Vec<_> = without
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 10)
            .map(|(_, p)| p.clone())
            .collect();
        let (_, dec) = play(&arrivals);
        assert_eq!((dec.stats().fec_frames, dec.stats().plc_frames), (0, 1));
    }

    proptest::proptest! {
        /// Any bytes at any times: an error or concealment, never a panic or a write past the
        /// buffer.
        #[test]
        fn hostile_packets_never_panic(
            packets in proptest::collection::vec(
                (0u64..200_000, proptest::collection::vec(proptest::num::u8::ANY, 0..200)),
                1..40,
            )
        ) {
            let mut dec = OpusStreamDecoder::new(2).unwrap();
            let mut out = vec![0i16; dec.output_len()];
            for (t, p) in &packets {
                let _ = packet_has_fec(p);
                let _ = crate::opus::packet_samples(p);
                let d = dec.decode(*t, p, &mut out).unwrap();
                proptest::prop_assert!(d.samples * 2 <= out.len());
            }
        }
    }
}
