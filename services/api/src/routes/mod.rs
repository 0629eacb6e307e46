pub mod applications;
pub mod chats;
pub mod health;
pub mod messages;
pub mod search;
pub mod stream;
