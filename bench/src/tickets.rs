//! Synthetic rooms for the signaller benchmarks: two tickets per room,
//! signed locally with the secret the signallers were started with, exactly
//! as a matcher gateway would sign them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wire::ticket::{self, Ticket};
use wire::user::Role;

/// How long the benchmark's tickets stay valid.
const TICKET_LIFETIME: Duration = Duration::from_secs(600);

/// A fresh room: its code and the join tickets of its initiator and responder.
pub struct Room {
    pub code: String,
    pub initiator: String,
    pub responder: String,
}

/// Room codes unique to this run: `bench<unix ns><pid>x<index>`.
pub struct Rooms {
    secret: Vec<u8>,
    run: String,
    exp_ms: u64,
}

impl Rooms {
    pub fn new(secret: &str) -> Rooms {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Rooms {
            secret: secret.as_bytes().to_vec(),
            run: format!("bench{}p{}", now.as_nanos(), std::process::id()),
            exp_ms: (now + TICKET_LIFETIME).as_millis() as u64,
        }
    }

    pub fn room(&self, index: usize) -> Room {
        let code = format!("{}x{index}", self.run);
        let sign = |side: &str, role: Role| {
            ticket::sign(
                &self.secret,
                &Ticket {
                    room: code.clone(),
                    user: format!("s:{code}{side}"),
                    name: format!("{side}{index}"),
                    role,
                    exp_ms: self.exp_ms,
                },
            )
        };
        Room {
            initiator: sign("a", Role::Initiator),
            responder: sign("b", Role::Responder),
            code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_verify_with_the_same_secret() {
        let secret = "0123456789abcdef0123456789abcdef";
        let rooms = Rooms::new(secret);
        let room = rooms.room(7);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let a = ticket::verify(secret.as_bytes(), &room.initiator, now).unwrap();
        let b = ticket::verify(secret.as_bytes(), &room.responder, now).unwrap();
        assert_eq!(
            (a.room.as_str(), b.room.as_str()),
            (room.code.as_str(), room.code.as_str())
        );
        assert_eq!((a.role, b.role), (Role::Initiator, Role::Responder));
        assert_ne!(a.user, b.user);
        assert_ne!(rooms.room(8).code, room.code);
    }
}
