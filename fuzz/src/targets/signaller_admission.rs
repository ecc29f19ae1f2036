//! Who may join a room: the legacy room-record check and the native ticket
//! check, on what a client sends (name, room code, ticket).

use std::collections::HashMap;

use arbitrary::{Arbitrary, Unstructured};
use signaller::admission::{admit_legacy, admit_native, plausible_room_code, JoinRefusal};
use wire::ticket::sign;
use wire::user::{Role, UserKey};

use super::ticket::sample_ticket;
use super::{NOW_MS, SECRET};
use crate::Target;

pub const ADMISSION: Target = Target {
    name: "signaller_admission",
    covers: "signaller::admission::{admit_legacy, admit_native, plausible_room_code}",
    run,
    seeds: Vec::new,
    dict: &[],
};

#[derive(Debug, Arbitrary)]
enum RoleText {
    Initiator,
    Responder,
    Other(String),
}

#[derive(Debug, Arbitrary)]
struct Case {
    name: String,
    room: String,
    /// The record lists `name` with this role (else it does not list it).
    listed: Option<RoleText>,
    display: Option<String>,
    others: Vec<(String, String)>,
    /// Show a real ticket (for `ticket_room`, expiring at `exp_ms`) or junk.
    real_ticket: bool,
    ticket_room: String,
    exp_ms: u64,
    junk: String,
    hint: Option<String>,
    now_ms: u64,
}

fn run(data: &[u8]) {
    let Ok(c) = Case::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };

    let plausible = plausible_room_code(&c.room);
    assert!(!plausible || (!c.room.is_empty() && !c.room.chars().any(char::is_control)));

    let user = UserKey::legacy(&c.name);
    let mut record: HashMap<String, String> = c.others.into_iter().collect();
    let role_text = c.listed.map(|r| match r {
        RoleText::Initiator => "initiator".to_string(),
        RoleText::Responder => "responder".to_string(),
        RoleText::Other(s) => s,
    });
    if let Some(role) = &role_text {
        record.insert(user.to_string(), role.clone());
    }
    if let Some(display) = &c.display {
        record.insert(format!("name:{user}"), display.clone());
    }
    match admit_legacy(&c.name, &c.room, &record) {
        Ok(a) => {
            let listed = record.get(user.as_str()).expect("admitted only if listed");
            assert_eq!(Some(a.me.role), Role::parse(listed));
            assert_eq!(a.me.user, user);
            assert_eq!(a.room, c.room);
            let want_name = record
                .get(&format!("name:{user}"))
                .cloned()
                .unwrap_or_else(|| c.name.clone());
            assert_eq!(a.me.name, want_name);
        }
        Err(JoinRefusal::NoRoom) => assert!(
            record.is_empty()
                || record
                    .get(user.as_str())
                    .and_then(|r| Role::parse(r))
                    .is_none()
        ),
        Err(JoinRefusal::NotMember) => assert!(!record.contains_key(user.as_str())),
        Err(other) => panic!("legacy admission refused with {other:?}"),
    }

    let token = if c.real_ticket {
        let mut t = sample_ticket(c.exp_ms);
        t.room = c.ticket_room.clone();
        sign(SECRET, &t)
    } else {
        c.junk
    };
    let now = if c.now_ms % 2 == 0 { NOW_MS } else { c.now_ms };
    match admit_native(SECRET, &token, c.hint.as_deref(), now) {
        Ok(a) => {
            assert!(c.real_ticket, "junk admitted: {token:?}");
            assert!(now < c.exp_ms);
            assert_eq!(a.room, c.ticket_room);
            if let Some(hint) = c.hint.as_deref().filter(|h| !h.is_empty()) {
                assert_eq!(hint, a.room);
            }
        }
        Err(e) => {
            let _ = (e.code(), e.to_string());
            if c.real_ticket && now < c.exp_ms {
                assert_eq!(e, JoinRefusal::WrongRoom);
            }
        }
    }
}
