//! A matcher gateway session, driven by client frames and by what Redis
//! hands it (MessagePack notices and gateway messages): every undecodable
//! frame gets exactly one `error` event; a delivered match carries a ticket
//! the signaller accepts for that very room and user; nothing panics.

use std::sync::Arc;
use std::time::Instant;

use matcher::gateway::session::{Action, Identity, Session, TicketIssuer, Waiting};
use matcher::store::{ChatOutcome, Located, Registered};
use wire::internal::{decode, encode, ChatNotice, GatewayMessage, MatchedNotice};
use wire::matcher_api::{MatcherClientMsg, MatcherEvent};
use wire::user::Role;
use wire::ErrorCode;

use super::internal::sample_notice;
use super::json_api::matcher_seeds;
use super::{frames, text, FRAME_SEP, NOW_MS, SECRET};
use crate::Target;

pub const SESSION: Target = Target {
    name: "matcher_session",
    covers: "matcher::gateway::session::Session::on_text/on_rate_limited/on_chat/on_notice",
    run,
    seeds,
    dict: &[
        b"\x1e",
        b"\x1e{\"event\":\"register\"}",
        b"\x1e{\"event\":\"cancel\"}",
        b"\"event\"",
        b"\"chat\"",
        b"\"message\"",
        b"\"name\"",
    ],
};

fn seeds() -> Vec<Vec<u8>> {
    let chat = encode(&GatewayMessage::Chat(ChatNotice {
        to: "l:alice".into(),
        sender: "bob".into(),
        message: "hi".into(),
        sent_ms: NOW_MS,
    }));
    let notice = encode(&sample_notice());
    let matched = encode(&GatewayMessage::Matched {
        user: "l:alice".into(),
    });
    let register = r#"{"event":"register","name":"zoé"}"#.as_bytes().to_vec();
    let talk = br#"{"event":"chat","peer":"bob","message":"hello"}"#.to_vec();
    let mut out = vec![
        frames(&[register.clone(), notice.clone(), talk.clone(), chat.clone()]),
        frames(&[
            register.clone(),
            br#"{"event":"cancel"}"#.to_vec(),
            register,
            matched,
            talk,
        ]),
        frames(&[chat, notice]),
    ];
    out.extend(matcher_seeds());
    out
}

fn is_msgpack_map(frame: &[u8]) -> bool {
    matches!(frame.first(), Some(0x80..=0x8f | 0xde | 0xdf))
}

struct Sim {
    session: Session,
    closed: bool,
    regs: u64,
}

impl Sim {
    /// A session for `identity`, opened and located here.
    fn open(identity: Identity) -> Sim {
        let issuer = TicketIssuer {
            secret: Arc::from(SECRET),
            ticket_ttl_ms: 30_000,
            signaller_url: "ws://signaller/ws".into(),
        };
        let mut sim = Sim {
            session: Session::new(identity, issuer),
            closed: false,
            regs: 0,
        };
        let open = sim.session.on_open();
        sim.perform(open);
        let located = sim.session.on_located(Ok(Located::Here(None)), NOW_MS);
        sim.perform(located);
        sim
    }

    fn perform(&mut self, actions: Vec<Action>) {
        for action in actions {
            let next = match action {
                Action::Send(event) => {
                    let _ = event.to_json();
                    Vec::new()
                }
                Action::Register { name, prefs } => {
                    assert!(wire::limits::valid_name(&name), "registered as {name:?}");
                    self.regs += 1;
                    let w = Waiting {
                        reg: format!("reg{}", self.regs),
                        name,
                        prefs,
                        since: Instant::now(),
                    };
                    self.session.on_registered(Ok((Registered::Queued, w)))
                }
                Action::Chat { message, .. } => {
                    assert!(message.chars().count() <= wire::limits::MAX_CHAT_CHARS);
                    self.session.on_chat_result(Ok(ChatOutcome::Relayed))
                }
                Action::Withdraw { reply } => {
                    if reply {
                        self.session.on_withdrawn(Ok(true))
                    } else {
                        Vec::new()
                    }
                }
                Action::TakeNotice => {
                    let mut n = sample_notice();
                    n.user = self.session.user().to_string();
                    self.notice(n)
                }
                Action::Close(_) => {
                    self.closed = true;
                    Vec::new()
                }
                Action::Report { note, .. } => {
                    assert!(note.chars().count() <= wire::moderation::MAX_NOTE_CHARS);
                    self.session
                        .on_reported(Ok(matcher::store::Reported::NoPartner))
                }
                Action::Block => self.session.on_blocked(Ok(false)),
                Action::Locate { .. }
                | Action::LocateLater
                | Action::Requeue(_)
                | Action::RefreshWait { .. }
                | Action::CountMatch { .. }
                | Action::Release
                | Action::Park => Vec::new(),
                // Sessions here start anew (`resume: false`): never asked.
                Action::Unpark => unreachable!("a fresh session is located, not unparked"),
            };
            self.perform(next);
        }
    }

    /// Deliver a `matched` notice; its ticket must admit exactly that user.
    fn notice(&mut self, notice: MatchedNotice) -> Vec<Action> {
        let actions = self.session.on_notice(Some(notice.clone()), NOW_MS);
        if !self.closed {
            let ticket = actions.iter().find_map(|a| match a {
                Action::Send(MatcherEvent::Matched { ticket, .. }) => ticket.clone(),
                _ => None,
            });
            let ticket = ticket.expect("a delivered match carries a ticket");
            let t = wire::ticket::verify(SECRET, &ticket, NOW_MS).expect("the ticket verifies");
            assert_eq!(
                (&t.room, &t.user, &t.name),
                (&notice.room, &notice.user, &notice.name)
            );
            let role = if notice.initiator {
                Role::Initiator
            } else {
                Role::Responder
            };
            assert_eq!(t.role, role);
        }
        actions
    }

    fn frame(&mut self, i: usize, frame: &[u8]) {
        if is_msgpack_map(frame) {
            if let Ok(notice) = decode::<MatchedNotice>(frame) {
                let next = self.notice(notice);
                return self.perform(next);
            }
            let next = match decode::<GatewayMessage>(frame) {
                Ok(GatewayMessage::Chat(chat)) => {
                    let message = chat.message.clone();
                    let actions = self.session.on_chat(chat);
                    if !self.closed {
                        assert!(
                            matches!(actions.as_slice(),
                                [Action::Send(MatcherEvent::Chat { message: m, .. })] if *m == message),
                            "{actions:?}"
                        );
                    }
                    actions
                }
                Ok(GatewayMessage::Matched { .. } | GatewayMessage::Matches { .. }) => {
                    self.session.on_notice_waiting()
                }
                Ok(GatewayMessage::Replaced { .. }) => {
                    self.closed = true;
                    self.session.on_replaced()
                }
                Err(_) => Vec::new(),
            };
            return self.perform(next);
        }
        let text = text(frame);
        if i % 11 == 10 {
            let actions = self.session.on_rate_limited(&text);
            assert!(matches!(
                actions.as_slice(),
                [Action::Send(MatcherEvent::Error {
                    code: ErrorCode::RateLimited,
                    ..
                })]
            ));
            return;
        }
        let actions = self.session.on_text(&text);
        if let (Err(e), false) = (MatcherClientMsg::decode(&text), self.closed) {
            match actions.as_slice() {
                [Action::Send(MatcherEvent::Error { code, .. })] => assert_eq!(*code, e.code()),
                other => panic!("undecodable frame answered with {other:?}"),
            }
        }
        self.perform(actions);
    }
}

fn run(data: &[u8]) {
    let identities = [
        Identity::Legacy {
            name: "alice".into(),
        },
        Identity::Native {
            session: "01SESSION".into(),
            resume: false,
        },
    ];
    for identity in identities {
        let mut sim = Sim::open(identity);
        for (i, frame) in data.split(|b| *b == FRAME_SEP).enumerate() {
            if i % 17 == 16 {
                let drain = sim.session.on_drain();
                sim.perform(drain);
            }
            if i % 5 == 4 {
                let tick = sim.session.on_tick();
                sim.perform(tick);
            }
            sim.frame(i, frame);
        }
        let closed = sim.session.on_closed();
        sim.perform(closed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seed notice is delivered with a ticket (the property is exercised).
    #[test]
    fn a_seed_notice_is_delivered_with_a_ticket() {
        let mut sim = Sim::open(Identity::Native {
            session: "01S".into(),
            resume: false,
        });
        let actions = sim.notice(sample_notice());
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::Send(MatcherEvent::Matched { .. }))));
        assert!(is_msgpack_map(&encode(&sample_notice())));
    }
}
