//! Storage: grants, streams, webhook events and room state in SQLite or PostgreSQL.
//!
//! One schema and one set of migrations (`migrations/`, embedded in the binary) for both
//! engines, applied by [`Store::connect`]. Every query is checked at run time (`sqlx::query`
//! with bound parameters), so building needs no database.

use std::borrow::Cow;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Row};

use crate::ServiceError;
use crate::policy::{Grant, Subject};

/// The embedded migrations, oldest first.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (
        2,
        "recordings",
        include_str!("../migrations/0002_recordings.sql"),
    ),
    (
        3,
        "hardening",
        include_str!("../migrations/0003_hardening.sql"),
    ),
];

/// Most groups of one caller considered for grants.
pub const MAX_GROUPS: usize = 64;

/// A stream's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamStatus {
    /// Made, no LiveKit room yet.
    Created,
    /// The room exists; nobody publishes.
    Ready,
    /// At least one track is published in the room.
    Live,
    /// Ended by its owner: the room is gone and no new tokens are issued for it.
    Ended,
}

impl StreamStatus {
    fn name(self) -> &'static str {
        match self {
            StreamStatus::Created => "created",
            StreamStatus::Ready => "ready",
            StreamStatus::Live => "live",
            StreamStatus::Ended => "ended",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "ready" => StreamStatus::Ready,
            "live" => StreamStatus::Live,
            "ended" => StreamStatus::Ended,
            _ => StreamStatus::Created,
        }
    }
}

/// A stored stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stream {
    /// Stream id.
    pub id: String,
    /// The user who made it (the only one who may take it live or end it).
    pub owner: String,
    /// Display name.
    pub name: String,
    /// Free-form metadata (set as the room's metadata).
    pub metadata: String,
    /// Participant limit of the room (0 = none).
    pub max_participants: u32,
    /// The LiveKit room.
    pub room: String,
    /// Lifecycle state.
    pub status: StreamStatus,
    /// Unix seconds.
    pub created_at: i64,
    /// When it went live (room created), unix seconds.
    pub live_at: Option<i64>,
    /// When it ended, unix seconds.
    pub ended_at: Option<i64>,
}

/// A recording of a stream by the service's in-process room recorder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recording {
    /// Recording id.
    pub id: String,
    /// The stream recorded.
    pub stream_id: String,
    /// Its LiveKit room.
    pub room: String,
    /// The recorder's hidden participant identity in the room.
    pub recorder_identity: String,
    /// `recording`, `stopped` (finalized), `failed` (could not join, or finalizing failed) or
    /// `interrupted` (its service instance went away; the files were repaired).
    pub state: String,
    /// The room manifest, relative to `service.recordings_dir` (the WebM files are next to it).
    pub manifest: String,
    /// Who started it: the caller's `sub`, or `admin key`.
    pub started_by: String,
    /// Whether the admin key started it (then `started_by` is `admin key`); a user whose `sub`
    /// reads `admin key` is still a user.
    pub started_by_admin_key: bool,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds; `None` while recording.
    pub ended_at: Option<i64>,
    /// Why it ended: `stopped`, `stream ended`, `session ended`, `service shutdown`, …
    pub end_reason: Option<String>,
    /// What went wrong, when `state` is `failed`.
    pub error: Option<String>,
}

/// One stored webhook event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredEvent {
    /// LiveKit's event id.
    pub id: String,
    /// Event name (`room_started`, `participant_joined`, …).
    pub event: String,
    /// Room name ("" when none).
    pub room: String,
    /// Participant identity ("" when none).
    pub participant: String,
    /// The event's own timestamp, unix seconds.
    pub created_at: i64,
    /// When the service received it, unix seconds.
    pub received_at: i64,
    /// What the event asked the service to do on LiveKit afterwards, if anything.
    pub followup: Option<Followup>,
}

/// A follow-up of a webhook event: an action on LiveKit, retried until done.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Followup {
    /// `close_room`: the room of an ended stream was (re)joined.
    pub action: String,
    /// The room acted on.
    pub room: String,
    /// `pending` or `done`.
    pub state: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When the next attempt is due (unix seconds; while pending).
    pub next_at: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was done (unix seconds).
    pub done_at: Option<i64>,
}

/// A follow-up due for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueFollowup {
    /// Its event.
    pub event_id: String,
    /// `close_room`.
    pub action: String,
    /// The room.
    pub room: String,
    /// Attempts so far.
    pub attempts: i64,
}

/// What a caller holds, as counted by [`Store::owned`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    /// Streams not ended.
    Streams,
    /// Streams whose room is open.
    LiveStreams,
    /// Running recordings of the caller's streams.
    Recordings,
}

/// What [`Store::record_event`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The event was new (false: stored before; nothing changed).
    pub fresh: bool,
    /// A follow-up was queued with it (the event's room belongs to an ended stream).
    pub followup: bool,
}

/// What a webhook event changes in the room state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomChange {
    /// `room_started`.
    Started,
    /// `room_finished`: participants and tracks cleared.
    Finished,
    /// `participant_joined`.
    Joined {
        /// Identity.
        identity: String,
        /// Participant sid.
        sid: String,
    },
    /// `participant_left` / `participant_connection_aborted`.
    Left {
        /// Identity.
        identity: String,
    },
    /// `track_published`.
    Published {
        /// Track sid.
        track: String,
        /// Publisher identity.
        identity: String,
    },
    /// `track_unpublished`.
    Unpublished {
        /// Track sid.
        track: String,
    },
    /// Anything else: stored, no state change.
    None,
}

/// The database: a connection pool with the schema applied.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> ServiceError {
    move |source| ServiceError::Storage { what, source }
}

/// `database` as a sqlx URL: a plain path becomes `sqlite://PATH?mode=rwc`.
pub fn database_url(database: &str) -> String {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        database.to_owned()
    } else if let Some(rest) = database.strip_prefix("sqlite:") {
        let rest = rest.trim_start_matches("//");
        if rest.contains('?') || rest == ":memory:" {
            format!("sqlite://{rest}")
        } else {
            format!("sqlite://{rest}?mode=rwc")
        }
    } else {
        format!("sqlite://{database}?mode=rwc")
    }
}

/// The URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("[redacted]"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

fn grant_of(row: &AnyRow) -> Result<Grant, sqlx::Error> {
    let kind: String = row.try_get("subject_kind")?;
    let subject: String = row.try_get("subject")?;
    let role: String = row.try_get("role")?;
    Ok(Grant {
        id: row.try_get("id")?,
        subject: if kind == "group" {
            Subject::Group(subject)
        } else {
            Subject::User(subject)
        },
        room: row.try_get("room_pattern")?,
        role: role
            .parse()
            .map_err(|e: String| sqlx::Error::ColumnDecode {
                index: "role".into(),
                source: e.into(),
            })?,
        not_before: row.try_get("not_before")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        created_at: row.try_get("created_at")?,
    })
}

fn stream_of(row: &AnyRow) -> Result<Stream, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let max: i64 = row.try_get("max_participants")?;
    Ok(Stream {
        id: row.try_get("id")?,
        owner: row.try_get("owner")?,
        name: row.try_get("name")?,
        metadata: row.try_get("metadata")?,
        max_participants: u32::try_from(max).unwrap_or(0),
        room: row.try_get("room")?,
        status: StreamStatus::parse(&status),
        created_at: row.try_get("created_at")?,
        live_at: row.try_get("live_at")?,
        ended_at: row.try_get("ended_at")?,
    })
}

fn recording_of(row: &AnyRow) -> Result<Recording, sqlx::Error> {
    Ok(Recording {
        id: row.try_get("id")?,
        stream_id: row.try_get("stream_id")?,
        room: row.try_get("room")?,
        recorder_identity: row.try_get("recorder_identity")?,
        state: row.try_get("state")?,
        manifest: row.try_get("manifest")?,
        started_by: row.try_get("started_by")?,
        started_by_admin_key: row.try_get::<String, _>("started_by_kind")? == "admin_key",
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        end_reason: row.try_get("end_reason")?,
        error: row.try_get("error")?,
    })
}

const RECORDING_COLUMNS: &str = "id, stream_id, room, recorder_identity, state, manifest, \
                                 started_by, started_by_kind, started_at, ended_at, end_reason, error";
const GRANT_COLUMNS: &str =
    "id, subject_kind, subject, room_pattern, role, not_before, expires_at, revoked_at, created_at";
const STREAM_COLUMNS: &str = "id, owner, name, metadata, max_participants, room, status, \
                              created_at, live_at, ended_at";

/// The `WHERE` condition selecting the grants of a user (placeholder `$first`) and of its groups
/// (the next placeholders), and the groups to bind after the user (at most [`MAX_GROUPS`]).
fn subject_condition(groups: &[String], first: usize) -> (String, &[String]) {
    let groups = &groups[..groups.len().min(MAX_GROUPS)];
    let mut sql = format!("((subject_kind = 'user' AND subject = ${first})");
    if !groups.is_empty() {
        let marks: Vec<String> = (0..groups.len())
            .map(|i| format!("${}", first + 1 + i))
            .collect();
        sql.push_str(&format!(
            " OR (subject_kind = 'group' AND subject IN ({})))",
            marks.join(", ")
        ));
    } else {
        sql.push(')');
    }
    (sql, groups)
}

/// What a mint reads from the database: see [`Store::mint_view`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MintView {
    /// Every grant of the caller and of its groups.
    pub grants: Vec<Grant>,
    /// The id of the stream that owns the room, when that stream has ended (it takes no one).
    pub ended_stream: Option<String>,
}

impl Store {
    /// Open `database` (a SQLite path, `sqlite:PATH` or a `postgres://` URL) and apply the
    /// migrations.
    pub async fn connect(database: &str) -> Result<Self, ServiceError> {
        sqlx::any::install_default_drivers();
        let url = database_url(database);
        let pool = AnyPoolOptions::new()
            .max_connections(if url.starts_with("sqlite:") { 4 } else { 16 })
            .connect(&url)
            .await
            .map_err(|source| ServiceError::Connect {
                url: redact_url(&url),
                source,
            })?;
        let migrations: Vec<Migration> = MIGRATIONS
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    Cow::Borrowed(*sql),
                    false,
                )
            })
            .collect();
        let migrator = Migrator {
            migrations: Cow::Owned(migrations),
            ..Migrator::DEFAULT
        };
        migrator
            .run(&pool)
            .await
            .map_err(|source| ServiceError::Migrate {
                url: redact_url(&url),
                source,
            })?;
        Ok(Self { pool })
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Store a new grant.
    pub async fn insert_grant(&self, g: &Grant) -> Result<(), ServiceError> {
        sqlx::query(
            "INSERT INTO grants (id, subject_kind, subject, room_pattern, role, not_before, \
             expires_at, revoked_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&g.id)
        .bind(g.subject.kind())
        .bind(g.subject.name())
        .bind(&g.room)
        .bind(g.role.name())
        .bind(g.not_before)
        .bind(g.expires_at)
        .bind(g.revoked_at)
        .bind(g.created_at)
        .execute(&self.pool)
        .await
        .map_err(db("insert a grant"))?;
        Ok(())
    }

    /// Every grant of `user` and of its `groups` (at most [`MAX_GROUPS`] groups are considered).
    pub async fn grants_for(
        &self,
        user: &str,
        groups: &[String],
    ) -> Result<Vec<Grant>, ServiceError> {
        let (condition, groups) = subject_condition(groups, 1);
        let sql = format!("SELECT {GRANT_COLUMNS} FROM grants WHERE {condition}");
        let mut q = sqlx::query(&sql).bind(user);
        for g in groups {
            q = q.bind(g);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db("read grants"))?;
        rows.iter()
            .map(grant_of)
            .collect::<Result<_, _>>()
            .map_err(db("decode a grant"))
    }

    /// What a mint for `room` reads, in one statement (one round trip): every grant of `user`
    /// and of its `groups` (as [`Store::grants_for`]) and the id of the stream that owns `room`
    /// if that stream has ended.
    pub async fn mint_view(
        &self,
        room: &str,
        user: &str,
        groups: &[String],
    ) -> Result<MintView, ServiceError> {
        // The ended stream's row first (its id in `id`, `kind` tells the rows apart), then the
        // grants; the placeholders appear in the order of their numbers.
        let (condition, groups) = subject_condition(groups, 2);
        let sql = format!(
            "SELECT 'ended' AS kind, id, '' AS subject_kind, '' AS subject, '' AS room_pattern, \
             '' AS role, NULL AS not_before, NULL AS expires_at, NULL AS revoked_at, \
             created_at FROM streams WHERE room = $1 AND status = 'ended' \
             UNION ALL SELECT 'grant' AS kind, {GRANT_COLUMNS} FROM grants WHERE {condition}"
        );
        let mut q = sqlx::query(&sql).bind(room).bind(user);
        for g in groups {
            q = q.bind(g);
        }
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(db("read grants and the room's stream"))?;
        let mut view = MintView::default();
        for row in &rows {
            let kind: String = row.try_get("kind").map_err(db("decode a grant"))?;
            if kind == "ended" {
                view.ended_stream = Some(row.try_get("id").map_err(db("decode a stream"))?);
            } else {
                view.grants
                    .push(grant_of(row).map_err(db("decode a grant"))?);
            }
        }
        Ok(view)
    }

    /// Grants, newest first, optionally only those of one subject (at most `limit`).
    pub async fn list_grants(
        &self,
        subject: Option<&Subject>,
        limit: u32,
    ) -> Result<Vec<Grant>, ServiceError> {
        let rows =
            match subject {
                Some(s) => sqlx::query(&format!(
                    "SELECT {GRANT_COLUMNS} FROM grants WHERE subject_kind = $1 AND subject = $2 \
                 ORDER BY created_at DESC, id LIMIT $3"
                ))
                .bind(s.kind())
                .bind(s.name())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await,
                None => {
                    sqlx::query(&format!(
                        "SELECT {GRANT_COLUMNS} FROM grants ORDER BY created_at DESC, id LIMIT $1"
                    ))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                }
            }
            .map_err(db("list grants"))?;
        rows.iter()
            .map(grant_of)
            .collect::<Result<_, _>>()
            .map_err(db("decode a grant"))
    }

    /// Mark a grant revoked at `now` (kept for the record). `None` when there is no such grant.
    pub async fn revoke_grant(&self, id: &str, now: i64) -> Result<Option<Grant>, ServiceError> {
        sqlx::query("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("revoke a grant"))?;
        self.grant(id).await
    }

    /// Store a new stream.
    pub async fn insert_stream(&self, s: &Stream) -> Result<(), ServiceError> {
        sqlx::query(
            "INSERT INTO streams (id, owner, name, metadata, max_participants, room, status, \
             created_at, live_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&s.id)
        .bind(&s.owner)
        .bind(&s.name)
        .bind(&s.metadata)
        .bind(i64::from(s.max_participants))
        .bind(&s.room)
        .bind(s.status.name())
        .bind(s.created_at)
        .bind(s.live_at)
        .bind(s.ended_at)
        .execute(&self.pool)
        .await
        .map_err(db("insert a stream"))?;
        Ok(())
    }

    /// A stream by id.
    pub async fn stream(&self, id: &str) -> Result<Option<Stream>, ServiceError> {
        let sql = format!("SELECT {STREAM_COLUMNS} FROM streams WHERE id = $1");
        self.one_row(&sql, id, ("read a stream", "decode a stream"), stream_of)
            .await
    }

    /// Mark a stream's room as created (status `ready` unless it is already `live`).
    pub async fn stream_went_live(&self, id: &str, now: i64) -> Result<(), ServiceError> {
        sqlx::query(
            "UPDATE streams SET status = CASE WHEN status = 'live' THEN 'live' ELSE 'ready' END, \
             live_at = $1 WHERE id = $2 AND status <> 'ended'",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db("update a stream"))?;
        Ok(())
    }

    /// Mark a stream ended. Returns false when it already was.
    pub async fn end_stream(&self, id: &str, now: i64) -> Result<bool, ServiceError> {
        let r = sqlx::query(
            "UPDATE streams SET status = 'ended', ended_at = $1 WHERE id = $2 AND status <> 'ended'",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db("end a stream"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Store a new recording in state `recording`. Returns false (and stores nothing) when the
    /// stream already has a recording that has not ended: one at a time per stream, whichever
    /// service instance asks.
    pub async fn insert_recording(&self, r: &Recording) -> Result<bool, ServiceError> {
        let n = sqlx::query(
            "INSERT INTO recordings (id, stream_id, room, recorder_identity, state, manifest, \
             started_by, started_at, ended_at, end_reason, error, started_by_kind) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
        )
        .bind(&r.id)
        .bind(&r.stream_id)
        .bind(&r.room)
        .bind(&r.recorder_identity)
        .bind(&r.state)
        .bind(&r.manifest)
        .bind(&r.started_by)
        .bind(r.started_at)
        .bind(r.ended_at)
        .bind(r.end_reason.as_deref())
        .bind(r.error.as_deref())
        .bind(if r.started_by_admin_key {
            "admin_key"
        } else {
            "user"
        })
        .execute(&self.pool)
        .await
        .map_err(db("insert a recording"))?
        .rows_affected();
        Ok(n == 1)
    }

    /// Set a running recording's manifest path.
    pub async fn set_recording_manifest(
        &self,
        id: &str,
        manifest: &str,
    ) -> Result<(), ServiceError> {
        sqlx::query("UPDATE recordings SET manifest = $1 WHERE id = $2")
            .bind(manifest)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("update a recording"))?;
        Ok(())
    }

    /// End a recording: `state`, `ended_at`, why, and the error if it failed. Returns the row,
    /// or `None` when it had already ended (or does not exist).
    pub async fn end_recording(
        &self,
        id: &str,
        state: &str,
        now: i64,
        reason: &str,
        error: Option<&str>,
    ) -> Result<Option<Recording>, ServiceError> {
        let n = sqlx::query(
            "UPDATE recordings SET state = $1, ended_at = $2, end_reason = $3, error = $4 \
             WHERE id = $5 AND ended_at IS NULL",
        )
        .bind(state)
        .bind(now)
        .bind(reason)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db("end a recording"))?
        .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        self.recording(id).await
    }

    /// A recording by id.
    pub async fn recording(&self, id: &str) -> Result<Option<Recording>, ServiceError> {
        self.one_recording("id = $1", id).await
    }

    /// The recording of `stream_id` that has not ended, if any.
    pub async fn active_recording(
        &self,
        stream_id: &str,
    ) -> Result<Option<Recording>, ServiceError> {
        self.one_recording("stream_id = $1 AND ended_at IS NULL", stream_id)
            .await
    }

    /// The recording matching `filter` (a condition on `$1` = `key`), if any.
    async fn one_recording(
        &self,
        filter: &str,
        key: &str,
    ) -> Result<Option<Recording>, ServiceError> {
        let sql = format!("SELECT {RECORDING_COLUMNS} FROM recordings WHERE {filter}");
        let what = ("read a recording", "decode a recording");
        self.one_row(&sql, key, what, recording_of).await
    }

    /// The row `sql` (with `$1` = `key`) selects, if any, decoded by `decode`; `what` names the
    /// read and the decoding in errors.
    async fn one_row<T>(
        &self,
        sql: &str,
        key: &str,
        what: (&'static str, &'static str),
        decode: fn(&AnyRow) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, ServiceError> {
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db(what.0))?;
        row.as_ref().map(decode).transpose().map_err(db(what.1))
    }

    /// Recordings of `stream_id`, newest first (at most `limit`).
    pub async fn recordings(
        &self,
        stream_id: &str,
        limit: u32,
    ) -> Result<Vec<Recording>, ServiceError> {
        let rows = sqlx::query(&format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings WHERE stream_id = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2"
        ))
        .bind(stream_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("list recordings"))?;
        rows.iter()
            .map(recording_of)
            .collect::<Result<_, _>>()
            .map_err(db("decode a recording"))
    }

    /// Every recorder identity that ever joined `stream_id`'s room (left out of its participants
    /// and viewer count).
    pub async fn recorder_identities(&self, stream_id: &str) -> Result<Vec<String>, ServiceError> {
        let rows = sqlx::query("SELECT recorder_identity FROM recordings WHERE stream_id = $1")
            .bind(stream_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db("read recorder identities"))?;
        rows.iter()
            .map(|r| r.try_get("recorder_identity"))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("decode a recorder identity"))
    }

    /// Participants of `room` as the webhooks reported them (identity, sid), by join time.
    pub async fn participants(&self, room: &str) -> Result<Vec<(String, String)>, ServiceError> {
        let rows = sqlx::query(
            "SELECT identity, sid FROM room_participants WHERE room = $1 ORDER BY joined_at, identity",
        )
        .bind(room)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read participants"))?;
        rows.iter()
            .map(|r| Ok((r.try_get("identity")?, r.try_get("sid")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("decode a participant"))
    }

    /// Published tracks of `room` (track sid, publisher identity).
    pub async fn tracks(&self, room: &str) -> Result<Vec<(String, String)>, ServiceError> {
        let rows = sqlx::query(
            "SELECT track_sid, identity FROM room_tracks WHERE room = $1 ORDER BY track_sid",
        )
        .bind(room)
        .fetch_all(&self.pool)
        .await
        .map_err(db("read tracks"))?;
        rows.iter()
            .map(|r| Ok((r.try_get("track_sid")?, r.try_get("identity")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("decode a track"))
    }

    /// Store a webhook event once and apply its change, in one transaction; when the event
    /// (re)opens the room of an ended stream, queue a `close_room` follow-up in the same
    /// transaction, due at `followup_at`. Changes nothing when an event with this id was stored
    /// before.
    pub async fn record_event(
        &self,
        event: &StoredEvent,
        body: &str,
        change: &RoomChange,
        followup_at: i64,
    ) -> Result<Recorded, ServiceError> {
        let mut tx = self.pool.begin().await.map_err(db("begin a transaction"))?;
        let inserted = sqlx::query(
            "INSERT INTO webhook_events (id, event, room, participant, created_at, received_at, \
             body) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(&event.event)
        .bind(&event.room)
        .bind(&event.participant)
        .bind(event.created_at)
        .bind(event.received_at)
        .bind(body)
        .execute(&mut *tx)
        .await
        .map_err(db("store a webhook event"))?
        .rows_affected()
            == 1;
        if !inserted {
            tx.rollback().await.map_err(db("roll back"))?;
            return Ok(Recorded {
                fresh: false,
                followup: false,
            });
        }
        let mut followup = false;
        if matches!(change, RoomChange::Joined { .. } | RoomChange::Started) {
            followup = sqlx::query(
                "INSERT INTO webhook_followups (event_id, action, room, created_at, attempts, \
                 next_at) SELECT $1, 'close_room', $2, $3, 0, $4 \
                 WHERE EXISTS (SELECT 1 FROM streams WHERE room = $2 AND status = 'ended')",
            )
            .bind(&event.id)
            .bind(&event.room)
            .bind(event.received_at)
            .bind(followup_at)
            .execute(&mut *tx)
            .await
            .map_err(db("queue a follow-up"))?
            .rows_affected()
                == 1;
        }
        let room = event.room.as_str();
        let q = |sql: &'static str| sqlx::query(sql);
        match change {
            RoomChange::Started | RoomChange::None => {}
            RoomChange::Finished => {
                q("DELETE FROM room_participants WHERE room = $1")
                    .bind(room)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("clear participants"))?;
                q("DELETE FROM room_tracks WHERE room = $1")
                    .bind(room)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("clear tracks"))?;
                q("UPDATE streams SET status = 'created' WHERE room = $1 AND status IN ('ready', 'live')")
                    .bind(room)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("update a stream"))?;
            }
            RoomChange::Joined { identity, sid } => {
                q("INSERT INTO room_participants (room, identity, sid, joined_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (room, identity) DO UPDATE SET sid = excluded.sid, joined_at = excluded.joined_at")
                    .bind(room)
                    .bind(identity)
                    .bind(sid)
                    .bind(event.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("add a participant"))?;
            }
            RoomChange::Left { identity } => {
                q("DELETE FROM room_participants WHERE room = $1 AND identity = $2")
                    .bind(room)
                    .bind(identity)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("remove a participant"))?;
                q("DELETE FROM room_tracks WHERE room = $1 AND identity = $2")
                    .bind(room)
                    .bind(identity)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("remove tracks"))?;
            }
            RoomChange::Published { track, identity } => {
                q(
                    "INSERT INTO room_tracks (room, track_sid, identity) VALUES ($1, $2, $3) \
                   ON CONFLICT (room, track_sid) DO NOTHING",
                )
                .bind(room)
                .bind(track)
                .bind(identity)
                .execute(&mut *tx)
                .await
                .map_err(db("add a track"))?;
            }
            RoomChange::Unpublished { track } => {
                q("DELETE FROM room_tracks WHERE room = $1 AND track_sid = $2")
                    .bind(room)
                    .bind(track)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("remove a track"))?;
            }
        }
        // A stream is live while its room has a published track.
        q("UPDATE streams SET status = CASE \
             WHEN EXISTS (SELECT 1 FROM room_tracks t WHERE t.room = streams.room) THEN 'live' \
             ELSE 'ready' END \
           WHERE room = $1 AND status IN ('ready', 'live')")
        .bind(room)
        .execute(&mut *tx)
        .await
        .map_err(db("update a stream"))?;
        if matches!(change, RoomChange::Started) {
            q("UPDATE streams SET status = 'ready' WHERE room = $1 AND status = 'created'")
                .bind(room)
                .execute(&mut *tx)
                .await
                .map_err(db("update a stream"))?;
        }
        tx.commit().await.map_err(db("commit"))?;
        Ok(Recorded {
            fresh: true,
            followup,
        })
    }

    /// Queue a follow-up that is not about a webhook event (`key` is its own id, e.g.
    /// `revoke:<grant id>`); false when one with this key exists.
    pub async fn queue_followup(
        &self,
        key: &str,
        action: &str,
        target: &str,
        now: i64,
        first_at: i64,
    ) -> Result<bool, ServiceError> {
        let n = sqlx::query(
            "INSERT INTO webhook_followups (event_id, action, room, created_at, attempts, next_at) \
             VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(key)
        .bind(action)
        .bind(target)
        .bind(now)
        .bind(first_at)
        .execute(&self.pool)
        .await
        .map_err(db("queue a follow-up"))?
        .rows_affected();
        Ok(n == 1)
    }

    /// How many `what` the user `owner` holds now.
    pub async fn owned(&self, owner: &str, what: Owned) -> Result<i64, ServiceError> {
        let sql = match what {
            Owned::Streams => {
                "SELECT COUNT(*) AS n FROM streams WHERE owner = $1 AND status <> 'ended'"
            }
            Owned::LiveStreams => {
                "SELECT COUNT(*) AS n FROM streams WHERE owner = $1 AND status IN ('ready', 'live')"
            }
            Owned::Recordings => {
                "SELECT COUNT(*) AS n FROM recordings r JOIN streams s ON s.id = r.stream_id \
                 WHERE s.owner = $1 AND r.ended_at IS NULL"
            }
        };
        let row = sqlx::query(sql)
            .bind(owner)
            .fetch_one(&self.pool)
            .await
            .map_err(db("count what a caller holds"))?;
        row.try_get("n").map_err(db("decode a count"))
    }

    /// A grant by id.
    pub async fn grant(&self, id: &str) -> Result<Option<Grant>, ServiceError> {
        let sql = format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1");
        self.one_row(&sql, id, ("read a grant", "decode a grant"), grant_of)
            .await
    }

    /// Follow-ups not done whose next attempt is due at `now` (at most `limit`, oldest first).
    pub async fn due_followups(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<DueFollowup>, ServiceError> {
        let rows = sqlx::query(
            "SELECT event_id, action, room, attempts FROM webhook_followups \
             WHERE done_at IS NULL AND next_at <= $1 ORDER BY next_at, event_id LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db("read follow-ups"))?;
        rows.iter()
            .map(|r| {
                Ok(DueFollowup {
                    event_id: r.try_get("event_id")?,
                    action: r.try_get("action")?,
                    room: r.try_get("room")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("decode a follow-up"))
    }

    /// Record an attempt of a follow-up: done at `now`, or failed with `error` and due again
    /// at `next_at`.
    pub async fn followup_attempted(
        &self,
        event_id: &str,
        now: i64,
        outcome: Result<(), (&str, i64)>,
    ) -> Result<(), ServiceError> {
        let q = match outcome {
            Ok(()) => sqlx::query(
                "UPDATE webhook_followups SET attempts = attempts + 1, done_at = $1, \
                 last_error = NULL WHERE event_id = $2 AND done_at IS NULL",
            )
            .bind(now)
            .bind(event_id),
            Err((error, next_at)) => sqlx::query(
                "UPDATE webhook_followups SET attempts = attempts + 1, next_at = $1, \
                 last_error = $2 WHERE event_id = $3 AND done_at IS NULL",
            )
            .bind(next_at)
            .bind(error)
            .bind(event_id),
        };
        q.execute(&self.pool)
            .await
            .map_err(db("update a follow-up"))?;
        Ok(())
    }

    /// Delete webhook events received before `cutoff` (unix seconds), except those whose
    /// follow-up is not done, and the done follow-ups of deleted events. Returns the events
    /// deleted.
    pub async fn prune_events(&self, cutoff: i64) -> Result<u64, ServiceError> {
        let n = sqlx::query(
            "DELETE FROM webhook_events WHERE received_at < $1 AND id NOT IN \
             (SELECT event_id FROM webhook_followups WHERE done_at IS NULL)",
        )
        .bind(cutoff)
        .execute(&self.pool)
        .await
        .map_err(db("delete old events"))?
        .rows_affected();
        sqlx::query(
            "DELETE FROM webhook_followups WHERE done_at IS NOT NULL AND event_id NOT IN \
             (SELECT id FROM webhook_events)",
        )
        .execute(&self.pool)
        .await
        .map_err(db("delete old follow-ups"))?;
        Ok(n)
    }

    /// Whether the database answers (one trivial query; no table is read).
    pub async fn ping(&self) -> Result<(), ServiceError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db("ping"))?;
        Ok(())
    }

    /// Stored webhook events, oldest first, optionally of one room (at most `limit`), each with
    /// its follow-up if it has one.
    pub async fn events(
        &self,
        room: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, ServiceError> {
        const SELECT: &str = "SELECT e.id, e.event, e.room, e.participant, e.created_at, \
             e.received_at, f.action, f.room AS f_room, f.attempts, f.next_at, f.last_error, \
             f.done_at FROM webhook_events e LEFT JOIN webhook_followups f ON f.event_id = e.id";
        let rows = match room {
            Some(r) => {
                sqlx::query(&format!(
                    "{SELECT} WHERE e.room = $1 ORDER BY e.received_at, e.id LIMIT $2"
                ))
                .bind(r)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(&format!("{SELECT} ORDER BY e.received_at, e.id LIMIT $1"))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(db("read events"))?;
        rows.iter()
            .map(|r| {
                let action: Option<String> = r.try_get("action")?;
                let followup = match action {
                    None => None,
                    Some(action) => {
                        let done_at: Option<i64> = r.try_get("done_at")?;
                        Some(Followup {
                            action,
                            room: r.try_get("f_room")?,
                            state: if done_at.is_some() { "done" } else { "pending" }.into(),
                            attempts: r.try_get("attempts")?,
                            next_at: r.try_get("next_at")?,
                            last_error: r.try_get("last_error")?,
                            done_at,
                        })
                    }
                };
                Ok(StoredEvent {
                    id: r.try_get("id")?,
                    event: r.try_get("event")?,
                    room: r.try_get("room")?,
                    participant: r.try_get("participant")?,
                    created_at: r.try_get("created_at")?,
                    received_at: r.try_get("received_at")?,
                    followup,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db("decode an event"))
    }

    /// Row counts of every table (grants, streams, events), for tests and health checks.
    pub async fn counts(&self) -> Result<(i64, i64, i64), ServiceError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM grants) AS g, (SELECT COUNT(*) FROM streams) AS s, \
             (SELECT COUNT(*) FROM webhook_events) AS e",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("count rows"))?;
        Ok((
            row.try_get("g").map_err(db("decode a count"))?,
            row.try_get("s").map_err(db("decode a count"))?,
            row.try_get("e").map_err(db("decode a count"))?,
        ))
    }
}
