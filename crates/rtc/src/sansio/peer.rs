//! One peer connection: a str0m `Rtc` (sans-IO) and the address of the socket that feeds it.
//!
//! The `Rtc` keeps the protocol state; this wrapper upholds str0m's contract: every mutation
//! is followed by a full drain of `poll_output` to `Output::Timeout`. Datagrams and events
//! found while draining are queued for the core (datagrams go out through the driver).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use crate::error::{EngineError, PeerRole};

/// A str0m connection for one UDP socket.
pub(crate) struct Peer {
    pub role: PeerRole,
    pub rtc: Rtc,
    pub local_addr: SocketAddr,
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
}

impl Peer {
    /// Create the `Rtc` for a socket bound at `local_addr`.
    pub fn new(role: PeerRole, local_addr: SocketAddr, now: Instant) -> Result<Self, EngineError> {
        let mut rtc = rtc_config().build(now);
        let candidate = Candidate::host(local_addr, "udp").map_err(|e| EngineError::Rtc {
            role,
            what: "adding the host candidate",
            source: str0m::RtcError::Ice(e),
        })?;
        rtc.add_local_candidate(candidate);
        let mut peer = Self {
            role,
            rtc,
            local_addr,
            next_timeout: now,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            queued_candidates: Vec::new(),
            has_remote_description: false,
            connected: false,
            ice: (IceConnectionState::New, now),
            last_rx: now,
        };
        peer.drain()?;
        Ok(peer)
    }

    /// Our host candidate, as sent in trickle messages.
    pub fn local_candidate(&self) -> Result<Candidate, EngineError> {
        Candidate::host(self.local_addr, "udp").map_err(|e| EngineError::Rtc {
            role: self.role,
            what: "building the host candidate",
            source: str0m::RtcError::Ice(e),
        })
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

    /// Feed one received datagram (ignored when it is not for this connection).
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        data: &[u8],
    ) -> Result<(), EngineError> {
        let Ok(contents) = data.try_into() else {
            return Ok(()); // not STUN/DTLS/RTP: ignore
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local_addr,
                contents,
            },
        );
        if !self.rtc.accepts(&input) {
            return Ok(());
        }
        self.last_rx = now;
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
    pub fn remote_description_applied(&mut self) -> Result<(), EngineError> {
        self.has_remote_description = true;
        for c in std::mem::take(&mut self.queued_candidates) {
            self.rtc.add_remote_candidate(c);
            self.drain()?;
        }
        self.drain()
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
/// carries the one before it) and VP8 only, the audio reorder budget of `sansio::recovery`,
/// and ICE checks at least every [`MAX_STUN_RTO`].
pub(crate) fn rtc_config() -> RtcConfig {
    use super::recovery::{AUDIO_REORDER_PACKETS, AUDIO_REORDER_WAIT};
    let mut config = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, true)
        .enable_vp8(true)
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
