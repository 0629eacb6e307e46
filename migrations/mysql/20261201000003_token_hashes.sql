-- Expand step of hashed tokens (docs/security.md). The previous release keeps working on this
-- schema: it still writes and reads `token`; this release writes only `token_hash` and reads
-- both. `chat-system migrate --forget-plain-tokens` (once no previous-release replica runs)
-- clears the plain column; a later release drops it.
ALTER TABLE chat_applications
    MODIFY COLUMN token CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
    -- Lowercase hex SHA-256 of the token: what every lookup compares.
    ADD COLUMN token_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    -- The token replaced by the last rotation, accepted until previous_token_expires_at.
    ADD COLUMN previous_token_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    ADD COLUMN previous_token_expires_at DATETIME(6) NULL,
    ADD UNIQUE KEY uniq_chat_applications_token_hash (token_hash),
    ADD KEY idx_chat_applications_previous_token_hash (previous_token_hash);

-- Rows written from here on by previous-release replicas are hashed by the running release
-- (`migrate`, and the counter role every minute).
UPDATE chat_applications SET token_hash = SHA2(token, 256) WHERE token_hash IS NULL AND token IS NOT NULL;
