-- See the MySQL migration of the same name. Partial indexes: the purge looks only for the
-- (few) hidden rows.
ALTER TABLE chats ADD COLUMN deleted_at TEXT NULL;
ALTER TABLE chats ADD COLUMN message_floor INTEGER NOT NULL DEFAULT 0;
CREATE INDEX idx_chats_deleted ON chats (deleted_at) WHERE deleted_at IS NOT NULL;
ALTER TABLE chat_applications ADD COLUMN deleted_at TEXT NULL;
ALTER TABLE chat_applications ADD COLUMN chat_floor INTEGER NOT NULL DEFAULT 0;
CREATE INDEX idx_chat_applications_deleted ON chat_applications (deleted_at)
    WHERE deleted_at IS NOT NULL;
