//! ICE over TCP: when to offer the TCP candidate ([`IceTransport`]) and which transport media
//! flows over. The connections themselves (RFC 4571 framing) are the driver's.

use super::*;

impl Core {
    /// With [`IceTransport::Auto`], when a connection has not come up over UDP within
    /// [`EngineOptions::tcp_fallback_after`] of its first negotiation, offer TCP too.
    pub(super) fn fall_back_to_tcp(&mut self) {
        if self.options.ice_transport != IceTransport::Auto {
            return;
        }
        let after = self.options.tcp_fallback_after;
        for role in [PeerRole::Publisher, PeerRole::Subscriber] {
            let now = self.now;
            let peer = self.peer_mut(role);
            let due = peer
                .negotiated_at
                .is_some_and(|t| now.saturating_duration_since(t) >= after);
            if peer.connected || peer.tcp_addr.is_some() || !due {
                continue;
            }
            match peer.add_tcp() {
                Ok(Some(candidate)) => {
                    info!("{role}: no UDP connection after {after:?}; trying ICE over TCP too");
                    self.trickle(role, &candidate);
                }
                Ok(None) => {}
                Err(e) => warn!("engine: {e}"),
            }
        }
    }

    /// When [`Core::fall_back_to_tcp`] must look again.
    pub(super) fn tcp_fallback_deadline(&self) -> Option<Instant> {
        if self.options.ice_transport != IceTransport::Auto {
            return None;
        }
        [&self.publisher, &self.subscriber]
            .into_iter()
            .filter(|p| !p.connected && p.tcp_addr.is_none())
            .filter_map(|p| p.negotiated_at)
            .map(|t| t + self.options.tcp_fallback_after)
            .min()
    }

    /// Note what a datagram that arrived came over (for [`MediaTransport`]).
    pub(super) fn note_transport(&self, role: PeerRole) {
        let peer = match role {
            PeerRole::Publisher => &self.publisher,
            PeerRole::Subscriber => &self.subscriber,
        };
        let value = match peer.last_rx_proto {
            None => return,
            Some(str0m::net::Protocol::Udp) => 1,
            Some(_) => 2,
        };
        self.counters
            .transport
            .store(value, std::sync::atomic::Ordering::Relaxed);
    }
}

impl MediaTransport {
    pub(crate) fn from_counter(v: u8) -> Self {
        match v {
            1 => Self::Udp,
            2 => Self::Tcp,
            _ => Self::None,
        }
    }
}
