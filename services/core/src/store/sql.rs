//! SQL both adapters share: MySQL and SQLite agree on `?` placeholders and on these statements.
//! Where the dialects differ (transactions, generated ids) the adapter says so.

pub const APPLICATION_BY_TOKEN: &str = "SELECT id, token, name, chats_count, created_at, updated_at \
     FROM chat_applications WHERE token = ?";
pub const APPLICATION_BY_ID: &str = "SELECT id, token, name, chats_count, created_at, updated_at \
     FROM chat_applications WHERE id = ?";
pub const INSERT_APPLICATION: &str = "INSERT INTO chat_applications (token, name, chats_count, created_at, updated_at) \
     VALUES (?, ?, 0, ?, ?)";
pub const RENAME_APPLICATION: &str =
    "UPDATE chat_applications SET name = ?, updated_at = ? WHERE id = ?";

pub const INSERT_CHAT: &str = "INSERT INTO chats (chat_application_id, number, messages_count, created_at, updated_at) \
     VALUES (?, ?, 0, ?, ?)";
pub const CHAT_BY_TOKEN: &str = "SELECT c.id, c.chat_application_id AS application_id, c.number, c.messages_count, \
            c.created_at, c.updated_at \
     FROM chats c JOIN chat_applications a ON a.id = c.chat_application_id \
     WHERE a.token = ? AND c.number = ?";
pub const CHATS_AFTER: &str = "SELECT id, chat_application_id AS application_id, number, messages_count, created_at, updated_at \
     FROM chats WHERE chat_application_id = ? AND number > ? ORDER BY number ASC LIMIT ?";
pub const CHATS_BEFORE: &str = "SELECT id, chat_application_id AS application_id, number, messages_count, created_at, updated_at \
     FROM chats WHERE chat_application_id = ? AND number < ? ORDER BY number DESC LIMIT ?";
pub const MAX_CHAT_NUMBER: &str =
    "SELECT COALESCE(MAX(number), 0) FROM chats WHERE chat_application_id = ?";

pub const INSERT_MESSAGE: &str =
    "INSERT INTO messages (chat_id, number, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?)";
pub const MESSAGE: &str = "SELECT id, chat_id, number, body, created_at, updated_at \
     FROM messages WHERE chat_id = ? AND number = ?";
pub const MESSAGES_AFTER: &str = "SELECT id, chat_id, number, body, created_at, updated_at \
     FROM messages WHERE chat_id = ? AND number > ? ORDER BY number ASC LIMIT ?";
pub const MESSAGES_BEFORE: &str = "SELECT id, chat_id, number, body, created_at, updated_at \
     FROM messages WHERE chat_id = ? AND number < ? ORDER BY number DESC LIMIT ?";
pub const UPDATE_MESSAGE: &str =
    "UPDATE messages SET body = ?, updated_at = ? WHERE chat_id = ? AND number = ?";
pub const MAX_MESSAGE_NUMBER: &str =
    "SELECT COALESCE(MAX(number), 0) FROM messages WHERE chat_id = ?";
