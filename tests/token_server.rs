//! Tokens against the real server: a minted token joins; a viewer grant cannot publish; expired,
//! not-yet-valid, wrong-secret and tampered tokens are refused by our verifier (with the specific
//! error) and by the server.

use std::time::Duration;

use livekit_protocol as proto;
use livekit_signaling::SignalError;
use wavecast_testbed::LiveKitServer;
use wavecast_tests::{join, next_matching};
use wavecast_token::{Keys, Preset, TokenBuilder, TokenError, Verifier, unix_now};

#[tokio::test]
async fn minted_token_joins_and_the_server_names_the_participant() {
    let server = LiveKitServer::start().expect("start livekit-server");
    let token = TokenBuilder::new("alice")
        .name("Alice")
        .metadata("{\"role\":\"test\"}")
        .room("token-join")
        .preset(Preset::Broadcaster)
        .mint(&server.keys())
        .unwrap();
    let (client, joined, _events) = join(&server.ws_url(), &token).await.expect("join");
    let me = joined
        .participant
        .expect("join response names the participant");
    assert_eq!(me.identity, "alice");
    assert_eq!(me.name, "Alice");
    assert_eq!(me.metadata, "{\"role\":\"test\"}");
    assert_eq!(joined.room.expect("room").name, "token-join");
    assert!(me.permission.expect("permission").can_publish);
    client.close().await;
}

fn add_track(cid: &str) -> proto::signal_request::Message {
    proto::signal_request::Message::AddTrack(proto::AddTrackRequest {
        cid: cid.into(),
        name: "mic".into(),
        r#type: proto::TrackType::Audio as i32,
        source: proto::TrackSource::Microphone as i32,
        ..Default::default()
    })
}

#[tokio::test]
async fn viewer_grant_cannot_publish_but_broadcaster_can() {
    let server = LiveKitServer::start().expect("start livekit-server");
    let room = "token-publish";

    // A viewer's AddTrack is refused: the server answers NOT_ALLOWED and never publishes.
    let viewer = server.token("viewer", room, Preset::Viewer);
    let (client, joined, mut events) = join(&server.ws_url(), &viewer).await.expect("join");
    assert!(!joined.participant.unwrap().permission.unwrap().can_publish);
    client.send(add_track("viewer-mic")).await;
    let answer = next_matching(&mut events, Duration::from_secs(5), |m| match m {
        proto::signal_response::Message::TrackPublished(t) => Some(Ok(t.cid.clone())),
        proto::signal_response::Message::RequestResponse(r) => Some(Err(r.reason)),
        _ => None,
    })
    .await;
    assert_eq!(
        answer,
        Some(Err(proto::request_response::Reason::NotAllowed as i32)),
        "the server must refuse a viewer's AddTrack"
    );
    client.close().await;

    // The same request with a broadcaster grant is accepted (so the refusal above is the grant's).
    let broadcaster = server.token("broadcaster", room, Preset::Broadcaster);
    let (client, _join, mut events) = join(&server.ws_url(), &broadcaster).await.expect("join");
    client.send(add_track("bc-mic")).await;
    let answer = next_matching(&mut events, Duration::from_secs(5), |m| match m {
        proto::signal_response::Message::TrackPublished(t) => Some(Ok(t.cid.clone())),
        proto::signal_response::Message::RequestResponse(r) => Some(Err(r.reason)),
        _ => None,
    })
    .await;
    assert_eq!(answer, Some(Ok("bc-mic".to_owned())));
    client.close().await;
}

/// The server's answer to a join with a bad token: an HTTP 401 from its validate endpoint.
async fn assert_server_refuses(server: &LiveKitServer, token: &str, what: &str) {
    match join(&server.ws_url(), token).await {
        Ok(_) => panic!("the server accepted a {what} token"),
        Err(SignalError::Client(status, message)) => {
            assert_eq!(status.as_u16(), 401, "{what}: {message}");
        }
        Err(other) => panic!("{what}: expected a 401 client error, got {other}"),
    }
}

#[tokio::test]
async fn bad_tokens_are_refused_by_our_verifier_and_by_the_server() {
    let server = LiveKitServer::start().expect("start livekit-server");
    let keys = server.keys();
    let verifier = Verifier::new([keys.clone()]).leeway(Duration::from_secs(5));
    let now = unix_now();
    let base = || {
        TokenBuilder::new("mallory")
            .room("refused")
            .preset(Preset::Broadcaster)
    };

    let expired = base()
        .issued_at(now - 7200)
        .ttl(Duration::from_secs(60))
        .mint(&keys)
        .unwrap();
    assert!(matches!(
        verifier.verify(&expired),
        Err(TokenError::Expired { .. })
    ));
    assert_server_refuses(&server, &expired, "expired").await;

    let early = base()
        .issued_at(now)
        .not_before(now + 3600)
        .mint(&keys)
        .unwrap();
    assert!(matches!(
        verifier.verify(&early),
        Err(TokenError::NotYetValid { .. })
    ));
    assert_server_refuses(&server, &early, "not-yet-valid").await;

    let wrong = base()
        .mint(&Keys::new(keys.key(), "not-the-secret"))
        .unwrap();
    assert!(matches!(
        verifier.verify(&wrong),
        Err(TokenError::BadSignature { .. })
    ));
    assert_server_refuses(&server, &wrong, "wrong-secret").await;

    let unknown = base().mint(&Keys::new("otherkey", "secret")).unwrap();
    assert!(matches!(
        verifier.verify(&unknown),
        Err(TokenError::UnknownKey { .. })
    ));
    assert_server_refuses(&server, &unknown, "unknown-key").await;

    // Tampered: a viewer token whose payload is swapped for a broadcaster's, signature kept.
    let viewer = base().preset(Preset::Viewer).mint(&keys).unwrap();
    let broadcaster = base().mint(&keys).unwrap();
    let v: Vec<&str> = viewer.split('.').collect();
    let b: Vec<&str> = broadcaster.split('.').collect();
    let tampered = format!("{}.{}.{}", v[0], b[1], v[2]);
    assert!(matches!(
        verifier.verify(&tampered),
        Err(TokenError::BadSignature { .. })
    ));
    assert_server_refuses(&server, &tampered, "tampered").await;

    // And the untouched ones still work, so the refusals above are about the tokens.
    assert!(verifier.verify(&broadcaster).is_ok());
    let (client, _, _) = join(&server.ws_url(), &broadcaster)
        .await
        .expect("valid token joins");
    client.close().await;
}
