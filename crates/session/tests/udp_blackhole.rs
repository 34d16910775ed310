//! The UDP path dies while the signal WebSocket (TCP) stays up — every UDP datagram in a
//! private network namespace is dropped by an nftables rule. The sessions' engines notice the
//! silence (liveness after connect), go Reconnecting and resume with an ICE restart; when the
//! blackhole is lifted they are Connected again and the subscriber's held handle decodes new
//! frames. The recovery time (lift → first new frame) is printed.

mod common;

use std::time::{Duration, Instant};

use wavecast_session::internals::{EngineEvent, EngineOptions, SessionEvent, SessionState};
use wavecast_testbed::LiveKitServer;

/// The engines' liveness timeout in this test (the default is 5 s).
const LIVENESS: Duration = Duration::from_secs(3);

#[test]
fn udp_blackhole_with_the_signal_up_is_noticed_and_media_recovers() {
    common::run_in_netns(
        "udp_blackhole_with_the_signal_up_is_noticed_and_media_recovers",
        |ns| async move {
            common::init_tracing();
            let server = LiveKitServer::start().expect("server starts in the namespace");
            let room = "blackhole";
            let policy = common::quick_policy(20);
            let mut engine = EngineOptions::default();
            engine.liveness_timeout = LIVENESS;
            let (publisher, subscriber, mut sub_events, mut video_in, sending) =
                common::video_pair(&server, room, |o| {
                    o.reconnect(policy.clone()).engine(engine.clone())
                })
                .await;
            let sub_sid = subscriber.join_info().expect("joined").local.sid;
            let sub_states = common::record_states(&subscriber);
            // Why the subscriber resumed, from its event stream.
            let resume_reasons = tokio::spawn(async move {
                let mut reasons = Vec::new();
                while let Some(ev) = sub_events.recv().await {
                    if let SessionEvent::Engine(EngineEvent::Resuming { reason }) = ev {
                        reasons.push(reason);
                    }
                }
                reasons
            });
            let (n, _, last_before) = common::read_new_frames(
                &mut video_in,
                0,
                30,
                Instant::now(),
                Duration::from_secs(10),
            )
            .await;
            assert_eq!(n, 30, "frames before the blackhole");

            // Cut UDP; TCP (the signal) stays up, so only the liveness check can notice.
            ns.blackhole_udp().expect("blackhole UDP");
            let cut = Instant::now();
            common::wait_state(&subscriber, LIVENESS * 3, |s| {
                matches!(s, SessionState::Reconnecting { .. })
            })
            .await;
            let noticed = cut.elapsed();
            eprintln!("subscriber went Reconnecting {noticed:?} after the UDP blackhole");
            // An idle connection (the subscriber publishes nothing) may have had its last
            // keepalive up to a few seconds before the cut.
            assert!(
                noticed <= LIVENESS + Duration::from_secs(2),
                "noticed within the liveness timeout: {noticed:?}"
            );
            // Hold it a little longer: the resume's ICE restart cannot get through yet.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let blackholed = ns.udp_counters().expect("nft counters");
            ns.clear_faults().expect("lift the blackhole");
            let lifted = Instant::now();
            eprintln!(
                "blackhole lifted after {:?} ({} datagrams dropped)",
                cut.elapsed(),
                blackholed.dropped
            );
            assert!(
                blackholed.dropped > 0,
                "the rule dropped UDP: {blackholed:?}"
            );

            // Frames captured after the lift (not those the handle still held).
            let captured = common::frames_captured_by(sending.started, lifted).max(last_before);
            let (after, first, _) = common::read_new_frames(
                &mut video_in,
                captured,
                30,
                lifted,
                Duration::from_secs(20),
            )
            .await;
            let recovered = first.unwrap_or_else(|| {
                panic!(
                    "no new frame within 20 s of lifting the blackhole (pub {}, sub {})",
                    publisher.state(),
                    subscriber.state()
                )
            });
            assert_eq!(after, 30, "frames keep flowing after the recovery");
            common::wait_state(&subscriber, Duration::from_secs(10), |s| {
                *s == SessionState::Connected
            })
            .await;
            eprintln!(
                "RECOVERY: first new frame {recovered:?} after lifting the UDP blackhole \
                 ({:?} after cutting it); pub {:?}, sub {:?}",
                cut.elapsed() - lifted.elapsed() + recovered,
                publisher.stats(),
                subscriber.stats()
            );

            let st = subscriber.stats();
            assert!(
                st.resumes >= 1 || st.rejoins >= 1,
                "the subscriber recovered by resuming or rejoining: {st:?}"
            );
            if st.rejoins == 0 {
                assert_eq!(
                    subscriber.join_info().expect("joined").local.sid,
                    sub_sid,
                    "a resume keeps the participant"
                );
            }

            sending.stop().await;
            publisher.close().await;
            subscriber.close().await;
            let reasons = resume_reasons.await.expect("event reader");
            eprintln!("subscriber resumes: {reasons:?}");
            assert!(
                reasons.iter().any(|r| r.contains("received nothing")),
                "the liveness check set the resume off (the signal stayed up): {reasons:?}"
            );
            let states = sub_states.await.expect("state recorder");
            let reconnecting = states
                .iter()
                .position(|s| matches!(s, SessionState::Reconnecting { .. }))
                .expect("Reconnecting was seen");
            assert!(
                states[reconnecting..].contains(&SessionState::Connected),
                "Connected again after Reconnecting: {states:?}"
            );
        },
    );
}
