//! Routes the messages of this gateway's channel to the sockets they are
//! for. After the subscriber reconnects (or falls behind), the gateway
//! restores its state: a notice published meanwhile waits in Redis and is
//! delivered by the restore.

use std::time::Duration;

use wire::internal::GatewayMessage;
use wire::user::UserKey;

use super::sockets::SocketMsg;
use super::SharedGateway;
use crate::store::channel::{ChannelEvent, GatewayChannel};

/// Subscribe (retrying until Redis answers), then route messages until the
/// gateway is killed.
pub async fn run(gw: SharedGateway, mut channel: GatewayChannel) {
    let mut kill = gw.kill.clone();
    if !subscribe(&gw, &channel).await {
        return;
    }
    loop {
        let event = tokio::select! {
            e = channel.next() => e,
            _ = kill.wait() => break,
        };
        match event {
            ChannelEvent::Message(message) => route(&gw, message),
            ChannelEvent::Resync => {
                if !subscribe(&gw, &channel).await {
                    break;
                }
                gw.request_restore();
            }
            ChannelEvent::Closed => break,
        }
    }
    channel.quit().await;
}

/// Post a channel message to the socket(s) it is for.
fn route(gw: &SharedGateway, message: GatewayMessage) {
    let (user, socket, msg) = match message {
        GatewayMessage::Matches { at_us, matches } => {
            let now_us = service::clock::now_us();
            let inbox = &crate::stages::stages().inbox;
            for m in matches {
                inbox.record(service::clock::secs_since_us(at_us, now_us));
                let msg = match m.notice {
                    Some(notice) => SocketMsg::Pushed(Box::new(notice)),
                    None => SocketMsg::NoticeWaiting,
                };
                // Only to the socket the pairing saw (a later socket of the
                // user took the stored notice when it was located), even
                // if its location's reply has not reached it yet.
                gw.sockets.post_to_socket(&m.socket, msg);
            }
            return;
        }
        GatewayMessage::Matched { user } => (user, None, SocketMsg::NoticeWaiting),
        GatewayMessage::Replaced { user, socket } => (user, Some(socket), SocketMsg::Replaced),
        GatewayMessage::Chat(chat) => (chat.to.clone(), None, SocketMsg::Chat(Box::new(chat))),
    };
    gw.sockets
        .post_to(&UserKey::from_raw(user), socket.as_deref(), msg);
}

/// Subscribe until it works; `false` if the gateway was killed.
async fn subscribe(gw: &SharedGateway, channel: &GatewayChannel) -> bool {
    let mut kill = gw.kill.clone();
    loop {
        match channel.subscribe().await {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, "channel subscribe failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = kill.wait() => return false,
                }
            }
        }
    }
}
