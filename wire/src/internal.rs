//! MessagePack messages that services exchange over Redis.
//!
//! Structs are encoded with field names (`rmp_serde::to_vec_named`), so the
//! matcher's Lua scripts can build the same maps with `cmsgpack.pack` and a
//! reader can skip fields it does not know (forward compatibility).

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Stream field holding a MessagePack [`RegisterRequest`].
pub const REGISTER_FIELD: &str = "m";

/// Stream field holding when the gateway accepted the register, in
/// microseconds since the Unix epoch (decimal): the worker measures how long
/// the entry waited on the stream (stream ids are only milliseconds). Absent
/// in the entries the scripts write themselves.
pub const REGISTER_STAMP_FIELD: &str = "t";

/// Why an internal message could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("undecodable internal message: {0}")]
pub struct InternalDecodeError(String);

/// Encode any internal message as MessagePack with field names.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(msg).expect("internal messages always encode")
}

/// Decode an internal message.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, InternalDecodeError> {
    rmp_serde::from_slice(bytes).map_err(|e| InternalDecodeError(e.to_string()))
}

/// A register request on the register stream: gateway → worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// Protocol version of the writer ([`crate::PROTOCOL_VERSION`]).
    pub v: u32,
    /// The user's key ([`crate::user::UserKey`] as a string).
    pub user: String,
    /// Id of this registration; must still be in the user's `waiting` key.
    pub reg: String,
    /// What the user asked of a partner, and the gateway's region; absent
    /// when nothing was asked (and in the entries the scripts write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefs: Option<PoolPreferences>,
    /// When the user first entered the pool (ms, Redis clock), for a
    /// session that comes back after its socket dropped: it keeps how long
    /// it has waited. Absent for a new registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
}

/// A waiting user's matchmaking wishes as the pairing script reads them
/// (the pool's `prefs` key of the user; `cmsgpack.unpack` gives a table
/// with these field names, absent ones nil).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolPreferences {
    /// Normalised tags ([`crate::preferences`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interests: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The region of the gateway the user registered through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
}

impl PoolPreferences {
    /// `prefs` and the gateway's `region` (empty: none), or `None` when
    /// there is nothing to tell the pairing script.
    pub fn new(prefs: &crate::preferences::Preferences, region: &str) -> Option<Self> {
        let p = PoolPreferences {
            interests: prefs.interests.clone(),
            language: prefs.language.clone(),
            region: (!region.is_empty()).then(|| region.to_string()),
            strict: prefs.strict,
        };
        (p != PoolPreferences::default()).then_some(p)
    }
}

/// A message on one matcher gateway's channel
/// ([`crate::keys::gateway_channel`]). Written by the matcher's Lua scripts
/// with `cmsgpack.pack`, so the field names here are the Lua tables' keys.
/// Read through [`GatewayEnvelope`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "GatewayEnvelope")]
pub enum GatewayMessage {
    /// A `matched` notice waits for `user` in its notice key: the gateway
    /// takes it from there (`GETDEL`), so exactly one delivers it. Only the
    /// user travels here: it is all the gateway needs to route it.
    Matched { user: String },
    /// Users matched by one pairing run, all on this gateway: one message
    /// per gateway per run. `at_us`: when the pairing script ran (Redis
    /// clock, microseconds since the Unix epoch), for the inbox latency.
    Matches {
        at_us: u64,
        matches: Vec<PushedMatch>,
    },
    /// Legacy chat relayed to the user's current partner.
    Chat(ChatNotice),
    /// `user`'s socket `socket` on this gateway was replaced by the socket of
    /// the name's registrant, from another address: close it.
    Replaced { user: String, socket: String },
}

/// A [`GatewayMessage`] as read: the `kind` and the fields of every kind,
/// decoded in one pass. (Serde reads an internally tagged enum by
/// buffering the whole message first and decoding it again from the
/// buffer: for a pairing run's `matches`, every push twice. One pass
/// halves the time a gateway spends decoding them.)
#[derive(Deserialize)]
struct GatewayEnvelope {
    kind: String,
    user: Option<String>,
    at_us: Option<u64>,
    matches: Option<Vec<PushedMatch>>,
    socket: Option<String>,
    to: Option<String>,
    sender: Option<String>,
    message: Option<String>,
    sent_ms: Option<u64>,
}

impl TryFrom<GatewayEnvelope> for GatewayMessage {
    type Error = String;

    fn try_from(e: GatewayEnvelope) -> Result<GatewayMessage, String> {
        let kind = e.kind;
        let missing = |field: &str| format!("gateway message {kind:?} without `{field}`");
        Ok(match kind.as_str() {
            "matched" => GatewayMessage::Matched {
                user: e.user.ok_or_else(|| missing("user"))?,
            },
            "matches" => GatewayMessage::Matches {
                at_us: e.at_us.ok_or_else(|| missing("at_us"))?,
                matches: e.matches.ok_or_else(|| missing("matches"))?,
            },
            "chat" => GatewayMessage::Chat(ChatNotice {
                to: e.to.ok_or_else(|| missing("to"))?,
                sender: e.sender.ok_or_else(|| missing("sender"))?,
                message: e.message.ok_or_else(|| missing("message"))?,
                sent_ms: e.sent_ms.ok_or_else(|| missing("sent_ms"))?,
            }),
            "replaced" => GatewayMessage::Replaced {
                user: e.user.ok_or_else(|| missing("user"))?,
                socket: e.socket.ok_or_else(|| missing("socket"))?,
            },
            other => return Err(format!("unknown gateway message kind {other:?}")),
        })
    }
}

/// One matched user in a [`GatewayMessage::Matches`]: for the socket
/// `socket` of `user` (the location the pairing script read). A native
/// user's `notice` travels with it, so its gateway writes `matched` without
/// another round trip; the copy in the notice key stays for the paths that
/// take it instead (a restore, a resume after the socket dropped), and the
/// session delivers a registration's match once whichever copy comes first.
/// A legacy user's notice is taken from its key (`take_notice.lua`, which
/// checks the socket's address), as with [`GatewayMessage::Matched`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedMatch {
    pub user: String,
    pub socket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<MatchedNotice>,
}

/// What the pairing script tells each of the two users, kept in the user's
/// notice key until a gateway takes it. Written by the pairing script with
/// `cmsgpack.pack`, so the field names here are the Lua table's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedNotice {
    /// The user this notice is for.
    pub user: String,
    /// The registration that was matched.
    pub reg: String,
    /// The client address the registration came from: a legacy socket
    /// takes the notice only from that address.
    pub addr: String,
    /// Room code: a ULID, or `<initiator name>_<responder name>_<ULID>`
    /// when a legacy user is in the pair.
    pub room: String,
    /// Whether this user makes the WebRTC offer.
    pub initiator: bool,
    /// The partner's user key.
    pub peer: String,
    /// The partner's display name.
    pub peer_name: String,
    /// This user's own display name, for the ticket.
    pub name: String,
    /// The interests both gave (absent when none).
    #[serde(default)]
    pub common: Vec<String>,
}

/// A legacy chat line on its way to the recipient's gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatNotice {
    /// Recipient's user key.
    pub to: String,
    /// Sender's display name.
    pub sender: String,
    pub message: String,
    /// Milliseconds since the Unix epoch, stamped by the sender's gateway.
    pub sent_ms: u64,
}

/// Something one peer of a room said or did, as logged in the room's stream
/// and published on its channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomEvent {
    /// Sender's user key.
    pub from: String,
    /// Sender's display name.
    pub from_name: String,
    /// Milliseconds since the Unix epoch when the sending node published it;
    /// the receiving node measures relay latency against it.
    pub sent_ms: u64,
    pub body: RoomBody,
}

/// The payload of a [`RoomEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoomBody {
    /// A WebRTC signal; `data` and `type` are the client's JSON, kept verbatim.
    Signal {
        data_json: String,
        type_json: Option<String>,
    },
    /// A chat line.
    Chat { message: String },
    /// The sender joined the room on signaller `node`.
    Joined { node: String },
    /// The sender left the room for good.
    Left { reason: LeaveReason },
    /// The sender's native session lost its socket (or its node) and may
    /// resume until `until_ms` (milliseconds since the Unix epoch); the
    /// room stays open meanwhile.
    Away { until_ms: u64 },
    /// The sender's session resumed on a new socket, on signaller `node`.
    Resumed { node: String },
}

/// Why a peer left a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// Sent `leave` (native) or skipped.
    Left,
    /// Its socket closed.
    Disconnected,
    /// Its signaller node stopped answering.
    NodeLost,
    /// Its signaller node is shutting down.
    Drained,
    /// Its session went away and did not resume within the grace window.
    Timeout,
}

impl LeaveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Disconnected => "disconnected",
            LeaveReason::NodeLost => "node_lost",
            LeaveReason::Drained => "drained",
            LeaveReason::Timeout => "timeout",
        }
    }
}

/// A Redis stream entry id (`<ms>-<seq>`), ordered as Redis orders them. The
/// room log's ids are the sequence numbers that make delivery exactly-once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub fn parse(s: &str) -> Option<StreamId> {
        let (ms, seq) = s.split_once('-')?;
        Some(StreamId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Split a room-channel publication, `<stream id>[@<µs>] <MessagePack
/// RoomEvent>`, as framed by the signaller's room scripts (the stamp is
/// ignored here; see [`split_stamped_room_publication`]).
pub fn split_room_publication(bytes: &[u8]) -> Option<(StreamId, &[u8])> {
    split_stamped_room_publication(bytes).map(|(id, _, payload)| (id, payload))
}

/// Split a room-channel publication into its stream id, the sender node's
/// publish stamp (µs since the Unix epoch, `0` when it has none: only
/// signals and chat carry one) and the MessagePack [`RoomEvent`].
pub fn split_stamped_room_publication(bytes: &[u8]) -> Option<(StreamId, u64, &[u8])> {
    let space = bytes.iter().position(|b| *b == b' ')?;
    let head = std::str::from_utf8(&bytes[..space]).ok()?;
    let (id, stamp) = match head.split_once('@') {
        Some((id, stamp)) => (id, stamp.parse().ok()?),
        None => (head, 0),
    };
    Some((StreamId::parse(id)?, stamp, &bytes[space + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_round_trip() {
        let r = RegisterRequest {
            v: 1,
            user: "l:bob".into(),
            reg: "01J".into(),
            prefs: None,
            since_ms: None,
        };
        assert_eq!(decode::<RegisterRequest>(&encode(&r)).unwrap(), r);
        let with = RegisterRequest {
            prefs: Some(PoolPreferences {
                interests: vec!["chess".into()],
                language: Some("en".into()),
                region: Some("eu".into()),
                strict: true,
            }),
            since_ms: Some(1_700_000_000_000),
            ..r
        };
        assert_eq!(decode::<RegisterRequest>(&encode(&with)).unwrap(), with);
    }

    #[test]
    fn gateway_message_round_trip() {
        let notice = MatchedNotice {
            user: "l:a".into(),
            reg: "01J".into(),
            addr: "127.0.0.1".into(),
            room: "R".into(),
            initiator: true,
            peer: "s:1".into(),
            peer_name: "b".into(),
            name: "a".into(),
            common: vec!["chess".into()],
        };
        assert_eq!(decode::<MatchedNotice>(&encode(&notice)).unwrap(), notice);
        for msg in [
            GatewayMessage::Matched { user: "l:a".into() },
            GatewayMessage::Chat(ChatNotice {
                to: "n:a".into(),
                sender: "b".into(),
                message: "hi".into(),
                sent_ms: 5,
            }),
            GatewayMessage::Matches {
                at_us: 1_700_000_000_000_000,
                matches: vec![
                    PushedMatch {
                        user: "l:a".into(),
                        socket: "7".into(),
                        notice: None,
                    },
                    PushedMatch {
                        user: "s:1".into(),
                        socket: "8".into(),
                        notice: Some(notice.clone()),
                    },
                ],
            },
            GatewayMessage::Replaced {
                user: "l:a".into(),
                socket: "7".into(),
            },
        ] {
            assert_eq!(decode::<GatewayMessage>(&encode(&msg)).unwrap(), msg);
        }
    }

    /// What the gateway's channel refuses, by name: a kind it does not
    /// know, and a kind without one of its fields.
    #[test]
    fn gateway_message_of_unknown_kind_or_missing_field_is_refused() {
        #[derive(Serialize)]
        struct Raw<'a> {
            kind: &'a str,
            user: &'a str,
        }
        let unknown = decode::<GatewayMessage>(&encode(&Raw {
            kind: "teleport",
            user: "l:a",
        }));
        assert!(unknown.unwrap_err().0.contains("\"teleport\""));
        let partial = decode::<GatewayMessage>(&encode(&Raw {
            kind: "replaced",
            user: "l:a",
        }));
        assert!(partial.unwrap_err().0.contains("`socket`"));
    }

    #[test]
    fn room_event_round_trip() {
        for body in [
            RoomBody::Signal {
                data_json: r#"{"type":"offer","sdp":"v=0"}"#.into(),
                type_json: Some("\"signal\"".into()),
            },
            RoomBody::Chat {
                message: "héllo".into(),
            },
            RoomBody::Joined { node: "n1".into() },
            RoomBody::Left {
                reason: LeaveReason::NodeLost,
            },
            RoomBody::Away { until_ms: 9 },
            RoomBody::Resumed { node: "n2".into() },
        ] {
            let ev = RoomEvent {
                from: "n:a".into(),
                from_name: "a".into(),
                sent_ms: 7,
                body,
            };
            assert_eq!(decode::<RoomEvent>(&encode(&ev)).unwrap(), ev);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<GatewayMessage>(b"\xff\x00garbage").is_err());
        assert!(decode::<RoomEvent>(&[]).is_err());
    }

    #[test]
    fn stream_ids_order_numerically() {
        let a = StreamId::parse("9-5").unwrap();
        let b = StreamId::parse("10-0").unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "9-5");
        assert_eq!(StreamId::parse("x-1"), None);
        assert_eq!(StreamId::parse("12"), None);
    }

    #[test]
    fn publication_framing() {
        let (id, rest) = split_room_publication(b"12-3 \x81\xa1a\x01").unwrap();
        assert_eq!(id, StreamId { ms: 12, seq: 3 });
        assert_eq!(rest, b"\x81\xa1a\x01");
        assert!(split_room_publication(b"nospace").is_none());
    }

    #[test]
    fn stamped_publication_framing() {
        let (id, stamp, rest) = split_stamped_room_publication(b"12-3@1700 \x81").unwrap();
        assert_eq!(
            (id, stamp, rest),
            (StreamId { ms: 12, seq: 3 }, 1700, &b"\x81"[..])
        );
        let (id, stamp, _) = split_stamped_room_publication(b"12-3 \x81").unwrap();
        assert_eq!((id, stamp), (StreamId { ms: 12, seq: 3 }, 0));
        assert_eq!(
            split_room_publication(b"12-3@1700 \x81"),
            Some((StreamId { ms: 12, seq: 3 }, &b"\x81"[..]))
        );
        assert!(split_stamped_room_publication(b"12-3@x \x81").is_none());
    }
}
