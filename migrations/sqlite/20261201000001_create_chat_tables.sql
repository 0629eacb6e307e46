-- Timestamps are stored as RFC 3339 text (sqlx's chrono encoding), which sorts as time.
CREATE TABLE chat_applications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    token       TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    chats_count INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);
CREATE UNIQUE INDEX uniq_chat_applications_token ON chat_applications (token);

CREATE TABLE chats (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_application_id INTEGER NOT NULL REFERENCES chat_applications (id),
    number              INTEGER NOT NULL,
    messages_count      INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL
);
CREATE UNIQUE INDEX uniq_chats_application_number ON chats (chat_application_id, number);

CREATE TABLE messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id    INTEGER NOT NULL REFERENCES chats (id),
    number     INTEGER NOT NULL,
    body       TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);
CREATE UNIQUE INDEX uniq_messages_chat_number ON messages (chat_id, number);
