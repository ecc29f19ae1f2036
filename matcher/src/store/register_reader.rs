//! The blocking read of the register stream. `XREADGROUP … BLOCK` holds its
//! connection for the length of the block, so it has a client of its own.

use std::time::Duration;

use fred::prelude::*;
use service::stream_reply::{self, StreamEntry};
use wire::internal::{self, RegisterRequest, REGISTER_FIELD, REGISTER_STAMP_FIELD};
use wire::keys;

use super::StoreError;

/// A register request read from the stream.
#[derive(Debug, Clone)]
pub struct RegisterEntry {
    pub id: String,
    /// `None` when the entry does not decode (it is acknowledged and dropped).
    pub request: Option<RegisterRequest>,
    /// When the gateway accepted the register, µs since the Unix epoch (absent
    /// in the entries the scripts write).
    pub stamp_us: Option<u64>,
}

impl From<StreamEntry> for RegisterEntry {
    fn from(e: StreamEntry) -> Self {
        let request = e
            .field(REGISTER_FIELD)
            .and_then(|b| internal::decode::<RegisterRequest>(b).ok());
        let stamp_us = e
            .field(REGISTER_STAMP_FIELD)
            .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok());
        RegisterEntry {
            id: e.id,
            request,
            stamp_us,
        }
    }
}

/// One worker's reader of the register stream.
pub struct RegisterReader {
    client: Client,
    consumer: String,
    batch: u64,
}

impl RegisterReader {
    /// `client` must be a connection of its own (it blocks).
    pub fn new(client: Client, consumer: impl Into<String>, batch: u64) -> Self {
        RegisterReader {
            client,
            consumer: consumer.into(),
            batch,
        }
    }

    /// New entries for this consumer, waiting up to `block` for the first.
    pub async fn read(&self, block: Duration) -> Result<Vec<RegisterEntry>, StoreError> {
        let block_ms = block.as_millis().max(1) as u64;
        let read = self.client.xreadgroup::<Value, _, _, _, _>(
            keys::WORKER_GROUP,
            self.consumer.as_str(),
            Some(self.batch),
            Some(block_ms),
            false,
            keys::register_stream(),
            ">",
        );
        // Bound the call: a read that outlives its BLOCK by seconds is stuck.
        let reply = match tokio::time::timeout(block + Duration::from_secs(5), read).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(fred::error::Error::new(
                    fred::error::ErrorKind::Timeout,
                    "stream read timed out",
                ))
            }
        };
        Ok(stream_reply::read_entries(reply)
            .into_iter()
            .map(RegisterEntry::from)
            .collect())
    }
}
