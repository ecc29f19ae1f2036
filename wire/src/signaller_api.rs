//! JSON spoken between browsers and the signaller.
//!
//! Legacy clients connect to `WS /ws/{name}` and `join` with a room code; the
//! signaller checks them against the room record. Native clients connect to
//! `WS /ws` and `join` with the signed ticket from the matcher. Everything
//! after the join (signals, chat, leaving) is the same for both.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::{body, event_name, DecodeError};

/// A frame a client sends to the signaller.
#[derive(Debug, Clone)]
pub enum SignallerClientMsg {
    Join(Join),
    Signal(Signal),
    /// Native: a chat line to the peer.
    Chat {
        message: String,
    },
    /// Native: leave the room for good (the peer is told).
    Leave,
    /// Keep-alive; answered with `pong`.
    Ping,
}

/// `join`: legacy fields (`room_code`, `target`, `role` or older `type`) or a
/// native `ticket`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Join {
    pub room_code: Option<String>,
    pub target: Option<String>,
    pub role: Option<String>,
    /// Older legacy clients send `"type":"offer"` / `"answer"` instead of `role`.
    #[serde(rename = "type")]
    pub kind: Option<serde_json::Value>,
    pub ticket: Option<String>,
    /// Native: resume a session that lost its socket, with the credential
    /// from `joined`/`resumed`/`reconnect` (instead of a ticket).
    pub resume: Option<String>,
    /// Native, with `resume`: the `last_id` of the last event the client
    /// handled; everything after it is delivered again. Absent: from the
    /// start of the room.
    pub last_id: Option<String>,
}

/// `signal`: an opaque WebRTC signal for the peer. Only `data` is required;
/// `data` and `type` are relayed verbatim. `target` and `from` are ignored:
/// the server routes by room membership and stamps the real sender.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Signal {
    pub room_code: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<Box<RawValue>>,
    pub data: Box<RawValue>,
}

impl SignallerClientMsg {
    /// Decode a text frame. Never panics; an error says why.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        #[derive(serde::Deserialize)]
        struct Chat {
            message: String,
        }
        match event_name(text)?.as_str() {
            "join" => Ok(SignallerClientMsg::Join(body(text)?)),
            "signal" => Ok(SignallerClientMsg::Signal(body(text)?)),
            "chat" => Ok(SignallerClientMsg::Chat {
                message: body::<Chat>(text)?.message,
            }),
            "leave" => Ok(SignallerClientMsg::Leave),
            "ping" => Ok(SignallerClientMsg::Ping),
            other => Err(DecodeError::UnknownEvent(other.to_string())),
        }
    }
}

/// A frame the signaller sends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum SignallerEvent {
    /// Legacy: the join is accepted (the React client reads only `event`).
    Verified {
        room_code: String,
        role: String,
    },
    /// Native: the join is accepted; says whether the peer is already there.
    Joined {
        room_code: String,
        role: String,
        peer_present: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        peer_name: Option<String>,
        /// The credential to resume this session with if the socket drops.
        #[serde(skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
    },
    /// Native: a session resumed on this socket; the events after the
    /// client's `last_id` follow, then live ones.
    Resumed {
        room_code: String,
        role: String,
        peer_present: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        peer_name: Option<String>,
        /// The peer's session is away (it may still resume).
        peer_reconnecting: bool,
        /// A fresh credential: the one just used does not work again.
        resume: String,
    },
    /// Native: the peer joined after us.
    PeerJoined {
        peer_name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_id: Option<String>,
    },
    /// Native: the peer's socket (or node) is gone; it may come back
    /// within the grace window. The room stays open.
    PeerReconnecting {
        peer_name: String,
        last_id: String,
    },
    /// Native: the peer's session is back (on a new socket).
    PeerResumed {
        peer_name: String,
        last_id: String,
    },
    /// Native: this node is shutting down; open a new socket (any node)
    /// and join with `resume` and `last_id`.
    Reconnect {
        reason: String,
        resume: String,
        last_id: String,
    },
    /// A signal from the peer; `type` and `data` exactly as the peer sent them.
    Signal {
        room_code: String,
        from: String,
        #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
        kind: Option<Box<RawValue>>,
        data: Box<RawValue>,
        /// Native: this event's room-log id, the client's resume cursor.
        #[serde(skip_serializing_if = "Option::is_none")]
        last_id: Option<String>,
    },
    /// Chat from the peer.
    Chat {
        sender: String,
        message: String,
        timestamp: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_id: Option<String>,
    },
    /// Legacy: the peer's socket closed; the room is over.
    PeerDisconnected {
        message: String,
    },
    /// Native: the peer left; the room is over.
    PeerLeft {
        peer_name: String,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        last_id: Option<String>,
    },
    /// Something went wrong; `message` is for people, `code` for programs.
    Error {
        code: crate::ErrorCode,
        message: String,
    },
    Pong {},
}

impl SignallerEvent {
    pub fn error(code: crate::ErrorCode, message: impl Into<String>) -> Self {
        SignallerEvent::Error {
            code,
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server events always encode")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn v(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn decodes_legacy_join_both_forms() {
        let SignallerClientMsg::Join(j) = SignallerClientMsg::decode(
            r#"{"event":"join","room_code":"R","target":"bob","role":"initiator"}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(j.room_code.as_deref(), Some("R"));
        assert_eq!(j.role.as_deref(), Some("initiator"));
        let SignallerClientMsg::Join(j) =
            SignallerClientMsg::decode(r#"{"event":"join","room_code":"R","type":"offer"}"#)
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(j.kind, Some(json!("offer")));
    }

    #[test]
    fn signal_data_is_kept_verbatim() {
        let text = r#"{"event":"signal","room_code":"R","target":"","from":"","type":"signal","data":{"type":"offer","sdp":"v=0\r\n a=x"}}"#;
        let SignallerClientMsg::Signal(s) = SignallerClientMsg::decode(text).unwrap() else {
            panic!()
        };
        assert_eq!(s.data.get(), r#"{"type":"offer","sdp":"v=0\r\n a=x"}"#);
        assert_eq!(s.kind.unwrap().get(), r#""signal""#);
    }

    #[test]
    fn bad_frames_are_typed_errors() {
        assert_eq!(
            SignallerClientMsg::decode("nope").unwrap_err().code(),
            crate::ErrorCode::BadJson
        );
        assert_eq!(
            SignallerClientMsg::decode(r#"{"event":"signal"}"#)
                .unwrap_err()
                .code(),
            crate::ErrorCode::BadMessage
        );
        assert_eq!(
            SignallerClientMsg::decode(r#"{"event":"dance"}"#)
                .unwrap_err()
                .code(),
            crate::ErrorCode::UnknownEvent
        );
        assert!(SignallerClientMsg::decode(r#"{"event":"leave"}"#).is_ok());
    }

    #[test]
    fn server_event_shapes() {
        let sig = SignallerEvent::Signal {
            room_code: "R".into(),
            from: "alice".into(),
            kind: Some(RawValue::from_string("\"signal\"".into()).unwrap()),
            data: RawValue::from_string(r#"{"candidate":{"sdpMLineIndex":0}}"#.into()).unwrap(),
            last_id: None,
        };
        assert_eq!(
            v(&sig.to_json()),
            json!({"event":"signal","room_code":"R","from":"alice","type":"signal",
                   "data":{"candidate":{"sdpMLineIndex":0}}})
        );
        assert_eq!(
            v(&SignallerEvent::Verified {
                room_code: "R".into(),
                role: "initiator".into()
            }
            .to_json()),
            json!({"event":"verified","room_code":"R","role":"initiator"})
        );
        assert_eq!(
            v(&SignallerEvent::PeerDisconnected {
                message: "bob has disconnected".into()
            }
            .to_json()),
            json!({"event":"peer-disconnected","message":"bob has disconnected"})
        );
        assert_eq!(
            v(&SignallerEvent::error(crate::ErrorCode::NoRoom, "Invalid room").to_json()),
            json!({"event":"error","code":"no_room","message":"Invalid room"})
        );
        assert_eq!(
            v(&SignallerEvent::PeerLeft {
                peer_name: "b".into(),
                reason: "left".into(),
                last_id: Some("5-0".into()),
            }
            .to_json())["event"],
            json!("peer-left")
        );
    }
}
