-- wavecast-service schema. One set of migrations for SQLite and PostgreSQL: portable types only
-- (TEXT, BIGINT unix seconds), ids made by the service, no engine-specific defaults.

CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    subject_kind TEXT NOT NULL,        -- 'user' or 'group'
    subject TEXT NOT NULL,
    room_pattern TEXT NOT NULL,        -- exact room name, or a prefix ending in '*'
    role TEXT NOT NULL,                -- viewer, broadcaster, admin, recorder
    not_before BIGINT,
    expires_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX grants_by_subject ON grants (subject_kind, subject);

CREATE TABLE streams (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    metadata TEXT NOT NULL,
    max_participants BIGINT NOT NULL,
    room TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,              -- created, ready, live, ended
    created_at BIGINT NOT NULL,
    live_at BIGINT,
    ended_at BIGINT
);

CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY,               -- LiveKit's event id: each event is stored once
    event TEXT NOT NULL,
    room TEXT NOT NULL,
    participant TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX webhook_events_by_room ON webhook_events (room);

CREATE TABLE room_participants (
    room TEXT NOT NULL,
    identity TEXT NOT NULL,
    sid TEXT NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (room, identity)
);

CREATE TABLE room_tracks (
    room TEXT NOT NULL,
    track_sid TEXT NOT NULL,
    identity TEXT NOT NULL,
    PRIMARY KEY (room, track_sid)
);
