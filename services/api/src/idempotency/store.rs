//! What an idempotency store keeps per key, and the two adapters behind one enum: in-process
//! (embedded mode) and Redis (shared by every replica).

use serde::{Deserialize, Serialize};

use super::local::LocalStore;
use super::redis::RedisStore;

/// A first response, kept to be replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub status: u16,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub body: String,
}

impl Stored {
    pub fn size(&self) -> usize {
        self.body.len()
            + self.content_type.as_ref().map_or(0, String::len)
            + self.location.as_ref().map_or(0, String::len)
    }
}

/// One key's entry: a marker while the first request runs, then its response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Entry {
    InFlight {
        owner: String,
        fingerprint: String,
    },
    Done {
        fingerprint: String,
        response: Stored,
    },
}

/// What `begin` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Begin {
    /// The key was free; this request now owns it.
    Started,
    InFlight {
        same_request: bool,
    },
    Done {
        same_request: bool,
        response: Stored,
    },
}

impl Begin {
    pub fn from_existing(existing: Option<Entry>, fingerprint: &str) -> Begin {
        match existing {
            None => Begin::Started,
            Some(Entry::InFlight { fingerprint: f, .. }) => Begin::InFlight {
                same_request: f == fingerprint,
            },
            Some(Entry::Done {
                fingerprint: f,
                response,
            }) => Begin::Done {
                same_request: f == fingerprint,
                response,
            },
        }
    }
}

pub enum Store {
    Local(LocalStore),
    Redis(RedisStore),
}

/// The store's failure: Redis did not answer (or answered garbage).
#[derive(Debug)]
pub struct Unavailable(pub String);

impl Store {
    /// Claims `key` for `marker` (an `InFlight` entry) for `in_flight_ms`, unless the key is
    /// taken; answers what it found.
    pub async fn begin(
        &self,
        key: &str,
        marker: &Entry,
        in_flight_ms: u64,
    ) -> Result<Begin, Unavailable> {
        let Entry::InFlight { fingerprint, .. } = marker else {
            unreachable!("begin takes an in-flight marker");
        };
        let existing = match self {
            Store::Local(s) => s.begin(key, marker, in_flight_ms),
            Store::Redis(s) => s.begin(key, marker, in_flight_ms).await?,
        };
        Ok(Begin::from_existing(existing, fingerprint))
    }

    /// Replaces our marker with the response, kept `ttl_ms`. A marker that expired and was
    /// claimed by another request is left alone.
    pub async fn finish(
        &self,
        key: &str,
        marker: &Entry,
        done: &Entry,
        ttl_ms: u64,
    ) -> Result<(), Unavailable> {
        match self {
            Store::Local(s) => {
                s.finish(key, marker, done, ttl_ms);
                Ok(())
            }
            Store::Redis(s) => s.finish(key, marker, done, ttl_ms).await,
        }
    }

    /// Removes our marker, so a retry runs the request again.
    pub async fn abandon(&self, key: &str, marker: &Entry) -> Result<(), Unavailable> {
        match self {
            Store::Local(s) => {
                s.abandon(key, marker);
                Ok(())
            }
            Store::Redis(s) => s.abandon(key, marker).await,
        }
    }
}
