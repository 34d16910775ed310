-- Hardening (issue 18). Portable types only, as in 0001.

-- Who started a recording, as a kind: the admin key or a user. `started_by` alone cannot tell a
-- user whose `sub` reads like the admin from the admin key.
ALTER TABLE recordings ADD COLUMN started_by_kind TEXT NOT NULL DEFAULT 'user';  -- user, admin_key

-- What a webhook asks the service to do on LiveKit afterwards (close the room of an ended stream
-- someone rejoined), kept until done: retried while LiveKit is down, shown with the event in
-- GET /v1/admin/events. Written in the transaction that stores the event.
CREATE TABLE webhook_followups (
    event_id TEXT PRIMARY KEY,         -- the webhook event (one follow-up per event)
    action TEXT NOT NULL,              -- close_room
    room TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,           -- unix seconds of the next attempt
    last_error TEXT,
    done_at BIGINT
);
CREATE INDEX webhook_followups_due ON webhook_followups (done_at, next_at);

-- Retention (service.event_retention) deletes by arrival time.
CREATE INDEX webhook_events_by_received ON webhook_events (received_at);
