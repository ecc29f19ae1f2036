//! What a worker asks of Redis: the consumer group, moving registrations
//! into the pool, pairing, taking over abandoned entries, purging the users
//! of dead gateways.

use std::time::Duration;

use fred::prelude::*;
use wire::keys;

use super::register_reader::RegisterEntry;
use super::{Store, StoreError};
use service::redis_conn::run_script as run;

/// What one run of the pairing script did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRun {
    /// The pairs made, as (initiator, responder) user keys.
    pub pairs: Vec<(String, String)>,
    /// Users still to be tried as the first of a pair: run again.
    pub fresh_left: u64,
    /// When some waiting user's wishes relax next (a run is due then).
    pub relax_in: Option<Duration>,
}

/// How the pairing script pairs.
#[derive(Debug, Clone)]
pub struct PairSettings {
    pub pairs_per_call: usize,
    pub room_ttl: Duration,
    /// How long the partner a user just left is not given to them again.
    pub last_partner: Duration,
    /// ... unless both have waited this long.
    pub rematch_after: Duration,
    /// How long interests and language must be shared (non-strict users).
    pub interest_wait: Duration,
    /// How long the same region is required (when both have one).
    pub region_wait: Duration,
    pub socket_grace: Duration,
    pub notice_ttl: Duration,
}

impl Store {
    /// Create the consumer group (and the stream) if missing. Starts at `0`
    /// so that entries written before the group existed (after a Redis
    /// restart, gateways register their waiting users again) are read too.
    pub async fn ensure_group(&self) -> Result<(), StoreError> {
        match self
            .redis
            .xgroup_create::<(), _, _, _>(keys::register_stream(), keys::WORKER_GROUP, "0", true)
            .await
        {
            Err(e) if !e.details().contains("BUSYGROUP") => Err(e),
            _ => Ok(()),
        }
    }

    /// Move `entries` into the pool (with the users' wishes, and when they
    /// relax under `s`) and acknowledge them, then make up to
    /// `pairs_per_call` pairs, in one script run: one round trip per batch
    /// (no entries: pairing only). On failure the entries stay pending, to
    /// be taken over.
    pub async fn enqueue_and_pair(
        &self,
        entries: &[RegisterEntry],
        s: &PairSettings,
    ) -> Result<PairRun, StoreError> {
        let mut args: Vec<Value> = [
            s.room_ttl.as_millis(),
            s.last_partner.as_millis(),
            s.socket_grace.as_millis(),
            s.notice_ttl.as_millis(),
            s.rematch_after.as_millis(),
            s.interest_wait.as_millis(),
            s.region_wait.as_millis(),
            u128::from(rand::random::<u32>()),
            s.pairs_per_call as u128,
        ]
        .iter()
        .map(|n| Value::from(n.to_string()))
        .collect();
        args.extend((0..s.pairs_per_call).map(|_| Value::from(ulid::Ulid::new().to_string())));
        args.push(keys::WORKER_GROUP.into());
        push_entries(&mut args, entries);
        let reply: Vec<Value> = run(
            &self.scripts.pair,
            &self.redis,
            vec![keys::pool(), keys::register_stream()],
            args,
        )
        .await?;
        let int = |v: Option<&Value>| v.and_then(|v| v.as_i64()).unwrap_or(-1);
        let users: Vec<String> = reply.iter().skip(2).filter_map(|v| v.as_string()).collect();
        Ok(PairRun {
            relax_in: u64::try_from(int(reply.first()))
                .ok()
                .map(Duration::from_millis),
            fresh_left: int(reply.get(1)).max(0) as u64,
            pairs: users
                .chunks_exact(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect(),
        })
    }

    /// Take over entries another consumer read and did not acknowledge
    /// within `idle`, starting at `cursor`: the next cursor and the entries.
    pub async fn take_over_pending(
        &self,
        consumer: &str,
        idle: Duration,
        cursor: &str,
        count: u64,
    ) -> Result<(String, Vec<RegisterEntry>), StoreError> {
        let reply: Value = self
            .redis
            .xautoclaim(
                keys::register_stream(),
                keys::WORKER_GROUP,
                consumer,
                idle.as_millis() as u64,
                cursor,
                Some(count),
                false,
            )
            .await?;
        let (next, entries) = service::stream_reply::autoclaim(reply);
        Ok((next, entries.into_iter().map(RegisterEntry::from).collect()))
    }

    /// Trim the register stream below what every worker has read and
    /// acknowledged. Returns how many entries went.
    pub async fn trim_register_stream(&self) -> Result<i64, StoreError> {
        run(
            &self.scripts.trim,
            &self.redis,
            vec![keys::register_stream()],
            vec![keys::WORKER_GROUP.to_string()],
        )
        .await
    }

    /// Forget the users of gateways whose heartbeat expired. Returns how many.
    pub async fn purge_dead_gateways(&self) -> Result<i64, StoreError> {
        run(
            &self.scripts.purge,
            &self.redis,
            vec![keys::gateways(), keys::pool()],
            Vec::<String>::new(),
        )
        .await
    }
}

/// Append the entries' part of the enqueue arguments: their number, their
/// ids (all acknowledged), then a quadruple per decodable request (user,
/// registration, wishes or '', when it first entered the pool or '').
fn push_entries(args: &mut Vec<Value>, entries: &[RegisterEntry]) {
    args.push(entries.len().to_string().into());
    args.extend(entries.iter().map(|e| Value::from(e.id.as_str())));
    for e in entries {
        match &e.request {
            Some(r) => {
                args.push(r.user.as_str().into());
                args.push(r.reg.as_str().into());
                args.push(match &r.prefs {
                    Some(p) => Value::Bytes(wire::internal::encode(p).into()),
                    None => "".into(),
                });
                args.push(r.since_ms.map_or(String::new(), |t| t.to_string()).into());
            }
            None => tracing::warn!(id = %e.id, "undecodable register entry dropped"),
        }
    }
}
