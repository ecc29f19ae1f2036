//! Internal MessagePack: everything services read from Redis streams,
//! channels and notice keys, and the room-channel framing.

use std::fmt::Debug;

use arbitrary::{Arbitrary, Unstructured};
use serde::{de::DeserializeOwned, Serialize};
use wire::internal::{
    decode, encode, split_room_publication, ChatNotice, GatewayMessage, LeaveReason, MatchedNotice,
    RegisterRequest, RoomBody, RoomEvent, StreamId,
};

use super::text;
use crate::Target;

const DICT: &[&[u8]] = &[
    b"\xa4kind",
    b"\xa7matched",
    b"\xa4chat",
    b"\xa8replaced",
    b"\xa6signal",
    b"\xa6joined",
    b"\xa4left",
    b"\xa4body",
    b"\xa4user",
    b"\xa7sent_ms",
    b"\xa9data_json",
    b"\xa9type_json",
    b"\xa8node_lost",
    b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
    b"\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00",
    b"\xdd\xff\xff\xff\xff",
    b"\xdf\xff\xff\xff\xff",
    b"\xdb\xff\xff\xff\xff",
    b"\xc4\x03abc",
    b"18446744073709551615-0 ",
];

pub const MSGPACK: Target = Target {
    name: "internal_msgpack",
    covers: "wire::internal::decode::<GatewayMessage|MatchedNotice|RegisterRequest|ChatNotice|RoomEvent>, split_room_publication, StreamId::parse",
    run: msgpack,
    seeds: msgpack_seeds,
    dict: DICT,
};

pub const ROUND_TRIP: Target = Target {
    name: "internal_round_trip",
    covers: "internal encode/decode of arbitrary values, publication framing",
    run: round_trip,
    seeds: Vec::new,
    dict: &[],
};

pub fn sample_room_events() -> Vec<RoomEvent> {
    let ev = |body| RoomEvent {
        from: "n:01S".into(),
        from_name: "ann".into(),
        sent_ms: 1_700_000_000_000,
        body,
    };
    vec![
        ev(RoomBody::Signal {
            data_json: r#"{"type":"offer","sdp":"v=0"}"#.into(),
            type_json: Some("\"signal\"".into()),
        }),
        ev(RoomBody::Signal {
            data_json: "null".into(),
            type_json: None,
        }),
        ev(RoomBody::Chat {
            message: "héllo".into(),
        }),
        ev(RoomBody::Joined { node: "n1".into() }),
        ev(RoomBody::Left {
            reason: LeaveReason::NodeLost,
        }),
    ]
}

pub fn sample_notice() -> MatchedNotice {
    MatchedNotice {
        user: "l:alice".into(),
        reg: "01JREG".into(),
        addr: "127.0.0.1".into(),
        room: "alice_bob_01JD00000000000000000000AA".into(),
        initiator: true,
        peer: "s:01S".into(),
        peer_name: "bob".into(),
        name: "alice".into(),
        common: vec!["chess".into()],
    }
}

fn msgpack_seeds() -> Vec<Vec<u8>> {
    let mut out = vec![
        encode(&RegisterRequest {
            v: 1,
            user: "l:bob".into(),
            reg: "01J".into(),
            prefs: None,
            since_ms: None,
        }),
        encode(&sample_notice()),
        encode(&GatewayMessage::Matched { user: "l:a".into() }),
        encode(&GatewayMessage::Chat(ChatNotice {
            to: "n:a".into(),
            sender: "b".into(),
            message: "hi".into(),
            sent_ms: 5,
        })),
        encode(&GatewayMessage::Replaced {
            user: "l:a".into(),
            socket: "01K".into(),
        }),
        b"12-3".to_vec(),
    ];
    for (i, ev) in sample_room_events().iter().enumerate() {
        out.push(encode(ev));
        let mut framed = format!("{}-{i} ", 1_700_000_000_000u64 + i as u64).into_bytes();
        framed.extend(encode(ev));
        out.push(framed);
    }
    out
}

/// Decode as `T`; what decodes must encode back to itself.
fn check<T: DeserializeOwned + Serialize + PartialEq + Debug>(bytes: &[u8]) {
    if let Ok(x) = decode::<T>(bytes) {
        let back = decode::<T>(&encode(&x))
            .unwrap_or_else(|e| panic!("{x:?} encodes to something undecodable: {e}"));
        assert_eq!(back, x);
    }
}

fn stream_id(s: &str) {
    if let Some(id) = StreamId::parse(s) {
        assert_eq!(StreamId::parse(&id.to_string()), Some(id));
    }
}

fn msgpack(data: &[u8]) {
    check::<RegisterRequest>(data);
    check::<GatewayMessage>(data);
    check::<MatchedNotice>(data);
    check::<ChatNotice>(data);
    check::<RoomEvent>(data);
    stream_id(&text(data));
    if let Some((id, rest)) = split_room_publication(data) {
        assert_eq!(StreamId::parse(&id.to_string()), Some(id));
        check::<RoomEvent>(rest);
    }
}

#[derive(Debug, Arbitrary)]
enum AnyBody {
    Signal(String, Option<String>),
    Chat(String),
    Joined(String),
    Left(u8),
}

#[derive(Debug, Arbitrary)]
struct Values {
    strings: [String; 8],
    numbers: [u64; 3],
    initiator: bool,
    body: AnyBody,
    gateway: u8,
}

fn round_trip(data: &[u8]) {
    let Ok(v) = Values::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let s = |i: usize| v.strings[i].clone();
    let reasons = [
        LeaveReason::Left,
        LeaveReason::Disconnected,
        LeaveReason::NodeLost,
        LeaveReason::Drained,
    ];
    let body = match &v.body {
        AnyBody::Signal(d, t) => RoomBody::Signal {
            data_json: d.clone(),
            type_json: t.clone(),
        },
        AnyBody::Chat(m) => RoomBody::Chat { message: m.clone() },
        AnyBody::Joined(n) => RoomBody::Joined { node: n.clone() },
        AnyBody::Left(r) => RoomBody::Left {
            reason: reasons[*r as usize % 4],
        },
    };
    let event = RoomEvent {
        from: s(0),
        from_name: s(1),
        sent_ms: v.numbers[0],
        body,
    };
    assert_eq!(decode::<RoomEvent>(&encode(&event)).unwrap(), event);

    // The publish script's framing: `<id> <MessagePack>`.
    let id = StreamId {
        ms: v.numbers[1],
        seq: v.numbers[2],
    };
    let mut framed = format!("{id} ").into_bytes();
    framed.extend(encode(&event));
    let (got_id, rest) = split_room_publication(&framed).expect("framed publication splits");
    assert_eq!(got_id, id);
    assert_eq!(decode::<RoomEvent>(rest).unwrap(), event);

    let notice = MatchedNotice {
        user: s(0),
        reg: s(1),
        addr: s(2),
        room: s(3),
        initiator: v.initiator,
        peer: s(4),
        peer_name: s(5),
        name: s(6),
        common: vec![s(7)],
    };
    assert_eq!(decode::<MatchedNotice>(&encode(&notice)).unwrap(), notice);

    let request = RegisterRequest {
        v: v.numbers[0] as u32,
        user: s(0),
        reg: s(7),
        prefs: Some(wire::internal::PoolPreferences {
            interests: vec![s(1), s(2)],
            language: Some(s(3)),
            region: None,
            strict: v.initiator,
        }),
        since_ms: Some(v.numbers[0]),
    };
    assert_eq!(
        decode::<RegisterRequest>(&encode(&request)).unwrap(),
        request
    );

    let message = match v.gateway % 3 {
        0 => GatewayMessage::Matched { user: s(2) },
        1 => GatewayMessage::Chat(ChatNotice {
            to: s(3),
            sender: s(4),
            message: s(5),
            sent_ms: v.numbers[2],
        }),
        _ => GatewayMessage::Replaced {
            user: s(6),
            socket: s(7),
        },
    };
    assert_eq!(
        decode::<GatewayMessage>(&encode(&message)).unwrap(),
        message
    );
}
