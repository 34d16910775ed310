//! Loss recovery on the publisher connection: how our sent video answers the server's NACKs.
//!
//! str0m answers a NACK with an RTX resend from a per-stream cache of sent packets, but by
//! default it drops every queued resend once resends exceed 15 % of the bytes sent
//! (`rtx_ratio_cap`). Random loss of about 13 % reaches that (each loss costs a resend, lost
//! resends cost more), and from then on the server cannot repair what it lost from us: every
//! subscriber — ours or anyone's — sees frames vanish and waits for keyframes. Measured with
//! the probe (`--leg up`, 15 % loss publisher → server): 12 fps reached both subscribers.
//!
//! We raise the cap to [`RTX_RATIO_CAP`]: resends may be up to half the bytes, which still
//! stops a peer that NACKs everything from doubling our send rate, while real loss up to about
//! 35 % is repaired. The cache keeps str0m's sizes (the configured video send buffer, 3 s).

use std::time::Duration;

use super::*;

/// Share of the sent bytes resends may take before str0m drops queued resends.
pub(crate) const RTX_RATIO_CAP: f32 = 0.5;
/// Packets kept for resends per video stream (str0m's default video send buffer).
pub(crate) const RTX_CACHE_PACKETS: usize = 1000;
/// How old a packet may be and still be resent (str0m's default).
pub(crate) const RTX_CACHE_AGE: Duration = Duration::from_secs(3);

impl Core {
    /// Apply [`RTX_RATIO_CAP`] to every published video stream not configured yet (streams are
    /// created by negotiation; reconfiguring one would empty its cache, so each is done once).
    pub(super) fn configure_resends(&mut self) {
        let mids: Vec<Mid> = self
            .local_tracks
            .values()
            .filter(|t| t.kind == TrackKind::Video)
            .filter_map(|t| t.mid)
            .collect();
        let mut api = self.publisher.rtc.direct_api();
        for mid in mids {
            let Some(tx) = api.stream_tx_by_mid(mid, None) else {
                continue;
            };
            if self.resend_configured.insert(tx.ssrc()) {
                tx.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(RTX_RATIO_CAP));
                debug!("resends on mid {mid}: cap {RTX_RATIO_CAP} of the bytes sent");
            }
        }
    }
}
