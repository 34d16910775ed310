//! The scenarios, each run on SQLite and on PostgreSQL.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use wavecast_testbed::{API_KEY, API_SECRET, PythonPeer};

use super::{ADMIN_KEY, Backend, Bed, Limits, blocking, now, sign_webhook};

const JOIN: Duration = Duration::from_secs(30);

fn peer(bed: &Bed, mode: &str, token: &str, seconds: u32) -> PythonPeer {
    PythonPeer::spawn(
        &bed.server,
        "service_peer.py",
        &[mode, token, &seconds.to_string()],
    )
    .expect("start the Python SDK peer")
}

/// A mint reads the caller's grants (its own and its groups') and whether the room's stream has
/// ended in one statement: every part of that read still decides the answer (an ended stream
/// refuses even a caller with a grant, or without one; a group grant admits; a live stream's
/// room takes its grant holders; another user's grant counts for nobody else).
pub async fn mint_reads_grants_and_the_ended_stream_in_one_query(backend: Backend) {
    use wavecast_service::policy::Role;
    use wavecast_service::store::{Stream, StreamStatus};

    let bed = Bed::start(backend).await;
    let t = now();
    for (id, room, status) in [
        ("s_ended", "one-ended", StreamStatus::Ended),
        ("s_live", "one-live", StreamStatus::Live),
    ] {
        bed.store
            .insert_stream(&Stream {
                id: id.into(),
                owner: "owner".into(),
                name: id.into(),
                metadata: String::new(),
                max_participants: 0,
                room: room.into(),
                status,
                created_at: t,
                live_at: Some(t),
                ended_at: (status == StreamStatus::Ended).then_some(t),
            })
            .await
            .expect("insert a stream");
    }
    let by_group = bed
        .grant(json!({"group": "crew", "room": "one-*", "role": "broadcaster"}))
        .await;
    let own = bed
        .grant(json!({"user": "ursula", "room": "one-live", "role": "viewer"}))
        .await;
    bed.grant(json!({"user": "someone-else", "room": "*", "role": "admin"}))
        .await;

    // The store's view: the grants of the user and of its groups, and the ended stream.
    let groups = vec!["crew".to_owned(), "band".to_owned()];
    let view = bed
        .store
        .mint_view("one-ended", "ursula", &groups)
        .await
        .expect("read the mint view");
    assert_eq!(view.ended_stream.as_deref(), Some("s_ended"), "{view:?}");
    let mut ids: Vec<&str> = view.grants.iter().map(|g| g.id.as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![by_group.as_str(), own.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want, "{view:?}");
    let view = bed
        .store
        .mint_view("one-live", "ursula", &[])
        .await
        .expect("read the mint view");
    assert_eq!(view.ended_stream, None, "{view:?}");
    assert_eq!(view.grants.len(), 1, "{view:?}");
    assert_eq!(
        (view.grants[0].id.as_str(), view.grants[0].role),
        (own.as_str(), Role::Viewer)
    );
    let view = bed
        .store
        .mint_view("no-stream", "nobody", &[])
        .await
        .expect("read the mint view");
    assert_eq!((view.ended_stream, view.grants.len()), (None, 0));

    // The endpoint: the ended stream's room takes no one, with or without a grant.
    for jwt in [bed.login("ursula", &["crew"]), bed.login("nobody", &[])] {
        let (s, e) = bed.token(&jwt, "one-ended").await;
        assert_eq!((s, e["error"].as_str()), (403, Some("stream_ended")), "{e}");
        assert!(e.get("token").is_none(), "{e}");
    }
    // The live stream's room: the group grant wins over the user's own viewer grant.
    let (s, ok) = bed
        .token(&bed.login("ursula", &["band", "crew"]), "one-live")
        .await;
    assert_eq!(s, 200, "{ok}");
    assert_eq!(
        (ok["role"].as_str(), ok["grant"].as_str()),
        (Some("broadcaster"), Some(by_group.as_str()))
    );
    let (s, ok) = bed.token(&bed.login("ursula", &[]), "one-live").await;
    assert_eq!(s, 200, "{ok}");
    assert_eq!(
        (ok["role"].as_str(), ok["grant"].as_str()),
        (Some("viewer"), Some(own.as_str()))
    );
    let (s, e) = bed.token(&bed.login("nobody", &["band"]), "one-live").await;
    assert_eq!((s, e["error"].as_str()), (403, Some("no_grant")), "{e}");
}

/// grant → POST /v1/token → the official Python SDK joins with it; a viewer cannot publish,
/// a broadcaster can.
pub async fn token_joins_and_viewer_cannot_publish(backend: Backend) {
    let bed = Bed::start(backend).await;
    bed.grant(json!({"user": "alice", "room": "demo", "role": "viewer"}))
        .await;
    bed.grant(json!({"group": "hosts", "room": "dem*", "role": "broadcaster"}))
        .await;

    let (s, t) = bed.token(&bed.login("alice", &[]), "demo").await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["role"], "viewer");
    assert_eq!(t["identity"], "alice");
    assert_eq!(t["url"], bed.server.ws_url());
    let exp = t["expires_at"].as_i64().unwrap();
    assert!(exp > now() && exp <= now() + 3600, "{t}");
    let claims = wavecast_token::Verifier::new([wavecast_token::Keys::new(API_KEY, API_SECRET)])
        .verify(t["token"].as_str().unwrap())
        .expect("a token the server's key verifies");
    assert_eq!(claims.video.room, "demo");
    assert!(!claims.video.can_publish());

    let viewer_token = t["token"].as_str().unwrap().to_owned();
    let mut viewer = peer(&bed, "join", &viewer_token, 30);
    let joined = blocking(|| viewer.wait_line("JOINED", JOIN)).expect("viewer joins");
    assert_eq!(joined, "alice");
    let publish = blocking(|| viewer.wait_line("PUBLISH", JOIN)).unwrap();
    assert!(
        publish.starts_with("refused"),
        "a viewer published: {publish}"
    );

    let (s, b) = bed.token(&bed.login("bob", &["hosts"]), "demo").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["role"], "broadcaster");
    let mut host = peer(&bed, "join", b["token"].as_str().unwrap(), 30);
    assert_eq!(blocking(|| host.wait_line("JOINED", JOIN)).unwrap(), "bob");
    assert_eq!(blocking(|| host.wait_line("PUBLISH", JOIN)).unwrap(), "ok");

    // The server agrees: bob publishes, alice does not.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ps = loop {
        let ps: HashMap<String, usize> =
            bed.server_participants("demo").await.into_iter().collect();
        if ps.get("bob") == Some(&1) || std::time::Instant::now() > deadline {
            break ps;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ps.get("alice"), Some(&0), "{ps:?}");
    assert_eq!(ps.get("bob"), Some(&1), "{ps:?}");
    drop((viewer, host));
    bed.stop().await;
}

/// Regression for the chat seed's bug (expired access grants still let users in): expired,
/// revoked, not-yet-valid and missing grants are refused with 403 and the reason, and a token's
/// lifetime never outlasts its grant.
pub async fn expired_revoked_and_future_grants_are_refused(backend: Backend) {
    let bed = Bed::start(backend).await;
    let t = now();
    bed.grant(json!({"user": "exp", "room": "r1", "role": "viewer", "expires_at": t - 1}))
        .await;
    bed.grant(json!({"user": "fut", "room": "r1", "role": "viewer", "not_before": t + 3600}))
        .await;
    let revoked = bed
        .grant(json!({"user": "rev", "room": "r1", "role": "viewer"}))
        .await;
    bed.grant(json!({"user": "short", "room": "r1", "role": "viewer", "expires_at": t + 120}))
        .await;

    // Before revocation the grant works; after, it does not.
    let (s, _) = bed.token(&bed.login("rev", &[]), "r1").await;
    assert_eq!(s, 200);
    let (s, g) = bed
        .admin("POST", &format!("/v1/admin/grants/{revoked}/revoke"), None)
        .await;
    assert_eq!(s, 200, "{g}");
    assert!(g["revoked_at"].as_i64().is_some(), "{g}");

    for (user, code) in [
        ("exp", "grant_expired"),
        ("fut", "grant_not_yet_valid"),
        ("rev", "grant_revoked"),
        ("nobody", "no_grant"),
    ] {
        let (s, e) = bed.token(&bed.login(user, &[]), "r1").await;
        assert_eq!(s, 403, "{user}: {e}");
        assert_eq!(e["error"], code, "{user}: {e}");
        assert!(e["message"].as_str().unwrap().contains("grant"), "{e}");
        assert!(e.get("token").is_none());
    }
    // The token of a grant with 2 minutes left lives at most 2 minutes.
    let (s, ok) = bed.token(&bed.login("short", &[]), "r1").await;
    assert_eq!(s, 200, "{ok}");
    let claims = wavecast_token::decode_unverified(ok["token"].as_str().unwrap()).unwrap();
    assert!(
        claims.exp as i64 <= t + 121,
        "token outlives its grant: {ok}"
    );
    // Another room is not covered.
    let (s, e) = bed.token(&bed.login("short", &[]), "r2").await;
    assert_eq!((s, e["error"].as_str()), (403, Some("no_grant")));

    // The expired grant's holder cannot join the real server either: no token, nothing to join
    // with; and a token from the grant still valid joins fine (the refusal is the policy's).
    let mut p = peer(&bed, "join", ok["token"].as_str().unwrap(), 5);
    assert_eq!(blocking(|| p.wait_line("JOINED", JOIN)).unwrap(), "short");
    drop(p);
    bed.stop().await;
}

/// go live → the broadcaster publishes → GET shows live and the viewer count as webhooks arrive
/// → end → room gone, participants disconnected, no more tokens, events stored once.
pub async fn stream_goes_live_shows_viewers_and_ends(backend: Backend) {
    let bed = Bed::start(backend).await;
    bed.grant(json!({"group": "fans", "room": "stream-*", "role": "viewer"}))
        .await;
    let owner = bed.login("carol", &[]);
    let fan = bed.login("dave", &["fans"]);

    let (s, st) = bed
        .call(
            "POST",
            "/v1/streams",
            Some(&owner),
            Some(json!({"name": "Carol's show", "metadata": "{\"topic\":\"tests\"}", "max_participants": 10})),
        )
        .await;
    assert_eq!(s, 201, "{st}");
    assert_eq!(st["status"], "created");
    let id = st["id"].as_str().unwrap().to_owned();
    let room = st["room"].as_str().unwrap().to_owned();
    let path = format!("/v1/streams/{id}");

    // Only the owner takes it live.
    let (s, e) = bed
        .call("POST", &format!("{path}/live"), Some(&fan), None)
        .await;
    assert_eq!((s, e["error"].as_str()), (403, Some("not_owner")));
    let (s, live) = bed
        .call("POST", &format!("{path}/live"), Some(&owner), None)
        .await;
    assert_eq!(s, 200, "{live}");
    assert_eq!(live["role"], "broadcaster");
    assert!(bed.server_rooms().await.contains(&room), "room not created");

    let mut caster = peer(&bed, "publish", live["token"].as_str().unwrap(), 60);
    blocking(|| caster.wait_line("READY", JOIN)).expect("broadcaster publishes");
    bed.wait_for(&path, &fan, Duration::from_secs(20), |v| {
        v["live"] == true && v["status"] == "live"
    })
    .await;

    let (s, vt) = bed.token(&fan, &room).await;
    assert_eq!(s, 200, "{vt}");
    assert_eq!(vt["role"], "viewer");
    let mut viewer = peer(&bed, "join", vt["token"].as_str().unwrap(), 60);
    assert_eq!(
        blocking(|| viewer.wait_line("JOINED", JOIN)).unwrap(),
        "dave"
    );
    let v = bed
        .wait_for(&path, &fan, Duration::from_secs(20), |v| {
            v["viewer_count"] == 1
        })
        .await;
    let mut seen: Vec<&str> = v["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, ["carol", "dave"], "{v}");
    let mut server: Vec<&str> = v["server_participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    server.sort();
    assert_eq!(server, seen, "webhook state and server API disagree: {v}");

    // End: everyone is disconnected, the room is gone, no new tokens.
    let (s, end) = bed
        .call("POST", &format!("{path}/end"), Some(&owner), None)
        .await;
    assert_eq!(s, 200, "{end}");
    assert_eq!(end["stream"]["status"], "ended");
    assert_eq!(end["removed"].as_array().unwrap().len(), 2, "{end}");
    blocking(|| viewer.wait_line("DISCONNECTED", JOIN)).expect("viewer disconnected");
    blocking(|| caster.wait_line("DISCONNECTED", JOIN)).expect("broadcaster disconnected");
    assert!(
        !bed.server_rooms().await.contains(&room),
        "room still there"
    );
    let (s, e) = bed.token(&fan, &room).await;
    assert_eq!((s, e["error"].as_str()), (403, Some("stream_ended")), "{e}");
    let (s, e) = bed
        .call("POST", &format!("{path}/live"), Some(&owner), None)
        .await;
    assert_eq!((s, e["error"].as_str()), (409, Some("stream_ended")));

    // Every event once; the lifecycle is all there.
    let v = bed
        .wait_for(&path, &fan, Duration::from_secs(20), |v| {
            v["participants"].as_array().is_some_and(|p| p.is_empty())
        })
        .await;
    assert_eq!(v["viewer_count"], 0);
    assert_eq!(v["live"], false);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let events = loop {
        let (s, evs) = bed
            .admin("GET", &format!("/v1/admin/events?room={room}"), None)
            .await;
        assert_eq!(s, 200);
        let evs = evs.as_array().unwrap().clone();
        if evs.iter().any(|e| e["event"] == "room_finished") || std::time::Instant::now() > deadline
        {
            break evs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ids: std::collections::HashSet<&str> =
        events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "an event was stored twice");
    let count = |name: &str, who: &str| {
        events
            .iter()
            .filter(|e| e["event"] == name && (who.is_empty() || e["participant"] == who))
            .count()
    };
    assert_eq!(count("room_started", ""), 1, "{events:?}");
    assert_eq!(count("participant_joined", "carol"), 1);
    assert_eq!(count("participant_joined", "dave"), 1);
    assert_eq!(count("participant_left", "dave"), 1);
    assert!(count("track_published", "carol") >= 1);
    assert_eq!(count("room_finished", ""), 1, "{events:?}");

    // Rejoining with the old viewer token: LiveKit re-creates the room on join, and the
    // participant_joined webhook makes the service close it again.
    let old = vt["token"].as_str().unwrap().to_owned();
    let mut again = peer(&bed, "join", &old, 30);
    match blocking(|| again.wait_line("JOINED", JOIN)) {
        // Joined the re-created room: the service must throw it out.
        Ok(_) => {
            blocking(|| again.wait_line("DISCONNECTED", JOIN))
                .expect("the rejoined viewer is removed");
        }
        // Or the server refused the join outright (the script exits with CONNECT_FAILED).
        Err(e) => assert!(e.to_string().contains("ended"), "rejoin not stopped: {e}"),
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while bed.server_rooms().await.contains(&room) {
        assert!(
            std::time::Instant::now() < deadline,
            "the ended stream's room came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop((viewer, caster, again));
    bed.stop().await;
}

fn event_body(id: &str, event: &str, room: &str, created_at: i64) -> String {
    json!({"event": event, "room": {"name": room, "sid": "RM_test"}, "id": id,
           "createdAt": created_at.to_string()})
    .to_string()
}

async fn post_webhook(bed: &Bed, body: &str, auth: Option<&str>) -> (u16, Value) {
    let url = format!("{}/v1/livekit/webhook", bed.base);
    let mut req = bed
        .http
        .post(&url)
        .header("content-type", "application/webhook+json")
        .body(body.to_owned());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    let s = r.status().as_u16();
    (
        s,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null),
    )
}

/// Forged (wrong key), tampered (body changed after signing), stale (a replay of an old event)
/// and unsigned webhooks are refused and store nothing; a genuine one is stored once however
/// often it is delivered.
pub async fn forged_tampered_and_replayed_webhooks_are_refused(backend: Backend) {
    let bed = Bed::start(backend).await;
    let (_, _, events_before) = bed.counts().await;
    let t = now();
    let good = event_body("EV_good", "room_started", "hooks", t);

    let wrong_key = sign_webhook(&good, API_KEY, "not-the-servers-secret");
    let (s, e) = post_webhook(&bed, &good, Some(&wrong_key)).await;
    assert_eq!((s, e["error"].as_str()), (401, Some("bad_webhook")), "{e}");
    let other_issuer = sign_webhook(&good, "otherkey", API_SECRET);
    assert_eq!(post_webhook(&bed, &good, Some(&other_issuer)).await.0, 401);

    let signed = sign_webhook(&good, API_KEY, API_SECRET);
    let tampered = good.replace("hooks", "hookz");
    let (s, e) = post_webhook(&bed, &tampered, Some(&signed)).await;
    assert_eq!(s, 401, "{e}");
    assert!(e["message"].as_str().unwrap().contains("sha256"), "{e}");

    let old = event_body("EV_old", "room_started", "hooks", t - 3600);
    let (s, e) = post_webhook(&bed, &old, Some(&sign_webhook(&old, API_KEY, API_SECRET))).await;
    assert_eq!(s, 401, "{e}");
    assert!(e["message"].as_str().unwrap().contains("replay"), "{e}");

    assert_eq!(post_webhook(&bed, &good, None).await.0, 401);
    assert_eq!(
        post_webhook(&bed, &good, Some("Bearer not-a-jwt")).await.0,
        401
    );
    assert_eq!(
        bed.counts().await.2,
        events_before,
        "a refused webhook was stored"
    );

    // Genuine: stored once, however often LiveKit (or an attacker replaying it) delivers it.
    let (s, r) = post_webhook(&bed, &good, Some(&signed)).await;
    assert_eq!((s, &r), (200, &json!({"stored": true})));
    for _ in 0..3 {
        let (s, r) = post_webhook(&bed, &good, Some(&signed)).await;
        assert_eq!((s, &r), (200, &json!({"stored": false})));
    }
    let (_, evs) = bed.admin("GET", "/v1/admin/events?room=hooks", None).await;
    assert_eq!(evs.as_array().unwrap().len(), 1, "{evs}");
    assert_eq!(evs[0]["id"], "EV_good");
    bed.stop().await;
}

/// One bad request: method, path, bearer, body, content type, expected status and error code.
type Case<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Vec<u8>,
    Option<&'a str>,
    u16,
    &'a str,
);

/// Oversized bodies, malformed JSON, unknown fields, huge room names, SQL-looking strings,
/// wrong content types and bad credentials: each a clear JSON 4xx, nothing stored, the service
/// keeps serving.
pub async fn bad_input_gets_clear_4xx_and_stores_nothing(backend: Backend) {
    let bed = Bed::start(backend).await;
    bed.grant(json!({"user": "eve", "room": "*", "role": "viewer"}))
        .await;
    let before = bed.counts().await;
    let jwt = bed.login("eve", &[]);
    let big = vec![b' '; 64 * 1024];
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/v1/token",
            Some(&jwt),
            [b"{\"room\":\"demo\"}".as_slice(), &big].concat(),
            Some("application/json"),
            413,
            "body_too_large",
        ),
        (
            "POST",
            "/v1/streams",
            Some(&jwt),
            [b"{\"name\":\"".as_slice(), &vec![b'a'; 64 * 1024], b"\"}"].concat(),
            Some("application/json"),
            413,
            "body_too_large",
        ),
        (
            "POST",
            "/v1/token",
            Some(&jwt),
            b"{\"room\": \"demo\"".to_vec(),
            Some("application/json"),
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/v1/token",
            Some(&jwt),
            b"not json at all".to_vec(),
            Some("application/json"),
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/v1/token",
            Some(&jwt),
            b"{\"room\":\"demo\",\"admin\":true}".to_vec(),
            Some("application/json"),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/token",
            Some(&jwt),
            b"{\"room\":42}".to_vec(),
            Some("application/json"),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/token",
            Some(&jwt),
            b"{\"room\":\"demo\",\"role\":\"god\"}".to_vec(),
            Some("application/json"),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/token",
            Some(&jwt),
            format!("{{\"room\":\"{}\"}}", "r".repeat(10_000)).into_bytes(),
            Some("application/json"),
            400,
            "invalid_room",
        ),
        (
            "POST",
            "/v1/token",
            Some(&jwt),
            br#"{"room":"x'; DROP TABLE grants; --"}"#.to_vec(),
            Some("application/json"),
            400,
            "invalid_room",
        ),
        (
            "POST",
            "/v1/token",
            Some(&jwt),
            br#"{"room":"demo\" OR 1=1"}"#.to_vec(),
            Some("application/json"),
            400,
            "invalid_room",
        ),
        (
            "POST",
            "/v1/token",
            Some(&jwt),
            b"{\"room\":\"demo\"}".to_vec(),
            Some("text/plain"),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/v1/token",
            None,
            b"{\"room\":\"demo\"}".to_vec(),
            Some("application/json"),
            401,
            "unauthenticated",
        ),
        (
            "POST",
            "/v1/token",
            Some("eyJhbGciOiJub25lIn0.e30."),
            b"{\"room\":\"demo\"}".to_vec(),
            Some("application/json"),
            401,
            "unauthenticated",
        ),
        (
            "POST",
            "/v1/streams",
            Some(&jwt),
            br#"{"name":"x","max_participants":-1}"#.to_vec(),
            Some("application/json"),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/streams",
            Some(&jwt),
            br#"{"name":"x","owner":"mallory"}"#.to_vec(),
            Some("application/json"),
            422,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/streams",
            Some(&jwt),
            br#"{"name":""}"#.to_vec(),
            Some("application/json"),
            400,
            "invalid_name",
        ),
        (
            "POST",
            "/v1/admin/grants",
            Some(ADMIN_KEY),
            br#"{"user":"robert'); DROP TABLE grants;--","room":"a","role":"viewer"}"#.to_vec(),
            Some("application/json"),
            400,
            "invalid_subject",
        ),
        (
            "POST",
            "/v1/admin/grants",
            Some(ADMIN_KEY),
            br#"{"user":"a","room":"a' OR '1'='1","role":"viewer"}"#.to_vec(),
            Some("application/json"),
            400,
            "invalid_room",
        ),
        (
            "POST",
            "/v1/admin/grants",
            Some(ADMIN_KEY),
            br#"{"user":"a","group":"b","room":"a","role":"viewer"}"#.to_vec(),
            Some("application/json"),
            400,
            "invalid_subject",
        ),
        (
            "POST",
            "/v1/admin/grants",
            Some(ADMIN_KEY),
            br#"{"user":"a","room":"a","role":"viewer","not_before":10,"expires_at":5}"#.to_vec(),
            Some("application/json"),
            400,
            "invalid_window",
        ),
        (
            "POST",
            "/v1/admin/grants",
            Some(&jwt),
            br#"{"user":"eve","room":"*","role":"admin"}"#.to_vec(),
            Some("application/json"),
            401,
            "unauthenticated",
        ),
        (
            "GET",
            "/v1/streams/nope'--",
            Some(&jwt),
            Vec::new(),
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/nowhere",
            None,
            Vec::new(),
            None,
            404,
            "not_found",
        ),
    ];
    for (method, path, bearer, body, ct, want, code) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        let (s, e) = bed
            .raw(method, path, bearer, (!body.is_empty()).then_some(body), ct)
            .await;
        assert_eq!(s, want, "{method} {path} {shown}: {e}");
        assert_eq!(e["error"], code, "{method} {path} {shown}: {e}");
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "no message: {e}"
        );
    }
    assert_eq!(bed.counts().await, before, "bad input stored something");

    // An over-long body gets its 413 every time, on connections that stay usable: the service
    // reads and drops the rest of the body instead of closing a socket with unread bytes (the
    // kernel resets such a socket, which can destroy the answer before the client reads it).
    for i in 0..20 {
        let body = [b"{\"room\":\"demo\"}".as_slice(), &vec![b' '; 256 * 1024]].concat();
        let (s, e) = bed
            .raw(
                "POST",
                "/v1/token",
                Some(&jwt),
                Some(body),
                Some("application/json"),
            )
            .await;
        assert_eq!(
            (s, &e["error"]),
            (413, &json!("body_too_large")),
            "try {i}: {e}"
        );
    }

    // SQL-looking text where free text is allowed is stored verbatim (bound parameters), and
    // every table is still there.
    let name = "Robert'); DROP TABLE streams; --";
    let (s, st) = bed
        .call(
            "POST",
            "/v1/streams",
            Some(&jwt),
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(s, 201, "{st}");
    let (s, got) = bed
        .call(
            "GET",
            &format!("/v1/streams/{}", st["id"].as_str().unwrap()),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!((s, got["name"].as_str()), (200, Some(name)));
    let after = bed.counts().await;
    assert_eq!(
        (after.0, after.1, after.2),
        (before.0, before.1 + 1, before.2)
    );
    let (s, _) = bed.raw("GET", "/healthz", None, None, None).await;
    assert_eq!(s, 200, "the service stopped serving");
    let (s, _) = bed.token(&jwt, "demo").await;
    assert_eq!(s, 200);
    bed.stop().await;
}

/// A burst beyond a caller's limit gets 429 with Retry-After; other callers are unaffected.
pub async fn bursts_are_rate_limited_per_caller(backend: Backend) {
    let bed = Bed::start_with(
        backend,
        Limits {
            rate_per_minute: 60,
            rate_burst: 5,
            ..Limits::default()
        },
    )
    .await;
    bed.grant(json!({"group": "all", "room": "*", "role": "viewer"}))
        .await;
    let greedy = bed.login("greedy", &["all"]);
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(bed.token(&greedy, "demo").await.0);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok + limited, 20, "{statuses:?}");
    assert!(
        (5..=6).contains(&ok),
        "burst of 5 (+1 refill at most): {statuses:?}"
    );
    let r = bed
        .http
        .post(format!("{}/v1/token", bed.base))
        .bearer_auth(&greedy)
        .header("content-type", "application/json")
        .body(r#"{"room":"demo"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let e: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(e["error"], "rate_limited");
    // The limit applies before the body is read: a malformed body gets the 429, not a 400.
    let (s, e) = bed
        .raw(
            "POST",
            "/v1/token",
            Some(&greedy),
            Some(b"{not json".to_vec()),
            Some("application/json"),
        )
        .await;
    assert_eq!((s, e["error"].as_str()), (429, Some("rate_limited")), "{e}");
    // Someone else is still served.
    let (s, _) = bed.token(&bed.login("polite", &["all"]), "demo").await;
    assert_eq!(s, 200);
    bed.stop().await;
}

/// The room recorder from the service: a publisher (the official Python SDK, VP8 + Opus) in a
/// live stream, `start` → a few seconds → `stop`, and the WebM is what ffprobe (an independent
/// reader) calls VP8 + Opus of about the recorded length. Around it, every bad request gets a
/// clear 4xx: not live yet, unknown action, stop without start, start twice, not the owner, no
/// credentials.
pub async fn recording_starts_stops_and_refuses_bad_requests(backend: Backend) {
    let bed = Bed::start(backend).await;
    let owner = bed.login("erin", &[]);
    let other = bed.login("frank", &[]);

    let (s, st) = bed
        .call(
            "POST",
            "/v1/streams",
            Some(&owner),
            Some(json!({"name": "Erin's show"})),
        )
        .await;
    assert_eq!(s, 201, "{st}");
    let id = st["id"].as_str().unwrap().to_owned();
    let room = st["room"].as_str().unwrap().to_owned();
    let path = format!("/v1/streams/{id}");

    // Not live yet: there is no room to record.
    let (s, e) = bed.recording(&id, Some(&owner), "start").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (409, Some("stream_not_live")),
        "{e}"
    );

    let (s, live) = bed
        .call("POST", &format!("{path}/live"), Some(&owner), None)
        .await;
    assert_eq!(s, 200, "{live}");
    let mut publisher = PythonPeer::spawn(
        &bed.server,
        "publish_av.py",
        &["--room", &room, "--identity", "erin", "--seconds", "60"],
    )
    .expect("start the Python SDK publisher");
    blocking(|| publisher.wait_line("READY", JOIN)).expect("the publisher publishes");
    bed.wait_for(&path, &owner, Duration::from_secs(20), |v| {
        v["live"] == true
    })
    .await;

    // Bad requests, each a clear 4xx that changes nothing.
    let (s, e) = bed.recording(&id, Some(&owner), "pause").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (422, Some("invalid_field")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("pause"), "{e}");
    let (s, e) = bed
        .call(
            "POST",
            &format!("{path}/recording"),
            Some(&owner),
            Some(json!({"action": "start", "format": "mp4"})),
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (422, Some("invalid_field")),
        "{e}"
    );
    let (s, e) = bed.recording(&id, Some(&owner), "stop").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (409, Some("not_recording")),
        "{e}"
    );
    // Someone with no grant for the room: to them the stream does not exist.
    let (s, e) = bed.recording(&id, Some(&other), "start").await;
    assert_eq!((s, e["error"].as_str()), (404, Some("not_found")), "{e}");
    let (s, e) = bed.recording(&id, None, "start").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("unauthenticated")),
        "{e}"
    );
    let (s, e) = bed.recording(&id, Some("not-the-admin-key"), "start").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("unauthenticated")),
        "{e}"
    );
    let (s, e) = bed.recording("nosuchstream", Some(&owner), "start").await;
    assert_eq!((s, e["error"].as_str()), (404, Some("not_found")), "{e}");
    let v = bed.wait_for(&path, &owner, JOIN, |_| true).await;
    assert_eq!(v["recording"], Value::Null, "{v}");
    assert_eq!(v["recordings"], json!([]), "{v}");

    // Start (the owner), a second start is refused (even with the admin key).
    let (s, rec) = bed.recording(&id, Some(&owner), "start").await;
    let started = std::time::Instant::now();
    assert_eq!(s, 201, "{rec}");
    assert_eq!(rec["state"], "recording", "{rec}");
    assert_eq!(rec["started_by"], "erin", "{rec}");
    let (s, e) = bed.recording(&id, Some(ADMIN_KEY), "start").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (409, Some("already_recording")),
        "{e}"
    );
    let v = bed.wait_for(&path, &owner, JOIN, |_| true).await;
    assert_eq!(v["recording"]["id"], rec["id"], "{v}");
    assert_eq!(v["recording"]["state"], "recording", "{v}");
    assert!(
        bed.recordings
            .join(rec["manifest"].as_str().unwrap())
            .exists(),
        "the manifest exists while recording: {rec}"
    );

    tokio::time::sleep(Duration::from_secs(6)).await;
    // The recorder is a hidden participant, not a viewer.
    let v = bed.wait_for(&path, &owner, JOIN, |_| true).await;
    assert_eq!(v["viewer_count"], 0, "{v}");
    assert_eq!(v["participants"], json!(["erin"]), "{v}");

    // Stop, with the admin key (the backend's own control).
    let (s, done) = bed.recording(&id, Some(ADMIN_KEY), "stop").await;
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["state"], "stopped", "{done}");
    assert_eq!(done["end_reason"], "stopped", "{done}");
    assert!(done["ended_at"].as_i64().is_some(), "{done}");
    let files = done["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "one file for the one publisher: {done}");
    assert_eq!(files[0]["participant"], "erin", "{done}");
    let webm = bed.recordings.join(files[0]["path"].as_str().unwrap());
    let (streams, duration) = blocking(|| super::ffprobe(&webm));
    let codecs: Vec<&str> = streams.iter().map(|s| s.codec.as_str()).collect();
    assert!(
        codecs.contains(&"vp8") && codecs.contains(&"opus"),
        "{}: {streams:?}",
        webm.display()
    );
    eprintln!(
        "recorded {wall:.2} s: {} is {duration:.2} s, {streams:?}",
        webm.display()
    );
    // The file starts at the first frame (the recorder waits up to 1.5 s for the rest of the
    // participant's tracks); it cannot be longer than the time recorded.
    assert!(
        duration > wall - 2.0 && duration < wall + 0.5,
        "{}: {duration:.2} s for {wall:.2} s recorded",
        webm.display()
    );
    for s in &streams {
        // ≥ 15 fps video and 50 packets/s audio over at least 3 s.
        assert!(s.packets >= 45, "{s:?} in {}", webm.display());
    }
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(bed.recordings.join(done["manifest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["state"], "finalized", "{manifest}");
    assert_eq!(manifest["room"], room.as_str(), "{manifest}");

    // Stopped once: a second stop has nothing to stop.
    let (s, e) = bed.recording(&id, Some(&owner), "stop").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (409, Some("not_recording")),
        "{e}"
    );
    let v = bed.wait_for(&path, &owner, JOIN, |_| true).await;
    assert_eq!(v["recording"], Value::Null, "{v}");
    assert_eq!(v["recordings"][0]["state"], "stopped", "{v}");
    assert_eq!(v["recordings"][0]["id"], rec["id"], "{v}");
    drop(publisher);
    bed.stop().await;
}

/// Ending a stream stops its recording; stopping the service finalizes the ones still running.
pub async fn recordings_end_with_the_stream_and_the_service(backend: Backend) {
    let bed = Bed::start(backend).await;
    let owner = bed.login("gina", &[]);
    let (first, _) = bed.live_stream(&owner, "first").await;
    let (second, _) = bed.live_stream(&owner, "second").await;

    // A recording whose service instance went away (its row says `recording`, no recorder runs
    // here): it still blocks a second start; `stop` ends it as interrupted.
    let (third, third_room) = bed.live_stream(&owner, "third").await;
    let ghost = wavecast_service::store::Recording {
        id: "r_ghost".into(),
        stream_id: third.clone(),
        room: third_room,
        recorder_identity: "recorder-r_ghost".into(),
        state: "recording".into(),
        manifest: format!("{third}/r_ghost/gone.json"),
        started_by: "gina".into(),
        started_by_admin_key: false,
        started_at: now(),
        ended_at: None,
        end_reason: None,
        error: None,
    };
    assert!(bed.store.insert_recording(&ghost).await.unwrap());
    let (s, e) = bed.recording(&third, Some(&owner), "start").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (409, Some("already_recording")),
        "{e}"
    );
    let (s, done) = bed.recording(&third, Some(&owner), "stop").await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(
        (done["id"].as_str(), done["state"].as_str()),
        (Some("r_ghost"), Some("interrupted")),
        "{done}"
    );
    let (s, e) = bed.recording(&third, Some(&owner), "stop").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (409, Some("not_recording")),
        "{e}"
    );

    let (s, a) = bed.recording(&first, Some(&owner), "start").await;
    assert_eq!(s, 201, "{a}");
    let (s, b) = bed.recording(&second, Some(&owner), "start").await;
    assert_eq!(s, 201, "{b}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (s, end) = bed
        .call(
            "POST",
            &format!("/v1/streams/{first}/end"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(s, 200, "{end}");
    let v = bed
        .wait_for(&format!("/v1/streams/{first}"), &owner, JOIN, |_| true)
        .await;
    assert_eq!(v["recording"], Value::Null, "{v}");
    assert_eq!(v["recordings"][0]["state"], "stopped", "{v}");
    assert_eq!(v["recordings"][0]["end_reason"], "stream ended", "{v}");
    let (s, e) = bed.recording(&first, Some(&owner), "start").await;
    assert_eq!((s, e["error"].as_str()), (409, Some("stream_ended")), "{e}");
    let manifest = |rec: &Value| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(bed.recordings.join(rec["manifest"].as_str().unwrap()))
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(manifest(&a)["state"], "finalized");

    // The second one is still running when the service stops: it is finalized on the way out.
    assert_eq!(manifest(&b)["state"], "recording");
    let b_manifest = bed.recordings.join(b["manifest"].as_str().unwrap());
    let store = bed.store.clone();
    let mut bed = bed;
    bed.stop_serving().await;
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&b_manifest).unwrap()).unwrap();
    assert_eq!(m["state"], "finalized", "{m}");
    let row = store
        .recording(b["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.state.as_str(), row.end_reason.as_deref()),
        ("stopped", Some("service shutdown"))
    );
    bed.stop().await;
}

/// Issue 18: the admin key is a principal of its own, never a name. A login user whose `sub` is
/// `admin` (even one with a grant for the room) cannot start or stop recordings of someone
/// else's stream; the admin key can, and its recording says it was the key.
pub async fn a_user_named_admin_has_no_admin_powers(backend: Backend) {
    let bed = Bed::start(backend).await;
    let owner = bed.login("erin", &[]);
    let (id, _room) = bed.live_stream(&owner, "Erin's show").await;
    bed.grant(json!({"user": "admin", "room": "stream-*", "role": "viewer"}))
        .await;
    let impostor = bed.login("admin", &["admin"]);

    let (s, e) = bed.recording(&id, Some(&impostor), "start").await;
    assert_eq!((s, e["error"].as_str()), (403, Some("not_owner")), "{e}");
    let v = bed
        .wait_for(&format!("/v1/streams/{id}"), &owner, JOIN, |_| true)
        .await;
    assert_eq!(v["recordings"], json!([]), "the impostor started one: {v}");

    // The admin key starts it; the impostor cannot stop it either.
    let (s, rec) = bed.recording(&id, Some(ADMIN_KEY), "start").await;
    assert_eq!(s, 201, "{rec}");
    assert_eq!(rec["started_by_admin_key"], true, "{rec}");
    let (s, e) = bed.recording(&id, Some(&impostor), "stop").await;
    assert_eq!((s, e["error"].as_str()), (403, Some("not_owner")), "{e}");
    let (s, done) = bed.recording(&id, Some(&owner), "stop").await;
    assert_eq!(
        (s, done["state"].as_str()),
        (200, Some("stopped")),
        "{done}"
    );
    bed.stop().await;
}

/// Issue 18: authentication runs before any body is read. An anonymous (or badly credentialed)
/// request gets 401 whatever its body — never the 422 that lists the expected fields — and the
/// 401 arrives intact even when the body is long.
pub async fn anonymous_requests_get_401_whatever_the_body(backend: Backend) {
    let bed = Bed::start(backend).await;
    let jwt = bed.login("eve", &[]);
    let (id, _) = bed.live_stream(&jwt, "eve's").await;
    let before = bed.counts().await;
    let big = [b"{\"room\":\"demo\"}".as_slice(), &vec![b' '; 64 * 1024]].concat();
    let cases: Vec<(&str, String, Option<&str>, Vec<u8>)> = vec![
        (
            "POST",
            "/v1/token".into(),
            None,
            br#"{"rooom":"demo"}"#.to_vec(),
        ),
        ("POST", "/v1/token".into(), None, b"{not json".to_vec()),
        (
            "POST",
            "/v1/token".into(),
            Some("garbage"),
            br#"{"room":42}"#.to_vec(),
        ),
        ("POST", "/v1/token".into(), None, big.clone()),
        ("POST", "/v1/token".into(), Some("garbage"), big.clone()),
        (
            "POST",
            "/v1/streams".into(),
            None,
            br#"{"nam":"x"}"#.to_vec(),
        ),
        (
            "POST",
            format!("/v1/streams/{id}/recording"),
            None,
            br#"{"action":"pause"}"#.to_vec(),
        ),
        (
            "POST",
            format!("/v1/streams/{id}/recording"),
            Some("admin"),
            br#"{"action":1}"#.to_vec(),
        ),
        (
            "POST",
            "/v1/admin/grants".into(),
            Some(&jwt),
            br#"{"user":"eve"}"#.to_vec(),
        ),
        ("POST", "/v1/admin/grants".into(), None, b"[]".to_vec()),
        ("GET", format!("/v1/streams/{id}"), None, Vec::new()),
    ];
    for (method, path, bearer, body) in cases {
        for _ in 0..3 {
            let (s, e) = bed
                .raw(
                    method,
                    &path,
                    bearer,
                    Some(body.clone()),
                    Some("application/json"),
                )
                .await;
            let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
            assert_eq!(
                (s, e["error"].as_str()),
                (401, Some("unauthenticated")),
                "{method} {path} {bearer:?} {shown}: {e}"
            );
        }
    }
    // A webhook without a valid signing token: 401 before its (here invalid) body is looked at.
    let (s, e) = post_webhook(&bed, "{not an event", None).await;
    assert_eq!((s, e["error"].as_str()), (401, Some("bad_webhook")), "{e}");
    let (s, e) = post_webhook(&bed, "{not an event", Some("Bearer x.y.z")).await;
    assert_eq!((s, e["error"].as_str()), (401, Some("bad_webhook")), "{e}");
    // (Grants and streams: LiveKit's own webhooks about the live room may still arrive.)
    let after = bed.counts().await;
    assert_eq!(
        (after.0, after.1),
        (before.0, before.1),
        "a refused request stored something"
    );
    bed.stop().await;
}

/// Issue 18: a stream is visible to its owner, the admin key and callers holding a grant (valid
/// now) for its room; to anyone else it does not exist (404, the same answer as an unknown id).
/// Changing it (live, end, recording) takes the owner (recording: or the admin key); a grant
/// holder who may see it gets 403.
pub async fn streams_are_visible_only_to_owner_admin_key_and_grant_holders(backend: Backend) {
    let bed = Bed::start(backend).await;
    let owner = bed.login("olga", &[]);
    let (id, room) = bed.live_stream(&owner, "Olga's").await;
    let path = format!("/v1/streams/{id}");
    bed.grant(json!({"user": "other-room", "room": "stream-nope", "role": "viewer"}))
        .await;
    bed.grant(
        json!({"user": "expired", "room": "stream-*", "role": "viewer", "expires_at": now() - 1}),
    )
    .await;
    let revoked = bed
        .grant(json!({"user": "revoked", "room": room, "role": "viewer"}))
        .await;
    let (s, _) = bed
        .admin("POST", &format!("/v1/admin/grants/{revoked}/revoke"), None)
        .await;
    assert_eq!(s, 200);
    bed.grant(json!({"group": "fans", "room": "stream-*", "role": "viewer"}))
        .await;

    let (s, unknown) = bed
        .call(
            "GET",
            "/v1/streams/000000000000000000000000",
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(s, 404, "{unknown}");
    for user in ["stranger", "other-room", "expired", "revoked"] {
        let jwt = bed.login(user, &[]);
        let (s, e) = bed.call("GET", &path, Some(&jwt), None).await;
        assert_eq!((s, &e), (404, &unknown), "{user} reads the stream");
        for action in ["live", "end"] {
            let (s, e) = bed
                .call("POST", &format!("{path}/{action}"), Some(&jwt), None)
                .await;
            assert_eq!((s, &e), (404, &unknown), "{user} {action}");
        }
        let (s, e) = bed.recording(&id, Some(&jwt), "start").await;
        assert_eq!((s, &e), (404, &unknown), "{user} records");
    }
    let fan = bed.login("fred", &["fans"]);
    for (who, jwt) in [
        ("owner", owner.as_str()),
        ("fan", fan.as_str()),
        ("admin key", ADMIN_KEY),
    ] {
        let (s, v) = bed.call("GET", &path, Some(jwt), None).await;
        assert_eq!(
            (s, v["id"].as_str()),
            (200, Some(id.as_str())),
            "{who}: {v}"
        );
    }
    for action in ["live", "end"] {
        let (s, e) = bed
            .call("POST", &format!("{path}/{action}"), Some(&fan), None)
            .await;
        assert_eq!(
            (s, e["error"].as_str()),
            (403, Some("not_owner")),
            "fan {action}: {e}"
        );
    }
    let (s, e) = bed.recording(&id, Some(&fan), "start").await;
    assert_eq!((s, e["error"].as_str()), (403, Some("not_owner")), "{e}");
    let v = bed.wait_for(&path, &owner, JOIN, |_| true).await;
    assert_eq!(
        (v["status"].as_str(), &v["recordings"]),
        (Some("ready"), &json!([])),
        "{v}"
    );
    bed.stop().await;
}

/// Bed limits with these bounds (and the default rate limits).
fn bounded(bounds: wavecast_service::Bounds) -> Limits {
    Limits {
        bounds,
        ..Limits::default()
    }
}

/// Read what the server sends until it closes the connection (or `within` passes: `None`).
async fn read_until_closed(s: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&got).into_owned())
}

/// Issue 18: a client that sends its headers and then a slow body gets 408 `request_timeout`
/// after `body_timeout` (it held the connection forever before); slow headers, a silent
/// connection and an idle kept-alive connection get 408 `request_timeout` after
/// `header_timeout` and are closed; while `max_in_flight` requests are
/// being handled, the next gets 503 `overloaded` with Retry-After, and is served once they end.
pub async fn slow_clients_get_408_and_concurrency_is_bounded(backend: Backend) {
    use tokio::io::AsyncWriteExt;
    let bed = Bed::start_with(
        backend,
        bounded(wavecast_service::Bounds {
            header_timeout: Duration::from_secs(2),
            // Long enough that a loaded machine (the whole suite in parallel, each test with
            // its own livekit-server) still sees the 503 while the slow bodies hold the slots.
            body_timeout: Duration::from_secs(20),
            max_in_flight: 2,
            ..Default::default()
        }),
    )
    .await;
    bed.grant(json!({"group": "all", "room": "*", "role": "viewer"}))
        .await;
    let jwt = bed.login("sam", &["all"]);
    let addr = bed.base.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /v1/token HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {jwt}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"room\""
    );
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        slow.push(s);
    }
    let started = std::time::Instant::now();

    // Both slots are taken (by the slow requests, or by a poll that got in first — then a slow
    // request is the one turned away): a request beyond them is answered 503 at once, not queued.
    let mut refused_slow = vec![false; slow.len()];
    'poll: loop {
        let r = bed
            .http
            .get(format!("{}/healthz", bed.base))
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 503 {
            assert!(r.headers().get("retry-after").is_some());
            let e: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            assert_eq!(e["error"], "overloaded", "{e}");
            break;
        }
        for (i, s) in slow.iter().enumerate() {
            let mut buf = [0u8; 64];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), s.peek(&mut buf)).await
                && String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 503")
            {
                refused_slow[i] = true;
                break 'poll;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(19),
            "never 503 while two slow requests and a poll compete for two slots: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for (i, s) in slow.iter_mut().enumerate() {
        let answer = read_until_closed(s, Duration::from_secs(60))
            .await
            .expect("the slow client is answered and its connection closed");
        if refused_slow[i] {
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
            continue;
        }
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(19_900) && waited < Duration::from_secs(60),
            "408 after {waited:?} for a 20 s body timeout"
        );
    }
    assert!(refused_slow.contains(&false), "no slow request held a slot");
    // The slots are free again.
    let (s, t) = bed.token(&jwt, "demo").await;
    assert_eq!(s, 200, "{t}");

    // Headers that never end: answered 408 after the header timeout, then closed (hyper alone
    // closes without a word; the service writes the 408).
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /v1/token HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let answer = read_until_closed(&mut s, Duration::from_secs(15))
        .await
        .expect("slow headers are cut off");
    assert!(
        t.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        t.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(answer.contains("request headers"), "{answer}");
    // A connection that sends nothing: the same.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(15))
        .await
        .expect("a silent connection is cut off");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    // An idle kept-alive connection: answered, then 408 and closed after the header (idle)
    // timeout.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(15))
        .await
        .expect("an idle connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let idle = answer
        .find("HTTP/1.1 408")
        .map(|i| &answer[i..])
        .unwrap_or_else(|| panic!("no 408 after the answer: {answer}"));
    assert!(idle.contains("idle connection"), "{answer}");
    bed.stop().await;
}

/// Issue 18: shutdown does not wait on slow clients for longer than `shutdown_grace`; then it
/// finalises the running recording (before, a client trickling a body held shutdown — and the
/// recording — indefinitely).
pub async fn shutdown_stops_waiting_for_slow_clients_then_finalises(backend: Backend) {
    use tokio::io::AsyncWriteExt;
    let bed = Bed::start_with(
        backend,
        bounded(wavecast_service::Bounds {
            body_timeout: Duration::from_secs(120),
            header_timeout: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(1),
            ..Default::default()
        }),
    )
    .await;
    let owner = bed.login("uma", &[]);
    let (id, _) = bed.live_stream(&owner, "uma's").await;
    let (s, rec) = bed.recording(&id, Some(&owner), "start").await;
    assert_eq!(s, 201, "{rec}");
    let addr = bed.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        format!(
            "POST /v1/streams HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {owner}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\""
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // Another one that sent half its headers.
    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let store = bed.store.clone();
    let manifest = bed.recordings.join(rec["manifest"].as_str().unwrap());
    let mut bed = bed;
    let t = std::time::Instant::now();
    bed.stop_serving().await;
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "shutdown took {took:?} with a 1 s grace"
    );
    let row = store
        .recording(rec["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.state.as_str(), row.end_reason.as_deref()),
        ("stopped", Some("service shutdown")),
        "{row:?}"
    );
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(m["state"], "finalized", "{m}");
    assert!(
        read_until_closed(&mut slow, Duration::from_secs(5))
            .await
            .is_some(),
        "the slow client's connection is still open"
    );
    drop(half);
    bed.stop().await;
}

/// Issue 18: the `admin` role is room-scoped. A caller's admin token for room A administers A
/// (lists its participants) but cannot list rooms, create a room, delete room B or list B's
/// participants — shown against the real server's room API with the minted token itself.
pub async fn admin_token_for_one_room_cannot_touch_others(backend: Backend) {
    let bed = Bed::start(backend).await;
    let rooms = livekit_api::services::room::RoomClient::with_api_key(
        &bed.server.http_url(),
        API_KEY,
        API_SECRET,
    );
    for r in ["room-a", "room-b"] {
        rooms
            .create_room(r, Default::default())
            .await
            .expect("create a room with the server's key");
    }
    bed.grant(json!({"user": "mod", "room": "room-a", "role": "admin"}))
        .await;
    let (s, t) = bed.token(&bed.login("mod", &[]), "room-a").await;
    assert_eq!((s, t["role"].as_str()), (200, Some("admin")), "{t}");
    let token = t["token"].as_str().unwrap().to_owned();
    let twirp = |method: &'static str, body: Value| {
        let req = bed
            .http
            .post(format!(
                "{}/twirp/livekit.RoomService/{method}",
                bed.server.http_url()
            ))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
    };
    // Its own room: allowed.
    let (s, body) = twirp("ListParticipants", json!({"room": "room-a"})).await;
    assert_eq!(s, 200, "ListParticipants in its own room: {body}");
    // Everything else: refused by the server.
    for (method, body) in [
        ("ListRooms", json!({})),
        ("CreateRoom", json!({"name": "room-c"})),
        ("DeleteRoom", json!({"room": "room-b"})),
        ("ListParticipants", json!({"room": "room-b"})),
    ] {
        let (s, answer) = twirp(method, body.clone()).await;
        assert!(
            s == 401 || s == 403,
            "{method} {body} with an admin token for room-a: {s} {answer}"
        );
    }
    let now: Vec<String> = bed.server_rooms().await;
    assert!(
        now.contains(&"room-b".to_owned()),
        "room-b was deleted: {now:?}"
    );
    assert!(
        !now.contains(&"room-c".to_owned()),
        "room-c was created: {now:?}"
    );
    bed.stop().await;
}

/// Issue 18: `/healthz` is one trivial query (no table counted) and says 503
/// `storage_unavailable` when the database is gone (it answered 500 after counting every table).
pub async fn healthz_is_cheap_and_says_when_the_database_is_gone(backend: Backend) {
    let bed = Bed::start(backend).await;
    let (s, v) = bed.raw("GET", "/healthz", None, None, None).await;
    assert_eq!((s, &v), (200, &json!({"ok": true})));
    bed.store.close().await;
    let (s, e) = bed.raw("GET", "/healthz", None, None, None).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (503, Some("storage_unavailable")),
        "{e}"
    );
    bed.stop().await;
}

/// Issue 18: stored webhook events are kept for `event_retention`, then deleted (they were kept
/// forever).
pub async fn stored_webhook_events_expire_after_the_retention(backend: Backend) {
    let bed = Bed::start_with(
        backend,
        Limits {
            event_retention: Duration::from_secs(2),
            ..Limits::default()
        },
    )
    .await;
    let body = event_body("EV_retained", "room_started", "retention", now());
    let (s, r) = post_webhook(&bed, &body, Some(&sign_webhook(&body, API_KEY, API_SECRET))).await;
    assert_eq!((s, &r), (200, &json!({"stored": true})));
    let (_, evs) = bed
        .admin("GET", "/v1/admin/events?room=retention", None)
        .await;
    assert_eq!(evs.as_array().map(Vec::len), Some(1), "{evs}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (s, evs) = bed
            .admin("GET", "/v1/admin/events?room=retention", None)
            .await;
        assert_eq!(s, 200, "{evs}");
        if evs.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the event outlived a 2 s retention: {evs}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bed.stop().await;
}

/// Issue 18: the follow-up of a webhook — closing the room of an ended stream that someone
/// rejoined — survives a LiveKit outage: the webhook is stored and answered 200, the follow-up
/// shows in `/v1/admin/events` as pending with its attempts and last error while LiveKit is
/// down, and is retried until the room is closed once LiveKit is back (it was lost before: the
/// handler answered 502 and the stored event made LiveKit's redelivery a no-op).
pub async fn webhook_followups_survive_a_livekit_outage(backend: Backend) {
    let mut bed = Bed::start(backend).await;
    let owner = bed.login("vic", &[]);
    let (id, room) = bed.live_stream(&owner, "vic's").await;
    let (s, end) = bed
        .call("POST", &format!("/v1/streams/{id}/end"), Some(&owner), None)
        .await;
    assert_eq!(s, 200, "{end}");

    // Someone rejoined with an old token: LiveKit re-created the room (here: the server API)…
    let rooms = livekit_api::services::room::RoomClient::with_api_key(
        &bed.server.http_url(),
        API_KEY,
        API_SECRET,
    );
    rooms
        .create_room(&room, Default::default())
        .await
        .expect("re-create the room");
    // … and stops answering (frozen: its sockets stay open, nothing answers) as its event comes.
    bed.server.pause().expect("SIGSTOP livekit-server");
    let body = json!({"event": "participant_joined", "id": "EV_rejoin",
                      "room": {"name": room, "sid": "RM_x"},
                      "participant": {"identity": "old-token", "sid": "PA_x"},
                      "createdAt": now().to_string()})
    .to_string();
    let (s, r) = post_webhook(&bed, &body, Some(&sign_webhook(&body, API_KEY, API_SECRET))).await;
    assert_eq!((s, &r), (200, &json!({"stored": true})), "LiveKit down");
    let path = format!("/v1/admin/events?room={room}");
    let followup = |evs: &Value| -> Option<Value> {
        evs.as_array()?
            .iter()
            .find(|e| e["id"] == "EV_rejoin")
            .map(|e| e["followup"].clone())
    };
    let (_, evs) = bed.admin("GET", &path, None).await;
    let f = followup(&evs).expect("the event is stored");
    assert_eq!(f["action"], "close_room", "{f}");
    assert_eq!(f["state"], "pending", "{f}");
    assert!(f["attempts"].as_i64() >= Some(1), "{f}");
    assert!(
        f["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{f}"
    );

    // LiveKit answers again: a retry closes the room.
    bed.server.resume().expect("SIGCONT livekit-server");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let f = loop {
        let (_, evs) = bed.admin("GET", &path, None).await;
        let f = followup(&evs).expect("the event is stored");
        if f["state"] == "done" {
            break f;
        }
        assert!(std::time::Instant::now() < deadline, "never done: {evs}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(f["done_at"].as_i64().is_some(), "{f}");
    assert!(
        f["attempts"].as_i64() >= Some(2),
        "done without a retry: {f}"
    );
    assert!(
        !bed.server_rooms().await.contains(&room),
        "the ended stream's room is still open"
    );
    bed.stop().await;
}

/// Issue 18: a revoke bites. A storm of mints races the revoke: no mint *sent after the revoke
/// answered* gets a token (the revoke waits for the mints in flight, and mints re-check the
/// grant after signing); and the participant the grant admitted, already in the room on the
/// real server, is removed (it stayed in before, its server-refreshed token keeping it there).
pub async fn revoke_races_mints_and_evicts_whom_the_grant_admitted(backend: Backend) {
    let bed = Bed::start_with(
        backend,
        Limits {
            rate_per_minute: 1_000_000,
            rate_burst: 100_000,
            ..Limits::default()
        },
    )
    .await;
    let grant = bed
        .grant(json!({"user": "rita", "room": "rev-*", "role": "viewer"}))
        .await;
    // Someone else's grant for the same room: its participant stays.
    bed.grant(json!({"user": "sid", "room": "rev-room", "role": "viewer"}))
        .await;
    let jwt = bed.login("rita", &[]);
    let (s, t) = bed.token(&jwt, "rev-room").await;
    assert_eq!(s, 200, "{t}");
    let rita_token = t["token"].as_str().unwrap().to_owned();
    let mut rita = peer(&bed, "join", &rita_token, 60);
    assert_eq!(blocking(|| rita.wait_line("JOINED", JOIN)).unwrap(), "rita");
    let (s, t) = bed.token(&bed.login("sid", &[]), "rev-room").await;
    assert_eq!(s, 200, "{t}");
    let mut sid = peer(&bed, "join", t["token"].as_str().unwrap(), 60);
    assert_eq!(blocking(|| sid.wait_line("JOINED", JOIN)).unwrap(), "sid");

    // The storm: 8 callers minting back to back, each answer with the time its request left.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut storm = Vec::new();
    for _ in 0..8 {
        let (http, url, jwt, stop) = (
            bed.http.clone(),
            format!("{}/v1/token", bed.base),
            jwt.clone(),
            stop.clone(),
        );
        storm.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = std::time::Instant::now();
                // A transport error (0) is no token either.
                let status = http
                    .post(&url)
                    .bearer_auth(&jwt)
                    .json(&json!({"room": "rev-room"}))
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                seen.push((sent, status));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, revoked) = bed
        .admin("POST", &format!("/v1/admin/grants/{grant}/revoke"), None)
        .await;
    let answered = std::time::Instant::now();
    assert_eq!(s, 200, "{revoked}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut before = 0;
    let mut after = 0;
    for task in storm {
        for (sent, status) in task.await.unwrap() {
            if sent > answered {
                assert_ne!(
                    status, 200,
                    "a mint sent after the revoke answered got a token"
                );
                after += usize::from(status == 403);
            } else if status == 200 {
                before += 1;
            }
        }
    }
    eprintln!("storm: {before} tokens before the revoke, {after} refusals after it");
    assert!(
        before > 0 && after > 0,
        "no race: {before} before, {after} after"
    );

    // Rita, admitted by the grant, is removed from the room; Sid is not.
    assert_eq!(revoked["evicted"], json!(["rev-room/rita"]), "{revoked}");
    blocking(|| rita.wait_line("DISCONNECTED", JOIN)).expect("rita is removed");
    let left: Vec<String> = bed
        .server_participants("rev-room")
        .await
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(left, ["sid"], "{left:?}");
    // Her token is still valid for LiveKit (as is the one the server refreshed): rejoining with
    // it gets her removed again (the participant_joined webhook names the lapsed grant).
    // The peer prints RESULT with the disconnect reason at the end (`null` if it was never
    // disconnected within 90 s); DISCONNECTED may even come before JOINED when the removal is
    // quick, so the reason is what counts.
    let mut again = peer(&bed, "join", &rita_token, 90);
    let result = blocking(|| again.wait_line("RESULT", Duration::from_secs(120)))
        .expect("the rejoining peer reports");
    let result: Value = serde_json::from_str(result.trim()).expect("RESULT is JSON");
    assert!(
        result["disconnected"].is_string(),
        "the rejoin with the revoked grant's token was not removed: {result}"
    );
    drop((rita, sid, again));
    bed.stop().await;
}

/// Issue 18: per-caller caps — streams not ended, live streams, running recordings — each a 403
/// `quota_exceeded` that names the cap; other callers are unaffected, and ending or stopping
/// frees the slot. (There was no cap at all.)
pub async fn per_caller_caps_hold(backend: Backend) {
    let bed = Bed::start_with(
        backend,
        Limits {
            caps: wavecast_service::Caps {
                streams: 3,
                live_streams: 2,
                recordings: 1,
                min_free_disk: 0,
            },
            ..Limits::default()
        },
    )
    .await;
    let wes = bed.login("wes", &[]);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (s, st) = bed
            .call(
                "POST",
                "/v1/streams",
                Some(&wes),
                Some(json!({"name": format!("s{i}")})),
            )
            .await;
        assert_eq!(s, 201, "{st}");
        ids.push(st["id"].as_str().unwrap().to_owned());
    }
    let (s, e) = bed
        .call(
            "POST",
            "/v1/streams",
            Some(&wes),
            Some(json!({"name": "one too many"})),
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("quota_exceeded")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("at most 3"), "{e}");
    let (s, _) = bed
        .call(
            "POST",
            "/v1/streams",
            Some(&bed.login("xena", &[])),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(s, 201, "another caller is capped too");

    for id in &ids[..2] {
        let (s, v) = bed
            .call("POST", &format!("/v1/streams/{id}/live"), Some(&wes), None)
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, e) = bed
        .call(
            "POST",
            &format!("/v1/streams/{}/live", ids[2]),
            Some(&wes),
            None,
        )
        .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("quota_exceeded")),
        "{e}"
    );

    let (s, r) = bed.recording(&ids[0], Some(&wes), "start").await;
    assert_eq!(s, 201, "{r}");
    let (s, e) = bed.recording(&ids[1], Some(&wes), "start").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("quota_exceeded")),
        "{e}"
    );
    let (s, e) = bed.recording(&ids[1], Some(ADMIN_KEY), "start").await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("quota_exceeded")),
        "the cap is the owner's, whoever asks: {e}"
    );
    let (s, r) = bed.recording(&ids[0], Some(&wes), "stop").await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = bed.recording(&ids[1], Some(&wes), "start").await;
    assert_eq!(s, 201, "a stopped recording frees its slot: {r}");

    // Ending a stream frees a stream slot and a live slot.
    let (s, v) = bed
        .call(
            "POST",
            &format!("/v1/streams/{}/end", ids[0]),
            Some(&wes),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = bed
        .call(
            "POST",
            &format!("/v1/streams/{}/live", ids[2]),
            Some(&wes),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, st) = bed
        .call(
            "POST",
            "/v1/streams",
            Some(&wes),
            Some(json!({"name": "again"})),
        )
        .await;
    assert_eq!(s, 201, "{st}");
    bed.stop().await;
}

/// Issue 18: a recording does not start when less than the free-disk threshold is left under
/// `recordings_dir` (507 `disk_full`), and nothing is written.
pub async fn recording_refuses_to_start_below_the_free_disk_threshold(backend: Backend) {
    let bed = Bed::start_with(
        backend,
        Limits {
            caps: wavecast_service::Caps {
                // More than any test machine's disk has free.
                min_free_disk: u64::MAX / 4,
                ..Default::default()
            },
            ..Limits::default()
        },
    )
    .await;
    let owner = bed.login("yan", &[]);
    let (id, _) = bed.live_stream(&owner, "yan's").await;
    let (s, e) = bed.recording(&id, Some(&owner), "start").await;
    assert_eq!((s, e["error"].as_str()), (507, Some("disk_full")), "{e}");
    let v = bed
        .wait_for(&format!("/v1/streams/{id}"), &owner, JOIN, |_| true)
        .await;
    assert_eq!(v["recordings"], json!([]), "{v}");
    assert!(!bed.recordings.join(&id).exists(), "something was written");
    bed.stop().await;
}

/// Issue 18: the disk fills while a recording runs (a 16 MiB tmpfs as `recordings_dir`, filled
/// to the last byte by another writer): the recording stops by itself, `stopped` with the reason
/// `disk full`; its file is finalized and ffprobe reads it; the manifest is final; the service
/// keeps answering (and refuses a new recording with 507).
pub async fn recording_stops_cleanly_when_the_disk_fills(backend: Backend) {
    use std::io::Write;
    const MIB: u64 = 1 << 20;
    let bed = Bed::start_with(
        backend,
        Limits {
            caps: wavecast_service::Caps {
                // Starts with 2 MiB free; a running recording stops below 1 MiB.
                min_free_disk: 2 * MIB,
                ..Default::default()
            },
            ..Limits::default()
        },
    )
    .await;
    let test = "recording_stops_cleanly_when_the_disk_fills";
    let Some(tmpfs) = wavecast_testbed::Tmpfs::mount_for(test, &bed.recordings, 16 * MIB) else {
        bed.stop().await;
        return;
    };
    let owner = bed.login("vic", &[]);
    let (id, room) = bed.live_stream(&owner, "vic's").await;
    let path = format!("/v1/streams/{id}");
    let mut publisher = PythonPeer::spawn(
        &bed.server,
        "publish_av.py",
        &["--room", &room, "--identity", "vic", "--seconds", "90"],
    )
    .expect("start the Python SDK publisher");
    blocking(|| publisher.wait_line("READY", JOIN)).expect("the publisher publishes");
    bed.wait_for(&path, &owner, Duration::from_secs(20), |v| {
        v["live"] == true
    })
    .await;
    let (s, rec) = bed.recording(&id, Some(&owner), "start").await;
    assert_eq!(s, 201, "{rec}");
    let manifest_path = bed.recordings.join(rec["manifest"].as_str().unwrap());

    // Media reaches the file (the manifest, rewritten every second, says how much).
    let read_manifest = || -> Value {
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap_or_default())
            .unwrap_or(Value::Null)
    };
    let deadline = std::time::Instant::now() + JOIN;
    while read_manifest()["participants"][0]["files"][0]["duration_ms"]
        .as_u64()
        .is_none_or(|ms| ms < 2000)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no media recorded: {}",
            read_manifest()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Another writer takes every byte left.
    let mut filler = std::fs::File::create(bed.recordings.join("filler")).unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    let mut filled = 0u64;
    let full = loop {
        match filler.write(&chunk) {
            Ok(0) => panic!("write returned 0"),
            Ok(n) => filled += n as u64,
            Err(e) => break e,
        }
    };
    assert_eq!(full.kind(), std::io::ErrorKind::StorageFull, "{full}");
    eprintln!("the tmpfs is full after {filled} more bytes");

    // The recording stops by itself, and says why.
    let v = bed
        .wait_for(&path, &owner, JOIN, |v| {
            v["recordings"][0]["state"] != "recording"
        })
        .await;
    let r = &v["recordings"][0];
    assert_eq!(r["id"], rec["id"], "{v}");
    assert_eq!(r["state"], "stopped", "{v}");
    assert_eq!(r["end_reason"], "disk full", "{v}");
    assert_eq!(v["recording"], Value::Null, "{v}");

    // The service keeps answering: reads, writes to its database, and a clear refusal.
    let (s, h) = bed.call("GET", "/healthz", None, None).await;
    assert_eq!(s, 200, "{h}");
    let (s, st) = bed
        .call(
            "POST",
            "/v1/streams",
            Some(&owner),
            Some(json!({"name": "next"})),
        )
        .await;
    assert_eq!(s, 201, "{st}");
    let (s, e) = bed.recording(&id, Some(&owner), "start").await;
    assert_eq!((s, e["error"].as_str()), (507, Some("disk_full")), "{e}");

    // The files are final and readable.
    let manifest = read_manifest();
    assert_eq!(manifest["state"], "finalized", "{manifest}");
    let files = manifest["participants"][0]["files"].as_array().unwrap();
    assert!(!files.is_empty(), "{manifest}");
    let dir = manifest_path.parent().unwrap();
    for f in files {
        assert_eq!(f["state"], "finalized", "{manifest}");
        let webm = dir.join(f["path"].as_str().unwrap());
        let (streams, duration) = blocking(|| super::ffprobe(&webm));
        eprintln!(
            "{}: {duration:.2} s, {streams:?}; manifest errors: {}",
            webm.display(),
            manifest["errors"]
        );
        let codecs: Vec<&str> = streams.iter().map(|s| s.codec.as_str()).collect();
        assert!(
            codecs.contains(&"vp8") && codecs.contains(&"opus"),
            "{}: {streams:?}",
            webm.display()
        );
        assert!(duration >= 1.5, "{}: {duration} s", webm.display());
        assert!(
            streams.iter().all(|s| s.packets > 0),
            "{}: {streams:?}",
            webm.display()
        );
    }
    drop(publisher);
    drop(filler);
    drop(tmpfs);
    bed.stop().await;
}

/// Issue 18: `GET /metrics` (admin key only) in the Prometheus text format: requests by route and
/// status with latency histograms, tokens minted, denials by reason, webhooks by event,
/// recordings running and bytes written.
pub async fn metrics_count_requests_tokens_denials_webhooks_and_recordings(backend: Backend) {
    let bed = Bed::start(backend).await;
    bed.grant(json!({"user": "zoe", "room": "m-room", "role": "viewer"}))
        .await;
    let zoe = bed.login("zoe", &[]);
    for _ in 0..3 {
        assert_eq!(bed.token(&zoe, "m-room").await.0, 200);
    }
    assert_eq!(bed.token(&zoe, "elsewhere").await.0, 403);
    assert_eq!(bed.token("not-a-jwt", "m-room").await.0, 401);
    let body = event_body("EV_metrics", "room_started", "m-room", now());
    let (s, _) = post_webhook(&bed, &body, Some(&sign_webhook(&body, API_KEY, API_SECRET))).await;
    assert_eq!(s, 200);
    let (id, _) = bed.live_stream(&zoe, "zoe's").await;
    let (s, r) = bed.recording(&id, Some(&zoe), "start").await;
    assert_eq!(s, 201, "{r}");

    // Not for callers.
    for bearer in [None, Some(zoe.as_str())] {
        let (s, e) = bed.raw("GET", "/metrics", bearer, None, None).await;
        assert_eq!(
            (s, e["error"].as_str()),
            (401, Some("unauthenticated")),
            "{e}"
        );
    }
    let scrape = || async {
        let r = bed
            .http
            .get(format!("{}/metrics", bed.base))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4"),
            "{:?}",
            r.headers()
        );
        r.text().await.unwrap()
    };
    let text = scrape().await;
    let value = |series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, v) = line.rsplit_once(' ').expect(line);
        assert!(v.parse::<f64>().is_ok(), "{line}");
        assert!(
            series.starts_with("wavecast_") && series.chars().all(|c| !c.is_whitespace()),
            "{line}"
        );
    }
    assert_eq!(value("wavecast_tokens_minted_total"), Some(3.0), "{text}");
    assert_eq!(
        value("wavecast_http_requests_total{route=\"/v1/token\",status=\"200\"}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value("wavecast_denials_total{reason=\"no_grant\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value("wavecast_denials_total{reason=\"unauthenticated\"}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value("wavecast_http_request_duration_seconds_count{route=\"/v1/token\"}"),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        value("wavecast_http_request_duration_seconds_bucket{route=\"/v1/token\",le=\"+Inf\"}"),
        Some(5.0),
        "{text}"
    );
    assert!(
        value("wavecast_webhooks_total{event=\"room_started\"}") >= Some(1.0),
        "{text}"
    );
    assert_eq!(value("wavecast_recordings_running"), Some(1.0), "{text}");
    let (s, r) = bed.recording(&id, Some(&zoe), "stop").await;
    assert_eq!(s, 200, "{r}");
    let text = scrape().await;
    let value = |series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    assert_eq!(value("wavecast_recordings_running"), Some(0.0), "{text}");
    assert!(
        value("wavecast_recording_bytes_written_total").is_some(),
        "{text}"
    );
    bed.stop().await;
}

/// One raw request on its own connection; the answer's status (`None` when the connection closed
/// without one, or nothing came within 20 s).
async fn raw_status(addr: &str, request: &[u8]) -> Option<u16> {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    // The server may answer (and close) before it read everything: a failed write is fine.
    let _ = s.write_all(request).await;
    let answer = read_until_closed(&mut s, Duration::from_secs(20)).await?;
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
}

/// A request as raw bytes: `head` (request line and headers, without the blank line) and body.
fn req(method: &str, path: &str, headers: &[String], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    if !headers.iter().any(|h| {
        let h = h.to_ascii_lowercase();
        h.starts_with("content-length:") || h.starts_with("transfer-encoding:")
    }) {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

/// Issue 18: a hostile corpus — at least 150 requests mixing methods, paths, headers, bodies,
/// encodings, sizes and tokens, generated deterministically plus hand-written nasty ones — gets
/// no 5xx other than 502 while LiveKit is down (and 503 `storage_unavailable` never: the
/// database stays up); the service answers `/healthz` and mints a token afterwards.
pub async fn hostile_corpus_gets_no_5xx(backend: Backend) {
    let mut bed = Bed::start_with(
        backend,
        bounded(wavecast_service::Bounds {
            header_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(2),
            ..Default::default()
        }),
    )
    .await;
    bed.grant(json!({"user": "hal", "room": "*", "role": "viewer"}))
        .await;
    let hal = bed.login("hal", &[]);
    let (id, room) = bed.live_stream(&hal, "hal's").await;
    let addr = bed.base.trim_start_matches("http://").to_owned();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "hal", "iss": super::ISSUER, "aud": super::AUDIENCE, "exp": now() - 3600}),
        &jsonwebtoken::EncodingKey::from_secret(super::LOGIN_SECRET.as_bytes()),
    )
    .unwrap();
    let forged = super::login_jwt("hal", &["admin"], "not-the-login-secret-0123456789");
    let tokens: Vec<Option<String>> = vec![
        None,
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some("Bearer garbage".into()),
        Some(format!("Bearer {hal}")),
        Some(format!("bearer {hal}")),
        Some(format!("Bearer {ADMIN_KEY}")),
        Some(format!("Bearer {expired}")),
        Some(format!("Bearer {forged}")),
        Some("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJoYWwifQ.".into()),
        Some("Basic aGFsOmhhbA==".into()),
        Some(format!("Bearer {}", "A".repeat(8000))),
    ];
    let paths: Vec<String> = vec![
        "/v1/token".into(),
        "/v1/streams".into(),
        format!("/v1/streams/{id}"),
        format!("/v1/streams/{id}/live"),
        format!("/v1/streams/{id}/end"),
        format!("/v1/streams/{id}/recording"),
        "/v1/streams/nope/recording".into(),
        "/v1/admin/grants".into(),
        "/v1/admin/grants?user=hal&limit=99999999999".into(),
        "/v1/admin/grants?user=a&group=b".into(),
        "/v1/admin/grants/g_x/revoke".into(),
        format!("/v1/admin/events?room={room}&limit=-1"),
        "/v1/livekit/webhook".into(),
        "/metrics".into(),
        "/healthz".into(),
        "/v1/streams/%00".into(),
        "/v1/streams/%2e%2e/%2e%2e/etc/passwd".into(),
        "/v1//token".into(),
        format!("/v1/streams/{}", "a".repeat(2000)),
        "/v1/streams/%ff%fe".into(),
        "/nowhere".into(),
    ];
    let methods = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "post", "BREW",
    ];
    let bodies: Vec<(Option<&str>, Vec<u8>)> = vec![
        (Some("application/json"), b"".to_vec()),
        (Some("application/json"), b"{}".to_vec()),
        (Some("application/json"), b"[]".to_vec()),
        (Some("application/json"), b"null".to_vec()),
        (Some("application/json"), br#"{"room":"demo"}"#.to_vec()),
        (
            Some("application/json"),
            br#"{"room":"demo","room":"*"}"#.to_vec(),
        ),
        (Some("application/json"), br#"{"action":"start"}"#.to_vec()),
        (
            Some("application/json"),
            br#"{"name":"x","max_participants":1e309}"#.to_vec(),
        ),
        (
            Some("application/json"),
            [b"[".repeat(5000), b"]".repeat(5000)].concat(),
        ),
        (
            Some("application/json"),
            b"\xef\xbb\xbf{\"room\":\"demo\"}".to_vec(),
        ),
        (
            Some("application/json"),
            b"{\"room\":\"\xff\xfe\"}".to_vec(),
        ),
        (Some("application/json"), b"{\"room\":\"de\0mo\"}".to_vec()),
        (
            Some("application/json; charset=utf-16"),
            br#"{"room":"demo"}"#.to_vec(),
        ),
        (Some("text/plain"), b"room=demo".to_vec()),
        (
            Some("multipart/form-data; boundary=x"),
            b"--x\r\n\r\nroom\r\n--x--".to_vec(),
        ),
        (None, br#"{"room":"demo"}"#.to_vec()),
        (Some("application/json"), vec![b' '; 40 * 1024]),
    ];
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let mut rng = wavecast_testbed::corpus::Rng::seeded(0x005e_ed0f_1ea5);
    for _ in 0..150 {
        let method = methods[rng.below(methods.len())];
        let path = &paths[rng.below(paths.len())];
        let mut headers = Vec::new();
        if let Some(t) = &tokens[rng.below(tokens.len())] {
            headers.push(format!("Authorization: {t}"));
        }
        let (ct, body) = &bodies[rng.below(bodies.len())];
        if let Some(ct) = ct {
            headers.push(format!("Content-Type: {ct}"));
        }
        if rng.below(8) == 0 {
            headers.push("Content-Encoding: gzip".into());
        }
        cases.push((
            format!("{method} {path} {headers:?}"),
            req(method, path, &headers, body),
        ));
    }
    // Hand-written: framing, sizes and encodings a generator would rarely hit.
    let auth = format!("Authorization: Bearer {hal}");
    let json_ct = "Content-Type: application/json".to_owned();
    let hand: Vec<(&str, Vec<u8>)> = vec![
        (
            "chunked",
            req(
                "POST",
                "/v1/token",
                &[
                    auth.clone(),
                    json_ct.clone(),
                    "Transfer-Encoding: chunked".into(),
                ],
                b"f\r\n{\"room\":\"demo\"}\r\n0\r\n\r\n",
            ),
        ),
        (
            "bad chunk",
            req(
                "POST",
                "/v1/token",
                &[
                    auth.clone(),
                    json_ct.clone(),
                    "Transfer-Encoding: chunked".into(),
                ],
                b"zz\r\nxx\r\n0\r\n\r\n",
            ),
        ),
        (
            "CL and TE",
            req(
                "POST",
                "/v1/token",
                &[
                    auth.clone(),
                    json_ct.clone(),
                    "Content-Length: 5".into(),
                    "Transfer-Encoding: chunked".into(),
                ],
                b"0\r\n\r\n",
            ),
        ),
        (
            "short body",
            req(
                "POST",
                "/v1/token",
                &[auth.clone(), json_ct.clone(), "Content-Length: 100".into()],
                b"{\"room\"",
            ),
        ),
        (
            "negative CL",
            req(
                "POST",
                "/v1/token",
                &[auth.clone(), json_ct.clone(), "Content-Length: -1".into()],
                b"",
            ),
        ),
        (
            "huge CL",
            req(
                "POST",
                "/v1/token",
                &[
                    auth.clone(),
                    json_ct.clone(),
                    "Content-Length: 99999999999999".into(),
                ],
                b"{}",
            ),
        ),
        (
            "two CL",
            req(
                "POST",
                "/v1/token",
                &[
                    auth.clone(),
                    json_ct.clone(),
                    "Content-Length: 2".into(),
                    "Content-Length: 3".into(),
                ],
                b"{}",
            ),
        ),
        (
            "two auth",
            req(
                "POST",
                "/v1/token",
                &[
                    auth.clone(),
                    "Authorization: Bearer x".into(),
                    json_ct.clone(),
                ],
                br#"{"room":"demo"}"#,
            ),
        ),
        (
            "1 MiB body",
            req(
                "POST",
                "/v1/streams",
                &[auth.clone(), json_ct.clone()],
                &vec![b'a'; 1024 * 1024],
            ),
        ),
        (
            "1 MiB webhook",
            req(
                "POST",
                "/v1/livekit/webhook",
                &["Authorization: x".into(), json_ct.clone()],
                &vec![b'a'; 1024 * 1024 + 1],
            ),
        ),
        (
            "64 KiB header",
            req(
                "GET",
                "/healthz",
                &[format!("X-Big: {}", "b".repeat(64 * 1024))],
                b"",
            ),
        ),
        (
            "200 headers",
            req(
                "GET",
                "/healthz",
                &(0..200).map(|i| format!("X-H{i}: v")).collect::<Vec<_>>(),
                b"",
            ),
        ),
        (
            "non-ascii header",
            req("GET", "/healthz", &["X-U: \u{e9}\u{1f600}".into()], b""),
        ),
        (
            "8 KiB path",
            req("GET", &format!("/{}", "p".repeat(8 * 1024)), &[], b""),
        ),
        (
            "absolute URI",
            req("GET", "http://evil.example/healthz", &[], b""),
        ),
        ("HTTP/1.0", b"GET /healthz HTTP/1.0\r\n\r\n".to_vec()),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        ),
        (
            "garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        ),
        (
            "no host",
            b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "LF only",
            b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n".to_vec(),
        ),
        (
            "space in path",
            b"GET /v1/str eams HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "expect 100",
            req(
                "POST",
                "/v1/token",
                &[auth.clone(), json_ct.clone(), "Expect: 100-continue".into()],
                br#"{"room":"demo"}"#,
            ),
        ),
        (
            "webhook unsigned junk",
            req(
                "POST",
                "/v1/livekit/webhook",
                &[format!(
                    "Authorization: {}",
                    sign_webhook("{}", API_KEY, API_SECRET)
                )],
                b"{not json",
            ),
        ),
        (
            "webhook signed junk",
            req(
                "POST",
                "/v1/livekit/webhook",
                &[format!(
                    "Authorization: {}",
                    sign_webhook("{not json", API_KEY, API_SECRET)
                )],
                b"{not json",
            ),
        ),
        (
            "NUL in a grant filter",
            req(
                "GET",
                "/v1/admin/grants?user=%00",
                &[format!("Authorization: Bearer {ADMIN_KEY}")],
                b"",
            ),
        ),
        (
            "NUL in an events filter",
            req(
                "GET",
                "/v1/admin/events?room=a%00b",
                &[format!("Authorization: Bearer {ADMIN_KEY}")],
                b"",
            ),
        ),
        (
            "NUL in a grant id",
            req(
                "POST",
                "/v1/admin/grants/g_%00/revoke",
                &[format!("Authorization: Bearer {ADMIN_KEY}")],
                b"",
            ),
        ),
        (
            "NUL in a stream id",
            req(
                "GET",
                "/v1/streams/%00",
                &[format!("Authorization: Bearer {ADMIN_KEY}")],
                b"",
            ),
        ),
        (
            "NUL in a sub",
            req(
                "POST",
                "/v1/token",
                &[
                    format!(
                        "Authorization: Bearer {}",
                        super::login_jwt("h\u{0}l", &[], super::LOGIN_SECRET)
                    ),
                    json_ct.clone(),
                ],
                br#"{"room":"demo"}"#,
            ),
        ),
        (
            "NUL in a group",
            req(
                "POST",
                "/v1/token",
                &[
                    format!(
                        "Authorization: Bearer {}",
                        super::login_jwt("hal", &["g\u{0}"], super::LOGIN_SECRET)
                    ),
                    json_ct.clone(),
                ],
                br#"{"room":"demo"}"#,
            ),
        ),
        (
            "recording junk action",
            req(
                "POST",
                &format!("/v1/streams/{id}/recording"),
                &[auth.clone(), json_ct.clone()],
                br#"{"action":"\u0000"}"#,
            ),
        ),
    ];
    for (name, r) in hand {
        cases.push((name.to_owned(), r));
    }
    let mut seen = std::collections::BTreeMap::<Option<u16>, usize>::new();
    for (i, (what, r)) in cases.iter().enumerate() {
        let status = raw_status(&addr, r).await;
        *seen.entry(status).or_default() += 1;
        assert!(
            status.is_none_or(|s| s < 500),
            "case {i} ({what}) got {status:?}"
        );
        if i % 25 == 0 {
            let (s, _) = bed.raw("GET", "/healthz", None, None, None).await;
            assert_eq!(
                s, 200,
                "the service stopped answering after case {i} ({what})"
            );
        }
    }
    // LiveKit down: the endpoints that need it answer 502, nothing else 5xx.
    bed.server.stop();
    let mut down = 0;
    for path in [format!("/v1/streams/{id}"), format!("/v1/streams/{id}/end")] {
        for tok in [&hal, &hal, &ADMIN_KEY.to_owned()] {
            for method in ["GET", "POST"] {
                let r = req(
                    method,
                    &path,
                    &[format!("Authorization: Bearer {tok}")],
                    b"",
                );
                let status = raw_status(&addr, &r).await;
                *seen.entry(status).or_default() += 1;
                down += 1;
                assert!(
                    status.is_none_or(|s| s < 500 || s == 502),
                    "{method} {path} with LiveKit down: {status:?}"
                );
            }
        }
    }
    let total = cases.len() + down;
    eprintln!("hostile corpus: {total} requests, statuses {seen:?}");
    assert!(total >= 150, "{total}");
    assert!(
        seen.get(&None).copied().unwrap_or(0) < total / 10,
        "too many unanswered: {seen:?}"
    );
    blocking(|| bed.server.restart()).expect("restart livekit-server");
    let (s, _) = bed.raw("GET", "/healthz", None, None, None).await;
    assert_eq!(s, 200);
    let (s, t) = bed.token(&hal, "demo").await;
    assert_eq!(s, 200, "{t}");
    bed.stop().await;
}
