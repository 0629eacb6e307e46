//! SQL both adapters share: MySQL and SQLite agree on `?` placeholders and on these statements.
//! Where the dialects differ (transactions, generated ids) the adapter says so.

/// A statement that must walk the `(parent, number)` unique index as a range. With bound
/// parameters and a non-covering select list MariaDB otherwise picks `ref` on the parent alone
/// and filters `number` row by row from the parent's first entry: a page deep into a chat of a
/// million messages read all of the entries before it. Each dialect gets its own hint; the
/// adapters pick theirs with `Hinted::get(Self::DIALECT)`.
macro_rules! hinted {
    ($name:ident, $head:literal, $table:literal, $index:literal, $tail:literal) => {
        pub const $name: Hinted = Hinted {
            mysql: concat!(
                $head,
                " FROM ",
                $table,
                " FORCE INDEX (",
                $index,
                ") ",
                $tail
            ),
            sqlite: concat!($head, " FROM ", $table, " INDEXED BY ", $index, " ", $tail),
        };
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    MySql,
    Sqlite,
}

/// One statement in both dialects' index-hint syntax.
pub struct Hinted {
    pub mysql: &'static str,
    pub sqlite: &'static str,
}

impl Hinted {
    pub const fn get(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::MySql => self.mysql,
            Dialect::Sqlite => self.sqlite,
        }
    }
}

// Tokens are looked up by their SHA-256 (`domain::token_hash`); `token` holds plain tokens only
// for rows written by the previous release (see migration 000003 and docs/security.md).
pub const APPLICATION_BY_TOKEN_HASH: &str = "SELECT id, name, chats_count, created_at, updated_at \
     FROM chat_applications WHERE token_hash = ?";
/// A row the previous release wrote during a rollout, not hashed yet.
pub const APPLICATION_BY_PLAIN_TOKEN: &str = "SELECT id, name, chats_count, created_at, updated_at \
     FROM chat_applications WHERE token = ? AND token_hash IS NULL";
/// The token the last rotation replaced, while its grace period lasts.
pub const APPLICATION_BY_PREVIOUS_TOKEN: &str = "SELECT id, name, chats_count, created_at, updated_at \
     FROM chat_applications WHERE previous_token_hash = ? AND previous_token_expires_at > ?";
pub const APPLICATION_BY_ID: &str = "SELECT id, name, chats_count, created_at, updated_at \
     FROM chat_applications WHERE id = ?";
pub const INSERT_APPLICATION: &str = "INSERT INTO chat_applications (token_hash, name, chats_count, created_at, updated_at) \
     VALUES (?, ?, 0, ?, ?)";
pub const RENAME_APPLICATION: &str =
    "UPDATE chat_applications SET name = ?, updated_at = ? WHERE id = ?";
/// Replaces the current token (hashed or, on a previous-release row, plain) and nothing else.
pub const ROTATE_TOKEN: &str = "UPDATE chat_applications SET token_hash = ?, token = NULL, \
            previous_token_hash = ?, previous_token_expires_at = ?, updated_at = ? \
     WHERE id = ? AND (token_hash = ? OR (token_hash IS NULL AND token = ?))";
pub const UNHASHED_TOKENS: &str = "SELECT id, token FROM chat_applications WHERE token_hash IS NULL AND token IS NOT NULL ORDER BY id LIMIT ?";
pub const SET_TOKEN_HASH: &str =
    "UPDATE chat_applications SET token_hash = ? WHERE id = ? AND token_hash IS NULL AND token = ?";
pub const FORGET_PLAIN_TOKENS: &str =
    "UPDATE chat_applications SET token = NULL WHERE token IS NOT NULL AND token_hash IS NOT NULL";

pub const INSERT_CHAT: &str = "INSERT INTO chats (chat_application_id, number, messages_count, created_at, updated_at) \
     VALUES (?, ?, 0, ?, ?)";
pub const CHAT_BY_TOKEN_HASH: &str = "SELECT c.id, c.chat_application_id AS application_id, c.number, c.messages_count, \
            c.created_at, c.updated_at \
     FROM chats c JOIN chat_applications a ON a.id = c.chat_application_id \
     WHERE a.token_hash = ? AND c.number = ?";
/// `CHAT_BY_TOKEN_HASH` without its `SELECT` keyword and last placeholder, for batched lookups:
/// `SELECT <k> AS k, ` + this + token hash + ` AND c.number = ` + number.
pub const CHAT_BY_TOKEN_HASH_PARTS: &str = "c.id, c.chat_application_id AS application_id, c.number, c.messages_count, \
            c.created_at, c.updated_at \
     FROM chats c JOIN chat_applications a ON a.id = c.chat_application_id \
     WHERE a.token_hash = ";
pub const CHAT_OF_APPLICATION: &str = "SELECT id, chat_application_id AS application_id, number, messages_count, \
            created_at, updated_at \
     FROM chats WHERE chat_application_id = ? AND number = ?";
hinted!(
    CHATS_AFTER,
    "SELECT id, chat_application_id AS application_id, number, messages_count, created_at, updated_at",
    "chats",
    "uniq_chats_application_number",
    "WHERE chat_application_id = ? AND number > ? ORDER BY number ASC LIMIT ?"
);
hinted!(
    CHATS_BEFORE,
    "SELECT id, chat_application_id AS application_id, number, messages_count, created_at, updated_at",
    "chats",
    "uniq_chats_application_number",
    "WHERE chat_application_id = ? AND number < ? ORDER BY number DESC LIMIT ?"
);
pub const MAX_CHAT_NUMBER: &str =
    "SELECT COALESCE(MAX(number), 0) FROM chats WHERE chat_application_id = ?";

pub const INSERT_MESSAGE: &str =
    "INSERT INTO messages (chat_id, number, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?)";
pub const MESSAGE: &str = "SELECT id, chat_id, number, body, version, created_at, updated_at \
     FROM messages WHERE chat_id = ? AND number = ?";
hinted!(
    MESSAGES_AFTER,
    "SELECT id, chat_id, number, body, version, created_at, updated_at",
    "messages",
    "uniq_messages_chat_number",
    "WHERE chat_id = ? AND number > ? ORDER BY number ASC LIMIT ?"
);
hinted!(
    MESSAGES_BEFORE,
    "SELECT id, chat_id, number, body, version, created_at, updated_at",
    "messages",
    "uniq_messages_chat_number",
    "WHERE chat_id = ? AND number < ? ORDER BY number DESC LIMIT ?"
);
pub const UPDATE_MESSAGE: &str = "UPDATE messages SET body = ?, updated_at = ?, version = version + 1 WHERE chat_id = ? AND number = ?";
pub const MAX_MESSAGE_NUMBER: &str =
    "SELECT COALESCE(MAX(number), 0) FROM messages WHERE chat_id = ?";

pub const INSERT_OUTBOX: &str = "INSERT INTO outbox (payload, created_at) VALUES (?, ?)";
pub const REPUBLISH_RETAINED: &str =
    "UPDATE outbox SET published_at = NULL WHERE published_at IS NOT NULL";
pub const OUTBOX_WAITING: &str = "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL";

pub const STATE: &str = "SELECT value FROM system_state WHERE name = ?";
pub const INSERT_STATE: &str =
    "INSERT INTO system_state (name, value, updated_at) VALUES (?, ?, ?)";
pub const SWAP_STATE: &str =
    "UPDATE system_state SET value = ?, updated_at = ? WHERE name = ? AND value = ?";

// Counting past a settled watermark: `h` is the highest number whose row is older than the
// settle horizon; rows up to it are final, rows past it are counted afresh each time.
hinted!(
    MESSAGES_SETTLED_MAX,
    "SELECT COALESCE(MAX(number), 0)",
    "messages",
    "uniq_messages_chat_number",
    "WHERE chat_id = ? AND number > ? AND created_at < ?"
);
pub const MESSAGES_COUNT_RANGE: &str =
    "SELECT COUNT(*) FROM messages WHERE chat_id = ? AND number > ? AND number <= ?";
pub const CHAT_COUNTS: &str =
    "SELECT counted_number, counted_messages, messages_count FROM chats WHERE id = ?";
/// Compare-and-set on the values the recount started from: a concurrent counter's write wins,
/// and this one recounts from what it wrote.
pub const UPDATE_CHAT_COUNTS: &str = "UPDATE chats SET counted_number = ?, counted_messages = ?, messages_count = ? \
     WHERE id = ? AND counted_number = ? AND counted_messages = ? AND messages_count = ?";
hinted!(
    CHATS_SETTLED_MAX,
    "SELECT COALESCE(MAX(number), 0)",
    "chats",
    "uniq_chats_application_number",
    "WHERE chat_application_id = ? AND number > ? AND created_at < ?"
);
pub const CHATS_COUNT_RANGE: &str =
    "SELECT COUNT(*) FROM chats WHERE chat_application_id = ? AND number > ? AND number <= ?";
pub const APPLICATION_COUNTS: &str =
    "SELECT counted_number, counted_chats, chats_count FROM chat_applications WHERE id = ?";
pub const UPDATE_APPLICATION_COUNTS: &str = "UPDATE chat_applications SET counted_number = ?, counted_chats = ?, chats_count = ? \
     WHERE id = ? AND counted_number = ? AND counted_chats = ? AND chats_count = ?";

pub const MESSAGES_BY_ID: &str = "SELECT id, chat_id, number, body, version, created_at, updated_at \
     FROM messages WHERE id > ? ORDER BY id LIMIT ?";
pub const CHAT_MESSAGES_BY_ID: &str = "SELECT id, chat_id, number, body, version, created_at, updated_at \
     FROM messages WHERE chat_id = ? AND id > ? ORDER BY id LIMIT ?";
pub const CHAT_IDS: &str = "SELECT id FROM chats WHERE id > ? ORDER BY id LIMIT ?";
pub const APPLICATION_IDS: &str =
    "SELECT id FROM chat_applications WHERE id > ? ORDER BY id LIMIT ?";
pub const COUNT_MESSAGES: &str = "SELECT COUNT(*) FROM messages";
pub const COUNT_CHATS: &str = "SELECT COUNT(*) FROM chats";
pub const COUNT_APPLICATIONS: &str = "SELECT COUNT(*) FROM chat_applications";
