-- Hardening (issue 18). Portable types only, as in 0001.

-- Who started a recording, as a kind: the admin key or a user. `started_by` alone cannot tell a
-- user whose `sub` reads like the admin from the admin key.
ALTER TABLE recordings ADD COLUMN started_by_kind TEXT NOT NULL DEFAULT 'user';  -- user, admin_key
