//! One peer connection: a str0m `Rtc` (sans-IO) and the address of the socket that feeds it.
//!
//! The `Rtc` keeps the protocol state; this wrapper upholds str0m's contract: every mutation
//! is followed by a full drain of `poll_output` to `Output::Timeout`. Datagrams and events
//! found while draining are queued for the core (datagrams go out through the driver).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive, TcpType, Transmit};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use super::IceTransport;
use crate::error::{EngineError, PeerRole};

/// The port an active TCP candidate names (RFC 6544: the discard port; the real one is the
/// connection's, chosen when it is made).
const ACTIVE_TCP_PORT: u16 = 9;

/// A str0m connection for one UDP socket (and, over TCP, the connections the driver makes for
/// it).
pub(crate) struct Peer {
    pub role: PeerRole,
    pub rtc: Rtc,
    /// The UDP socket's address: our UDP host candidate (unused with TCP only).
    pub local_addr: SocketAddr,
    /// Our active TCP candidate, once offered.
    pub tcp_addr: Option<SocketAddr>,
    /// Whether the UDP candidate is offered.
    pub udp: bool,
    /// When the connection was made.
    pub created: Instant,
    /// When the first remote description was applied: ICE can work from then on (the TCP
    /// fallback counts from here).
    pub negotiated_at: Option<Instant>,
    pub next_timeout: Instant,
    /// Events drained from `rtc`, waiting for the engine.
    pub events: VecDeque<Event>,
    /// Datagrams to send, waiting for the driver.
    pub transmits: VecDeque<Transmit>,
    /// Remote candidates that arrived before the remote description.
    pub queued_candidates: Vec<Candidate>,
    /// Whether a remote description has been applied (candidates can be added directly).
    pub has_remote_description: bool,
    pub connected: bool,
    /// The ICE agent's state, and since when.
    pub ice: (IceConnectionState, Instant),
    /// When the connection last took in a datagram (STUN, DTLS, RTP or RTCP): the media
    /// path's liveness.
    pub last_rx: Instant,
    /// What the last datagram it took in came over.
    pub last_rx_proto: Option<Protocol>,
    /// Our ICE username fragment now (it changes with an ICE restart).
    ice_ufrag: String,
    /// The ICE credentials changed: the TCP connections must be made anew (the server ties
    /// each to the username of its first check), before anything more is sent.
    pub tcp_reset: bool,
}

impl Peer {
    /// Create the `Rtc` for a socket bound at `local_addr`, offering the candidates
    /// `transport` says (TCP joins later with [`IceTransport::Auto`]: [`Peer::add_tcp`]).
    pub fn new(
        role: PeerRole,
        local_addr: SocketAddr,
        transport: IceTransport,
        bwe: Option<u64>,
        now: Instant,
    ) -> Result<Self, EngineError> {
        let mut config = rtc_config();
        if let Some(initial) = bwe {
            config = config.enable_bwe(Some(str0m::bwe::Bitrate::bps(initial)));
        }
        let mut rtc = config.build(now);
        let udp = transport != IceTransport::Tcp;
        if udp {
            rtc.add_local_candidate(udp_candidate(role, local_addr)?);
        }
        let mut peer = Self {
            role,
            rtc,
            local_addr,
            tcp_addr: None,
            udp,
            created: now,
            negotiated_at: None,
            next_timeout: now,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            queued_candidates: Vec::new(),
            has_remote_description: false,
            connected: false,
            ice: (IceConnectionState::New, now),
            last_rx: now,
            last_rx_proto: None,
            ice_ufrag: String::new(),
            tcp_reset: false,
        };
        peer.ice_ufrag = peer.rtc.direct_api().local_ice_credentials().ufrag;
        if transport == IceTransport::Tcp {
            peer.add_tcp()?;
        }
        peer.drain()?;
        Ok(peer)
    }

    /// Offer an active TCP candidate on the UDP socket's address: ICE then also checks pairs
    /// with the server's passive TCP candidates, over connections the driver makes. Returns
    /// the candidate (to trickle), or `None` when it was offered already.
    pub fn add_tcp(&mut self) -> Result<Option<Candidate>, EngineError> {
        if self.tcp_addr.is_some() {
            return Ok(None);
        }
        let addr = SocketAddr::new(self.local_addr.ip(), ACTIVE_TCP_PORT);
        let candidate = tcp_candidate(self.role, addr)?;
        self.rtc.add_local_candidate(candidate.clone());
        self.tcp_addr = Some(addr);
        self.drain()?;
        Ok(Some(candidate))
    }

    /// Our host candidates, as sent in trickle messages.
    pub fn local_candidates(&self) -> Result<Vec<Candidate>, EngineError> {
        let mut out = Vec::new();
        if self.udp {
            out.push(udp_candidate(self.role, self.local_addr)?);
        }
        if let Some(addr) = self.tcp_addr {
            out.push(tcp_candidate(self.role, addr)?);
        }
        Ok(out)
    }

    /// Drain `poll_output` until it yields a timeout: queue datagrams and events.
    pub fn drain(&mut self) -> Result<(), EngineError> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return Ok(());
                }
                Ok(Output::Transmit(t)) => self.transmits.push_back(t),
                Ok(Output::Event(e)) => self.events.push_back(e),
                Err(source) => {
                    return Err(EngineError::Rtc {
                        role: self.role,
                        what: "polling output",
                        source,
                    });
                }
            }
        }
    }

    /// Feed one received datagram, or one frame of a TCP connection (ignored when it is not
    /// for this connection).
    pub fn receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        data: &[u8],
    ) -> Result<(), EngineError> {
        let destination = match proto {
            Protocol::Udp => self.local_addr,
            _ => match self.tcp_addr {
                Some(addr) => addr,
                None => return Ok(()), // no TCP candidate: not ours
            },
        };
        let Ok(contents) = data.try_into() else {
            return Ok(()); // not STUN/DTLS/RTP: ignore
        };
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
        if !self.rtc.accepts(&input) {
            return Ok(());
        }
        self.last_rx = now;
        self.last_rx_proto = Some(proto);
        self.rtc
            .handle_input(input)
            .map_err(|source| EngineError::Rtc {
                role: self.role,
                what: "handling a received packet",
                source,
            })?;
        self.drain()
    }

    /// Advance time to `now` when the deadline has passed.
    pub fn tick(&mut self, now: Instant) -> Result<(), EngineError> {
        if now < self.next_timeout {
            return Ok(());
        }
        self.rtc
            .handle_input(Input::Timeout(now))
            .map_err(|source| EngineError::Rtc {
                role: self.role,
                what: "handling a timeout",
                source,
            })?;
        self.drain()
    }

    /// Whether ICE has a working pair (a restart puts it back to checking until it has one).
    pub fn ice_usable(&self) -> bool {
        matches!(
            self.ice.0,
            IceConnectionState::Connected | IceConnectionState::Completed
        )
    }

    /// Add a remote candidate, or queue it until a remote description exists.
    pub fn add_remote_candidate(&mut self, c: Candidate) -> Result<(), EngineError> {
        if self.has_remote_description {
            self.rtc.add_remote_candidate(c);
            self.drain()
        } else {
            self.queued_candidates.push(c);
            Ok(())
        }
    }

    /// Mark the remote description applied and flush queued candidates.
    pub fn remote_description_applied(&mut self, now: Instant) -> Result<(), EngineError> {
        self.has_remote_description = true;
        self.negotiated_at.get_or_insert(now);
        // Credentials change only with a negotiation (an ICE restart): look here, before any
        // check with the new ones goes out, not on every packet.
        if self.tcp_addr.is_some() {
            let ufrag = self.rtc.direct_api().local_ice_credentials().ufrag;
            if ufrag != self.ice_ufrag {
                self.ice_ufrag = ufrag;
                self.tcp_reset = true;
            }
        }
        for c in std::mem::take(&mut self.queued_candidates) {
            self.rtc.add_remote_candidate(c);
            self.drain()?;
        }
        self.drain()?;
        // Have the next tick hand str0m the time at once: its ICE agent leaves `New` (and
        // starts its own checks) only on a timeout. Over UDP the server's first check would
        // wake it anyway; over TCP nothing comes before our own check (we connect).
        self.next_timeout = self.created;
        Ok(())
    }
}

/// The longest pause between two ICE connectivity checks of a pair (str0m's default: 3 s).
/// While a path is down our checks keep going at this pace, so a path that opens again is
/// seen within it: the liveness recovery restarts ICE as soon as that happens
/// (`sansio::liveness`). A check is ~100 bytes each way.
pub(crate) const MAX_STUN_RTO: Duration = Duration::from_millis(500);

/// Unanswered checks before a pair is given up: with [`MAX_STUN_RTO`] about 20 s, as long as
/// with str0m's defaults (9 checks backing off to 3 s).
pub(crate) const MAX_STUN_RETRANSMITS: usize = 40;

/// The str0m configuration both connections use: Opus with RED (RFC 2198, each packet also
/// carries the one before it), VP8, VP9 and H.264 (in that order of preference; a published
/// track's own codec goes first in its m-line, `offer_sdp`), the audio reorder budget of
/// `sansio::recovery`, and ICE checks at least every [`MAX_STUN_RTO`].
pub(crate) fn rtc_config() -> RtcConfig {
    use super::recovery::{AUDIO_REORDER_PACKETS, AUDIO_REORDER_WAIT};
    let mut config = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, true)
        .enable_vp8(true)
        .enable_vp9(true)
        .enable_h264(true)
        .set_stats_interval(Some(super::STATS_INTERVAL))
        .set_reordering_size_audio(AUDIO_REORDER_PACKETS)
        .set_reordering_timeout_audio(Some(AUDIO_REORDER_WAIT));
    config.set_max_stun_rto(MAX_STUN_RTO);
    config.set_max_stun_retransmits(MAX_STUN_RETRANSMITS);
    config
}

/// Parse a trickle `candidateInit` JSON from the server into a str0m candidate.
/// Returns `Ok(None)` for an end-of-candidates marker (empty candidate).
pub(crate) fn parse_candidate_init(json: &str) -> Result<Option<Candidate>, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let cand = v
        .get("candidate")
        .and_then(|c| c.as_str())
        .ok_or_else(|| format!("no candidate field in {json}"))?;
    if cand.trim().is_empty() {
        return Ok(None);
    }
    let cand = cand.strip_prefix("a=").unwrap_or(cand);
    Candidate::from_sdp_string(cand)
        .map(Some)
        .map_err(|e| format!("{e} in {cand:?}"))
}

/// The `candidateInit` JSON for one of our candidates.
pub(crate) fn candidate_init(c: &Candidate) -> String {
    serde_json::json!({
        "candidate": c.to_sdp_string(),
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    })
    .to_string()
}

fn udp_candidate(role: PeerRole, addr: SocketAddr) -> Result<Candidate, EngineError> {
    Candidate::host(addr, "udp").map_err(|e| EngineError::Rtc {
        role,
        what: "building the UDP host candidate",
        source: str0m::RtcError::Ice(e),
    })
}

fn tcp_candidate(role: PeerRole, addr: SocketAddr) -> Result<Candidate, EngineError> {
    Candidate::builder()
        .tcp()
        .host(addr)
        .tcptype(TcpType::Active)
        .build()
        .map_err(|e| EngineError::Rtc {
            role,
            what: "building the TCP host candidate",
            source: str0m::RtcError::Ice(e),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pion_candidate_init() {
        let json = r#"{"candidate":"candidate:1234 1 udp 2130706431 127.0.0.1 7882 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":null}"#;
        let c = parse_candidate_init(json).unwrap().unwrap();
        assert_eq!(c.addr(), "127.0.0.1:7882".parse().unwrap());
    }

    #[test]
    fn empty_candidate_is_end_of_candidates() {
        assert!(
            parse_candidate_init(r#"{"candidate":""}"#)
                .unwrap()
                .is_none()
        );
        assert!(parse_candidate_init("not json").is_err());
    }
}
