-- Expand-only: every column added has a default, so the previous release keeps working on it.

-- Edits bump the version; the search index never lets an older version replace a newer one.
ALTER TABLE messages ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

-- The counter counts only rows past a settled watermark (see docs/architecture.md), so a chat
-- with a million messages costs a scan of its newest rows on (chat_id, number), not a COUNT(*).
ALTER TABLE chats
    ADD COLUMN counted_number   BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN counted_messages BIGINT NOT NULL DEFAULT 0;
ALTER TABLE chat_applications
    ADD COLUMN counted_number BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN counted_chats  BIGINT NOT NULL DEFAULT 0;

-- Written in the same transaction as the change it describes; a relay publishes it.
CREATE TABLE outbox (
    id           BIGINT      NOT NULL AUTO_INCREMENT,
    payload      MEDIUMTEXT  NOT NULL,
    created_at   DATETIME(6) NOT NULL,
    published_at DATETIME(6) NULL,
    PRIMARY KEY (id),
    KEY idx_outbox_published (published_at, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Small named values the background roles coordinate through (queue epoch, reindex checkpoint).
CREATE TABLE system_state (
    name       VARCHAR(64)  NOT NULL,
    value      VARCHAR(255) NOT NULL,
    updated_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
