//! Room administration as command-line subcommands (feature `cli`): the `room`, `participant`
//! and `data` commands of the `wavecast` admin CLI, ready to flatten into any clap parser, run
//! against a [`RoomAdmin`] and printed as tables or JSON.
//!
//! ```no_run
//! use clap::Parser;
//! use wavecast_server_api::RoomAdmin;
//! use wavecast_server_api::cli::AdminCommand;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(subcommand)]
//!     command: AdminCommand,
//! }
//!
//! # async fn run(admin: RoomAdmin) -> Result<(), wavecast_server_api::AdminError> {
//! let cli = Cli::parse(); // e.g. `mytool room list`
//! print!("{}", cli.command.run(&admin, false).await?);
//! # Ok(()) }
//! ```

use std::collections::HashMap;

use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::{AdminError, DataKind, NewRoom, Participant, Room, RoomAdmin};

/// The room administration subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Create, list, delete rooms and set their metadata.
    #[command(subcommand)]
    Room(RoomCmd),
    /// List, inspect, remove, mute and update participants.
    #[command(subcommand)]
    Participant(ParticipantCmd),
    /// Send data packets to a room.
    #[command(subcommand)]
    Data(DataCmd),
}

/// `room …`
#[derive(Debug, Clone, Subcommand)]
pub enum RoomCmd {
    /// Create a room (returns the existing one if the name is taken).
    Create {
        /// Room name.
        name: String,
        /// Seconds an empty room is kept (0 = server default).
        #[arg(long, default_value_t = 0)]
        empty_timeout: u32,
        /// Participant limit (0 = none).
        #[arg(long, default_value_t = 0)]
        max_participants: u32,
        /// Room metadata.
        #[arg(long, default_value = "")]
        metadata: String,
    },
    /// List rooms.
    List {
        /// Only these rooms.
        names: Vec<String>,
    },
    /// Delete a room, disconnecting everyone.
    Delete {
        /// Room name.
        name: String,
    },
    /// Replace a room's metadata.
    Metadata {
        /// Room name.
        name: String,
        /// New metadata.
        metadata: String,
    },
}

/// `participant …`
#[derive(Debug, Clone, Subcommand)]
pub enum ParticipantCmd {
    /// List a room's participants.
    List {
        /// Room name.
        room: String,
    },
    /// Show one participant with its tracks.
    Get {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
    },
    /// Disconnect a participant.
    Remove {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
    },
    /// Mute (or with --unmute, unmute) a published track.
    Mute {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
        /// Track sid (see `participant get`).
        track_sid: String,
        /// Unmute instead.
        #[arg(long)]
        unmute: bool,
    },
    /// Update a participant's metadata, name or attributes.
    Update {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
        /// New metadata.
        #[arg(long, default_value = "")]
        metadata: String,
        /// New display name (empty: unchanged).
        #[arg(long, default_value = "")]
        name: String,
        /// Attribute KEY=VALUE (repeatable).
        #[arg(long = "attribute", value_name = "KEY=VALUE", value_parser = parse_kv)]
        attributes: Vec<(String, String)>,
    },
}

/// `data …`
#[derive(Debug, Clone, Subcommand)]
pub enum DataCmd {
    /// Send a message to everyone in a room (or to --to identities).
    Send {
        /// Room name.
        room: String,
        /// The message (sent as UTF-8 bytes).
        message: String,
        /// Topic.
        #[arg(long)]
        topic: Option<String>,
        /// Send lossy instead of reliable.
        #[arg(long)]
        lossy: bool,
        /// Only to these identities (repeatable).
        #[arg(long = "to", value_name = "IDENTITY")]
        to: Vec<String>,
    },
}

/// Parses `KEY=VALUE` (a non-empty key; the value may be empty or hold `=`).
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn json(value: &impl Serialize) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("admin results serialize to JSON");
    s.push('\n');
    s
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    t
}

/// Rooms as a table (name, sid, participants, publishers, max, metadata) or pretty JSON; ends
/// with a newline.
pub fn rooms_text(rooms: &[Room], as_json: bool) -> String {
    if as_json {
        return json(&rooms);
    }
    let mut t = table(&[
        "name",
        "sid",
        "participants",
        "publishers",
        "max",
        "metadata",
    ]);
    for r in rooms {
        t.add_row(vec![
            r.name.clone(),
            r.sid.clone(),
            r.num_participants.to_string(),
            r.num_publishers.to_string(),
            r.max_participants.to_string(),
            r.metadata.clone(),
        ]);
    }
    format!("{t}\n")
}

/// Participants as a table (identity, name, state, sid, tracks, metadata) or pretty JSON; ends
/// with a newline.
pub fn participants_text(ps: &[Participant], as_json: bool) -> String {
    if as_json {
        return json(&ps);
    }
    let mut t = table(&["identity", "name", "state", "sid", "tracks", "metadata"]);
    for p in ps {
        let tracks: Vec<String> = p
            .tracks
            .iter()
            .map(|tr| {
                let muted = if tr.muted { " (muted)" } else { "" };
                format!("{} {} {}{muted}", tr.sid, tr.kind, tr.name)
            })
            .collect();
        t.add_row(vec![
            p.identity.clone(),
            p.name.clone(),
            p.state.clone(),
            p.sid.clone(),
            tracks.join("\n"),
            p.metadata.clone(),
        ]);
    }
    format!("{t}\n")
}

impl AdminCommand {
    /// Runs the command with `admin`; returns what to print (tables, or JSON with `as_json`;
    /// a one-line confirmation, or nothing with `as_json`, for commands without a result).
    pub async fn run(self, admin: &RoomAdmin, as_json: bool) -> Result<String, AdminError> {
        let done = |line: String| if as_json { String::new() } else { line + "\n" };
        Ok(match self {
            AdminCommand::Room(RoomCmd::Create {
                name,
                empty_timeout,
                max_participants,
                metadata,
            }) => {
                let opts = NewRoom {
                    empty_timeout,
                    max_participants,
                    metadata,
                };
                rooms_text(&[admin.create_room(&name, opts).await?], as_json)
            }
            AdminCommand::Room(RoomCmd::List { names }) => {
                rooms_text(&admin.list_rooms(&names).await?, as_json)
            }
            AdminCommand::Room(RoomCmd::Delete { name }) => {
                admin.delete_room(&name).await?;
                done(format!("deleted room {name:?}"))
            }
            AdminCommand::Room(RoomCmd::Metadata { name, metadata }) => rooms_text(
                &[admin.update_room_metadata(&name, &metadata).await?],
                as_json,
            ),
            AdminCommand::Participant(ParticipantCmd::List { room }) => {
                participants_text(&admin.list_participants(&room).await?, as_json)
            }
            AdminCommand::Participant(ParticipantCmd::Get { room, identity }) => {
                participants_text(&[admin.get_participant(&room, &identity).await?], as_json)
            }
            AdminCommand::Participant(ParticipantCmd::Remove { room, identity }) => {
                admin.remove_participant(&room, &identity).await?;
                done(format!("removed {identity:?} from room {room:?}"))
            }
            AdminCommand::Participant(ParticipantCmd::Mute {
                room,
                identity,
                track_sid,
                unmute,
            }) => {
                let track = admin
                    .mute_track(&room, &identity, &track_sid, !unmute)
                    .await?;
                if as_json {
                    json(&track)
                } else {
                    let state = if track.muted { "muted" } else { "unmuted" };
                    format!("track {} of {identity:?} is {state}\n", track.sid)
                }
            }
            AdminCommand::Participant(ParticipantCmd::Update {
                room,
                identity,
                metadata,
                name,
                attributes,
            }) => {
                let attributes: HashMap<String, String> = attributes.into_iter().collect();
                let p = admin
                    .update_participant(&room, &identity, &metadata, attributes, &name)
                    .await?;
                participants_text(&[p], as_json)
            }
            AdminCommand::Data(DataCmd::Send {
                room,
                message,
                topic,
                lossy,
                to,
            }) => {
                let kind = if lossy {
                    DataKind::Lossy
                } else {
                    DataKind::Reliable
                };
                admin
                    .send_data(&room, message.into_bytes(), kind, topic, to)
                    .await?;
                done(format!("sent to room {room:?}"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_kv_needs_a_key() {
        assert_eq!(parse_kv("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_kv("a="), Ok(("a".into(), String::new())));
        assert!(parse_kv("=v").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_kv("novalue").is_err());
    }

    #[test]
    fn rooms_print_as_a_table_or_json() {
        let room = Room {
            sid: "RM_1".into(),
            name: "demo".into(),
            metadata: "m".into(),
            num_participants: 2,
            num_publishers: 1,
            max_participants: 0,
            empty_timeout: 300,
            creation_time: 0,
        };
        let text = rooms_text(std::slice::from_ref(&room), false);
        assert!(text.contains("demo") && text.contains("RM_1") && text.contains("participants"));
        let v: serde_json::Value = serde_json::from_str(&rooms_text(&[room], true)).unwrap();
        assert_eq!(v[0]["num_participants"], 2);
    }
}
