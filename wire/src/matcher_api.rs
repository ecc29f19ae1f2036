//! JSON spoken between browsers and the matcher gateway.
//!
//! Legacy clients use `POST /registerForMatching` and `WS /ws/{name}`; native
//! clients use `WS /ws` and register over the socket. Both receive the same
//! server events; native-only fields are simply ignored by legacy clients.

use serde::{Deserialize, Serialize};

use crate::preferences::RawPreferences;
use crate::{body, event_name, DecodeError};

/// Body of the legacy `POST /registerForMatching`. The original client sends
/// only `name`; the matchmaking preferences are optional extensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBody {
    pub name: String,
    #[serde(flatten)]
    pub prefs: RawPreferences,
}

/// Reply to the legacy `POST /registerForMatching`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterReply {
    pub status: RegisterStatus,
    pub message: String,
    /// With an error: its machine code (`banned`, …); the original client
    /// reads `status` and `message` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<crate::ErrorCode>,
    /// With `banned`: seconds until the ban lifts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegisterStatus {
    Queued,
    Exists,
    Error,
}

/// A frame a client sends on a matcher socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatcherClientMsg {
    /// Native: join the waiting pool, optionally setting the display name
    /// and matchmaking preferences (checked by the session).
    Register {
        name: Option<String>,
        prefs: RawPreferences,
    },
    /// Native: leave the waiting pool.
    Cancel,
    /// Text chat to the current partner. `peer` is what the legacy client
    /// believes its partner is called; the server routes by pairing instead.
    Chat {
        peer: Option<String>,
        message: String,
    },
    /// Report the current partner (or the last one, shortly after a skip).
    /// `reason` is checked by the session ([`crate::moderation::ReportReason`]).
    Report {
        reason: String,
        note: Option<String>,
    },
    /// Never be paired with the current (or last) partner again.
    Block,
    /// Keep-alive; answered with `pong`.
    Ping,
}

impl MatcherClientMsg {
    /// Decode a text frame. Never panics; an error says why.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        struct Register {
            name: Option<String>,
            #[serde(flatten)]
            prefs: RawPreferences,
        }
        #[derive(Deserialize)]
        struct Chat {
            peer: Option<String>,
            message: String,
        }
        #[derive(Deserialize)]
        struct Report {
            reason: String,
            note: Option<String>,
        }
        match event_name(text)?.as_str() {
            "register" => {
                let r: Register = body(text)?;
                Ok(MatcherClientMsg::Register {
                    name: r.name,
                    prefs: r.prefs,
                })
            }
            "cancel" => Ok(MatcherClientMsg::Cancel),
            "chat" => {
                let c: Chat = body(text)?;
                Ok(MatcherClientMsg::Chat {
                    peer: c.peer,
                    message: c.message,
                })
            }
            "report" => {
                let r: Report = body(text)?;
                Ok(MatcherClientMsg::Report {
                    reason: r.reason,
                    note: r.note,
                })
            }
            "block" => Ok(MatcherClientMsg::Block),
            "ping" => Ok(MatcherClientMsg::Ping),
            other => Err(DecodeError::UnknownEvent(other.to_string())),
        }
    }
}

/// One entry of `RTCConfiguration.iceServers`: a STUN server (no
/// credential) or a TURN server with a time-limited credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The body of `GET /ice-servers`: `{"iceServers": [...], "ttl": N}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServers {
    #[serde(rename = "iceServers")]
    pub ice_servers: Vec<IceServer>,
    /// Seconds the credentials stay valid.
    pub ttl: u64,
}

/// A frame the matcher gateway sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum MatcherEvent {
    /// Native: first frame on `/ws`, naming the session.
    Hello {
        session: String,
        protocol: u32,
        /// ICE servers for `RTCPeerConnection` (STUN, and TURN with a
        /// credential minted for this session); absent when none are
        /// configured.
        #[serde(
            rename = "iceServers",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        ice_servers: Option<Vec<IceServer>>,
        /// Seconds the TURN credentials in `iceServers` stay valid.
        #[serde(rename = "iceTtl", default, skip_serializing_if = "Option::is_none")]
        ice_ttl: Option<u64>,
        /// This browser's device identity (signed by the gateway): the page
        /// keeps it and presents it again (`/ws?device=`) on every visit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
    },
    /// Native and legacy: the report was recorded.
    Reported {},
    /// Native and legacy: the two will not be paired again.
    Blocked {},
    /// Native: fresh ICE servers before those given earlier expire (sent
    /// at about 80% of their lifetime; the same shape as `GET /ice-servers`).
    IceServers {
        #[serde(rename = "iceServers")]
        ice_servers: Vec<IceServer>,
        ttl: u64,
    },
    /// The register was accepted; a `matched` will follow. With interests
    /// (or a language) and not strict: how long the pool looks for someone
    /// sharing them before anyone will do, ms.
    Queued {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interest_wait_ms: Option<u64>,
    },
    /// Native: `cancel` took the user out of the pool.
    Cancelled {},
    /// A partner was found. `room_code` and `initiator` are the legacy fields;
    /// the rest are native extensions.
    Matched {
        room_code: String,
        initiator: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer_name: Option<String>,
        /// Signed join ticket for the signaller.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket: Option<String>,
        /// WebSocket URL of the signaller to join.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signaller_url: Option<String>,
        /// The interests both gave (possibly none). Sent to every client;
        /// the original one ignores it.
        #[serde(default)]
        common_interests: Vec<String>,
    },
    /// Chat from the partner (legacy shape: `timestamp` in Unix seconds).
    Chat {
        sender: String,
        message: String,
        timestamp: f64,
    },
    /// Something went wrong; `message` is for people, `code` for programs.
    Error {
        code: crate::ErrorCode,
        message: String,
        /// With `banned`: seconds until the ban lifts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    /// The gateway is shutting down: reconnect (to another node) and register again.
    Reconnect {
        reason: String,
    },
    Pong {},
}

impl MatcherEvent {
    pub fn error(code: crate::ErrorCode, message: impl Into<String>) -> Self {
        MatcherEvent::Error {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The `banned` error: the user may come back in `retry_after` seconds.
    pub fn banned(retry_after: u64) -> Self {
        MatcherEvent::Error {
            code: crate::ErrorCode::Banned,
            message: crate::moderation::banned_message(retry_after),
            retry_after: Some(retry_after),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server events always encode")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_client_event() {
        assert_eq!(
            MatcherClientMsg::decode(r#"{"event":"register","name":"al"}"#),
            Ok(MatcherClientMsg::Register {
                name: Some("al".into()),
                prefs: RawPreferences::default(),
            })
        );
        assert_eq!(
            MatcherClientMsg::decode(r#"{"event":"register"}"#),
            Ok(MatcherClientMsg::Register {
                name: None,
                prefs: RawPreferences::default(),
            })
        );
        assert_eq!(
            MatcherClientMsg::decode(
                r#"{"event":"register","interests":["a"],"language":"en","strict":true}"#
            ),
            Ok(MatcherClientMsg::Register {
                name: None,
                prefs: RawPreferences {
                    interests: Some(vec!["a".into()]),
                    language: Some("en".into()),
                    strict: Some(true),
                },
            })
        );
        assert_eq!(
            MatcherClientMsg::decode(r#"{"event":"register","interests":"a"}"#)
                .unwrap_err()
                .code(),
            crate::ErrorCode::BadMessage
        );
        assert_eq!(
            MatcherClientMsg::decode(r#"{"event":"cancel"}"#),
            Ok(MatcherClientMsg::Cancel)
        );
        assert_eq!(
            MatcherClientMsg::decode(r#"{"event":"chat","peer":"bob","message":"hi"}"#),
            Ok(MatcherClientMsg::Chat {
                peer: Some("bob".into()),
                message: "hi".into()
            })
        );
        assert_eq!(
            MatcherClientMsg::decode(r#"{"event":"ping"}"#),
            Ok(MatcherClientMsg::Ping)
        );
    }

    #[test]
    fn bad_frames_are_typed_errors() {
        assert_eq!(
            MatcherClientMsg::decode("{oops").unwrap_err().code(),
            crate::ErrorCode::BadJson
        );
        assert_eq!(
            MatcherClientMsg::decode("[1,2]").unwrap_err().code(),
            crate::ErrorCode::BadJson
        );
        assert_eq!(
            MatcherClientMsg::decode("{}").unwrap_err().code(),
            crate::ErrorCode::BadMessage
        );
        assert_eq!(
            MatcherClientMsg::decode(r#"{"event":"fly"}"#).unwrap_err(),
            DecodeError::UnknownEvent("fly".into())
        );
        assert_eq!(
            MatcherClientMsg::decode(r#"{"event":"chat"}"#)
                .unwrap_err()
                .code(),
            crate::ErrorCode::BadMessage
        );
        assert_eq!(
            MatcherClientMsg::decode(r#"{"event":7}"#)
                .unwrap_err()
                .code(),
            crate::ErrorCode::BadMessage
        );
    }

    #[test]
    fn legacy_matched_shape() {
        let ev = MatcherEvent::Matched {
            room_code: "R".into(),
            initiator: true,
            peer_name: None,
            ticket: None,
            signaller_url: None,
            common_interests: vec![],
        };
        assert_eq!(
            ev.to_json(),
            r#"{"event":"matched","room_code":"R","initiator":true,"common_interests":[]}"#
        );
        let back: MatcherEvent = serde_json::from_str(&ev.to_json()).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn server_events_round_trip() {
        for ev in [
            MatcherEvent::Hello {
                session: "s".into(),
                protocol: 1,
                ice_servers: None,
                ice_ttl: None,
                device: None,
            },
            MatcherEvent::Hello {
                session: "s".into(),
                protocol: 1,
                ice_servers: Some(vec![IceServer {
                    urls: vec!["turn:t:3478".into()],
                    username: Some("1:s".into()),
                    credential: Some("c".into()),
                }]),
                ice_ttl: Some(3600),
                device: Some("01D.sig".into()),
            },
            MatcherEvent::Reported {},
            MatcherEvent::Blocked {},
            MatcherEvent::banned(90),
            MatcherEvent::IceServers {
                ice_servers: vec![IceServer {
                    urls: vec!["stun:s:3478".into()],
                    username: None,
                    credential: None,
                }],
                ttl: 3600,
            },
            MatcherEvent::Queued {
                interest_wait_ms: None,
            },
            MatcherEvent::Queued {
                interest_wait_ms: Some(5000),
            },
            MatcherEvent::Cancelled {},
            MatcherEvent::Matched {
                room_code: "R".into(),
                initiator: false,
                peer_name: Some("b".into()),
                ticket: Some("t".into()),
                signaller_url: Some("ws://x/ws".into()),
                common_interests: vec!["chess".into()],
            },
            MatcherEvent::Chat {
                sender: "b".into(),
                message: "m".into(),
                timestamp: 1.5,
            },
            MatcherEvent::error(crate::ErrorCode::BadJson, "nope"),
            MatcherEvent::Reconnect {
                reason: "draining".into(),
            },
            MatcherEvent::Pong {},
        ] {
            let back: MatcherEvent = serde_json::from_str(&ev.to_json()).unwrap();
            assert_eq!(back, ev);
        }
        assert_eq!(
            MatcherEvent::Queued {
                interest_wait_ms: None
            }
            .to_json(),
            r#"{"event":"queued"}"#
        );
        assert_eq!(
            MatcherEvent::IceServers {
                ice_servers: vec![IceServer {
                    urls: vec!["turn:t:3478?transport=udp".into()],
                    username: Some("9:s".into()),
                    credential: Some("c".into()),
                }],
                ttl: 60,
            }
            .to_json(),
            r#"{"event":"ice-servers","iceServers":[{"urls":["turn:t:3478?transport=udp"],"username":"9:s","credential":"c"}],"ttl":60}"#
        );
    }

    #[test]
    fn register_reply_shape() {
        let r = RegisterReply {
            status: RegisterStatus::Exists,
            message: "m".into(),
            code: None,
            retry_after: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"status":"exists","message":"m"}"#
        );
    }
}
