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
        Ok(Self {
            inner,
            channels: channels_n,
            bitrate,
        })
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
    /// always enough); returns samples per channel. An empty packet conceals one lost frame.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        self.inner
            .decode(packet, out, false)
            .map_err(opus_err("decode"))
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
