//! No secret in any log line at any level: every line of every crate is captured at TRACE while
//! peers negotiate and connect, and the ICE passwords and the access token must not appear.
//!
//! Dependencies log secrets themselves: str0m its ICE credentials (`Set remote credentials:
//! IceCreds { ufrag, pass }` at debug, `Enqueueing event: IceRestart(IceCreds { … })` at trace),
//! tungstenite its handshake request with the bearer token (trace). Two defences, both checked
//! here: the workspace builds str0m with its `pii` feature (what it wraps in `Pii` prints as
//! `{REDACTED}`), and every subscriber the apps set up writes through
//! `wavecast_rtc::redact::RedactingWriter`, as this test's does, which redacts what is left.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use wavecast_testbed::LiveKitServer;
use wavecast_token::Preset;

/// Everything logged by this test binary, from every thread (the engine's tasks included).
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static CAPTURE: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let sink = buffer.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                // As `wavecast_app::init_logging` does.
                .with_writer(move || wavecast_rtc::redact::RedactingWriter(Sink(sink.clone())))
                .init();
            buffer
        })
        .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The first captured line holding `secret`, for the failure message.
fn line_with<'a>(log: &'a str, secret: &str) -> &'a str {
    log.lines().find(|l| l.contains(secret)).unwrap_or_default()
}

fn text(capture: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&capture.lock().expect("capture lock")).into_owned()
}

/// The `a=ice-pwd:` values of an SDP.
fn ice_passwords(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("a=ice-pwd:"))
        .map(str::to_owned)
        .collect()
}

/// No `a=ice-pwd:` value and no `IceCreds { …, pass: … }` printed in clear anywhere in `log`.
fn assert_no_credentials_in_clear(log: &str) {
    for marker in ["ice-pwd:", "pass: \""] {
        for (i, _) in log.match_indices(marker) {
            let value = &log[i + marker.len()..];
            assert!(
                value.starts_with(wavecast_rtc::redact::REDACTED),
                "an ICE password in clear: {}",
                &log[i.saturating_sub(80)..(i + 120).min(log.len())]
            );
        }
    }
}

/// Two str0m peers (built as the workspace builds str0m) negotiate and connect on virtual time;
/// the passwords both SDPs carry never reach the log. Needs no server: it is the dependency's
/// logging this checks, exactly, with the passwords known.
#[test]
fn str0m_never_logs_the_ice_passwords_it_negotiates() {
    let capture = captured();
    let mut now = Instant::now();
    let peer = |ip: &str| {
        let addr: SocketAddr = ip.parse().expect("addr");
        let mut rtc = Rtc::builder().build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        (rtc, addr)
    };
    let (mut a, a_addr) = peer("192.0.2.1:5000");
    let (mut b, b_addr) = peer("192.0.2.2:5000");
    let mut api = a.sdp_api();
    api.add_channel("data".into());
    let (offer, pending) = api.apply().expect("offer");
    let offer_sdp = offer.to_sdp_string();
    let answer = b.sdp_api().accept_offer(offer).expect("answer");
    let answer_sdp = answer.to_sdp_string();
    a.sdp_api()
        .accept_answer(pending, answer)
        .expect("accept answer");
    a.add_remote_candidate(Candidate::host(b_addr, "udp").expect("candidate"));
    b.add_remote_candidate(Candidate::host(a_addr, "udp").expect("candidate"));

    let passwords: Vec<String> = ice_passwords(&offer_sdp)
        .into_iter()
        .chain(ice_passwords(&answer_sdp))
        .collect();
    assert_eq!(
        passwords.len(),
        2,
        "one password per side:\n{offer_sdp}\n{answer_sdp}"
    );

    // Run both until each is connected (ICE, DTLS, SCTP), at most 30 s of virtual time.
    let (mut a_up, mut b_up) = (false, false);
    let deadline = now + Duration::from_secs(30);
    while !(a_up && b_up) {
        assert!(now < deadline, "the peers did not connect");
        let ta = drain(&mut a, &mut b, now, &mut a_up);
        let tb = drain(&mut b, &mut a, now, &mut b_up);
        now = ta.min(tb).max(now + Duration::from_millis(1));
        a.handle_input(Input::Timeout(now)).expect("timeout");
        b.handle_input(Input::Timeout(now)).expect("timeout");
    }

    let log = text(&capture);
    // The line that printed the password before, still there: the capture works.
    assert!(
        log.contains("Set remote credentials"),
        "str0m's debug lines were not captured"
    );
    for pwd in &passwords {
        assert!(
            !log.contains(pwd.as_str()),
            "ICE password {pwd} in the log: {}",
            line_with(&log, pwd)
        );
    }
    assert_no_credentials_in_clear(&log);
}

/// Drain `from` until it wants a timeout, handing its datagrams to `to`.
fn drain(from: &mut Rtc, to: &mut Rtc, now: Instant, connected: &mut bool) -> Instant {
    loop {
        match from.poll_output().expect("poll") {
            Output::Timeout(t) => return t,
            Output::Transmit(t) => {
                let receive = Receive {
                    proto: Protocol::Udp,
                    source: t.source,
                    destination: t.destination,
                    contents: (&*t.contents).try_into().expect("datagram"),
                };
                to.handle_input(Input::Receive(now, receive))
                    .expect("receive");
            }
            Output::Event(Event::Connected) => *connected = true,
            Output::Event(_) => {}
        }
    }
}

/// A real join (both peer connections up against livekit-server) logs no ICE password, no
/// `IceCreds` and not the access token, at TRACE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_join_logs_no_secret_at_trace() {
    let capture = captured();
    let server = LiveKitServer::start().expect("server starts");
    let token = server.token("quiet", "no-secrets", Preset::Broadcaster);
    let (engine, mut events) = wavecast_rtc::Engine::connect(
        &server.ws_url(),
        &token,
        wavecast_rtc::EngineOptions::default(),
    )
    .await
    .expect("engine joins");
    common::wait_connected(&mut events, Duration::from_secs(15)).await;
    drop(engine);

    let log = text(&capture);
    assert!(
        log.contains("Set remote credentials"),
        "the capture holds str0m's credential lines"
    );
    assert!(
        !log.contains(&token),
        "the access token is in the log: {}",
        line_with(&log, &token)
    );
    assert_no_credentials_in_clear(&log);
}
