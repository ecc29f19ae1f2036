//! The per-socket limits a service configures.

use std::time::Duration;

/// Longest wait for one write (or close) before a client is given up. A
/// client that does not read for this long is treated as gone: its task
/// ends and its socket is closed, rather than holding memory and a file
/// descriptor for as long as it likes.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits applied to one socket by [`super::Socket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketLimits {
    /// A socket that sends nothing (not even a pong) for this long is
    /// closed with [`wire::CloseCode::Idle`]. The server pings every third
    /// of it, so a live client always has something to answer.
    pub idle_timeout: Duration,
    /// Text frames per second allowed on average. A frame over the rate
    /// is held until the rate allows it, and the socket is not read
    /// meanwhile (TCP flow control slows the sender down).
    pub rate: u32,
    /// Text frames allowed in one burst.
    pub burst: u32,
    /// Frames a socket may have held back in one unbroken run over its
    /// rate (every frame read had to wait for its turn) before it counts as
    /// flooding: the frame in hand is refused (`rate_limited`) and the
    /// socket closed with [`wire::CloseCode::Flooding`]. Twice the burst by
    /// default: a client that sends three bursts' worth at once is slowed
    /// down, never cut off.
    pub flood_frames: u32,
    /// Longest wait for one write; see [`SEND_TIMEOUT`].
    pub send_timeout: Duration,
}

impl SocketLimits {
    /// Limits with the default [`SEND_TIMEOUT`] and flood bound (twice the burst).
    pub fn new(idle_timeout: Duration, rate: u32, burst: u32) -> Self {
        SocketLimits {
            idle_timeout,
            rate,
            burst,
            flood_frames: burst.saturating_mul(2),
            send_timeout: SEND_TIMEOUT,
        }
    }

    /// How often the server pings: a third of the idle timeout, so that a
    /// client gets a couple of chances to answer, but never more often
    /// than every 100 ms.
    pub fn ping_every(&self) -> Duration {
        (self.idle_timeout / 3).max(Duration::from_millis(100))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_a_third_of_the_idle_timeout_but_not_too_often() {
        let l = SocketLimits::new(Duration::from_secs(60), 50, 200);
        assert_eq!(l.ping_every(), Duration::from_secs(20));
        assert_eq!(l.send_timeout, SEND_TIMEOUT);
        assert_eq!(l.flood_frames, 400);
        let l = SocketLimits::new(Duration::from_millis(30), 50, 200);
        assert_eq!(l.ping_every(), Duration::from_millis(100));
    }
}
