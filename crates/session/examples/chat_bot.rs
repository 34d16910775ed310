//! A bot that answers chat and an RPC method.
//!
//! `cargo run -p wavecast-session --example chat_bot -- URL TOKEN`: every `lk.chat` message gets
//! `echo: <text>` back (to its sender, as a reply), and RPC method `ping` answers
//! `pong: <payload>`. Runs until Ctrl-C.

use wavecast_session::{Room, RoomOptions, RpcError, StreamTextOptions, TOPIC_CHAT};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(token)) = (args.next(), args.next()) else {
        eprintln!("usage: chat_bot URL TOKEN");
        std::process::exit(2);
    };
    let (room, _events) = Room::connect(&url, &token, RoomOptions::default()).await?;
    let me = room.local_participant().clone();

    let bot = me.clone();
    room.register_text_stream_handler(TOPIC_CHAT, move |reader, sender| {
        let bot = bot.clone();
        tokio::spawn(async move {
            let id = reader.info().id.clone();
            let Ok(text) = reader.read_all().await else {
                return;
            };
            let mut options = StreamTextOptions::topic(TOPIC_CHAT);
            options.destination_identities = vec![sender];
            options.reply_to_stream_id = Some(id);
            if let Err(e) = bot.send_text(&format!("echo: {text}"), options).await {
                eprintln!("reply failed: {e}");
            }
        });
    })?;

    me.register_rpc_method("ping", |call| async move {
        if call.payload.len() > 1000 {
            return Err(RpcError::new(4000, "payload too long", None));
        }
        Ok(format!("pong: {}", call.payload))
    });

    println!("READY {}", me.identity());
    tokio::signal::ctrl_c().await?;
    room.close().await;
    Ok(())
}
