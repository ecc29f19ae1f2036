//! A gateway's channel: the pub/sub channel through which the pairing
//! script and other gateways reach the users whose sockets it holds.

use fred::clients::SubscriberClient;
use fred::prelude::*;
use tokio::sync::broadcast::error::RecvError;
use wire::internal::{self, GatewayMessage};

use super::StoreError;

/// What the subscription yields.
#[derive(Debug)]
pub enum ChannelEvent {
    Message(GatewayMessage),
    /// The subscriber reconnected, or fell behind and lost messages: what
    /// was published meanwhile waits in Redis (notices) and must be looked
    /// up again. The subscription itself is made again before this returns.
    Resync,
    /// The subscriber is gone for good.
    Closed,
}

/// One gateway's subscription to its channel.
pub struct GatewayChannel {
    subscriber: SubscriberClient,
    channel: String,
    messages: tokio::sync::broadcast::Receiver<fred::types::Message>,
    reconnects: tokio::sync::broadcast::Receiver<fred::types::config::Server>,
}

impl GatewayChannel {
    /// Bind to `gateway`'s channel (call [`GatewayChannel::subscribe`] next).
    pub fn new(subscriber: SubscriberClient, gateway: &str) -> Self {
        GatewayChannel {
            messages: subscriber.message_rx(),
            reconnects: subscriber.reconnect_rx(),
            channel: wire::keys::gateway_channel(gateway),
            subscriber,
        }
    }

    /// Subscribe; returns once Redis has processed the SUBSCRIBE.
    pub async fn subscribe(&self) -> Result<(), StoreError> {
        self.subscriber.subscribe(self.channel.as_str()).await?;
        service::redis_conn::confirm_subscriptions(&self.subscriber).await
    }

    /// The next message or event. A message that does not decode is
    /// logged and skipped.
    pub async fn next(&mut self) -> ChannelEvent {
        loop {
            tokio::select! {
                m = self.messages.recv() => match m {
                    Ok(m) => match m.value.as_bytes().map(internal::decode::<GatewayMessage>) {
                        Some(Ok(msg)) => return ChannelEvent::Message(msg),
                        _ => tracing::warn!("undecodable gateway channel message dropped"),
                    },
                    Err(RecvError::Lagged(n)) => {
                        tracing::error!(lost = n, "gateway channel lagged; re-checking pending notices");
                        return ChannelEvent::Resync;
                    }
                    Err(RecvError::Closed) => return ChannelEvent::Closed,
                },
                r = self.reconnects.recv() => match r {
                    Err(RecvError::Closed) => return ChannelEvent::Closed,
                    _ => return ChannelEvent::Resync,
                },
            }
        }
    }

    pub async fn quit(self) {
        let _ = self.subscriber.quit().await;
    }
}
