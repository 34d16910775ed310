//! Room administration through the server API, seen from inside the room: create a room, join it
//! as a guest who publishes a microphone track (`Room` + `LocalParticipant`), list rooms and
//! participants, mute the guest's track, remove the guest (their room ends with
//! `DisconnectReason::RemovedByServer`), delete the room.
//!
//! `cargo run -p wavecast-session --example room_admin -- URL API_KEY API_SECRET [ROOM]`
//! (against `livekit-server --dev`: `ws://127.0.0.1:7880 devkey secret`).
use std::time::{Duration, Instant};

use wavecast_session::admin::{NewRoom, RoomAdmin};
use wavecast_session::{Credentials, Keys, Preset, Room, RoomEvent, RoomOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, key, secret, rest @ ..] = args.as_slice() else {
        return Err("usage: room_admin URL API_KEY API_SECRET [ROOM]".into());
    };
    let room = rest.first().map_or("admin-demo", String::as_str);
    let keys = Keys::new(key, secret);
    let admin = RoomAdmin::new(url, &keys, Duration::from_secs(5));

    let created = admin
        .create_room(
            room,
            NewRoom {
                metadata: "made by room_admin".into(),
                ..Default::default()
            },
        )
        .await?;
    println!("created {} ({})", created.name, created.sid);

    // A guest joins and publishes 20 ms of silence at a time until it is removed.
    let guest = Credentials::mint(keys.clone(), "guest", room, Preset::Broadcaster);
    let (guest_room, mut guest_events) =
        Room::connect_with(url, guest, RoomOptions::default()).await?;
    let mut mic = guest_room
        .local_participant()
        .publish_audio("microphone", 1, 32_000)
        .await?;
    println!(
        "guest joined as {} and publishes {}",
        guest_room.local_participant().identity(),
        mic.track().sid().unwrap_or_default()
    );
    let silence = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if mic.push(&[0i16; 960], Instant::now()).is_err() {
                break;
            }
        }
    });

    // The server API reports a publication a moment after the publisher has it: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !admin
        .list_participants(room)
        .await?
        .iter()
        .any(|p| p.identity == "guest" && !p.tracks.is_empty())
    {
        if Instant::now() > deadline {
            return Err("the server never listed the guest's track".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for r in admin.list_rooms(&[]).await? {
        println!(
            "room {:<20} {} participants, metadata {:?}",
            r.name, r.num_participants, r.metadata
        );
    }
    for p in admin.list_participants(room).await? {
        println!("participant {} with {} tracks", p.identity, p.tracks.len());
        for t in &p.tracks {
            admin.mute_track(room, &p.identity, &t.sid, true).await?;
            println!("  muted {} ({})", t.name, t.sid);
        }
        admin.remove_participant(room, &p.identity).await?;
        println!("  removed {}", p.identity);
    }

    // What the guest saw: the server's removal ends its room.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = guest_events.recv().await {
            if let RoomEvent::Disconnected { reason } = ev {
                return Some(reason);
            }
        }
        None
    })
    .await;
    match ended {
        Ok(Some(reason)) => println!("guest's room ended: {reason}"),
        Ok(None) => println!("guest's events ended without a reason"),
        Err(_) => println!("guest's room did not end within 10 s"),
    }
    silence.abort();
    guest_room.close().await;

    admin.delete_room(room).await?;
    println!("deleted {room}");
    Ok(())
}
