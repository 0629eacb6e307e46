//! A deterministic corpus of message bodies for examples and benchmarks
//! (`examples/million.rs`, `chat-bench`): 4–15 words, a third from 20 common words, the rest
//! from a long tail of 50,000 × 7 rare ones (`w123x4`). xorshift, so two passes produce the
//! same text without a random-number dependency.

pub const COMMON: &[&str] = &[
    "hello", "world", "the", "a", "and", "message", "chat", "help", "please", "thanks", "meeting",
    "tomorrow", "today", "project", "release", "deploy", "search", "index", "review", "question",
];

pub struct Words(u64);

impl Default for Words {
    fn default() -> Self {
        Words(0x9E37_79B9_7F4A_7C15)
    }
}

impl Words {
    pub fn new() -> Words {
        Words::default()
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next message body.
    pub fn body(&mut self) -> String {
        let count = 4 + self.next() % 12;
        let words: Vec<String> = (0..count)
            .map(|_| {
                let pick = self.next();
                if pick.is_multiple_of(3) {
                    COMMON[(pick / 3 % COMMON.len() as u64) as usize].to_string()
                } else {
                    format!("w{}x{}", pick % 50_000, pick % 7)
                }
            })
            .collect();
        words.join(" ")
    }
}
