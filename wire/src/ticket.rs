//! Signed, expiring room tickets: "stateless room handling".
//!
//! The matcher gateway signs a ticket for each user when it delivers
//! `matched`; the signaller verifies it with the shared secret alone, without
//! a Redis round trip. A ticket is `base64url(JSON claims) "." base64url(HMAC-SHA256)`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::user::Role;

/// Shortest acceptable shared secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// What a ticket grants: `user` may join `room` as `role` until `exp_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub room: String,
    /// The user key ([`crate::user::UserKey`]).
    pub user: String,
    /// Display name, shown to the peer.
    pub name: String,
    pub role: Role,
    /// Expiry, milliseconds since the Unix epoch.
    pub exp_ms: u64,
}

/// Why a ticket was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("ticket is malformed")]
    Malformed,
    #[error("ticket signature is invalid")]
    BadSignature,
    #[error("ticket has expired")]
    Expired,
}

impl TicketError {
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            TicketError::Malformed => crate::ErrorCode::BadTicket,
            TicketError::BadSignature => crate::ErrorCode::ForgedTicket,
            TicketError::Expired => crate::ErrorCode::ExpiredTicket,
        }
    }
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// Sign `ticket` with `secret`.
pub fn sign(secret: &[u8], ticket: &Ticket) -> String {
    let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(ticket).expect("tickets encode"));
    let mut m = mac(secret);
    m.update(claims.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{claims}.{sig}")
}

/// Check `token`'s signature (in constant time) and expiry against `now_ms`.
pub fn verify(secret: &[u8], token: &str, now_ms: u64) -> Result<Ticket, TicketError> {
    let (claims, sig) = token.split_once('.').ok_or(TicketError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TicketError::Malformed)?;
    let mut m = mac(secret);
    m.update(claims.as_bytes());
    m.verify_slice(&sig)
        .map_err(|_| TicketError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(claims)
        .map_err(|_| TicketError::Malformed)?;
    let ticket: Ticket = serde_json::from_slice(&json).map_err(|_| TicketError::Malformed)?;
    if now_ms >= ticket.exp_ms {
        return Err(TicketError::Expired);
    }
    Ok(ticket)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn ticket() -> Ticket {
        Ticket {
            room: "01ROOM".into(),
            user: "s:01USER".into(),
            name: "ann".into(),
            role: Role::Initiator,
            exp_ms: 10_000,
        }
    }

    #[test]
    fn round_trip() {
        let token = sign(SECRET, &ticket());
        assert_eq!(verify(SECRET, &token, 9_999), Ok(ticket()));
    }

    #[test]
    fn expired() {
        let token = sign(SECRET, &ticket());
        assert_eq!(verify(SECRET, &token, 10_000), Err(TicketError::Expired));
    }

    #[test]
    fn wrong_secret_or_tampered_claims_are_forged() {
        let token = sign(SECRET, &ticket());
        assert_eq!(
            verify(b"another secret of thirty-two b..", &token, 0),
            Err(TicketError::BadSignature)
        );
        let mut other = ticket();
        other.room = "01OTHER".into();
        let forged_claims = sign(b"attacker", &other);
        let (claims, _) = forged_claims.split_once('.').unwrap();
        let (_, sig) = token.split_once('.').unwrap();
        assert_eq!(
            verify(SECRET, &format!("{claims}.{sig}"), 0),
            Err(TicketError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(verify(SECRET, "", 0), Err(TicketError::Malformed));
        assert_eq!(verify(SECRET, "abc", 0), Err(TicketError::Malformed));
        assert_eq!(verify(SECRET, "a.!!!", 0), Err(TicketError::Malformed));
    }
}
