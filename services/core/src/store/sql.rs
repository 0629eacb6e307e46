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
     FROM chat_applications WHERE token_hash = ? AND deleted_at IS NULL";
/// A row the previous release wrote during a rollout, not hashed yet.
pub const APPLICATION_BY_PLAIN_TOKEN: &str = "SELECT id, name, chats_count, created_at, updated_at \
     FROM chat_applications WHERE token = ? AND token_hash IS NULL AND deleted_at IS NULL";
/// The token the last rotation replaced, while its grace period lasts.
pub const APPLICATION_BY_PREVIOUS_TOKEN: &str = "SELECT id, name, chats_count, created_at, updated_at \
     FROM chat_applications WHERE previous_token_hash = ? AND previous_token_expires_at > ? AND deleted_at IS NULL";
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
     WHERE a.token_hash = ? AND c.number = ? AND a.deleted_at IS NULL AND c.deleted_at IS NULL";
/// `CHAT_BY_TOKEN_HASH` without its `SELECT` keyword and last placeholder, for batched lookups:
/// `SELECT <k> AS k, ` + this + token hash + ` AND c.number = ` + number.
pub const CHAT_BY_TOKEN_HASH_PARTS: &str = "c.id, c.chat_application_id AS application_id, c.number, c.messages_count, \
            c.created_at, c.updated_at \
     FROM chats c JOIN chat_applications a ON a.id = c.chat_application_id \
     WHERE a.deleted_at IS NULL AND c.deleted_at IS NULL AND a.token_hash = ";
pub const CHAT_OF_APPLICATION: &str = "SELECT id, chat_application_id AS application_id, number, messages_count, \
            created_at, updated_at \
     FROM chats WHERE chat_application_id = ? AND number = ? AND deleted_at IS NULL";
hinted!(
    CHATS_AFTER,
    "SELECT id, chat_application_id AS application_id, number, messages_count, created_at, updated_at",
    "chats",
    "uniq_chats_application_number",
    "WHERE chat_application_id = ? AND number > ? AND deleted_at IS NULL ORDER BY number ASC LIMIT ?"
);
hinted!(
    CHATS_BEFORE,
    "SELECT id, chat_application_id AS application_id, number, messages_count, created_at, updated_at",
    "chats",
    "uniq_chats_application_number",
    "WHERE chat_application_id = ? AND number < ? AND deleted_at IS NULL ORDER BY number DESC LIMIT ?"
);
/// (highest number in use, highest number ever deleted): re-seeding starts above both.
pub const MAX_CHAT_NUMBER: &str = "SELECT \
     (SELECT COALESCE(MAX(number), 0) FROM chats WHERE chat_application_id = ?), \
     COALESCE((SELECT chat_floor FROM chat_applications WHERE id = ?), 0)";

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
pub const MAX_MESSAGE_NUMBER: &str = "SELECT \
     (SELECT COALESCE(MAX(number), 0) FROM messages WHERE chat_id = ?), \
     COALESCE((SELECT message_floor FROM chats WHERE id = ?), 0)";

// Deletion (see docs/architecture.md, "Deletion and purge"). The version bump locks the row
// first, so a concurrent edit either commits before (and the deletion's version is above it)
// or finds no row.
pub const BUMP_MESSAGE_VERSION: &str =
    "UPDATE messages SET version = version + 1 WHERE chat_id = ? AND number = ?";
pub const DELETE_MESSAGE: &str = "DELETE FROM messages WHERE chat_id = ? AND number = ?";
/// Raises the floor to the deleted number and takes the row out of the counts: out of the
/// settled part when the watermark had passed it, and always out of `messages_count`, so a
/// counter's compare-and-set started before this fails and it recounts.
pub const MESSAGE_DELETED_COUNTS: &str = "UPDATE chats SET \
     message_floor = CASE WHEN message_floor < ? THEN ? ELSE message_floor END, \
     counted_messages = counted_messages - (CASE WHEN counted_number >= ? THEN 1 ELSE 0 END), \
     messages_count = messages_count - 1 \
     WHERE id = ?";
pub const HIDE_CHAT: &str = "UPDATE chats SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL";
/// [`MESSAGE_DELETED_COUNTS`] for a hidden chat in its application.
pub const CHAT_DELETED_COUNTS: &str = "UPDATE chat_applications SET \
     chat_floor = CASE WHEN chat_floor < ? THEN ? ELSE chat_floor END, \
     counted_chats = counted_chats - (CASE WHEN counted_number >= ? THEN 1 ELSE 0 END), \
     chats_count = chats_count - 1 \
     WHERE id = ?";
pub const HIDE_APPLICATION: &str =
    "UPDATE chat_applications SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL";

// The purge. Hidden rows are found through the `deleted_at` indexes.
pub const HIDDEN_APPLICATIONS: &str = "SELECT id, deleted_at FROM chat_applications \
     WHERE deleted_at IS NOT NULL ORDER BY id LIMIT ?";
/// The chats of a hidden application are hidden as of the application's deletion.
pub const HIDE_CHATS_OF: &str = "UPDATE chats SET deleted_at = ? \
     WHERE chat_application_id = ? AND deleted_at IS NULL";
pub const HIDDEN_CHATS: &str = "SELECT id FROM chats \
     WHERE deleted_at IS NOT NULL AND deleted_at < ? ORDER BY id LIMIT ?";
pub const IS_HIDDEN_CHAT: &str = "SELECT id FROM chats WHERE id = ? AND deleted_at IS NOT NULL";
pub const PURGE_CHAT: &str = "DELETE FROM chats WHERE id = ? AND deleted_at IS NOT NULL";
pub const PURGE_APPLICATION: &str = "DELETE FROM chat_applications \
     WHERE id = ? AND deleted_at IS NOT NULL \
     AND NOT EXISTS (SELECT 1 FROM chats WHERE chat_application_id = ?)";

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
/// Hidden chats are not counted (hiding one took it out of the counts already).
pub const CHATS_COUNT_RANGE: &str = "SELECT COUNT(*) FROM chats \
     WHERE chat_application_id = ? AND number > ? AND number <= ? AND deleted_at IS NULL";
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
