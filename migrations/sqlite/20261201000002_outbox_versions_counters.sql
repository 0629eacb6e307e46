ALTER TABLE messages ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

ALTER TABLE chats ADD COLUMN counted_number INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chats ADD COLUMN counted_messages INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chat_applications ADD COLUMN counted_number INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chat_applications ADD COLUMN counted_chats INTEGER NOT NULL DEFAULT 0;

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    payload      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    published_at TEXT NULL
);
CREATE INDEX idx_outbox_published ON outbox (published_at, id);

CREATE TABLE system_state (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
