//! The pairing worker: reads register requests from the stream through the
//! consumer group, moves them into the waiting pool and pairs waiting users
//! with the atomic pairing script. Any number of workers may run at once.

mod backoff;

pub use backoff::Backoff;

use std::time::Duration;

use bytes::Bytes;
use fred::prelude::*;
use tokio::time::Instant;
use wire::internal::{self, RegisterRequest, REGISTER_FIELD};
use wire::keys;

use crate::config::Config;
use crate::scripts::{self, Scripts};
use service::shutdown::Shutdown;

/// What a worker needs to know, taken from [`Config`].
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub claim_idle: Duration,
    pub purge_interval: Duration,
    pub read_batch: u64,
    pub pairs_per_call: usize,
    pub room_ttl: Duration,
    pub last_partner: Duration,
    pub socket_grace: Duration,
    pub notice_ttl: Duration,
}

impl From<&Config> for WorkerSettings {
    fn from(c: &Config) -> Self {
        WorkerSettings {
            backoff_initial: Config::ms(c.backoff_initial_ms),
            backoff_max: Config::ms(c.backoff_max_ms),
            claim_idle: Config::ms(c.claim_idle_ms),
            purge_interval: Config::ms(c.purge_interval_ms),
            read_batch: c.read_batch.max(1),
            pairs_per_call: c.pairs_per_call.max(1),
            room_ttl: Duration::from_secs(c.room_ttl_secs.max(1)),
            last_partner: Duration::from_secs(c.last_partner_secs),
            socket_grace: Config::ms(c.socket_grace_ms),
            notice_ttl: Duration::from_secs(c.notice_ttl_secs.max(1)),
        }
    }
}

/// One pairing worker.
pub struct Worker {
    /// Ordinary commands (scripts, acks).
    redis: Client,
    /// The blocking stream read, on its own connection.
    reader: Client,
    scripts: Scripts,
    consumer: String,
    settings: WorkerSettings,
}

/// A stream entry as read: id and fields.
type RawEntry = (String, std::collections::HashMap<String, Bytes>);

/// The entries of an `XREADGROUP` reply, whatever its shape: nil (nothing
/// new), `[[stream, [[id, [field, value, ..]], ..]], ..]` (RESP2), or a map
/// of stream to entries (RESP3).
fn stream_entries(reply: Value) -> Vec<RawEntry> {
    let streams: Vec<Value> = match reply {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .collect(),
        Value::Map(map) => map.inner().into_values().collect(),
        _ => Vec::new(),
    };
    streams
        .into_iter()
        .filter_map(|entries| match entries {
            Value::Array(entries) => Some(entries),
            _ => None,
        })
        .flatten()
        .filter_map(entry)
        .collect()
}

/// One `[id, [field, value, ..]]` entry.
fn entry(value: Value) -> Option<RawEntry> {
    let Value::Array(mut parts) = value else {
        return None;
    };
    if parts.len() != 2 {
        return None;
    }
    let fields = parts.pop()?;
    let id = parts.pop()?.as_string()?;
    let mut map = std::collections::HashMap::new();
    if let Value::Array(flat) = fields {
        for kv in flat.chunks_exact(2) {
            if let (Some(k), Some(v)) = (kv[0].as_string(), kv[1].as_bytes()) {
                map.insert(k, Bytes::copy_from_slice(v));
            }
        }
    }
    Some((id, map))
}

/// A register request read from the stream.
struct Entry {
    id: String,
    request: Option<RegisterRequest>,
}

impl Worker {
    pub fn new(redis: Client, reader: Client, settings: WorkerSettings) -> Self {
        Worker {
            redis,
            reader,
            scripts: Scripts::default(),
            consumer: format!("worker-{}", ulid::Ulid::new()),
            settings,
        }
    }

    /// Run until `shutdown`. Never returns early on a Redis error: an outage
    /// is waited out (the clients reconnect by themselves) and work resumes.
    pub async fn run(self, mut shutdown: Shutdown) {
        tracing::info!(consumer = %self.consumer, "worker started");
        let mut backoff = Backoff::new(self.settings.backoff_initial, self.settings.backoff_max);
        let mut next_upkeep = Instant::now();
        if let Err(e) = self.ensure_group().await {
            tracing::warn!(error = %e, "could not create the consumer group yet");
        }
        while !shutdown.is_triggered() {
            let now = Instant::now();
            if now >= next_upkeep {
                self.upkeep().await;
                next_upkeep = now + self.settings.purge_interval;
            }
            // Block until a register arrives, for at most the back-off, and
            // never past the next upkeep.
            let block = backoff
                .current()
                .min(next_upkeep.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(1));
            let read = tokio::select! {
                r = self.read_new(block) => r,
                _ = shutdown.wait() => break,
            };
            let mut active = false;
            match read {
                Ok(entries) => {
                    if !entries.is_empty() {
                        active = true;
                        self.process(entries).await;
                    }
                }
                Err(e) => {
                    if e.details().contains("NOGROUP") {
                        // Redis came back empty: the group is gone.
                        let _ = self.ensure_group().await;
                    } else {
                        tracing::warn!(error = %e, "register stream read failed; retrying");
                        tokio::time::sleep(backoff.current()).await;
                    }
                }
            }
            match self.pair_all().await {
                Ok(made) if made > 0 => {
                    metrics::counter!(service::metrics::MATCHES).increment(made as u64);
                    active = true
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pairing failed; retrying"),
            }
            if active {
                backoff.on_activity();
            } else {
                backoff.on_idle();
            }
        }
        tracing::info!(consumer = %self.consumer, "worker stopped");
    }

    /// Create the consumer group (and the stream) if missing. Starts at `0`
    /// so that entries written before the group existed (after a Redis
    /// restart, gateways re-register their waiting users) are read too.
    async fn ensure_group(&self) -> Result<(), Error> {
        match self
            .redis
            .xgroup_create::<(), _, _, _>(keys::register_stream(), keys::WORKER_GROUP, "0", true)
            .await
        {
            Err(e) if !e.details().contains("BUSYGROUP") => Err(e),
            _ => Ok(()),
        }
    }

    async fn read_new(&self, block: Duration) -> Result<Vec<Entry>, Error> {
        let block_ms = block.as_millis().max(1) as u64;
        // Read as a raw value and parse it here: fred's typed stream
        // conversions reject some shapes of a valid reply.
        let read = self.reader.xreadgroup::<Value, _, _, _, _>(
            keys::WORKER_GROUP,
            self.consumer.as_str(),
            Some(self.settings.read_batch),
            Some(block_ms),
            false,
            keys::register_stream(),
            ">",
        );
        // Bound the call: a read that outlives its BLOCK by seconds is stuck.
        let reply = match tokio::time::timeout(block + Duration::from_secs(5), read).await {
            Ok(r) => r?,
            Err(_) => return Err(Error::new(ErrorKind::Timeout, "stream read timed out")),
        };
        Ok(stream_entries(reply)
            .into_iter()
            .map(|(id, fields)| Entry::new(id, fields))
            .collect())
    }

    /// Enqueue a batch and acknowledge it, in one script. A failure leaves
    /// the entries pending, to be claimed again (by this or another worker).
    async fn process(&self, entries: Vec<Entry>) {
        let mut args: Vec<String> = vec![
            keys::matcher_prefix(),
            keys::WORKER_GROUP.to_string(),
            entries.len().to_string(),
        ];
        args.extend(entries.iter().map(|e| e.id.clone()));
        for e in &entries {
            match &e.request {
                Some(r) => {
                    args.push(r.user.clone());
                    args.push(r.reg.clone());
                }
                None => tracing::warn!(id = %e.id, "undecodable register entry dropped"),
            }
        }
        if let Err(e) = scripts::run::<i64, _, _>(
            &self.scripts.enqueue,
            &self.redis,
            vec![keys::pool(), keys::register_stream()],
            args,
        )
        .await
        {
            tracing::warn!(error = %e, "enqueue failed; entries stay pending");
        }
    }

    /// Make pairs until fewer than two usable users wait.
    pub async fn pair_all(&self) -> Result<usize, Error> {
        let mut total = 0;
        loop {
            let made = pair_once(&self.scripts, &self.redis, &self.settings)
                .await?
                .len();
            total += made;
            if made < self.settings.pairs_per_call {
                return Ok(total);
            }
        }
    }

    /// Periodic duties: take over entries a dead worker left pending, and
    /// purge the users of dead gateways.
    async fn upkeep(&self) {
        if let Err(e) = self.reclaim().await {
            if e.details().contains("NOGROUP") {
                let _ = self.ensure_group().await;
            } else {
                tracing::warn!(error = %e, "reclaiming pending entries failed");
            }
        }
        match scripts::run::<i64, _, _>(
            &self.scripts.purge,
            &self.redis,
            vec![keys::gateways(), keys::pool()],
            vec![keys::matcher_prefix()],
        )
        .await
        {
            Ok(n) if n > 0 => tracing::info!(purged = n, "purged users of dead gateways"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purge failed"),
        }
        if let Ok(size) = self.redis.zcard::<u64, _>(keys::pool()).await {
            metrics::gauge!(service::metrics::POOL_SIZE).set(size as f64);
        }
    }

    async fn reclaim(&self) -> Result<(), Error> {
        let mut cursor = "0-0".to_string();
        // Bounded: at most a few batches per upkeep round.
        for _ in 0..8 {
            let reply: Value = self
                .redis
                .xautoclaim(
                    keys::register_stream(),
                    keys::WORKER_GROUP,
                    self.consumer.as_str(),
                    self.settings.claim_idle.as_millis() as u64,
                    cursor.as_str(),
                    Some(self.settings.read_batch),
                    false,
                )
                .await?;
            // [next cursor, [entries], (Redis 7: [deleted ids])]
            let Value::Array(mut parts) = reply else {
                break;
            };
            parts.truncate(2);
            let claimed: Vec<RawEntry> = match parts.pop() {
                Some(Value::Array(entries)) => entries.into_iter().filter_map(entry).collect(),
                _ => Vec::new(),
            };
            let next = parts.pop().and_then(|v| v.as_string()).unwrap_or_default();
            if !claimed.is_empty() {
                tracing::info!(count = claimed.len(), "took over pending register entries");
                self.process(
                    claimed
                        .into_iter()
                        .map(|(id, fields)| Entry::new(id, fields))
                        .collect(),
                )
                .await;
            }
            if next == "0-0" || next.is_empty() {
                break;
            }
            cursor = next;
        }
        Ok(())
    }
}

/// One run of the pairing script: up to `pairs_per_call` pairs, returned as
/// (initiator, responder) user keys.
pub async fn pair_once(
    scripts: &Scripts,
    redis: &Client,
    s: &WorkerSettings,
) -> Result<Vec<(String, String)>, Error> {
    let mut args: Vec<String> = vec![
        keys::matcher_prefix(),
        format!("{}:inbox:", keys::PREFIX),
        s.room_ttl.as_millis().to_string(),
        s.last_partner.as_millis().to_string(),
        s.socket_grace.as_millis().to_string(),
        s.notice_ttl.as_millis().to_string(),
    ];
    args.extend((0..s.pairs_per_call).map(|_| ulid::Ulid::new().to_string()));
    let flat: Vec<String> = scripts::run(&scripts.pair, redis, vec![keys::pool()], args).await?;
    Ok(flat
        .chunks_exact(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect())
}

impl Entry {
    fn new(id: String, fields: std::collections::HashMap<String, Bytes>) -> Self {
        let request = fields
            .get(REGISTER_FIELD)
            .and_then(|b| internal::decode::<RegisterRequest>(b).ok());
        Entry { id, request }
    }
}
