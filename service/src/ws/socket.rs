//! One accepted WebSocket with the rules every service applies to it.
//!
//! A service reads [`Inbound`]s with [`Socket::next`] (inside its own
//! `select!`, next to its mailbox) and writes with [`Socket::feed`] and
//! [`Socket::flush`]: writes are done inline, by the socket's own task,
//! with no writer task and no queue, so an idle socket costs only this
//! struct. Every write is bounded by the send timeout: a client that stops
//! reading is given up ([`Gone`]), its task ends and its socket is freed.
//!
//! Handled here, never seen by the service: server pings and the idle
//! timeout (close 4408), binary frames (1003), frames or messages over the
//! limit (1009), the client's pings and pongs, the client closing.

use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use tokio::time::{error::Elapsed, Interval, MissedTickBehavior};
use wire::codes::ErrorKind;
use wire::CloseCode;

use super::limits::SocketLimits;
use crate::rate_limit::TokenBucket;

/// What the client did, as far as the service needs to know.
#[derive(Debug)]
pub enum Inbound {
    /// A text frame within the rate: the service handles it. A frame over
    /// the rate is not refused: it is held until the rate allows it, and
    /// the socket is not read meanwhile, so TCP flow control slows the
    /// sender down and nothing is lost.
    Text(Utf8Bytes),
    /// A text frame refused, not to be processed: only the frame in hand
    /// when a client is found flooding (more than
    /// [`SocketLimits::flood_frames`] frames held back in one unbroken run
    /// over its rate). The service answers it (`rate_limited`, see
    /// [`rate_limited_message`]) so that nothing a client sends disappears
    /// without a word; the next call to [`Socket::next`] closes the socket
    /// with [`CloseCode::Flooding`] (1008) and returns
    /// [`EndReason::Flooding`].
    RateLimited(Utf8Bytes),
    /// The socket is over (any close frame owed was sent); clean up.
    End(EndReason),
}

/// Why a socket ended, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The connection ended without a close frame.
    Closed,
    /// The client sent a close frame.
    ClosedByClient,
    /// Reading failed (a protocol error, a reset).
    SocketError,
    /// Nothing came for the idle timeout; closed with 4408.
    Idle,
    /// A binary frame; closed with 1003.
    Binary,
    /// A frame or message over the limit; closed with 1009.
    TooBig,
    /// A write failed.
    WriteFailed,
    /// A write did not complete within the send timeout.
    NotReading,
    /// The service closed it ([`Socket::close`]).
    ClosedByUs,
    /// Kept sending over its rate past the flood bound; closed with 1008.
    Flooding,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::ClosedByClient => "closed by client",
            EndReason::SocketError => "socket error",
            EndReason::Idle => "idle timeout",
            EndReason::Binary => "binary frame",
            EndReason::TooBig => "message too big",
            EndReason::WriteFailed => "write failed",
            EndReason::NotReading => "client not reading",
            EndReason::ClosedByUs => "closed by server",
            EndReason::Flooding => "flooding",
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A write found the socket over: stop serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone(pub EndReason);

/// The answer to a frame refused for rate, naming what was not processed
/// (the frame's `event`, when it has one), for `rate_limited` errors.
pub fn rate_limited_message(text: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Head {
        event: Option<serde_json::Value>,
    }
    match serde_json::from_str::<Head>(text) {
        Ok(Head {
            event: Some(serde_json::Value::String(event)),
        }) if event.len() <= 64 => {
            format!("too many frames; this {event:?} was not processed; slow down")
        }
        _ => "too many frames; this frame was not processed; slow down".to_string(),
    }
}

/// One socket, with its limits and their state.
pub struct Socket {
    ws: WebSocket,
    limits: SocketLimits,
    bucket: TokenBucket,
    pings: Interval,
    last_seen: Instant,
    /// A frame read over the rate, held until the rate allows it; the
    /// socket is not read while it is held.
    held: Option<Utf8Bytes>,
    /// Frames held back in the current unbroken run over the rate; past
    /// [`SocketLimits::flood_frames`], the socket is flooding (the frame in
    /// hand was refused) and closes at the next call.
    held_back: u32,
    /// Something was fed and not flushed yet.
    unflushed: bool,
    /// Why the socket is over, once it is: every later write is [`Gone`].
    over: Option<EndReason>,
    /// A close frame decided and not yet fully sent, with its deadline:
    /// kept here so that a [`Socket::next`] cancelled while closing
    /// finishes the close at the next call.
    closing: Option<(CloseCode, tokio::time::Instant)>,
    /// The close frame is in the socket's buffer (only a flush is owed).
    close_fed: bool,
}

/// What one read or timer tick amounts to.
#[derive(Debug)]
enum Step {
    Text(Utf8Bytes),
    /// A ping or pong: the client is alive.
    Seen,
    /// Over, with the close frame owed, if any.
    End(EndReason, Option<CloseCode>),
    Tick,
}

/// What a frame (or the end of the stream) means.
fn classify(frame: Option<Result<Message, axum::Error>>) -> Step {
    match frame {
        None => Step::End(EndReason::Closed, None),
        Some(Err(e)) if is_too_big(&e) => Step::End(EndReason::TooBig, Some(CloseCode::TooBig)),
        Some(Err(_)) => Step::End(EndReason::SocketError, None),
        Some(Ok(Message::Text(text))) => Step::Text(text),
        Some(Ok(Message::Binary(_))) => Step::End(EndReason::Binary, Some(CloseCode::Unsupported)),
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Step::Seen,
        Some(Ok(Message::Close(_))) => Step::End(EndReason::ClosedByClient, None),
    }
}

/// Whether a read failed because a frame or message was over the limit
/// (any capacity error of tungstenite, which axum wraps opaquely).
fn is_too_big(error: &axum::Error) -> bool {
    use std::error::Error as _;
    matches!(
        error
            .source()
            .and_then(|e| e.downcast_ref::<tungstenite::Error>()),
        Some(tungstenite::Error::Capacity(_))
    )
}

/// The close frame for `code`.
fn close_frame(code: CloseCode) -> CloseFrame {
    CloseFrame {
        code: code.code(),
        reason: code.reason().into(),
    }
}

impl Socket {
    /// Take over an upgraded socket (from a handshake set up with
    /// [`super::configure`]). Needs a Tokio runtime (the ping timer).
    pub fn new(ws: WebSocket, limits: SocketLimits) -> Self {
        let now = Instant::now();
        let every = limits.ping_every();
        let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Socket {
            ws,
            limits,
            bucket: TokenBucket::new(limits.rate, limits.burst, now),
            pings,
            last_seen: now,
            held: None,
            held_back: 0,
            unflushed: false,
            over: None,
            closing: None,
            close_fed: false,
        }
    }

    /// The next thing the service must handle. Cancel-safe: dropped before
    /// it resolves (another branch of a `select!` won), nothing is lost;
    /// the next call carries on where it stopped (a frame held for the rate
    /// stays held).
    pub async fn next(&mut self) -> Inbound {
        loop {
            if self.held_back > self.limits.flood_frames && self.over.is_none() {
                tracing::info!(held_back = self.held_back, "flooding: closed");
                self.end(EndReason::Flooding, Some(CloseCode::Flooding));
            }
            // The rare paths (closing, waiting for the rate, pinging) are
            // boxed: this future is part of every idle socket's task, which
            // would otherwise carry their timers and writes all its life.
            if self.closing.is_some() {
                Box::pin(self.finish_closing()).await;
            }
            if let Some(reason) = self.over {
                return Inbound::End(reason);
            }
            let step = if let Some(text) = self.held.take() {
                // Over the rate: wait for the frame's turn without reading
                // (held again before any await: cancel-safe).
                let now = Instant::now();
                if self.bucket.allow(now) {
                    return Inbound::Text(text);
                }
                self.held = Some(text);
                let wait = self.bucket.wait(now);
                tokio::select! {
                    _ = Box::pin(tokio::time::sleep(wait)) => continue,
                    _ = self.pings.tick() => Step::Tick,
                }
            } else {
                tokio::select! {
                    frame = self.ws.recv() => classify(frame),
                    _ = self.pings.tick() => Step::Tick,
                }
            };
            match step {
                Step::Text(text) => {
                    let now = Instant::now();
                    self.last_seen = now;
                    if self.bucket.allow(now) {
                        self.held_back = 0;
                        return Inbound::Text(text);
                    }
                    if self.held_back == 0 {
                        tracing::debug!("over the rate: slowing the client down");
                    }
                    self.held_back = self.held_back.saturating_add(1);
                    if self.held_back <= self.limits.flood_frames {
                        self.held = Some(text);
                        continue;
                    }
                    metrics::counter!(crate::metrics::ERRORS, "kind" => ErrorKind::RateLimited.as_str())
                        .increment(1);
                    return Inbound::RateLimited(text);
                }
                Step::Seen => self.last_seen = Instant::now(),
                Step::End(reason, close) => self.end(reason, close),
                Step::Tick if self.last_seen.elapsed() >= self.limits.idle_timeout => {
                    self.end(EndReason::Idle, Some(CloseCode::Idle));
                }
                Step::Tick => {
                    // A ping cut short by cancellation is harmless: what
                    // was queued goes out with the next flush. On failure
                    // `over` is set: the loop returns `End`.
                    Box::pin(self.ping()).await;
                }
            }
        }
    }

    /// Send a ping. Cut short by cancellation it is harmless: what was
    /// queued goes out with the next flush. On failure `over` is set.
    async fn ping(&mut self) {
        if self.write(Message::Ping(Default::default())).await.is_ok() {
            let _ = self.flush().await;
        }
    }

    /// Queue a text frame; it goes out when the write buffer fills or at
    /// the next [`Socket::flush`], so that a batch costs one write.
    pub async fn feed(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), Gone> {
        self.write(Message::Text(text.into())).await
    }

    /// Write out whatever was fed (nothing to do if nothing was).
    pub async fn flush(&mut self) -> Result<(), Gone> {
        self.usable().await?;
        if !self.unflushed {
            return Ok(());
        }
        let flushed = tokio::time::timeout(self.limits.send_timeout, self.ws.flush()).await;
        self.written(flushed)?;
        self.unflushed = false;
        Ok(())
    }

    /// [`Socket::feed`] then [`Socket::flush`].
    pub async fn send(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), Gone> {
        self.feed(text).await?;
        self.flush().await
    }

    /// Close with `code` (and its [`CloseCode::reason`]); the socket is
    /// over afterwards. Bounded by the send timeout; a socket already over
    /// only finishes a close it owed.
    pub async fn close(&mut self, code: CloseCode) {
        if self.over.is_none() {
            self.end(EndReason::ClosedByUs, Some(code));
        }
        self.finish_closing().await;
    }

    /// Why the socket is over, if it is.
    pub fn ended(&self) -> Option<EndReason> {
        self.over
    }

    /// Mark the socket over, owing `close` if given.
    fn end(&mut self, reason: EndReason, close: Option<CloseCode>) {
        self.over.get_or_insert(reason);
        if let Some(code) = close {
            if !self.close_fed && self.closing.is_none() {
                let deadline = tokio::time::Instant::now() + self.limits.send_timeout;
                self.closing = Some((code, deadline));
            }
        }
    }

    /// Send the close frame owed, if any, by its deadline. Cancel-safe:
    /// the frame is marked fed only once it is in the buffer.
    async fn finish_closing(&mut self) {
        let Some((code, deadline)) = self.closing else {
            return;
        };
        if !self.close_fed {
            let fed = tokio::time::timeout_at(
                deadline,
                self.ws.feed(Message::Close(Some(close_frame(code)))),
            )
            .await;
            if !matches!(fed, Ok(Ok(()))) {
                self.closing = None;
                return;
            }
            self.close_fed = true;
        }
        let _ = tokio::time::timeout_at(deadline, self.ws.flush()).await;
        self.closing = None;
    }

    /// `Ok` while the socket may be written to; once it is over, finish a
    /// close it owes and say why it is over.
    async fn usable(&mut self) -> Result<(), Gone> {
        match self.over {
            None => Ok(()),
            Some(reason) => {
                self.finish_closing().await;
                Err(Gone(reason))
            }
        }
    }

    async fn write(&mut self, message: Message) -> Result<(), Gone> {
        self.usable().await?;
        self.unflushed = true;
        let fed = tokio::time::timeout(self.limits.send_timeout, self.ws.feed(message)).await;
        self.written(fed)
    }

    fn written(&mut self, result: Result<Result<(), axum::Error>, Elapsed>) -> Result<(), Gone> {
        let reason = match result {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(_)) => EndReason::WriteFailed,
            Err(_) => EndReason::NotReading,
        };
        self.over.get_or_insert(reason);
        Err(Gone(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::error::CapacityError;

    fn capacity(error: CapacityError) -> Option<Result<Message, axum::Error>> {
        Some(Err(axum::Error::new(tungstenite::Error::Capacity(error))))
    }

    #[test]
    fn frames_map_to_their_close_codes() {
        let end = |frame| match classify(frame) {
            Step::End(reason, close) => (reason, close.map(CloseCode::code)),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            end(Some(Ok(Message::Binary(vec![1].into())))),
            (EndReason::Binary, Some(1003))
        );
        assert_eq!(
            end(capacity(CapacityError::MessageTooLong {
                size: 70_000,
                max_size: 65_536
            })),
            (EndReason::TooBig, Some(1009))
        );
        // Any capacity error, not only an over-long message.
        assert_eq!(
            end(capacity(CapacityError::TooManyHeaders)),
            (EndReason::TooBig, Some(1009))
        );
        assert_eq!(
            end(Some(Err(axum::Error::new(
                tungstenite::Error::ConnectionClosed
            )))),
            (EndReason::SocketError, None)
        );
        assert_eq!(
            end(Some(Ok(Message::Close(None)))),
            (EndReason::ClosedByClient, None)
        );
        assert_eq!(end(None), (EndReason::Closed, None));
        assert!(matches!(
            classify(Some(Ok(Message::Ping(Default::default())))),
            Step::Seen
        ));
        assert!(matches!(
            classify(Some(Ok(Message::Pong(Default::default())))),
            Step::Seen
        ));
        assert!(matches!(classify(Some(Ok(Message::text("x")))), Step::Text(t) if t == "x"));
    }

    #[test]
    fn close_frames_carry_the_wire_code_and_reason() {
        for code in CloseCode::ALL {
            let frame = close_frame(code);
            assert_eq!(frame.code, code.code());
            assert_eq!(frame.reason.as_str(), code.reason());
            // A close reason must fit a control frame (125 bytes, 2 for the code).
            assert!(frame.reason.len() <= 123);
        }
    }

    #[test]
    fn the_rate_limited_answer_names_the_refused_frame() {
        assert_eq!(
            rate_limited_message(r#"{"event":"ping"}"#),
            r#"too many frames; this "ping" was not processed; slow down"#
        );
        for other in ["{not json", r#"{"event":42}"#, r#"{"no":1}"#] {
            assert_eq!(
                rate_limited_message(other),
                "too many frames; this frame was not processed; slow down"
            );
        }
        let long = format!(r#"{{"event":"{}"}}"#, "x".repeat(1000));
        assert!(
            rate_limited_message(&long).len() < 100,
            "not echoed at length"
        );
    }
}
