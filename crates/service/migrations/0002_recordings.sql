-- Recordings of streams made by the service's in-process room recorder
-- (POST /v1/streams/{id}/recording). Portable types only, as in 0001.

CREATE TABLE recordings (
    id TEXT PRIMARY KEY,
    stream_id TEXT NOT NULL REFERENCES streams (id),
    room TEXT NOT NULL,
    recorder_identity TEXT NOT NULL,   -- the recorder's hidden participant in the room
    state TEXT NOT NULL,               -- recording, stopped, failed, interrupted
    manifest TEXT NOT NULL,            -- the room manifest, relative to service.recordings_dir
    started_by TEXT NOT NULL,          -- the caller's sub, or 'admin'
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    end_reason TEXT,                   -- stopped, stream ended, session ended, service shutdown, …
    error TEXT
);
CREATE INDEX recordings_by_stream ON recordings (stream_id, started_at);
-- One recording per stream at a time, across every service instance sharing the database.
CREATE UNIQUE INDEX recordings_one_active ON recordings (stream_id) WHERE ended_at IS NULL;
