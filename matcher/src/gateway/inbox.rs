//! This gateway's inbox: the pub/sub channel through which the pairing
//! script and other gateways reach the users whose sockets are here.

use fred::clients::SubscriberClient;
use fred::prelude::*;
use tokio::sync::broadcast::error::RecvError;
use wire::internal::{self, Inbox};
use wire::matcher_api::MatcherEvent;
use wire::user::UserKey;

use super::{delivery, SharedGateway};

/// Subscribe (retrying until Redis answers), then dispatch inbox messages
/// until the gateway is killed. After the subscriber reconnects, subscribe
/// again (retrying) and have the gateway restore its state: a notice
/// published while the channel was not subscribed waits in Redis and is
/// delivered by the restore.
pub async fn run(gw: SharedGateway, subscriber: SubscriberClient) {
    let mut kill = gw.kill.clone();
    let mut rx = subscriber.message_rx();
    let mut reconnects = subscriber.reconnect_rx();
    let channel = wire::keys::gateway_inbox(&gw.id);
    if !subscribe(&gw, &subscriber, &channel).await {
        return;
    }
    loop {
        let message = tokio::select! {
            m = rx.recv() => m,
            r = reconnects.recv() => {
                if matches!(r, Err(RecvError::Closed)) {
                    break;
                }
                if !subscribe(&gw, &subscriber, &channel).await {
                    break;
                }
                gw.needs_restore.store(true, std::sync::atomic::Ordering::SeqCst);
                continue;
            }
            _ = kill.wait() => break,
        };
        match message {
            Ok(m) => match m.value.as_bytes() {
                Some(bytes) => dispatch(&gw, bytes),
                None => tracing::warn!("non-binary inbox message dropped"),
            },
            Err(RecvError::Lagged(n)) => {
                // Cannot happen at the configured capacity unless the process
                // is starved; the notices are kept in Redis: deliver them.
                tracing::error!(lost = n, "inbox lagged; re-checking pending notices");
                gw.needs_restore
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Err(RecvError::Closed) => break,
        }
    }
    let _ = subscriber.quit().await;
}

/// Subscribe to the inbox until it works; `false` if the gateway was killed.
async fn subscribe(gw: &SharedGateway, subscriber: &SubscriberClient, channel: &str) -> bool {
    let mut kill = gw.kill.clone();
    loop {
        match subscriber.subscribe(channel).await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, "inbox subscribe failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                    _ = kill.wait() => return false,
                }
            }
        }
    }
}

fn dispatch(gw: &SharedGateway, bytes: &[u8]) {
    match internal::decode::<Inbox>(bytes) {
        Ok(Inbox::Matched(notice)) => {
            let user = UserKey::from_raw(notice.user);
            if let Some(conn) = gw.conns.get(&user) {
                let gw = gw.clone();
                tokio::spawn(async move { delivery::deliver_pending(&gw, &user, &conn).await });
            }
        }
        Ok(Inbox::Chat(chat)) => {
            if let Some(conn) = gw.conns.get(&UserKey::from_raw(chat.to)) {
                conn.send(
                    MatcherEvent::Chat {
                        sender: chat.sender,
                        message: chat.message,
                        timestamp: wire::unix_seconds(chat.sent_ms),
                    }
                    .to_json(),
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "undecodable inbox message dropped"),
    }
}
