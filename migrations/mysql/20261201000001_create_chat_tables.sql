-- utf8mb4 throughout so any body is stored byte for byte; MEDIUMTEXT holds bodies up to 16 MiB.
-- No FULLTEXT index: search lives in the search index.
CREATE TABLE chat_applications (
    id          BIGINT       NOT NULL AUTO_INCREMENT,
    token       CHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name        VARCHAR(255) NOT NULL,
    chats_count BIGINT       NOT NULL DEFAULT 0,
    created_at  DATETIME(6)  NOT NULL,
    updated_at  DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uniq_chat_applications_token (token)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE chats (
    id                  BIGINT      NOT NULL AUTO_INCREMENT,
    chat_application_id BIGINT      NOT NULL,
    number              BIGINT      NOT NULL,
    messages_count      BIGINT      NOT NULL DEFAULT 0,
    created_at          DATETIME(6) NOT NULL,
    updated_at          DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    -- The last defence of the numbering promise, and the index every chat lookup uses.
    UNIQUE KEY uniq_chats_application_number (chat_application_id, number),
    CONSTRAINT fk_chats_application FOREIGN KEY (chat_application_id) REFERENCES chat_applications (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE messages (
    id         BIGINT      NOT NULL AUTO_INCREMENT,
    chat_id    BIGINT      NOT NULL,
    number     BIGINT      NOT NULL,
    body       MEDIUMTEXT  NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uniq_messages_chat_number (chat_id, number),
    CONSTRAINT fk_messages_chat FOREIGN KEY (chat_id) REFERENCES chats (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
