//! The pairing worker: reads register requests from the stream through the
//! consumer group, moves them into the waiting pool and pairs waiting users
//! with the atomic pairing script. Any number of workers may run at once.

mod backoff;

pub use backoff::Backoff;

use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;
use crate::store::register_reader::{RegisterEntry, RegisterReader};
use crate::store::{PairSettings, Store, StoreError};
use service::shutdown::Shutdown;

/// What a worker needs to know, taken from [`Config`].
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub claim_idle: Duration,
    pub purge_interval: Duration,
    pub read_batch: u64,
    pub pairing: PairSettings,
}

impl From<&Config> for WorkerSettings {
    fn from(c: &Config) -> Self {
        WorkerSettings {
            backoff_initial: Config::ms(c.backoff_initial_ms),
            backoff_max: Config::ms(c.backoff_max_ms),
            claim_idle: Config::ms(c.claim_idle_ms),
            purge_interval: Config::ms(c.purge_interval_ms),
            read_batch: c.read_batch,
            pairing: PairSettings {
                pairs_per_call: c.pairs_per_call,
                room_ttl: Duration::from_secs(c.room_ttl_secs),
                last_partner: Duration::from_secs(c.last_partner_secs),
                rematch_after: Config::ms(c.rematch_after_ms),
                interest_wait: Config::ms(c.interest_wait_ms),
                region_wait: Config::ms(c.region_wait_ms),
                socket_grace: Config::ms(c.socket_grace_ms),
                notice_ttl: Duration::from_secs(c.notice_ttl_secs),
            },
        }
    }
}

/// One pairing worker.
pub struct Worker {
    store: Store,
    /// The blocking stream read, on its own connection.
    reader: RegisterReader,
    consumer: String,
    settings: WorkerSettings,
}

impl Worker {
    /// `reader` must be a Redis connection of its own (the read blocks).
    pub fn new(store: Store, reader: fred::prelude::Client, settings: WorkerSettings) -> Self {
        let consumer = format!("worker-{}", ulid::Ulid::new());
        Worker {
            reader: RegisterReader::new(reader, consumer.clone(), settings.read_batch),
            store,
            consumer,
            settings,
        }
    }

    /// Run until `shutdown`. Never returns early on a Redis error: an outage
    /// is waited out (the clients reconnect by themselves) and work resumes.
    pub async fn run(self, mut shutdown: Shutdown) {
        tracing::info!(consumer = %self.consumer, "worker started");
        let mut backoff = Backoff::new(self.settings.backoff_initial, self.settings.backoff_max);
        let mut next_upkeep = Instant::now();
        // When some waiting user's wishes relax: a pairing run is due then.
        let mut relax_at: Option<Instant> = None;
        if let Err(e) = self.store.ensure_group().await {
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
            let mut block = backoff
                .current()
                .min(next_upkeep.saturating_duration_since(Instant::now()));
            if let Some(at) = relax_at {
                block = block.min(at.saturating_duration_since(Instant::now()));
            }
            let block = block.max(Duration::from_millis(1));
            let read = tokio::select! {
                r = self.reader.read(block) => r,
                _ = shutdown.wait() => break,
            };
            let mut active = false;
            let mut entries = Vec::new();
            match read {
                Ok(read) => {
                    if !read.is_empty() {
                        active = true;
                        record_stream_wait(&read);
                        entries = read;
                    }
                }
                Err(e) => {
                    if e.details().contains("NOGROUP") {
                        // Redis came back empty: the group is gone.
                        let _ = self.store.ensure_group().await;
                    } else {
                        tracing::warn!(error = %e, "register stream read failed; retrying");
                        tokio::time::sleep(backoff.current()).await;
                    }
                }
            }
            match self.pair_all(&entries).await {
                Ok((made, relax_in)) => {
                    relax_at = relax_in.map(|d| Instant::now() + d);
                    if made > 0 {
                        metrics::counter!(service::metrics::MATCHES).increment(made as u64);
                        active = true
                    }
                }
                // The entries stay pending: taken over after --claim-idle-ms.
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

    /// Move `entries` into the pool (the first call does it, acknowledging
    /// them too), then make pairs until every fresh user was tried; the
    /// pairs made, and when a run is due again because wishes relax.
    pub async fn pair_all(
        &self,
        entries: &[RegisterEntry],
    ) -> Result<(usize, Option<Duration>), StoreError> {
        let mut total = 0;
        let mut entries = entries;
        let stage = &crate::stages::stages().pairing;
        loop {
            let started = std::time::Instant::now();
            let run = self
                .store
                .enqueue_and_pair(entries, &self.settings.pairing)
                .await?;
            stage.record(started.elapsed().as_secs_f64());
            entries = &[];
            total += run.pairs.len();
            if run.fresh_left == 0 {
                return Ok((total, run.relax_in));
            }
        }
    }

    /// Periodic duties: take over entries a dead worker left pending, and
    /// purge the users of dead gateways.
    async fn upkeep(&self) {
        if let Err(e) = self.take_over_pending().await {
            if e.details().contains("NOGROUP") {
                let _ = self.store.ensure_group().await;
            } else {
                tracing::warn!(error = %e, "taking over pending entries failed");
            }
        }
        if let Err(e) = self.store.trim_register_stream().await {
            if !e.details().contains("NOGROUP") && !e.details().contains("no such key") {
                tracing::warn!(error = %e, "trimming the register stream failed");
            }
        }
        match self.store.purge_dead_gateways().await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "purged users of dead gateways"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purge failed"),
        }
        if let Ok(size) = self.store.pool_size().await {
            metrics::gauge!(service::metrics::POOL_SIZE).set(size as f64);
        }
    }

    async fn take_over_pending(&self) -> Result<(), StoreError> {
        let mut cursor = "0-0".to_string();
        // Bounded: at most a few batches per upkeep round.
        for _ in 0..8 {
            let (next, entries) = self
                .store
                .take_over_pending(
                    &self.consumer,
                    self.settings.claim_idle,
                    &cursor,
                    self.settings.read_batch,
                )
                .await?;
            if !entries.is_empty() {
                tracing::info!(count = entries.len(), "took over pending register entries");
                // Into the pool and paired, as a batch read is; a failure
                // leaves them pending, to be taken over again.
                if let Err(e) = self.pair_all(&entries).await {
                    tracing::warn!(error = %e, "pairing taken-over entries failed; they stay pending");
                }
            }
            if next == "0-0" || next.is_empty() {
                break;
            }
            cursor = next;
        }
        Ok(())
    }
}

/// The `stream_wait` stage of each entry: from the gateway's stamp to now
/// (wall clocks; entries the scripts wrote carry no stamp).
fn record_stream_wait(entries: &[RegisterEntry]) {
    let now_us = service::clock::now_us();
    let stage = &crate::stages::stages().stream_wait;
    for stamp in entries.iter().filter_map(|e| e.stamp_us) {
        stage.record(service::clock::secs_since_us(stamp, now_us));
    }
}
