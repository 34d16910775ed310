//! Opus over the system libopus (`opus` crate → `audiopus_sys`, linked via pkg-config).

use crate::CodecError;

/// Sample rate WebRTC Opus runs at.
pub const OPUS_SAMPLE_RATE: u32 = 48_000;
/// Samples per channel in one 20 ms Opus frame at 48 kHz (what we send).
pub const OPUS_FRAME_SAMPLES: usize = 960;
/// Largest Opus packet we produce.
pub const MAX_OPUS_PACKET: usize = 1500;
/// Most samples per channel one packet can decode to (120 ms at 48 kHz).
pub const MAX_OPUS_DECODED: usize = 5760;
/// The packet loss a new encoder expects, percent ([`OpusEncoder::set_expected_loss`]).
///
/// libopus puts in-band FEC (LBRR: a low-bitrate copy of the previous frame) into its packets
/// only when in-band FEC is on *and* the expected loss is above zero; a higher figure spends more
/// of the bitrate on that copy. Even then it sends FEC only while its voice activity detector
/// hears speech: not in silence, and not for a steady tone after its first second or so. The
/// copy costs bits: at 24 kbit/s mono the main encoding gets coarse enough to smear short
/// silences (the synthetic tone's timestamp markers); 32 kbit/s and above keep them.
pub const DEFAULT_EXPECTED_LOSS_PERCENT: u8 = 10;

fn opus_err(op: &'static str) -> impl FnOnce(opus::Error) -> CodecError {
    move |e| CodecError::Library {
        codec: "opus",
        op,
        message: e.to_string(),
    }
}

fn channels(n: u16) -> Result<opus::Channels, CodecError> {
    match n {
        1 => Ok(opus::Channels::Mono),
        2 => Ok(opus::Channels::Stereo),
        other => Err(CodecError::Unsupported {
            what: format!("{other} audio channels (Opus here takes 1 or 2)"),
        }),
    }
}

/// An Opus encoder for 48 kHz 16-bit PCM in 20 ms frames.
pub struct OpusEncoder {
    inner: opus::Encoder,
    channels: u16,
    bitrate: u32,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("channels", &self.channels)
            .field("bitrate", &self.bitrate)
            .finish()
    }
}

impl OpusEncoder {
    /// A VoIP-mode encoder for `channels` (1 or 2) at `bitrate` bits per second.
    pub fn new(channels_n: u16, bitrate: u32) -> Result<Self, CodecError> {
        let mut inner = opus::Encoder::new(
            OPUS_SAMPLE_RATE,
            channels(channels_n)?,
            opus::Application::Voip,
        )
        .map_err(opus_err("create encoder"))?;
        inner
            .set_bitrate(opus::Bitrate::Bits(bitrate as i32))
            .map_err(opus_err("set bitrate"))?;
        inner
            .set_inband_fec(true)
            .map_err(opus_err("enable in-band FEC"))?;
        let mut enc = Self {
            inner,
            channels: channels_n,
            bitrate,
        };
        enc.set_expected_loss(DEFAULT_EXPECTED_LOSS_PERCENT)?;
        Ok(enc)
    }

    /// The packet loss to prepare for, percent (0–100; more is taken as 100).
    /// [`DEFAULT_EXPECTED_LOSS_PERCENT`] on a new encoder. Zero turns the in-band FEC off in
    /// effect (libopus sends none); callers that see receiver reports can follow the loss.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), CodecError> {
        self.inner
            .set_packet_loss_perc(i32::from(percent.min(100)))
            .map_err(opus_err("set expected packet loss"))
    }

    /// The packet loss the encoder prepares for, percent.
    pub fn expected_loss(&mut self) -> Result<u8, CodecError> {
        let p = self
            .inner
            .get_packet_loss_perc()
            .map_err(opus_err("get expected packet loss"))?;
        Ok(p.clamp(0, 100) as u8)
    }

    /// Change the target bitrate (bits per second).
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), CodecError> {
        self.inner
            .set_bitrate(opus::Bitrate::Bits(bitrate as i32))
            .map_err(opus_err("set bitrate"))?;
        self.bitrate = bitrate;
        Ok(())
    }

    /// The target bitrate in bits per second.
    pub fn bitrate(&self) -> u32 {
        self.bitrate
    }

    /// Channel count.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Encode one frame of interleaved samples (2.5, 5, 10, 20, 40 or 60 ms) into `out`;
    /// returns the packet length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        self.inner.encode(pcm, out).map_err(opus_err("encode"))
    }
}

/// An Opus decoder to 48 kHz 16-bit interleaved PCM.
pub struct OpusDecoder {
    inner: opus::Decoder,
    channels: u16,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("channels", &self.channels)
            .finish()
    }
}

impl OpusDecoder {
    /// A decoder producing `channels` (1 or 2) interleaved channels.
    pub fn new(channels_n: u16) -> Result<Self, CodecError> {
        let inner = opus::Decoder::new(OPUS_SAMPLE_RATE, channels(channels_n)?)
            .map_err(opus_err("create decoder"))?;
        Ok(Self {
            inner,
            channels: channels_n,
        })
    }

    /// Channel count.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Decode one packet into `out` (room for [`MAX_OPUS_DECODED`] × channels samples is
    /// always enough); returns samples per channel. An empty packet conceals as many samples
    /// as `out` holds (see [`OpusDecoder::conceal`] to say how many).
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        self.inner
            .decode(packet, out, false)
            .map_err(opus_err("decode"))
    }

    /// Packet loss concealment: synthesise `samples` per channel (a multiple of 120, i.e.
    /// 2.5 ms) for audio that never arrived, continuing from what was decoded last (libopus
    /// fades it out over a few frames). Returns samples per channel written to `out`.
    pub fn conceal(&mut self, samples: usize, out: &mut [i16]) -> Result<usize, CodecError> {
        let out = self.exact(samples, out, "conceal")?;
        self.inner
            .decode(&[], out, false)
            .map_err(opus_err("conceal a lost packet"))
    }

    /// Recover lost audio from the in-band FEC of `next` (the packet after the loss):
    /// `samples` per channel (a multiple of 120) end where `next` starts. libopus rebuilds the
    /// last frame of that span from `next`'s FEC data when it has some ([`packet_has_fec`]) and
    /// conceals the rest (and everything, when it has none). `next` itself is then decoded with
    /// [`OpusDecoder::decode`] as usual. Returns samples per channel written to `out`.
    pub fn decode_fec(
        &mut self,
        next: &[u8],
        samples: usize,
        out: &mut [i16],
    ) -> Result<usize, CodecError> {
        let out = self.exact(samples, out, "decode FEC")?;
        self.inner
            .decode(next, out, true)
            .map_err(opus_err("decode in-band FEC"))
    }

    /// Forget the stream decoded so far (after a long break: nothing to continue from).
    pub fn reset(&mut self) -> Result<(), CodecError> {
        self.inner.reset_state().map_err(opus_err("reset"))
    }

    /// `out` cut to exactly `samples` per channel (libopus conceals exactly as many as asked).
    fn exact<'a>(
        &self,
        samples: usize,
        out: &'a mut [i16],
        op: &str,
    ) -> Result<&'a mut [i16], CodecError> {
        let len = samples * usize::from(self.channels);
        if samples == 0 || !samples.is_multiple_of(120) || out.len() < len {
            return Err(CodecError::BadFrame {
                what: format!(
                    "Opus {op}: {samples} samples per channel (want a positive multiple of 120) \
                     into a buffer of {} samples",
                    out.len()
                ),
            });
        }
        Ok(&mut out[..len])
    }
}

/// Whether an Opus packet carries in-band FEC (LBRR) data for the frame before it — what
/// [`OpusDecoder::decode_fec`] can rebuild a lost packet from.
///
/// Reads the TOC (RFC 6716 §3.1) and the first SILK header bits of the packet's first frame
/// (§4.2.3: one VAD flag per SILK frame, then the LBRR flag, each an equiprobable range-coded
/// bit, so the first byte holds them in order; a stereo packet's side channel follows the mid
/// channel). CELT-only packets carry none. Malformed packets are `false`, never a panic.
pub fn packet_has_fec(packet: &[u8]) -> bool {
    let Some(&toc) = packet.first() else {
        return false;
    };
    let config = toc >> 3;
    if config >= 16 {
        return false; // CELT only
    }
    // SILK frames per Opus frame: SILK-only configs cycle 10/20/40/60 ms, hybrid 10/20 ms.
    let silk_frames: u32 = if config < 12 {
        match config % 4 {
            2 => 2,
            3 => 3,
            _ => 1,
        }
    } else {
        1
    };
    let stereo = toc & 0x04 != 0;
    let Some(first) = first_frame(packet) else {
        return false;
    };
    let Some(&b) = first.first() else {
        return false;
    };
    let mid = (b >> (7 - silk_frames)) & 1 == 1;
    let side = stereo && (b >> (6 - 2 * silk_frames)) & 1 == 1;
    mid || side
}

/// Samples per channel (48 kHz) an Opus packet decodes to, or `None` when its TOC is malformed.
pub fn packet_samples(packet: &[u8]) -> Option<usize> {
    opus::packet::get_nb_samples(packet, OPUS_SAMPLE_RATE)
        .ok()
        .filter(|&n| n > 0)
}

/// The first frame of an Opus packet (RFC 6716 §3.2), or `None` when the packet is malformed.
fn first_frame(packet: &[u8]) -> Option<&[u8]> {
    let rest = packet.get(1..)?;
    match packet[0] & 0x03 {
        // One frame, or two of equal size.
        0 => Some(rest),
        1 => Some(&rest[..rest.len() / 2]),
        // Two frames, the first one's length coded in front.
        2 => {
            let (len, skip) = frame_length(rest)?;
            rest.get(skip..skip + len)
        }
        // A frame count byte, optional padding, VBR lengths or equal (CBR) frames.
        _ => {
            let (&count, mut rest) = rest.split_first()?;
            let (vbr, padded, frames) = (count & 0x80 != 0, count & 0x40 != 0, count & 0x3f);
            if frames == 0 {
                return None;
            }
            let mut padding = 0usize;
            if padded {
                loop {
                    let (&p, r) = rest.split_first()?;
                    rest = r;
                    padding += if p == 255 { 254 } else { usize::from(p) };
                    if p != 255 {
                        break;
                    }
                }
            }
            let body = rest.len().checked_sub(padding)?;
            if vbr && frames > 1 {
                let (len, skip) = frame_length(rest)?;
                // The other frames' lengths (all but the last) come before the data too.
                let mut at = skip;
                for _ in 1..frames - 1 {
                    let (_, s) = frame_length(rest.get(at..)?)?;
                    at += s;
                }
                let end = at.checked_add(len).filter(|&e| e <= body)?;
                rest.get(at..end)
            } else {
                rest.get(..body / usize::from(frames))
            }
        }
    }
}

/// A frame length (RFC 6716 §3.2.1): the length and the bytes it took.
fn frame_length(b: &[u8]) -> Option<(usize, usize)> {
    match *b.first()? {
        l @ 0..=251 => Some((usize::from(l), 1)),
        l => Some((usize::from(*b.get(1)?) * 4 + usize::from(l), 2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_survives_a_round_trip() {
        let mut enc = OpusEncoder::new(1, 48_000).unwrap();
        let mut dec = OpusDecoder::new(1).unwrap();
        let mut packet = [0u8; MAX_OPUS_PACKET];
        let mut out = vec![0i16; MAX_OPUS_DECODED];
        let mut decoded = Vec::new();
        for f in 0..50 {
            let pcm: Vec<i16> = (0..OPUS_FRAME_SAMPLES)
                .map(|i| {
                    let n = (f * OPUS_FRAME_SAMPLES + i) as f64;
                    ((n * 440.0 * std::f64::consts::TAU / 48_000.0).sin() * 10_000.0) as i16
                })
                .collect();
            let len = enc.encode(&pcm, &mut packet).unwrap();
            assert!(len > 0 && len < 400);
            let n = dec.decode(&packet[..len], &mut out).unwrap();
            assert_eq!(n, OPUS_FRAME_SAMPLES);
            decoded.extend_from_slice(&out[..n]);
        }
        let mut spectrum =
            wavecast_pipeline::analysis::SpectrumAnalyzer::new(16_384, 48_000).unwrap();
        spectrum.push(&decoded[decoded.len() - 16_384..], 1);
        spectrum.compute();
        let (f, _) = spectrum.dominant_frequency().unwrap();
        assert!((f - 440.0).abs() < 5.0, "dominant {f} Hz");
    }

    #[test]
    fn bad_channel_count_is_an_error() {
        assert!(matches!(
            OpusEncoder::new(3, 32_000),
            Err(CodecError::Unsupported { .. })
        ));
        let mut dec = OpusDecoder::new(1).unwrap();
        let mut out = vec![0i16; MAX_OPUS_DECODED];
        // Garbage must be an error or concealment, never a panic.
        let _ = dec.decode(&[0xff, 0xff, 0xff], &mut out);
    }
}
