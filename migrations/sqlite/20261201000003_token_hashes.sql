-- no-transaction
-- Hashed tokens (docs/security.md). SQLite cannot drop NOT NULL from a column, so the table is
-- rebuilt (https://sqlite.org/lang_altertable.html#otheralter): foreign keys off, which only
-- takes effect outside a transaction, then one transaction for the rebuild. SQLite has no
-- SHA-256, so `token_hash` is filled by the application right after migrating.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE chat_applications_rebuilt (
    id                        INTEGER PRIMARY KEY AUTOINCREMENT,
    token                     TEXT    NULL,
    token_hash                TEXT    NULL,
    previous_token_hash       TEXT    NULL,
    previous_token_expires_at TEXT    NULL,
    name                      TEXT    NOT NULL,
    chats_count               INTEGER NOT NULL DEFAULT 0,
    created_at                TEXT    NOT NULL,
    updated_at                TEXT    NOT NULL,
    counted_number            INTEGER NOT NULL DEFAULT 0,
    counted_chats             INTEGER NOT NULL DEFAULT 0
);
INSERT INTO chat_applications_rebuilt
    (id, token, name, chats_count, created_at, updated_at, counted_number, counted_chats)
    SELECT id, token, name, chats_count, created_at, updated_at, counted_number, counted_chats
    FROM chat_applications;
DROP TABLE chat_applications;
ALTER TABLE chat_applications_rebuilt RENAME TO chat_applications;
CREATE UNIQUE INDEX uniq_chat_applications_token ON chat_applications (token);
CREATE UNIQUE INDEX uniq_chat_applications_token_hash ON chat_applications (token_hash);
CREATE INDEX idx_chat_applications_previous_token_hash ON chat_applications (previous_token_hash);
COMMIT;
PRAGMA foreign_keys = ON;
