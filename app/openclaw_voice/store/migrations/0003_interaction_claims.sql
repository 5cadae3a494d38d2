-- Which slot answered which interaction: both blue-green slots receive every event, and an
-- interaction arriving during a role flip must be answered exactly once.
CREATE TABLE interaction_claims (
    interaction_id  INTEGER PRIMARY KEY,
    slot            TEXT NOT NULL,
    claimed_at      REAL NOT NULL
);
CREATE INDEX interaction_claims_age ON interaction_claims (claimed_at);
