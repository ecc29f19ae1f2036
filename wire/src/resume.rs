//! The resume credential: what lets a native signalling session that lost
//! its socket continue on a new socket, on any signaller node.
//!
//! A joined native session is given one in `joined` (and a fresh one in
//! `resumed`). It is signed with the same shared secret as room tickets, so
//! any node verifies it without Redis, but under a domain of its own
//! ([`DOMAIN`] is part of the signed bytes): a room ticket is never a resume
//! credential, nor the other way round. It is bound to the room, the user
//! and the session's connection (`conn`, the one connection the room log
//! lets write for that user): the room log accepts a resume only while that
//! connection still holds the user's place, so a credential works once, and
//! a second concurrent resume of the same session is refused as "already
//! used elsewhere". Its expiry bounds it by the room's lifetime; how long a
//! *dropped* session may come back (the grace window) is kept by the room
//! itself, which records the deadline when the socket went away.
//!
//! Format: `base64url(JSON claims) "." base64url(HMAC-SHA256(DOMAIN || claims))`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::user::Role;

/// Signed before the claims: keeps resume credentials and room tickets apart.
pub const DOMAIN: &[u8] = b"rvc-resume-v1\0";

/// What a resume credential grants: `user` (`name`, `role`) may take over
/// the place of connection `conn` in `room` until `exp_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeClaims {
    pub room: String,
    /// The user key ([`crate::user::UserKey`]).
    pub user: String,
    pub name: String,
    pub role: Role,
    /// The connection (`<node>/<connection id>`) whose place this resumes.
    pub conn: String,
    /// Expiry, milliseconds since the Unix epoch.
    pub exp_ms: u64,
}

/// Why a resume credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    #[error("the resume credential is malformed")]
    Malformed,
    #[error("the resume credential's signature is invalid")]
    BadSignature,
    #[error("the resume credential has expired")]
    Expired,
}

impl ResumeError {
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            ResumeError::Malformed => crate::ErrorCode::BadResume,
            ResumeError::BadSignature => crate::ErrorCode::ForgedResume,
            ResumeError::Expired => crate::ErrorCode::ExpiredResume,
        }
    }
}

fn mac(secret: &[u8], claims: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(DOMAIN);
    m.update(claims.as_bytes());
    m
}

/// Sign `claims` with `secret`.
pub fn sign(secret: &[u8], claims: &ResumeClaims) -> String {
    let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims encode"));
    let sig = URL_SAFE_NO_PAD.encode(mac(secret, &claims).finalize().into_bytes());
    format!("{claims}.{sig}")
}

/// Check `token`'s signature (in constant time) and expiry against `now_ms`.
pub fn verify(secret: &[u8], token: &str, now_ms: u64) -> Result<ResumeClaims, ResumeError> {
    let (claims, sig) = token.split_once('.').ok_or(ResumeError::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| ResumeError::Malformed)?;
    mac(secret, claims)
        .verify_slice(&sig)
        .map_err(|_| ResumeError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(claims)
        .map_err(|_| ResumeError::Malformed)?;
    let claims: ResumeClaims = serde_json::from_slice(&json).map_err(|_| ResumeError::Malformed)?;
    if now_ms >= claims.exp_ms {
        return Err(ResumeError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims() -> ResumeClaims {
        ResumeClaims {
            room: "01ROOM".into(),
            user: "s:01USER".into(),
            name: "ann".into(),
            role: Role::Initiator,
            conn: "node-a/7".into(),
            exp_ms: 10_000,
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let token = sign(SECRET, &claims());
        assert_eq!(verify(SECRET, &token, 9_999), Ok(claims()));
        assert_eq!(verify(SECRET, &token, 10_000), Err(ResumeError::Expired));
    }

    #[test]
    fn a_forged_or_tampered_credential_is_refused() {
        let token = sign(SECRET, &claims());
        assert_eq!(
            verify(b"another secret of thirty-two b..", &token, 0),
            Err(ResumeError::BadSignature)
        );
        let mut other = claims();
        other.room = "01OTHER".into();
        let (forged, _) = sign(b"attacker", &other)
            .split_once('.')
            .map(|(c, s)| (c.to_string(), s.to_string()))
            .unwrap();
        let (_, sig) = token.split_once('.').unwrap();
        assert_eq!(
            verify(SECRET, &format!("{forged}.{sig}"), 0),
            Err(ResumeError::BadSignature)
        );
        assert_eq!(verify(SECRET, "junk", 0), Err(ResumeError::Malformed));
    }

    #[test]
    fn a_room_ticket_is_not_a_resume_credential() {
        // Same secret, same encoding: only the domain keeps them apart.
        let ticket = crate::ticket::sign(
            SECRET,
            &crate::ticket::Ticket {
                room: "01ROOM".into(),
                user: "s:01USER".into(),
                name: "ann".into(),
                role: Role::Initiator,
                exp_ms: 10_000,
            },
        );
        assert_eq!(verify(SECRET, &ticket, 0), Err(ResumeError::BadSignature));
    }
}
