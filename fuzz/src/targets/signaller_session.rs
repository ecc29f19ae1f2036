//! Two signaller sessions in one room, driven by client frames: every frame
//! is answered, an undecodable one with exactly one `error` event; what one
//! peer publishes reaches the other exactly once; nothing panics.

use std::collections::HashMap;

use serde_json::json;
use signaller::admission::{admit_legacy, admit_native, Admitted, JoinRefusal};
use signaller::session::{Action, Dialect, JoinOutcome, JoinRequest, PeerInfo, Session};
use wire::internal::{RoomBody, RoomEvent, StreamId};
use wire::signaller_api::{SignallerClientMsg, SignallerEvent};
use wire::ErrorCode;

use super::json_api::signaller_seeds;
use super::ticket::sample_ticket;
use super::{frames, text, FRAME_SEP, NOW_MS, SECRET};
use crate::Target;

pub const SESSION: Target = Target {
    name: "signaller_session",
    covers: "signaller::session::Session::on_text/on_rate_limited (two peers, room log)",
    run,
    seeds,
    dict: &[
        b"\x1e",
        b"\x1e{\"event\":\"leave\"}",
        b"\x1e{\"event\":\"chat\",\"message\":\"m\"}",
        b"\"event\"",
        b"\"join\"",
        b"\"signal\"",
        b"\"data\"",
    ],
};

const ROOM: &str = "alice_bob_01JD00000000000000000000AA";
const LEGACY_NAME: &str = "bob";

fn native_join() -> String {
    let token = wire::ticket::sign(SECRET, &sample_ticket(NOW_MS + 30_000));
    json!({"event": "join", "ticket": token, "room_code": ROOM}).to_string()
}

fn legacy_join() -> String {
    json!({"event": "join", "room_code": ROOM, "target": "ann", "role": "responder"}).to_string()
}

fn seeds() -> Vec<Vec<u8>> {
    let signal = r#"{"event":"signal","type":"signal","data":{"type":"offer","sdp":"v=0"}}"#;
    let chat = r#"{"event":"chat","message":"hi"}"#;
    let leave = r#"{"event":"leave"}"#;
    let mut out = vec![
        frames(&[native_join(), legacy_join(), signal.into(), signal.into()]),
        frames(&[
            native_join(),
            legacy_join(),
            chat.into(),
            chat.into(),
            leave.into(),
        ]),
        frames(&[
            legacy_join(),
            native_join(),
            leave.into(),
            signal.into(),
            chat.into(),
        ]),
        frames(&[
            native_join(),
            r#"{"event":"ping"}"#.into(),
            chat.into(),
            native_join(),
        ]),
    ];
    out.extend(signaller_seeds());
    out
}

/// Peer 0 is native (joins with a ticket), peer 1 legacy (`/ws/bob`).
struct Sim {
    sessions: [Session; 2],
    admitted: [Option<Admitted>; 2],
    nodes: [&'static str; 2],
    log: Vec<(StreamId, RoomEvent)>,
    record: HashMap<String, String>,
}

impl Sim {
    fn new() -> Sim {
        let mut sessions = [
            Session::new(Dialect::Native, "node-a"),
            Session::new(
                Dialect::Legacy {
                    name: LEGACY_NAME.into(),
                },
                "node-b",
            ),
        ];
        for s in &mut sessions {
            assert!(s.on_open().is_empty());
        }
        let record = [
            ("l:bob", "responder"),
            ("name:l:bob", "bob"),
            ("s:01USER", "initiator"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Sim {
            sessions,
            admitted: [None, None],
            nodes: ["node-a", "node-b"],
            log: Vec::new(),
            record,
        }
    }

    fn append(&mut self, who: usize, body: RoomBody) -> (StreamId, RoomEvent) {
        let me = &self.admitted[who]
            .as_ref()
            .expect("only members publish")
            .me;
        let id = StreamId {
            ms: 1,
            seq: self.log.len() as u64 + 1,
        };
        let event = RoomEvent {
            from: me.user.to_string(),
            from_name: me.name.clone(),
            sent_ms: NOW_MS,
            body,
        };
        self.log.push((id, event.clone()));
        (id, event)
    }

    /// Deliver a logged event to both sessions (the sender skips its own).
    fn deliver(&mut self, from: usize, id: StreamId, event: &RoomEvent) {
        let other = 1 - from;
        let other_was_in = self.sessions[other].in_room();
        let mine = self.sessions[from].on_room_event(id, event);
        self.perform(from, mine);
        let theirs = self.sessions[other].on_room_event(id, event);
        if other_was_in {
            let sent: Vec<&SignallerEvent> = theirs
                .iter()
                .filter_map(|a| match a {
                    Action::Send(e) => Some(e),
                    _ => None,
                })
                .collect();
            match &event.body {
                RoomBody::Signal { data_json, .. } => match sent.as_slice() {
                    [SignallerEvent::Signal { data, .. }] => assert_eq!(data.get(), data_json),
                    other => panic!("a signal reached the peer as {other:?}"),
                },
                RoomBody::Chat { message } => match sent.as_slice() {
                    [SignallerEvent::Chat { message: got, .. }] => assert_eq!(got, message),
                    other => panic!("a chat reached the peer as {other:?}"),
                },
                RoomBody::Left { .. } => {
                    assert_eq!(sent.len(), 1, "{theirs:?}");
                    assert!(!self.sessions[other].in_room());
                }
                RoomBody::Joined { .. } => {}
                // The peer is native: it is told, once.
                RoomBody::Away { .. } | RoomBody::Resumed { .. } => {
                    assert!(sent.len() <= 1, "{theirs:?}");
                }
            }
        }
        self.perform(other, theirs);
    }

    fn perform(&mut self, who: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(event) => {
                    let _ = event.to_json();
                }
                Action::Join(request) => {
                    // The join script refuses a room that is over.
                    let closed = self
                        .log
                        .iter()
                        .any(|(_, e)| matches!(e.body, RoomBody::Left { .. }));
                    let result = match request {
                        _ if closed => Err(JoinRefusal::RoomClosed),
                        JoinRequest::Native { ticket, room } => {
                            admit_native(SECRET, &ticket, room.as_deref(), NOW_MS)
                        }
                        // No session of this simulation has a credential:
                        // a resume is refused as the room log would.
                        JoinRequest::Resume { .. } => Err(JoinRefusal::SessionGone),
                        JoinRequest::Legacy { name, room } => {
                            let empty = HashMap::new();
                            let record = if room == ROOM { &self.record } else { &empty };
                            admit_legacy(&name, &room, record)
                        }
                    };
                    let outcome = match result {
                        Ok(admitted) => {
                            self.admitted[who] = Some(admitted.clone());
                            let peer = self.admitted[1 - who]
                                .as_ref()
                                .filter(|p| p.room == admitted.room)
                                .map(|p| PeerInfo {
                                    user: p.me.user.to_string(),
                                    name: p.me.name.clone(),
                                    node: Some(self.nodes[1 - who].to_string()),
                                });
                            let (joined_id, _) = self.append(
                                who,
                                RoomBody::Joined {
                                    node: self.nodes[who].into(),
                                },
                            );
                            let outcome = JoinOutcome {
                                room: admitted.room,
                                me: admitted.me,
                                joined_id,
                                peer,
                                backlog: self.log.clone(),
                                resume: None,
                                resumed: false,
                                peer_away: None,
                            };
                            Ok(outcome)
                        }
                        Err(refusal) => Err(refusal),
                    };
                    let ok = outcome.is_ok();
                    let next = self.sessions[who].on_join_result(outcome);
                    assert_eq!(self.sessions[who].in_room(), ok);
                    self.perform(who, next);
                    if ok {
                        let (id, event) = self.log.last().cloned().unwrap();
                        self.deliver(who, id, &event);
                    }
                }
                Action::Publish(body) => {
                    let (id, event) = self.append(who, body);
                    self.deliver(who, id, &event);
                }
                Action::Leave(reason) => {
                    let (id, event) = self.append(who, RoomBody::Left { reason });
                    self.deliver(who, id, &event);
                }
                Action::DeclarePeerLost { .. } => {
                    let next = self.sessions[who].on_declare_failed();
                    self.perform(who, next);
                }
                Action::GoAway => {
                    let (id, event) = self.append(who, RoomBody::Away { until_ms: NOW_MS });
                    self.deliver(who, id, &event);
                }
                Action::DeclarePeerAway { .. } => {
                    let next = self.sessions[who].on_declare_failed();
                    self.perform(who, next);
                }
                Action::DeclarePeerTimedOut { .. } => {
                    let next = self.sessions[who].on_timeout_failed();
                    self.perform(who, next);
                }
                Action::Close { .. }
                | Action::Watch { .. }
                | Action::Unwatch
                | Action::Release
                | Action::ArmGrace { .. }
                | Action::DisarmGrace
                | Action::Reclaim => {}
            }
        }
    }
}

fn run(data: &[u8]) {
    let mut sim = Sim::new();
    for (i, frame) in data.split(|b| *b == FRAME_SEP).enumerate() {
        let who = i % 2;
        let text = text(frame);
        if i % 11 == 10 {
            let actions = sim.sessions[who].on_rate_limited(&text);
            assert!(matches!(
                actions.as_slice(),
                [Action::Send(SignallerEvent::Error {
                    code: ErrorCode::RateLimited,
                    ..
                })]
            ));
            continue;
        }
        let actions = sim.sessions[who].on_text(&text);
        if let Err(e) = SignallerClientMsg::decode(&text) {
            match actions.as_slice() {
                [Action::Send(SignallerEvent::Error { code, .. })] => assert_eq!(*code, e.code()),
                other => panic!("undecodable frame answered with {other:?}"),
            }
        }
        sim.perform(who, actions);
    }
    let lost = sim.sessions[0].on_node_lost("node-b");
    sim.perform(0, lost);
    for who in 0..2 {
        let closed = sim.sessions[who].on_closed();
        sim.perform(who, closed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds do reach a shared room, so the relay properties are tested.
    #[test]
    fn the_seed_peers_meet_and_relay() {
        let mut sim = Sim::new();
        for (i, frame) in [
            native_join(),
            legacy_join(),
            r#"{"event":"chat","message":"hi"}"#.into(),
        ]
        .iter()
        .enumerate()
        {
            let actions = sim.sessions[i % 2].on_text(frame);
            sim.perform(i % 2, actions);
        }
        assert!(sim.sessions[0].in_room() && sim.sessions[1].in_room());
        // joined, joined, chat
        assert_eq!(sim.log.len(), 3);
        assert!(matches!(sim.log[2].1.body, RoomBody::Chat { .. }));
    }
}
