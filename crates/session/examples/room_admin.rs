//! Room administration through the server API: create a room, list rooms and participants, mute
//! a participant's tracks, remove participants, delete the room.
//!
//! `cargo run -p wavecast-session --example room_admin -- URL API_KEY API_SECRET [ROOM]`
//! (against `livekit-server --dev`: `ws://127.0.0.1:7880 devkey secret`).
use std::time::Duration;

use wavecast_session::Keys;
use wavecast_session::admin::{NewRoom, RoomAdmin};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, key, secret, rest @ ..] = args.as_slice() else {
        return Err("usage: room_admin URL API_KEY API_SECRET [ROOM]".into());
    };
    let room = rest.first().map_or("admin-demo", String::as_str);
    let admin = RoomAdmin::new(url, &Keys::new(key, secret), Duration::from_secs(5));

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
    admin.delete_room(room).await?;
    println!("deleted {room}");
    Ok(())
}
