//! The sans-IO core on virtual time: no sockets, no server, no runtime.
//!
//! A fake SFU made of two str0m connections (one answering our publisher, one offering our
//! subscriber an Opus track) plays the server's media side; its signal side is a few lines
//! answering our offers and trickles. Datagrams are carried between them in memory, and the
//! clock is an `Instant` the test advances, so each test runs in well under a second whatever
//! the span of virtual time it covers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input as RtcInput, Output as RtcOutput, Rtc};
use tokio::sync::mpsc;

use crate::error::{EngineError, PeerRole};
use crate::events::{DisconnectReason, EngineEvent, Participant, TransportState};
use crate::sansio::peer::{candidate_init, parse_candidate_init, rtc_config};
use crate::sansio::resume::{RESUME_ATTEMPT_TIMEOUT, RESUME_ATTEMPTS};
use crate::sansio::{
    Command, Core, CoreConfig, Counters, DataOptions, EngineOptions, EventSink, IceTransport,
    Input, Offer, Output, Reply, ResumeFailure, SignalIn, SignalOut,
};
use crate::track::{CommandSender, LocalTrack, MediaSender, RemoteTrack, TrackOptions};

const OUR_PUB: &str = "192.0.2.1:50000";
const OUR_SUB: &str = "192.0.2.1:50001";
const SFU_PUB: &str = "192.0.2.100:7883";
const SFU_SUB: &str = "192.0.2.100:7882";
const REMOTE_SID: &str = "PA_remote";
const REMOTE_TRACK: &str = "TR_remoteaudio";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// The event stream with a reader that takes events only when the test says so.
struct Reader {
    queue: Arc<Mutex<VecDeque<EngineEvent>>>,
    capacity: usize,
}

impl EventSink for Reader {
    fn offer(&mut self, ev: EngineEvent) -> Offer {
        let mut q = self.queue.lock().expect("queue");
        if q.len() >= self.capacity {
            Offer::Full(ev)
        } else {
            q.push_back(ev);
            Offer::Sent
        }
    }
}

/// The server's media side: its ends of our two connections.
struct Sfu {
    /// Answers our publisher's offers.
    publisher: Rtc,
    /// Offers our subscriber an Opus track.
    subscriber: Rtc,
    sub_pending: Option<SdpPendingOffer>,
    audio_mid: Option<Mid>,
    sub_connected: bool,
    /// The subscriber connection's ICE generation was started while UDP was down and the server
    /// gave up on it (livekit-server's controlling agent stops checking a generation that got no
    /// answer): nothing gets through on it until the next ICE restart.
    sub_given_up: bool,
    /// Subscriber offers sent (ids).
    sub_offers: u32,
    /// Data packets that reached the server on our publisher connection.
    data_received: Vec<Vec<u8>>,
    audio_sent: u64,
}

/// Where a reply lands.
type Slot<T> = Arc<Mutex<Option<Result<T, EngineError>>>>;

/// A reply the test can look at later.
fn reply_slot<T: Send + 'static>() -> (Reply<T>, Slot<T>) {
    let slot = Arc::new(Mutex::new(None));
    let s = slot.clone();
    let reply: Reply<T> = Box::new(move |r| {
        *s.lock().expect("slot") = Some(r);
    });
    (reply, slot)
}

struct Harness {
    core: Core,
    now: Instant,
    sfu: Sfu,
    events: Arc<Mutex<VecDeque<EngineEvent>>>,
    counters: Arc<Counters>,
    /// Whether UDP gets through (both ways).
    udp_up: bool,
    /// Answer `AddTrack` with `TrackPublished`.
    confirm_publish: bool,
    /// Messages from the server waiting to reach the core.
    to_core: VecDeque<proto::signal_response::Message>,
    /// Everything the core sent to the server.
    sent: Vec<proto::signal_request::Message>,
    /// Resume attempts the core asked the driver for, in order.
    resumes: Vec<proto::ReconnectReason>,
    /// Resume attempts answered.
    answered: usize,
    closes: usize,
    reconnected: usize,
    /// The subscribed remote track, once subscribed.
    track: Option<RemoteTrack>,
    frames: u64,
    /// The `Disconnected` reason, once the reader got it.
    stopped_reason: Option<DisconnectReason>,
    /// When the last frame reached the track's reader.
    last_frame_at: Option<Instant>,
    _commands: mpsc::Receiver<Command>,
    _media: mpsc::Receiver<crate::track::MediaWrite>,
}

impl Harness {
    /// A core that joined a room with one remote participant publishing audio, both
    /// connections up and audio flowing. The reader takes events as they come (capacity 1024)
    /// unless `reader_capacity` says otherwise.
    fn joined(options: EngineOptions) -> Self {
        let mut h = Self::new(options, 1024);
        h.connect();
        h
    }

    fn new(options: EngineOptions, reader_capacity: usize) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let now = Instant::now();
        let events = Arc::new(Mutex::new(VecDeque::new()));
        let counters = Arc::new(Counters::default());
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (media_tx, media_rx) = mpsc::channel(64);
        let remote = proto::ParticipantInfo {
            sid: REMOTE_SID.into(),
            identity: "remote".into(),
            state: proto::participant_info::State::Active as i32,
            tracks: vec![proto::TrackInfo {
                sid: REMOTE_TRACK.into(),
                name: "mic".into(),
                r#type: proto::TrackType::Audio as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        let core = Core::new(
            now,
            CoreConfig {
                options,
                local: Participant {
                    sid: "PA_local".into(),
                    identity: "me".into(),
                    ..Participant::default()
                },
                others: vec![remote],
                publisher_addr: addr(OUR_PUB),
                subscriber_addr: addr(OUR_SUB),
                seed: 7,
                events: Box::new(Reader {
                    queue: events.clone(),
                    capacity: reader_capacity,
                }),
                counters: counters.clone(),
                commands: CommandSender(cmd_tx),
                media: MediaSender(media_tx),
            },
        )
        .expect("core");
        let sfu_rtc = |a: &str| {
            let mut rtc = rtc_config().build(now);
            rtc.add_local_candidate(Candidate::host(addr(a), "udp").expect("candidate"));
            rtc
        };
        let sfu = Sfu {
            publisher: sfu_rtc(SFU_PUB),
            subscriber: sfu_rtc(SFU_SUB),
            sub_pending: None,
            audio_mid: None,
            sub_connected: false,
            sub_given_up: false,
            sub_offers: 0,
            data_received: Vec::new(),
            audio_sent: 0,
        };
        Harness {
            core,
            now,
            sfu,
            events,
            counters,
            udp_up: true,
            confirm_publish: true,
            to_core: VecDeque::new(),
            sent: Vec::new(),
            resumes: Vec::new(),
            answered: 0,
            closes: 0,
            reconnected: 0,
            track: None,
            frames: 0,
            stopped_reason: None,
            last_frame_at: None,
            _commands: cmd_rx,
            _media: media_rx,
        }
    }

    /// Offer the remote audio track to our subscriber and run until both connections are up
    /// and audio arrives.
    fn connect(&mut self) {
        let mut api = self.sfu.subscriber.sdp_api();
        let mid = api.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some(format!("{REMOTE_SID}|{REMOTE_TRACK}")),
            Some(REMOTE_TRACK.into()),
            None,
        );
        let (offer, pending) = api.apply().expect("offer");
        self.sfu.audio_mid = Some(mid);
        self.sfu.sub_pending = Some(pending);
        self.to_core
            .push_back(proto::signal_response::Message::Offer(
                proto::SessionDescription {
                    r#type: "offer".into(),
                    sdp: offer.to_sdp_string(),
                    id: 1,
                    mid_to_track_id: Default::default(),
                },
            ));
        self.to_core
            .push_back(trickle(SFU_SUB, proto::SignalTarget::Subscriber));
        self.run_for(Duration::from_secs(10));
        let ev = self.take_events();
        let connected = |role| {
            ev.iter().any(|e| {
                matches!(e, EngineEvent::Transport { role: r, state: TransportState::Connected } if *r == role)
            })
        };
        assert!(connected(PeerRole::Publisher), "publisher up: {ev:?}");
        assert!(connected(PeerRole::Subscriber), "subscriber up: {ev:?}");
        assert!(self.track.is_some(), "subscribed: {ev:?}");
        assert!(self.frames > 50, "audio flows: {}", self.frames);
    }

    /// What the reader got so far (it then has room again).
    fn take_events(&mut self) -> Vec<EngineEvent> {
        let mut q = self.events.lock().expect("events");
        let out: Vec<EngineEvent> = q.drain(..).collect();
        drop(q);
        self.core.handle(self.now, Input::ReaderReady);
        if let Some(r) = Self::disconnected(&out) {
            self.stopped_reason = Some(r);
        }
        out
    }

    fn handle(&mut self, input: Input<'_>) {
        self.core.handle(self.now, input);
        self.pump();
    }

    fn command(&mut self, c: Command) {
        self.handle(Input::Command(c));
    }

    fn signal(&mut self, s: SignalIn) {
        self.handle(Input::Signal(s));
    }

    /// Carry everything that is due now, until nobody has anything more to say.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut progress = false;
            // The core's output.
            loop {
                match self.core.poll_output() {
                    Output::Transmit(role, t) => {
                        progress = true;
                        if !self.udp_up || (role == PeerRole::Subscriber && self.sfu.sub_given_up) {
                            continue;
                        }
                        let now = self.now;
                        let to = if t.destination == addr(SFU_PUB) {
                            &mut self.sfu.publisher
                        } else {
                            &mut self.sfu.subscriber
                        };
                        let input = RtcInput::Receive(
                            now,
                            Receive {
                                proto: Protocol::Udp,
                                source: t.source,
                                destination: t.destination,
                                contents: (&*t.contents).try_into().expect("datagram"),
                            },
                        );
                        if to.accepts(&input) {
                            to.handle_input(input).expect("sfu receive");
                        }
                    }
                    Output::Signal(s) => {
                        progress = true;
                        self.on_signal_out(s);
                    }
                    // The simulated server speaks UDP only.
                    Output::ResetTcp(_) => progress = true,
                    Output::Timeout(_) => break,
                }
            }
            // Server messages.
            if let Some(m) = self.to_core.pop_front() {
                progress = true;
                self.core
                    .handle(self.now, Input::Signal(SignalIn::Message(Box::new(m))));
            }
            // The SFU's output.
            for role in [PeerRole::Publisher, PeerRole::Subscriber] {
                loop {
                    let rtc = match role {
                        PeerRole::Publisher => &mut self.sfu.publisher,
                        PeerRole::Subscriber => &mut self.sfu.subscriber,
                    };
                    match rtc.poll_output().expect("sfu poll") {
                        RtcOutput::Timeout(_) => break,
                        RtcOutput::Transmit(t) => {
                            progress = true;
                            let given_up = role == PeerRole::Subscriber && self.sfu.sub_given_up;
                            if self.udp_up && !given_up {
                                let data = t.contents.to_vec();
                                self.core.handle(
                                    self.now,
                                    Input::Datagram {
                                        role,
                                        proto: t.proto,
                                        source: t.source,
                                        data: &data,
                                    },
                                );
                            }
                        }
                        RtcOutput::Event(e) => {
                            progress = true;
                            match e {
                                Event::Connected if role == PeerRole::Subscriber => {
                                    self.sfu.sub_connected = true
                                }
                                Event::ChannelData(d) => self.sfu.data_received.push(d.data),
                                _ => {}
                            }
                        }
                    }
                }
            }
            // Our reader side of the subscribed track.
            if self.track.is_none() {
                let mut q = self.events.lock().expect("events");
                if let Some(i) = q
                    .iter()
                    .position(|e| matches!(e, EngineEvent::TrackSubscribed(_)))
                    && let Some(EngineEvent::TrackSubscribed(t)) = q.remove(i)
                {
                    self.track = Some(t);
                }
            }
            if let Some(t) = &mut self.track {
                while t.try_recv().is_ok() {
                    self.frames += 1;
                    self.last_frame_at = Some(self.now);
                }
            }
            if !progress {
                return;
            }
        }
        panic!("no rest after 10 000 rounds");
    }

    /// What the server does with a request (the signal connection itself always works here:
    /// the tests say when a resume is answered).
    fn on_signal_out(&mut self, s: SignalOut) {
        match s {
            SignalOut::Send(m) => {
                self.sent.push((*m).clone());
                self.server_reply(*m);
            }
            SignalOut::Resume(reason) => self.resumes.push(reason),
            SignalOut::Reconnected => self.reconnected += 1,
            SignalOut::Close => self.closes += 1,
        }
    }

    fn server_reply(&mut self, m: proto::signal_request::Message) {
        use proto::signal_request::Message as M;
        match m {
            M::Offer(desc) => {
                let offer = SdpOffer::from_sdp_string(&desc.sdp).expect("our offer parses");
                let answer = self
                    .sfu
                    .publisher
                    .sdp_api()
                    .accept_offer(offer)
                    .expect("sfu answers");
                self.to_core
                    .push_back(proto::signal_response::Message::Answer(
                        proto::SessionDescription {
                            r#type: "answer".into(),
                            sdp: answer.to_sdp_string(),
                            id: 0,
                            mid_to_track_id: Default::default(),
                        },
                    ));
                self.to_core
                    .push_back(trickle(SFU_PUB, proto::SignalTarget::Publisher));
            }
            M::Answer(desc) => {
                if let Some(pending) = self.sfu.sub_pending.take() {
                    let answer = SdpAnswer::from_sdp_string(&desc.sdp).expect("our answer parses");
                    self.sfu
                        .subscriber
                        .sdp_api()
                        .accept_answer(pending, answer)
                        .expect("sfu accepts");
                }
            }
            M::Trickle(t) => {
                let c = parse_candidate_init(&t.candidate_init)
                    .expect("our candidate parses")
                    .expect("a candidate");
                if t.target == proto::SignalTarget::Subscriber as i32 {
                    self.sfu.subscriber.add_remote_candidate(c);
                } else {
                    self.sfu.publisher.add_remote_candidate(c);
                }
            }
            M::AddTrack(req) if self.confirm_publish => {
                self.to_core
                    .push_back(proto::signal_response::Message::TrackPublished(
                        proto::TrackPublishedResponse {
                            cid: req.cid.clone(),
                            track: Some(proto::TrackInfo {
                                sid: format!("TR_{}", req.cid),
                                name: req.name,
                                r#type: req.r#type,
                                ..Default::default()
                            }),
                        },
                    ));
            }
            _ => {}
        }
    }

    /// Advance virtual time by `d`, waking everyone when they asked to be woken; the SFU sends
    /// a 20 ms Opus packet every 20 ms once its side of our subscriber is up.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        let mut next_audio = self.now;
        loop {
            self.pump();
            if self.core.is_stopped() {
                self.now = end;
                return;
            }
            if self.sfu.sub_connected && self.now >= next_audio {
                self.send_audio();
                next_audio = self.now + Duration::from_millis(20);
                self.pump();
            }
            let mut next = end.min(next_audio.max(self.now));
            if let Output::Timeout(t) = self.core.poll_output() {
                next = next.min(t);
            }
            for rtc in [&mut self.sfu.publisher, &mut self.sfu.subscriber] {
                if let Ok(RtcOutput::Timeout(t)) = rtc.poll_output() {
                    next = next.min(t);
                }
            }
            // Never stand still: at least 1 ms per round.
            let next = next.max(self.now + Duration::from_millis(1));
            if next > end {
                self.now = end;
                self.wake();
                self.pump();
                return;
            }
            self.now = next;
            self.wake();
        }
    }

    fn wake(&mut self) {
        let now = self.now;
        self.sfu
            .publisher
            .handle_input(RtcInput::Timeout(now))
            .expect("sfu timeout");
        self.sfu
            .subscriber
            .handle_input(RtcInput::Timeout(now))
            .expect("sfu timeout");
        self.core.handle(now, Input::Timeout);
    }

    fn send_audio(&mut self) {
        let Some(mid) = self.sfu.audio_mid else {
            return;
        };
        let now = self.now;
        let n = self.sfu.audio_sent;
        let Some(w) = self.sfu.subscriber.writer(mid) else {
            return;
        };
        let Some(pt) = w
            .payload_params()
            .find(|p| p.spec().codec == Codec::Opus)
            .map(|p| p.pt())
        else {
            return;
        };
        w.write(
            pt,
            now,
            MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ),
            vec![0xF8; 60],
        )
        .expect("sfu writes audio");
        self.sfu.audio_sent += 1;
    }

    fn resuming_reasons(events: &[EngineEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Resuming { reason } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    fn disconnected(events: &[EngineEvent]) -> Option<DisconnectReason> {
        events.iter().find_map(|e| match e {
            EngineEvent::Disconnected(r) => Some(r.clone()),
            _ => None,
        })
    }

    fn offers_sent(&self) -> usize {
        self.sent
            .iter()
            .filter(|m| matches!(m, proto::signal_request::Message::Offer(_)))
            .count()
    }

    /// The server answers the resume attempt in flight, then restarts ICE on our subscriber
    /// connection (livekit-server sends a new subscriber offer on every resume).
    fn resume_ok(&mut self) {
        self.signal(SignalIn::Resumed(proto::ReconnectResponse::default()));
        self.answered = self.resumes.len();
        if self.sfu.sub_pending.is_some() {
            return;
        }
        let mut api = self.sfu.subscriber.sdp_api();
        api.ice_restart(true);
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        self.sfu.sub_pending = Some(pending);
        self.sfu.sub_given_up = !self.udp_up;
        self.sfu.sub_offers += 1;
        self.to_core
            .push_back(proto::signal_response::Message::Offer(
                proto::SessionDescription {
                    r#type: "offer".into(),
                    sdp: offer.to_sdp_string(),
                    id: 1 + self.sfu.sub_offers,
                    mid_to_track_id: Default::default(),
                },
            ));
        self.to_core
            .push_back(trickle(SFU_SUB, proto::SignalTarget::Subscriber));
        self.pump();
    }

    /// Answer every resume attempt not answered yet (the signal is up: at once).
    fn answer_resumes(&mut self) {
        if self.resumes.len() > self.answered {
            self.resume_ok();
        }
    }
}

fn trickle(a: &str, target: proto::SignalTarget) -> proto::signal_response::Message {
    let c = Candidate::host(addr(a), "udp").expect("candidate");
    proto::signal_response::Message::Trickle(proto::TrickleRequest {
        candidate_init: candidate_init(&c),
        target: target as i32,
        r#final: false,
    })
}

fn leave(action: proto::leave_request::Action, reason: proto::DisconnectReason) -> SignalIn {
    SignalIn::Message(Box::new(proto::signal_response::Message::Leave(
        proto::LeaveRequest {
            can_reconnect: action != proto::leave_request::Action::Disconnect,
            reason: reason as i32,
            action: action as i32,
            regions: None,
        },
    )))
}

#[test]
fn datagrams_keep_flowing_while_a_resume_is_in_progress() {
    let mut h = Harness::joined(EngineOptions::default());
    let offers_before = h.offers_sent();
    h.signal(SignalIn::Lost("ping timeout".into()));
    let ev = h.take_events();
    assert_eq!(
        Harness::resuming_reasons(&ev),
        ["signal lost (ping timeout)"]
    );
    assert_eq!(
        h.resumes,
        [proto::ReconnectReason::RrSignalDisconnected],
        "one resume attempt asked for"
    );

    // The reconnect takes 2 s: audio keeps arriving and commands are carried out meanwhile
    // (a subscription is answered at once; a data packet waits for the resume's outcome).
    let frames = h.frames;
    let (reply, subscribed) = reply_slot();
    h.command(Command::Subscribe {
        participant_sid: REMOTE_SID.into(),
        track_sid: REMOTE_TRACK.into(),
        subscribe: true,
        reply,
    });
    let (reply, data) = reply_slot();
    h.command(Command::Data {
        payload: b"during the resume".to_vec(),
        options: DataOptions::reliable(),
        reply,
    });
    h.run_for(Duration::from_secs(2));
    assert!(
        matches!(*subscribed.lock().unwrap(), Some(Ok(()))),
        "the subscription command was answered during the resume"
    );
    assert!(
        h.sent
            .iter()
            .any(|m| matches!(m, proto::signal_request::Message::Subscription(_))),
        "and handed to the signal client (which holds it until the resume ends)"
    );
    assert!(data.lock().unwrap().is_none(), "data waits for the resume");
    let during = h.frames - frames;
    assert!(
        during >= 90,
        "{during} audio frames in the 2 s of the resume"
    );
    assert!(h.take_events().iter().all(|e| !matches!(
        e,
        EngineEvent::Resumed { .. } | EngineEvent::Disconnected(_)
    )));

    // The server answers: ICE restart offer, SyncState, held requests released.
    h.resume_ok();
    let ev = h.take_events();
    let took = ev
        .iter()
        .find_map(|e| match e {
            EngineEvent::Resumed { took } => Some(*took),
            _ => None,
        })
        .expect("Resumed");
    assert_eq!(took, Duration::from_secs(2));
    assert_eq!(h.offers_sent(), offers_before + 1, "the ICE restart offer");
    assert!(
        h.sent
            .iter()
            .any(|m| matches!(m, proto::signal_request::Message::SyncState(_)))
    );
    assert_eq!(h.reconnected, 1);
    let frames = h.frames;
    h.run_for(Duration::from_secs(1));
    assert!(h.frames - frames >= 45, "audio after the ICE restart");
    assert!(
        matches!(*data.lock().unwrap(), Some(Ok(()))),
        "data sent once resumed"
    );
    assert!(
        h.sfu
            .data_received
            .iter()
            .any(|d| d.windows(17).any(|w| w == b"during the resume")),
        "our data packet reached the server"
    );
}

#[test]
fn failed_resumes_end_the_engine_and_a_refusal_ends_it_at_once() {
    // Three attempts, each failing: the engine stops with SignalClosed (its owner rejoins).
    let mut h = Harness::joined(EngineOptions::default());
    h.signal(SignalIn::Lost("stream closed".into()));
    let (reply, data) = reply_slot::<()>();
    h.command(Command::Data {
        payload: b"lost with the session".to_vec(),
        options: DataOptions::reliable(),
        reply,
    });
    let t0 = h.now;
    for attempt in 1..=RESUME_ATTEMPTS {
        assert_eq!(
            h.resumes.len() as u32,
            attempt,
            "attempt {attempt} asked for"
        );
        h.signal(SignalIn::ResumeFailed(ResumeFailure::Failed(
            "connection refused".into(),
        )));
        // Media still flows between attempts.
        let frames = h.frames;
        h.run_for(Duration::from_secs(1));
        if attempt < RESUME_ATTEMPTS {
            assert!(h.frames - frames >= 45, "audio between attempts");
        }
    }
    let ev = h.take_events();
    assert!(
        data.lock().unwrap().is_none(),
        "a data packet held for the resume is never answered: its handle sees the engine closed"
    );
    match Harness::disconnected(&ev) {
        Some(DisconnectReason::SignalClosed(why)) => {
            assert!(why.contains("after 3 attempts"), "{why}");
            assert!(why.contains("connection refused"), "{why}");
        }
        other => panic!("expected SignalClosed, got {other:?} in {ev:?}"),
    }
    assert!(h.core.is_stopped());
    assert!(h.now - t0 < Duration::from_secs(4));

    // Attempts that are never answered time out, one after the other.
    let mut h = Harness::joined(EngineOptions::default());
    h.signal(SignalIn::Lost("ping timeout".into()));
    let t0 = h.now;
    h.run_for(RESUME_ATTEMPT_TIMEOUT * 4);
    let ev = h.take_events();
    assert_eq!(h.resumes.len() as u32, RESUME_ATTEMPTS);
    assert!(
        h.closes >= RESUME_ATTEMPTS as usize,
        "each attempt abandoned"
    );
    match Harness::disconnected(&ev) {
        Some(DisconnectReason::SignalClosed(why)) => assert!(why.contains("no answer"), "{why}"),
        other => panic!("expected SignalClosed, got {other:?}"),
    }
    let _ = t0;

    // A refusal ends it without another attempt.
    let mut h = Harness::joined(EngineOptions::default());
    h.signal(SignalIn::Lost("ping timeout".into()));
    h.signal(SignalIn::ResumeFailed(ResumeFailure::Refused(
        "the server refused the resume (401)".into(),
    )));
    h.run_for(Duration::from_secs(2));
    let ev = h.take_events();
    assert_eq!(h.resumes.len(), 1);
    assert!(matches!(
        Harness::disconnected(&ev),
        Some(DisconnectReason::SignalClosed(why)) if why.contains("401")
    ));
}

/// UDP dies while the signal stays up: the liveness check resumes at the liveness timeout;
/// when the path never comes back the engine stops with TransportFailed.
#[test]
fn dead_udp_with_the_signal_up_resumes_then_ends_with_transport_failed() {
    let limit = Duration::from_secs(5);
    let mut h = Harness::joined(EngineOptions::default());
    h.take_events();
    h.udp_up = false;
    let cut = h.now;
    let mut noticed = Vec::new();
    while !h.core.is_stopped() && h.now - cut < Duration::from_secs(60) {
        h.run_for(Duration::from_millis(100));
        if h.resumes.len() > h.answered {
            noticed.push(h.now - cut);
            h.answer_resumes(); // the signal is up: the server answers at once
        }
        h.take_events();
    }
    assert!(!noticed.is_empty(), "the liveness check resumed");
    // Media was flowing (a packet every 20 ms) until the cut.
    // The publisher connection receives no media, only STUN and RTCP: its last datagram may
    // precede the cut by up to a keepalive interval (str0m's checks go out every ≤ 3 s).
    assert!(
        noticed[0] >= limit - Duration::from_secs(3)
            && noticed[0] <= limit + Duration::from_millis(200),
        "first resume {:?} after the cut",
        noticed[0]
    );
    assert!(
        noticed.len() as u32 <= crate::sansio::liveness::MEDIA_RESUMES,
        "resumes at {noticed:?}"
    );
    h.take_events();
    let reason = h.stopped_reason.clone();
    assert!(
        matches!(reason, Some(DisconnectReason::TransportFailed(_))),
        "{reason:?} after resumes at {noticed:?}"
    );
}

/// A 12 s UDP hole with the signal up: once the path reopens, media is back within a second
/// (not after the engine gave up and its owner rejoined).
#[test]
fn media_returns_within_a_second_of_a_udp_hole_reopening() {
    let mut h = Harness::joined(EngineOptions::default());
    h.take_events();
    h.udp_up = false;
    let cut = h.now;
    while h.now - cut < Duration::from_secs(12) {
        h.run_for(Duration::from_millis(100));
        h.answer_resumes();
        h.take_events();
    }
    assert!(!h.resumes.is_empty(), "the hole was noticed");
    assert!(!h.core.is_stopped(), "{:?}", h.stopped_reason);
    h.udp_up = true;
    let reopened = h.now;
    let frames = h.frames;
    let (mut resumed, mut media_back) = (None, None);
    while (media_back.is_none() || resumed.is_none()) && h.now - reopened < Duration::from_secs(10)
    {
        h.run_for(Duration::from_millis(20));
        if h.frames > frames {
            media_back.get_or_insert(h.now - reopened);
        }
        h.answer_resumes();
        for ev in h.take_events() {
            if let EngineEvent::Resumed { .. } = ev {
                resumed.get_or_insert(h.now - reopened);
            }
        }
    }
    let back = media_back.unwrap_or_else(|| {
        panic!(
            "no media within 10 s of the path reopening ({:?})",
            h.stopped_reason
        )
    });
    eprintln!("12 s hole: media back {back:?} after the path reopened");
    assert!(
        back <= Duration::from_secs(1),
        "media back {back:?} after the path reopened"
    );
    assert!(!h.core.is_stopped());
}

#[test]
fn server_leave_is_followed_for_each_action() {
    use proto::DisconnectReason as Why;
    use proto::leave_request::Action;

    // DISCONNECT: removed for good.
    let mut h = Harness::joined(EngineOptions::default());
    h.signal(leave(Action::Disconnect, Why::ParticipantRemoved));
    h.take_events();
    assert_eq!(
        h.stopped_reason,
        Some(DisconnectReason::ServerLeave {
            reason: "PARTICIPANT_REMOVED".into(),
            reconnect: false
        })
    );
    assert!(h.closes >= 1, "the signal connection is closed");
    assert!(h.resumes.is_empty());

    // RECONNECT: stop, the owner joins afresh.
    let mut h = Harness::joined(EngineOptions::default());
    h.signal(leave(Action::Reconnect, Why::StateMismatch));
    h.take_events();
    assert!(matches!(
        h.stopped_reason,
        Some(DisconnectReason::ServerLeave {
            reconnect: true,
            ..
        })
    ));
    assert!(h.resumes.is_empty());

    // SERVER_SHUTDOWN with DISCONNECT: the room lives on with the next server: reconnect.
    let mut h = Harness::joined(EngineOptions::default());
    h.signal(leave(Action::Disconnect, Why::ServerShutdown));
    h.take_events();
    assert!(
        matches!(
            &h.stopped_reason,
            Some(DisconnectReason::ServerLeave { reconnect: true, reason }) if reason == "SERVER_SHUTDOWN"
        ),
        "{:?}",
        h.stopped_reason
    );

    // RESUME: resumed by this engine, media keeps flowing, nothing stops.
    let mut h = Harness::joined(EngineOptions::default());
    h.signal(leave(Action::Resume, Why::Migration));
    let ev = h.take_events();
    assert_eq!(
        Harness::resuming_reasons(&ev),
        ["the server asked us to resume"]
    );
    assert_eq!(h.resumes, [proto::ReconnectReason::RrSignalDisconnected]);
    h.resume_ok();
    let frames = h.frames;
    h.run_for(Duration::from_secs(1));
    let ev = h.take_events();
    assert!(ev.iter().any(|e| matches!(e, EngineEvent::Resumed { .. })));
    assert!(h.frames - frames >= 45);
    assert!(!h.core.is_stopped());
}

#[test]
fn refreshed_tokens_are_kept_newest_first() {
    let mut h = Harness::joined(EngineOptions::default());
    assert_eq!(h.counters.refreshed_token(), None);
    for token in ["tok-1", "tok-2"] {
        h.signal(SignalIn::Message(Box::new(
            proto::signal_response::Message::RefreshToken(token.into()),
        )));
    }
    assert_eq!(h.counters.refreshed_token().as_deref(), Some("tok-2"));
    // A refreshed token is no event and stops nothing.
    assert!(h.take_events().is_empty());
    assert!(!h.core.is_stopped());
}

#[test]
fn a_publication_the_server_never_confirms_times_out() {
    let mut h = Harness::joined(EngineOptions {
        publish_timeout: Duration::from_secs(3),
        ..EngineOptions::default()
    });
    h.confirm_publish = false;
    let (reply, slot) = reply_slot::<LocalTrack>();
    h.command(Command::Publish {
        options: TrackOptions::audio("mic"),
        reply,
    });
    assert!(
        h.sent
            .iter()
            .any(|m| matches!(m, proto::signal_request::Message::AddTrack(_)))
    );
    h.run_for(Duration::from_millis(2900));
    assert!(
        slot.lock().unwrap().is_none(),
        "no answer before the timeout"
    );
    h.run_for(Duration::from_millis(200));
    match slot.lock().unwrap().take() {
        Some(Err(EngineError::PublishTimeout {
            name, timeout_ms, ..
        })) => {
            assert_eq!(name, "mic");
            assert_eq!(timeout_ms, 3000);
        }
        other => panic!("expected PublishTimeout, got {other:?}"),
    }

    // Confirmed: a track handle, and the publisher renegotiates with a new media section.
    h.confirm_publish = true;
    let offers = h.offers_sent();
    let (reply, slot) = reply_slot::<LocalTrack>();
    h.command(Command::Publish {
        options: TrackOptions::audio("mic2"),
        reply,
    });
    let track = slot
        .lock()
        .unwrap()
        .take()
        .expect("answered")
        .expect("published");
    assert_eq!(track.name(), "mic2");
    assert!(track.sid().starts_with("TR_"));
    assert_eq!(h.offers_sent(), offers + 1);
}

#[test]
fn stream_packets_reach_the_server_typed_and_in_order() {
    use crate::data_message::{DataMessage, StreamChunk};
    use crate::wire::{Incoming, decode_data_packet};
    let mut h = Harness::joined(EngineOptions::default());
    let chunk = |i: u64, len: usize| {
        DataMessage::StreamChunk(StreamChunk {
            stream_id: "s1".into(),
            chunk_index: i,
            content: vec![i as u8; len],
            version: 0,
        })
    };
    let mut slots = Vec::new();
    for i in 0..20 {
        let (reply, slot) = reply_slot::<()>();
        h.command(Command::Message {
            message: chunk(i, 15_000),
            destination_identities: vec!["remote".into()],
            reply,
        });
        slots.push(slot);
    }
    h.run_for(Duration::from_secs(2));
    assert!(
        slots
            .iter()
            .all(|s| matches!(*s.lock().unwrap(), Some(Ok(()))))
    );
    let got: Vec<DataMessage> = h
        .sfu
        .data_received
        .iter()
        .filter_map(|d| match decode_data_packet(d) {
            Ok(Incoming::Message {
                participant_identity,
                message,
            }) => {
                assert_eq!(participant_identity, "me");
                Some(message)
            }
            _ => None,
        })
        .collect();
    assert_eq!(got, (0..20).map(|i| chunk(i, 15_000)).collect::<Vec<_>>());

    // Too large for one packet: refused before anything is queued.
    let (reply, slot) = reply_slot::<()>();
    h.command(Command::Message {
        message: chunk(20, 70_000),
        destination_identities: Vec::new(),
        reply,
    });
    assert!(matches!(
        *slot.lock().unwrap(),
        Some(Err(EngineError::DataTooLarge { max: 65_536, .. }))
    ));
}

#[test]
fn participant_updates_end_with_the_servers_answer_or_time_out() {
    use crate::error::RequestRefusal;
    use crate::sansio::ParticipantUpdate;
    let mut h = Harness::joined(EngineOptions::default());
    h.take_events();
    let update = |name: &str| ParticipantUpdate {
        name: Some(name.into()),
        ..ParticipantUpdate::default()
    };
    let last_request_id = |h: &Harness| {
        h.sent
            .iter()
            .rev()
            .find_map(|m| match m {
                proto::signal_request::Message::UpdateMetadata(u) => Some(u.request_id),
                _ => None,
            })
            .expect("an UpdateParticipantMetadata was sent")
    };
    let answer = |h: &mut Harness, id: u32, reason: proto::request_response::Reason| {
        h.signal(SignalIn::Message(Box::new(
            proto::signal_response::Message::RequestResponse(proto::RequestResponse {
                request_id: id,
                reason: reason as i32,
                message: "nope".into(),
                request: None,
            }),
        )));
    };

    // Confirmed by the server's OK: our state shows it at once, as an event.
    let (reply, slot) = reply_slot::<()>();
    h.command(Command::UpdateParticipant {
        update: update("A"),
        reply,
    });
    let first = last_request_id(&h);
    assert!(slot.lock().unwrap().is_none(), "waits for the server");
    answer(&mut h, first, proto::request_response::Reason::Ok);
    assert!(matches!(slot.lock().unwrap().take(), Some(Ok(()))));
    let ev = h.take_events();
    assert!(
        ev.iter()
            .any(|e| matches!(e, EngineEvent::LocalParticipantUpdated(p) if p.name == "A")),
        "{ev:?}"
    );

    // Refused: the typed reason and the server's message.
    let (reply, slot) = reply_slot::<()>();
    h.command(Command::UpdateParticipant {
        update: update("B"),
        reply,
    });
    let second = last_request_id(&h);
    assert_ne!(first, second, "each request has its own id");
    answer(&mut h, second, proto::request_response::Reason::NotAllowed);
    match slot.lock().unwrap().take() {
        Some(Err(EngineError::RequestRefused {
            reason: RequestRefusal::NotAllowed,
            message,
            ..
        })) => assert_eq!(message, "nope"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Confirmed by our participant info showing the value (no RequestResponse).
    let (reply, slot) = reply_slot::<()>();
    h.command(Command::UpdateParticipant {
        update: update("C"),
        reply,
    });
    h.signal(SignalIn::Message(Box::new(
        proto::signal_response::Message::Update(proto::ParticipantUpdate {
            participants: vec![proto::ParticipantInfo {
                sid: "PA_local".into(),
                identity: "me".into(),
                name: "C".into(),
                state: proto::participant_info::State::Active as i32,
                ..Default::default()
            }],
        }),
    )));
    assert!(matches!(slot.lock().unwrap().take(), Some(Ok(()))));

    // Unanswered: times out after 5 s of virtual time; a late answer changes nothing.
    let (reply, slot) = reply_slot::<()>();
    h.command(Command::UpdateParticipant {
        update: update("D"),
        reply,
    });
    let fourth = last_request_id(&h);
    h.run_for(Duration::from_millis(4900));
    assert!(slot.lock().unwrap().is_none());
    h.run_for(Duration::from_millis(200));
    assert!(matches!(
        slot.lock().unwrap().take(),
        Some(Err(EngineError::RequestTimeout {
            timeout_ms: 5000,
            ..
        }))
    ));
    answer(&mut h, fourth, proto::request_response::Reason::Ok);
    assert!(!h.core.is_stopped());
}

/// A reader that takes nothing: must-deliver events are held in order, droppable ones dropped
/// and counted; once the reader catches up it gets the held ones in their order.
#[test]
fn a_slow_reader_gets_every_roster_event_in_order_and_droppables_are_counted() {
    let mut h = Harness::new(EngineOptions::default(), 4);
    // Fill the stream, then 20 participants join while speaker updates pour in.
    for i in 0..20 {
        h.signal(SignalIn::Message(Box::new(
            proto::signal_response::Message::Update(proto::ParticipantUpdate {
                participants: vec![proto::ParticipantInfo {
                    sid: format!("PA_{i:02}"),
                    identity: format!("p{i:02}"),
                    state: proto::participant_info::State::Active as i32,
                    ..Default::default()
                }],
            }),
        )));
        h.signal(SignalIn::Message(Box::new(
            proto::signal_response::Message::SpeakersChanged(proto::SpeakersChanged {
                speakers: vec![proto::SpeakerInfo {
                    sid: format!("PA_{i:02}"),
                    level: 0.5,
                    active: true,
                }],
            }),
        )));
    }
    // The stream (4 events) filled with the roster from the join (2 events), p00's join and its
    // speaker update; from then on every join is held and every speaker update dropped.
    assert!(h.core.holding_events());
    assert_eq!(h.counters.dropped_events.load(Ordering::Relaxed), 19);
    assert_eq!(h.counters.held_peak.load(Ordering::Relaxed), 19);
    // The reader catches up, a few at a time.
    let mut joined = Vec::new();
    let mut rounds = 0;
    loop {
        let holding = h.core.holding_events();
        for ev in h.take_events() {
            if let EngineEvent::ParticipantJoined(p) = ev {
                joined.push(p.identity);
            }
        }
        rounds += 1;
        if !holding || rounds > 100 {
            break;
        }
    }
    let expected: Vec<String> = (0..20).map(|i| format!("p{i:02}")).collect();
    let ours: Vec<String> = joined.into_iter().filter(|i| i.starts_with('p')).collect();
    assert_eq!(ours, expected);
}

/// How many TCP candidates we trickled.
fn tcp_trickles(h: &Harness) -> usize {
    h.sent
        .iter()
        .filter(|m| {
            matches!(m, proto::signal_request::Message::Trickle(t)
                if t.candidate_init.contains(" tcp ") && t.candidate_init.contains("tcptype active"))
        })
        .count()
}

/// With UDP dead from the start, the default transport offers an active TCP candidate on a
/// negotiated connection once `tcp_fallback_after` passed, not before; UDP only never does;
/// TCP only offers it at once and no UDP candidate. (That UDP stays the path when it works is
/// the real-server test's: `crates/session/tests/ice_tcp.rs`.)
#[test]
fn tcp_joins_when_udp_does_not_connect_in_time() {
    let mut h = Harness::new(EngineOptions::default(), 1024);
    h.udp_up = false;
    h.run_for(Duration::from_millis(1900));
    assert_eq!(tcp_trickles(&h), 0, "UDP gets its chance");
    h.run_for(Duration::from_millis(300));
    // The publisher's: the subscriber connection has had no offer here (nothing to try yet).
    assert_eq!(
        tcp_trickles(&h),
        1,
        "then TCP, on the negotiated connection"
    );
    h.run_for(Duration::from_secs(3));
    assert_eq!(tcp_trickles(&h), 1, "once");

    let udp_only = EngineOptions {
        ice_transport: IceTransport::Udp,
        ..EngineOptions::default()
    };
    let mut h = Harness::new(udp_only, 1024);
    h.udp_up = false;
    h.run_for(Duration::from_secs(5));
    assert_eq!(tcp_trickles(&h), 0, "UDP only");

    let tcp_only = EngineOptions {
        ice_transport: IceTransport::Tcp,
        ..EngineOptions::default()
    };
    let mut h = Harness::new(tcp_only, 1024);
    h.run_for(Duration::from_millis(100));
    assert_eq!(
        tcp_trickles(&h),
        1,
        "TCP at once (the publisher; the subscriber has no offer)"
    );
    let udp_trickles = h
        .sent
        .iter()
        .filter(|m| matches!(m, proto::signal_request::Message::Trickle(t) if t.candidate_init.contains(" udp ")))
        .count();
    assert_eq!(udp_trickles, 0, "no UDP candidate");
}
