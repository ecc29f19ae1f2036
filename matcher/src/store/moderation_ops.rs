//! What moderation asks of Redis: whether someone is banned, reports and
//! blocks about the partner a user last met, and the admin API's bans,
//! reports and figures.

use std::collections::BTreeMap;
use std::time::Duration;

use fred::prelude::*;
use serde::Serialize;
use wire::internal::{RoomBody, RoomEvent};
use wire::keys;
use wire::moderation::{Ban, ReportReason, Who, REPORT_CHAT_LINES};
use wire::user::UserKey;

use super::gateway_ops::retry_after_secs;
use super::{Store, StoreError};
use service::redis_conn::run_script as run;

/// How reports turn into bans.
#[derive(Debug, Clone)]
pub struct ReportPolicy {
    pub reports_per_hour: u32,
    pub window: Duration,
    pub ban_after: u32,
    pub ban: Duration,
}

/// Most entries the reports stream keeps.
const REPORTS_KEPT: u64 = 100_000;

/// The outcome of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// Stored; `ban` when it banned the reported user (id, duration).
    Stored {
        counted: bool,
        ban: Option<(String, Duration)>,
    },
    /// Nobody met lately: nothing to report.
    NoPartner,
    /// The reporter made too many reports this hour.
    RateLimited,
}

/// A report as the admin API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ReportEntry {
    pub id: String,
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// The admin API's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub waiting: u64,
    pub rooms: u64,
    pub sockets_per_gateway: BTreeMap<String, u64>,
    pub reports_last_hour: u64,
    pub bans_last_hour: u64,
    pub bans_active: u64,
}

impl Store {
    /// Seconds until `who`'s ban lifts, if its identity or address is banned.
    pub async fn ban_left(&self, who: &Who) -> Result<Option<u64>, StoreError> {
        // One round trip for both: this runs on every socket's connect.
        let pipeline = self.redis.pipeline();
        let _: () = pipeline.pttl(keys::ban(&who.identity)).await?;
        let _: () = pipeline.pttl(keys::ban(&who.address)).await?;
        let (identity, address): (i64, i64) = pipeline.all().await?;
        let ms = identity.max(address);
        Ok((ms > 0).then(|| retry_after_secs(ms)))
    }

    /// `user` (`who`) reports whom it last met: stored with the last chat
    /// lines of their room; may ban the reported user.
    pub async fn report(
        &self,
        user: &UserKey,
        who: &Who,
        reason: ReportReason,
        note: &str,
        policy: &ReportPolicy,
    ) -> Result<Reported, StoreError> {
        let met: Option<bytes::Bytes> = self.redis.get(keys::met(user)).await?;
        let Some(room) = met.as_deref().and_then(met_room) else {
            return Ok(Reported::NoPartner);
        };
        let chat = self.chat_lines(&room).await.unwrap_or_default();
        let ban_id = ulid::Ulid::new().to_string();
        let reply: Vec<Value> = run(
            &self.scripts.report,
            &self.redis,
            vec![keys::met(user), keys::reports(), keys::bans()],
            vec![
                who.identity.clone(),
                who.address.clone(),
                reason.as_str().to_string(),
                note.to_string(),
                serde_json::to_string(&chat).expect("strings encode"),
                policy.reports_per_hour.to_string(),
                policy.window.as_millis().to_string(),
                policy.ban_after.to_string(),
                policy.ban.as_millis().to_string(),
                ban_id.clone(),
                REPORTS_KEPT.to_string(),
            ],
        )
        .await?;
        let int = |i: usize| reply.get(i).and_then(|v| v.as_i64()).unwrap_or(0);
        Ok(match int(0) {
            0 => Reported::NoPartner,
            -1 => Reported::RateLimited,
            _ => Reported::Stored {
                counted: int(1) == 1,
                ban: (int(2) > 0).then(|| (ban_id, Duration::from_millis(int(2) as u64))),
            },
        })
    }

    /// `user` (`who`) blocks whom it last met for `days`. `false`: nobody.
    pub async fn block(
        &self,
        user: &UserKey,
        who: &Who,
        for_: Duration,
    ) -> Result<bool, StoreError> {
        let blocked: i64 = run(
            &self.scripts.block,
            &self.redis,
            vec![keys::met(user)],
            vec![who.identity.clone(), for_.as_millis().to_string()],
        )
        .await?;
        Ok(blocked == 1)
    }

    /// The last chat lines of `room` (oldest first): from the matcher's own
    /// list for legacy chat, else from the room's log in the signaller.
    async fn chat_lines(&self, room: &str) -> Result<Vec<String>, StoreError> {
        let legacy: Vec<String> = self
            .redis
            .lrange(keys::room_chat(room), 0, REPORT_CHAT_LINES as i64 - 1)
            .await?;
        if !legacy.is_empty() {
            let mut lines: Vec<String> = legacy
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .map(|v| {
                    format!(
                        "{}: {}",
                        v["from"].as_str().unwrap_or("?"),
                        v["message"].as_str().unwrap_or("")
                    )
                })
                .collect();
            lines.reverse();
            return Ok(lines);
        }
        // The room's log holds signals too: look back far enough for 20 lines.
        let reply: Value = self
            .redis
            .xrevrange(keys::room_log(room), "+", "-", Some(500))
            .await?;
        let mut lines = Vec::new();
        for entry in service::stream_reply::entries(reply) {
            let Some(event) = entry
                .field(wire::internal::REGISTER_FIELD)
                .and_then(|b| wire::internal::decode::<RoomEvent>(b).ok())
            else {
                continue;
            };
            if let RoomBody::Chat { message } = event.body {
                lines.push(format!("{}: {message}", event.from_name));
                if lines.len() == REPORT_CHAT_LINES {
                    break;
                }
            }
        }
        lines.reverse();
        Ok(lines)
    }

    /// The newest `limit` reports.
    pub async fn reports(&self, limit: u64) -> Result<Vec<ReportEntry>, StoreError> {
        let reply: Value = self
            .redis
            .xrevrange(keys::reports(), "+", "-", Some(limit))
            .await?;
        Ok(service::stream_reply::entries(reply)
            .into_iter()
            .map(|e| {
                let mut fields = BTreeMap::new();
                for name in [
                    "time",
                    "room",
                    "reporter",
                    "reporter_address",
                    "reported",
                    "reported_address",
                    "reported_user",
                    "reason",
                    "note",
                    "chat",
                ] {
                    let text = e
                        .field(name)
                        .map(|b| String::from_utf8_lossy(b).to_string())
                        .unwrap_or_default();
                    let value = match name {
                        "time" => text
                            .parse::<u64>()
                            .map(serde_json::Value::from)
                            .unwrap_or_default(),
                        "chat" => serde_json::from_str(&text).unwrap_or_default(),
                        _ => serde_json::Value::from(text),
                    };
                    fields.insert(name.to_string(), value);
                }
                ReportEntry { id: e.id, fields }
            })
            .collect())
    }

    /// Every ban in force.
    pub async fn bans(&self) -> Result<Vec<Ban>, StoreError> {
        let now = service::clock::now_ms();
        let ids: Vec<String> = self
            .redis
            .zrangebyscore(keys::bans(), now as f64, "+inf", false, None)
            .await?;
        let mut bans = Vec::new();
        for id in ids {
            let record: Option<bytes::Bytes> = self.redis.get(keys::ban_record(&id)).await?;
            if let Some(ban) = record.and_then(|b| wire::internal::decode::<Ban>(&b).ok()) {
                bans.push(ban);
            }
        }
        Ok(bans)
    }

    /// Ban `subject` for `for_`; the new ban's id.
    pub async fn add_ban(
        &self,
        subject: &str,
        for_: Duration,
        reason: &str,
    ) -> Result<String, StoreError> {
        let id = ulid::Ulid::new().to_string();
        let _: i64 = run(
            &self.scripts.ban,
            &self.redis,
            vec![keys::bans()],
            vec![
                "add".to_string(),
                id.clone(),
                subject.to_string(),
                for_.as_millis().max(1).to_string(),
                reason.to_string(),
            ],
        )
        .await?;
        Ok(id)
    }

    /// Lift ban `id`; `false` when there is no such ban.
    pub async fn remove_ban(&self, id: &str) -> Result<bool, StoreError> {
        let removed: i64 = run(
            &self.scripts.ban,
            &self.redis,
            vec![keys::bans()],
            vec!["remove".to_string(), id.to_string()],
        )
        .await?;
        Ok(removed == 1)
    }

    /// The admin API's figures.
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        let now = service::clock::now_ms();
        let hour_ago = now.saturating_sub(3_600_000);
        let waiting: u64 = self.redis.zcard(keys::pool()).await?;
        let gateways: Vec<String> = self.redis.smembers(keys::gateways()).await?;
        let mut sockets_per_gateway = BTreeMap::new();
        for g in gateways {
            let n: u64 = self.redis.scard(keys::gateway_users(&g)).await?;
            sockets_per_gateway.insert(g, n);
        }
        let reports: Value = self
            .redis
            .xrange(keys::reports(), format!("{hour_ago}-0"), "+", Some(100_000))
            .await?;
        let reports_last_hour = service::stream_reply::entries(reports).len() as u64;
        let bans = self.bans().await?;
        let bans_last_hour = bans.iter().filter(|b| b.since_ms >= hour_ago).count() as u64;
        Ok(Stats {
            waiting,
            rooms: self.count_rooms().await?,
            sockets_per_gateway,
            reports_last_hour,
            bans_last_hour,
            bans_active: bans.len() as u64,
        })
    }

    /// Room records in Redis (a bounded scan: the admin's figure, not a hot path).
    async fn count_rooms(&self) -> Result<u64, StoreError> {
        use futures_util::TryStreamExt;
        let pattern = keys::room("*");
        let mut count = 0u64;
        let mut scan =
            self.redis
                .scan_buffered(pattern, Some(1000), Some(fred::types::scan::ScanType::Hash));
        while let Some(_key) = scan.try_next().await? {
            count += 1;
            if count >= 1_000_000 {
                break;
            }
        }
        Ok(count)
    }
}

/// The room code in a met record.
fn met_room(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Met {
        room: String,
    }
    wire::internal::decode::<Met>(bytes).ok().map(|m| m.room)
}
