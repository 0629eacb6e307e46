-- Expand-only: every column added has a default, so the previous release keeps working on it
-- (it neither sees nor sets them).

-- A hidden chat or application (deleted_at set) answers 404 at once; the counter role's purge
-- removes its rows later. The floors are the highest number ever handed out, deleted or not,
-- so re-seeding numbering from the store never hands a deleted number out again.
ALTER TABLE chats
    ADD COLUMN deleted_at    DATETIME(6) NULL,
    ADD COLUMN message_floor BIGINT      NOT NULL DEFAULT 0,
    ADD KEY idx_chats_deleted (deleted_at);
ALTER TABLE chat_applications
    ADD COLUMN deleted_at DATETIME(6) NULL,
    ADD COLUMN chat_floor BIGINT      NOT NULL DEFAULT 0,
    ADD KEY idx_chat_applications_deleted (deleted_at);
