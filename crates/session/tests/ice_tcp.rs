//! ICE over TCP where UDP is blocked: in a private network namespace whose nftables drop every
//! UDP datagram, a publisher and a subscriber reach the server's `rtc.tcp_port` over TCP (RFC
//! 4571 framing) — asked for ([`IceTransport::Tcp`]) or found by the fallback
//! ([`IceTransport::Auto`]) — and the stamped frames arrive in order. The same pair over UDP
//! first (UDP open), for the latency figures side by side (printed; docs/PERFORMANCE.md).

mod common;

use std::time::{Duration, Instant};

use wavecast_pipeline::Timestamp;
use wavecast_session::internals::EngineOptions;
use wavecast_session::{IceTransport, MediaTransport};
use wavecast_testbed::{LiveKitServer, ServerOptions, free_tcp_port};

/// Frames each run reads.
const FRAMES: usize = 150;

/// Read `FRAMES` stamped frames: their numbers must only grow; returns the latencies (capture
/// to decoded, one clock: both ends are in this process).
async fn frames_in_order(video: &mut wavecast_session::VideoSubscriber) -> Vec<Duration> {
    let deadline = Instant::now() + Duration::from_secs(40);
    let (mut last, mut ages) = (0u32, Vec::new());
    while ages.len() < FRAMES {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = tokio::time::timeout(left, video.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} frames within 40 s", ages.len()))
            .expect("the track goes on");
        let Some(stamp) = common::read_stamp(&f.image.image) else {
            continue;
        };
        assert!(
            stamp.frame_number > last,
            "frame {} after {last}: out of order",
            stamp.frame_number
        );
        last = stamp.frame_number;
        ages.push(Timestamp::now().saturating_duration_since(stamp.timestamp));
    }
    ages.sort();
    ages
}

fn p(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// One publisher/subscriber pair with `transport`: frames in order, over `expect`.
async fn pair(
    server: &LiveKitServer,
    room: &str,
    transport: IceTransport,
    expect: MediaTransport,
) -> Vec<Duration> {
    let mut engine = EngineOptions::default();
    engine.ice_transport = transport;
    engine.tcp_fallback_after = Duration::from_millis(1500);
    let (publisher, subscriber, _events, mut video, sending) =
        common::video_pair(server, room, |o| o.engine(engine.clone())).await;
    let ages = frames_in_order(&mut video).await;
    assert_eq!(
        subscriber.stats().transport,
        expect,
        "the subscriber's media"
    );
    assert_eq!(publisher.stats().transport, expect, "the publisher's media");
    sending.stop().await;
    publisher.close().await;
    subscriber.close().await;
    ages
}

#[test]
fn media_flows_over_tcp_where_udp_is_dropped() {
    common::run_in_netns(
        "media_flows_over_tcp_where_udp_is_dropped",
        |ns| async move {
            common::init_tracing();
            let server = LiveKitServer::start_with(&ServerOptions {
                ice_tcp_port: Some(free_tcp_port().expect("a free port")),
                ..ServerOptions::default()
            })
            .expect("server starts in the namespace");

            // UDP open: the default finds UDP and stays on it.
            let udp = pair(&server, "udp", IceTransport::Auto, MediaTransport::Udp).await;

            ns.blackhole_udp().expect("drop all UDP");
            let tcp = pair(&server, "tcp", IceTransport::Tcp, MediaTransport::Tcp).await;
            let fallback = Instant::now();
            let auto = pair(&server, "auto", IceTransport::Auto, MediaTransport::Tcp).await;
            let udp_counters = ns.udp_counters().expect("counters");
            eprintln!(
                "capture → decoded latency over {FRAMES} frames (ms): UDP p50 {:.1} p95 {:.1}; \
             TCP p50 {:.1} p95 {:.1}; Auto falling back to TCP p50 {:.1} p95 {:.1} \
             (that pair up and {FRAMES} frames read in {:?}); UDP dropped meanwhile: {udp_counters:?}",
                p(&udp, 0.5),
                p(&udp, 0.95),
                p(&tcp, 0.5),
                p(&tcp, 0.95),
                p(&auto, 0.5),
                p(&auto, 0.95),
                fallback.elapsed(),
            );
        },
    );
}

/// Over TCP the recoveries work as over UDP: a frozen server (signal ping timeout) is resumed
/// (ICE restart on the TCP candidates), a restarted one rejoined (new engines, TCP again), and
/// the subscriber's held handle decodes new frames after each.
#[test]
fn resume_and_rejoin_work_over_tcp() {
    common::run_in_netns("resume_and_rejoin_work_over_tcp", |ns| async move {
        use wavecast_session::internals::SessionState;
        common::init_tracing();
        let mut server = LiveKitServer::start_with(&ServerOptions {
            ice_tcp_port: Some(free_tcp_port().expect("a free port")),
            ..ServerOptions::default()
        })
        .expect("server starts in the namespace");
        ns.blackhole_udp().expect("drop all UDP");
        let mut engine = EngineOptions::default();
        engine.ice_transport = IceTransport::Tcp;
        let policy = common::quick_policy(30);
        let (publisher, subscriber, _events, mut video, sending) =
            common::video_pair(&server, "recover", |o| {
                o.reconnect(policy.clone()).engine(engine.clone())
            })
            .await;
        let (n, _, last) =
            common::read_new_frames(&mut video, 0, 30, Instant::now(), Duration::from_secs(20))
                .await;
        assert_eq!(n, 30, "frames over TCP");

        // Freeze the server until both notice, thaw it: a resume.
        tokio::task::block_in_place(|| server.pause()).expect("SIGSTOP");
        for s in [&publisher, &subscriber] {
            common::wait_state(s, Duration::from_secs(40), |st| {
                matches!(st, SessionState::Reconnecting { .. })
            })
            .await;
        }
        tokio::task::block_in_place(|| server.resume()).expect("SIGCONT");
        let thawed = Instant::now();
        // Frames captured after the thaw: they crossed the resumed connections.
        let after = common::frames_captured_by(sending.started, thawed).max(last);
        let (n, first, _) =
            common::read_new_frames(&mut video, after, 30, thawed, Duration::from_secs(30)).await;
        assert_eq!(n, 30, "frames after the resume");
        for s in [&publisher, &subscriber] {
            common::wait_state(s, Duration::from_secs(20), |st| {
                matches!(st, SessionState::Connected)
            })
            .await;
            let stats = s.stats();
            assert!(stats.resumes >= 1, "resumed, not rejoined: {stats:?}");
            assert_eq!(stats.rejoins, 0, "{stats:?}");
            assert_eq!(stats.transport, MediaTransport::Tcp);
        }
        eprintln!("over TCP: first frame {first:?} after the thaw (resume)");

        // Kill and restart it: a rejoin, over TCP again.
        tokio::task::block_in_place(|| server.stop());
        for s in [&publisher, &subscriber] {
            common::wait_state(s, Duration::from_secs(10), |st| {
                matches!(st, SessionState::Reconnecting { .. })
            })
            .await;
        }
        tokio::task::block_in_place(|| server.restart()).expect("server restarts");
        let up = Instant::now();
        let after = common::frames_captured_by(sending.started, up);
        let (n, first, _) =
            common::read_new_frames(&mut video, after, 30, up, Duration::from_secs(40)).await;
        assert_eq!(n, 30, "frames after the rejoin");
        for s in [&publisher, &subscriber] {
            common::wait_state(s, Duration::from_secs(20), |st| {
                matches!(st, SessionState::Connected)
            })
            .await;
            let stats = s.stats();
            assert!(stats.rejoins >= 1, "rejoined: {stats:?}");
            assert_eq!(stats.transport, MediaTransport::Tcp);
        }
        eprintln!("over TCP: first frame {first:?} after the restart (rejoin)");
        sending.stop().await;
        publisher.close().await;
        subscriber.close().await;
    });
}
