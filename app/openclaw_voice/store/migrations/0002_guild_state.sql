-- Guild settings, who asked the bot into which channel, opt-outs and daily usage.

ALTER TABLE guild_voice_state ADD COLUMN mode TEXT NOT NULL DEFAULT 'auto';
ALTER TABLE guild_voice_state ADD COLUMN started_by INTEGER;
ALTER TABLE guild_voice_state ADD COLUMN text_channel_id INTEGER;

CREATE TABLE guild_settings (
    guild_id                INTEGER PRIMARY KEY,
    addressing_mode         TEXT NOT NULL DEFAULT 'auto'
                            CHECK (addressing_mode IN ('auto', 'wake', 'open')),
    wake_name               TEXT,
    end_of_speech_ms        INTEGER NOT NULL DEFAULT 500
                            CHECK (end_of_speech_ms BETWEEN 200 AND 3000),
    transcript_channel_id   INTEGER,
    allowed_role_ids        TEXT NOT NULL DEFAULT '[]',
    updated_at              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE user_optouts (
    guild_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    since       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE daily_usage (
    guild_id    INTEGER NOT NULL,
    day         TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('stt_seconds', 'tts_characters', 'llm_tokens')),
    amount      REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, day, kind)
);
