-- Guild voice presence: which channel the bot should be in per guild. Both deployment
-- slots read it, so a newly promoted slot rejoins where the old one was.
CREATE TABLE guild_voice_state (
    guild_id        INTEGER PRIMARY KEY,
    channel_id      INTEGER,
    desired         INTEGER NOT NULL DEFAULT 0 CHECK (desired IN (0, 1)),
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
