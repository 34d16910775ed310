//! RPC against a real livekit-server: between two wavecast rooms and both ways with the
//! official Python SDK and with Chromium running livekit-client, in both protocol versions (v1 packets; v2 payloads as data streams, to
//! and from participants whose client protocol reads them), each error code, and the
//! round-trip times.

mod common;

use std::time::{Duration, Instant};

use common::init_tracing;
use wavecast_session::{
    ClientProtocol, LocalParticipant, MAX_RPC_PAYLOAD_BYTES, PerformRpcData, Room, RoomOptions,
    RpcError, RpcErrorCode,
};
use wavecast_testbed::browser::BrowserPeer;
use wavecast_testbed::scripted::{LinePeer, ScriptedPeer};
use wavecast_testbed::{LiveKitServer, NetNs, ServerOptions};
use wavecast_token::Preset;

async fn join(
    server: &LiveKitServer,
    room: &str,
    identity: &str,
    protocol: ClientProtocol,
) -> Room {
    common::join_room(
        server,
        room,
        identity,
        RoomOptions::default().client_protocol(protocol),
    )
    .await
    .expect("the room joins")
    .0
}

async fn until_present(room: &Room, identity: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while room.remote_participant(identity).is_none() {
        assert!(Instant::now() < deadline, "{identity} never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The methods both test servers offer.
fn serve(me: &LocalParticipant) {
    me.register_rpc_method("echo", |call| async move { Ok(call.payload) });
    me.register_rpc_method("fail", |call| async move {
        Err(RpcError::new(
            4001,
            "nope",
            Some(format!("data: {}", call.payload)),
        ))
    });
    me.register_rpc_method("panic", |_| async move {
        if true {
            panic!("a handler bug");
        }
        Ok(String::new())
    });
    me.register_rpc_method("big", |_| async move { Ok("b".repeat(16_000)) });
    me.register_rpc_method("slow", |call| async move {
        let secs: f64 = call.payload.parse().unwrap_or(1.0);
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        Ok("late".into())
    });
}

fn code(r: Result<String, RpcError>) -> u32 {
    r.expect_err("an RPC error").code
}

const T: Duration = Duration::from_secs(10);

/// Which way a call goes: the request as a stream (the receiver reads v2) or a packet, the
/// response as a stream (the caller reads v2) or a packet.
#[derive(Clone, Copy)]
struct Ways {
    request_v2: bool,
    response_v2: bool,
}

/// Every caller-side code against `dest` serving [`serve`]'s methods (or Python's `boom` for
/// the panic: `panic_method`), and the payload limits as the protocol versions set them.
async fn every_code(me: &LocalParticipant, dest: &str, panic_method: &str, ways: Ways) {
    assert_eq!(
        me.perform_rpc(dest, "echo", "hi ✓", T).await.unwrap(),
        "hi ✓"
    );
    assert_eq!(
        me.perform_rpc(dest, "fail", "x", T).await.unwrap_err(),
        RpcError::new(4001, "nope", Some("data: x".into()))
    );
    assert_eq!(code(me.perform_rpc(dest, panic_method, "", T).await), 1500);
    let big = me.perform_rpc(dest, "big", "", T).await;
    if ways.response_v2 {
        let big = big.expect("a v2 response has no size limit");
        assert!(big == "b".repeat(16_000), "{} bytes", big.len());
    } else {
        assert_eq!(code(big), 1504);
    }
    assert_eq!(code(me.perform_rpc(dest, "missing", "", T).await), 1400);
    let t0 = Instant::now();
    let r = me
        .perform_rpc(dest, "slow", "3", Duration::from_secs(1))
        .await;
    assert_eq!(code(r), 1502);
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "gave up at the response timeout"
    );
    let too_big = "p".repeat(MAX_RPC_PAYLOAD_BYTES + 1);
    let r = me.perform_rpc(dest, "echo", &too_big, T).await;
    match ways {
        Ways {
            request_v2: false, ..
        } => assert_eq!(code(r), 1402),
        Ways {
            response_v2: false, ..
        } => assert_eq!(code(r), 1504),
        _ => assert_eq!(r.map(|p| p.len()), Ok(too_big.len())),
    }
    let just_fits = "p".repeat(MAX_RPC_PAYLOAD_BYTES);
    assert_eq!(
        me.perform_rpc(dest, "echo", &just_fits, T)
            .await
            .unwrap()
            .len(),
        MAX_RPC_PAYLOAD_BYTES
    );
    if ways.request_v2 && ways.response_v2 {
        // A megabyte each way: chunked streams, not one packet.
        let mb: String = (0..1_000_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let echoed = me.perform_rpc(dest, "echo", &mb, T).await.unwrap();
        assert!(echoed == mb, "{} bytes came back", echoed.len());
    }
    let r = me
        .perform_rpc_with(PerformRpcData {
            destination_identity: "nobody".into(),
            method: "echo".into(),
            max_round_trip_latency: Duration::from_secs(1),
            ..PerformRpcData::default()
        })
        .await;
    assert_eq!(
        r.unwrap_err().built_in_code(),
        Some(RpcErrorCode::ConnectionTimeout)
    );
}

async fn between_two_wavecast_rooms(protocol: ClientProtocol) {
    init_tracing();
    let server = LiveKitServer::start().expect("livekit-server starts");
    let alice = join(&server, "rpc", "alice", protocol).await;
    let bob = join(&server, "rpc", "bob", protocol).await;
    until_present(&bob, "alice").await;
    until_present(&alice, "bob").await;
    serve(alice.local_participant());
    let me = bob.local_participant().clone();
    let v2 = protocol >= ClientProtocol::DataStreamRpc;
    every_code(
        &me,
        "alice",
        "panic",
        Ways {
            request_v2: v2,
            response_v2: v2,
        },
    )
    .await;

    // The caller learns of the receiver leaving mid-call.
    let call = tokio::spawn({
        let me = me.clone();
        async move {
            me.perform_rpc("alice", "slow", "30", Duration::from_secs(60))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice.close().await;
    let r = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("ends")
        .unwrap();
    assert_eq!(
        r.unwrap_err().built_in_code(),
        Some(RpcErrorCode::RecipientDisconnected)
    );

    // A caller that left cannot send.
    bob.close().await;
    let r = me.perform_rpc("alice", "echo", "", T).await;
    assert_eq!(
        r.unwrap_err().built_in_code(),
        Some(RpcErrorCode::SendFailed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpc_v1_between_two_wavecast_rooms_with_every_error_code() {
    between_two_wavecast_rooms(ClientProtocol::Legacy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpc_v2_between_two_wavecast_rooms_with_every_error_code() {
    between_two_wavecast_rooms(ClientProtocol::DataStreamV2).await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Calls both ways with another SDK (which speaks client protocol 2), with us advertising
/// `protocol`: it calls us v1 when we advertise the legacy protocol, v2 otherwise; we always
/// call it v2, and it answers as `its_answers` says.
async fn calls_both_ways(
    room: Room,
    py: &mut impl LinePeer,
    who: &str,
    protocol: ClientProtocol,
    its_answers: Ways,
    bench: bool,
) {
    until_present(&room, who).await;
    let me = room.local_participant().clone();
    let v2 = protocol >= ClientProtocol::DataStreamRpc;
    assert_eq!(
        room.remote_participant(who).unwrap().client_protocol(),
        ClientProtocol::DataStreamV2,
        "the pinned SDK speaks protocol 2"
    );

    // wavecast calls the peer: v2 (it reads v2).
    every_code(&me, who, "boom", its_answers).await;

    // The peer calls wavecast.
    let mut call = |line: &str| -> String {
        tokio::task::block_in_place(|| py.run(line, "RESULT", Duration::from_secs(30)))
    };
    assert_eq!(call("call rusty echo hello 10"), "ok hello");
    assert_eq!(call("call rusty fail x 10"), "err 4001 nope|data: x");
    assert_eq!(
        call("call rusty panic - 10"),
        "err 1500 Application error in method handler|"
    );
    assert_eq!(
        call("call rusty missing - 10"),
        "err 1400 Method not supported at destination|"
    );
    assert!(call("call rusty slow 3 1").starts_with("err 1502 "));
    assert_eq!(call("call rusty echo @15360 10"), "ok <15360 bytes>");
    assert!(call("call nobody echo - 10 1").starts_with("err 1501 "));
    // Our answers go the newest way the caller reads (Python reads v2) whichever way it
    // called, so a response has no size limit; a request to us as a legacy client has.
    assert_eq!(call("call rusty big - 10"), "ok <16000 bytes>");
    if v2 {
        assert_eq!(call("call rusty echo @15361 10"), "ok <15361 bytes>");
        assert_eq!(call("call rusty echo @1000000 10"), "ok <1000000 bytes>");
    } else {
        assert!(call("call rusty echo @15361 10").starts_with("err 1402 "));
    }

    if bench {
        // Round trips, each way: 200 sequential echo calls.
        let mut rtts = Vec::new();
        for i in 0..200 {
            let t0 = Instant::now();
            me.perform_rpc(who, "echo", &format!("ping {i}"), T)
                .await
                .unwrap_or_else(|e| panic!("echo {i} after {:?}: {e:?}", t0.elapsed()));
            rtts.push(t0.elapsed());
        }
        rtts.sort();
        let py_bench = tokio::task::block_in_place(|| {
            py.run("bench rusty 200", "BENCH", Duration::from_secs(60))
        });
        eprintln!(
            "RPC echo round trip, wavecast → {who}: p50 {:?} p95 {:?}; {who} → wavecast (ms p50 p95): {py_bench}",
            percentile(&rtts, 0.5),
            percentile(&rtts, 0.95)
        );
    }

    // Python learns of us leaving mid-call.
    let result = tokio::task::block_in_place(|| {
        py.write_line("call rusty slow 30 60");
        std::thread::sleep(Duration::from_millis(500));
        tokio::runtime::Handle::current().block_on(room.close());
        py.expect_line("RESULT", Duration::from_secs(30))
    });
    assert!(result.starts_with("err 1503 "), "{result}");
}

/// Calls both ways with the official Python SDK, us advertising `protocol`.
async fn with_the_python_sdk(protocol: ClientProtocol, bench: bool) {
    init_tracing();
    let server = LiveKitServer::start().expect("livekit-server starts");
    let room = join(&server, "pyrpc", "rusty", protocol).await;
    serve(room.local_participant());
    let mut py = tokio::task::block_in_place(|| {
        ScriptedPeer::join_script(&server, "rpc_peer.py", "pyrpc", "py")
    });
    // It answers a v2 request with a v2 response whatever we advertise.
    let answers = Ways {
        request_v2: true,
        response_v2: true,
    };
    calls_both_ways(room, &mut py, "py", protocol, answers, bench).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpc_v2_both_ways_with_the_python_sdk() {
    with_the_python_sdk(ClientProtocol::DataStreamV2, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpc_v1_both_ways_with_the_python_sdk() {
    with_the_python_sdk(ClientProtocol::Legacy, false).await;
}

/// The same with Chromium running livekit-client, in a network namespace of its own
/// (libwebrtc gathers no candidate on loopback alone).
fn with_chromium(test: &str, protocol: ClientProtocol, bench: bool) {
    let Some(_ns) = NetNs::enter_for_test(test) else {
        return;
    };
    init_tracing();
    let server = LiveKitServer::start_with(&ServerOptions {
        media_ip: Some(NetNs::ADDR),
        ..ServerOptions::default()
    })
    .expect("livekit-server starts");
    let token = server.token("web", "webrpc", Preset::Broadcaster);
    let mut page = BrowserPeer::data(&server.ws_url(), &token, 120).expect("chromium starts");
    page.wait_json("READY", Duration::from_secs(60))
        .expect("the page joins");
    // livekit-client answers the way the caller reads: packets (15 KiB at most) to a
    // legacy caller.
    let answers = Ways {
        request_v2: true,
        response_v2: protocol >= ClientProtocol::DataStreamRpc,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async {
            let room = join(&server, "webrpc", "rusty", protocol).await;
            serve(room.local_participant());
            // The page knows what we advertise: the protocol, and DEFLATE with protocol 2.
            let seen = tokio::task::block_in_place(|| page.run("protocol-of rusty", "PROTOCOL", T));
            let want = match protocol {
                ClientProtocol::DataStreamV2 => "2 [2]",
                _ => "0 []",
            };
            assert_eq!(seen, want, "what the page sees of us");
            calls_both_ways(room, &mut page, "web", protocol, answers, bench).await;
        });
}

#[test]
fn rpc_v2_both_ways_with_chromium() {
    with_chromium(
        "rpc_v2_both_ways_with_chromium",
        ClientProtocol::DataStreamV2,
        true,
    );
}

#[test]
fn rpc_v1_both_ways_with_chromium() {
    with_chromium(
        "rpc_v1_both_ways_with_chromium",
        ClientProtocol::Legacy,
        false,
    );
}
