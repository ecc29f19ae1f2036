//! Browser JSON: the matcher's socket frames and legacy register body, the
//! signaller's socket frames.

use arbitrary::{Arbitrary, Unstructured};
use serde_json::{json, Map, Value};
use wire::matcher_api::{MatcherClientMsg, RegisterBody};
use wire::signaller_api::SignallerClientMsg;
use wire::DecodeError;

use super::text;
use crate::Target;

const DICT: &[&[u8]] = &[
    b"\"event\"",
    b"\"register\"",
    b"\"cancel\"",
    b"\"chat\"",
    b"\"ping\"",
    b"\"join\"",
    b"\"signal\"",
    b"\"leave\"",
    b"\"name\"",
    b"\"peer\"",
    b"\"message\"",
    b"\"room_code\"",
    b"\"ticket\"",
    b"\"type\"",
    b"\"data\"",
    b"\"role\"",
    b"\"target\"",
    b",\"event\":\"chat\"",
    b"{\"a\":[1,{\"b\":null}]}",
];

pub const MATCHER_WS: Target = Target {
    name: "matcher_ws_json",
    covers: "wire::matcher_api::MatcherClientMsg::decode",
    run: matcher_ws,
    seeds: matcher_seeds,
    dict: DICT,
};

pub const MATCHER_REGISTER: Target = Target {
    name: "matcher_register_body",
    covers: "RegisterBody (POST /registerForMatching), valid_name",
    run: matcher_register,
    seeds: register_seeds,
    dict: DICT,
};

pub const SIGNALLER_WS: Target = Target {
    name: "signaller_ws_json",
    covers: "wire::signaller_api::SignallerClientMsg::decode",
    run: signaller_ws,
    seeds: signaller_seeds,
    dict: DICT,
};

fn seeds(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|s| s.as_bytes().to_vec()).collect()
}

pub fn matcher_seeds() -> Vec<Vec<u8>> {
    seeds(&[
        r#"{"event":"register","name":"al"}"#,
        r#"{"event":"register"}"#,
        r#"{"event":"register","name":null}"#,
        r#"{"event":"cancel"}"#,
        r#"{"event":"chat","peer":"bob","message":"hi \u00e9"}"#,
        r#"{"event":"chat","message":"hello"}"#,
        r#"{"event":"ping"}"#,
        r#"{"message":"x","event":"chat","extra":[1,2,{"k":"v"}]}"#,
    ])
}

fn register_seeds() -> Vec<Vec<u8>> {
    seeds(&[
        r#"{"name":"alice"}"#,
        r#"{"name":"日本 語","other":1}"#,
        r#"{"name":""}"#,
    ])
}

pub fn signaller_seeds() -> Vec<Vec<u8>> {
    seeds(&[
        r#"{"event":"join","room_code":"alice_bob_01JD00000000000000000000AA","target":"bob","role":"initiator"}"#,
        r#"{"event":"join","room_code":"R","type":"offer"}"#,
        r#"{"event":"join","ticket":"eyJyb29tIjoiUiJ9.c2ln"}"#,
        r#"{"event":"signal","room_code":"R","target":"","from":"","type":"signal","data":{"type":"offer","sdp":"v=0\r\n a=x"}}"#,
        r#"{"event":"signal","data":{"candidate":{"sdpMLineIndex":0,"candidate":"a"}}}"#,
        r#"{"event":"chat","message":"hi"}"#,
        r#"{"event":"leave"}"#,
        r#"{"event":"ping"}"#,
    ])
}

/// Text that is not JSON at all must be reported as such (`bad_json`).
/// (Syntax only: `1e999` is JSON, though no `Value` holds it.)
fn not_json_is_malformed(text: &str, result: Result<(), &DecodeError>) {
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        assert!(
            matches!(result, Err(DecodeError::Malformed(_))),
            "non-JSON text decoded as {result:?}"
        );
    }
}

/// A JSON value of any type for a field, or the field left out.
#[derive(Debug, Arbitrary)]
enum Field {
    Absent,
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<u8>),
}

impl Field {
    fn put(&self, map: &mut Map<String, Value>, key: &str) {
        let v = match self {
            Field::Absent => return,
            Field::Null => Value::Null,
            Field::Bool(b) => json!(b),
            Field::Int(i) => json!(i),
            Field::Str(s) => json!(s),
            Field::List(l) => json!(l),
        };
        map.insert(key.to_string(), v);
    }

    /// What `Option<String>` makes of it: `None` for absent or null.
    fn opt_string(&self) -> Result<Option<String>, ()> {
        match self {
            Field::Absent | Field::Null => Ok(None),
            Field::Str(s) => Ok(Some(s.clone())),
            _ => Err(()),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Frame {
    /// 0..=5 a known event name, else `other`.
    event: u8,
    other: String,
    a: Field,
    b: Field,
}

fn event_name(frame: &Frame, names: &[&'static str]) -> String {
    names
        .get(frame.event as usize % (names.len() + 1))
        .map(|s| s.to_string())
        .unwrap_or_else(|| frame.other.clone())
}

fn matcher_ws(data: &[u8]) {
    let text = text(data);
    let result = MatcherClientMsg::decode(&text);
    not_json_is_malformed(&text, result.as_ref().map(|_| ()));
    match &result {
        // A decoded frame, encoded back, decodes to itself.
        Ok(msg) => assert_eq!(
            &MatcherClientMsg::decode(&encode_matcher(msg)).unwrap(),
            msg
        ),
        Err(e) => {
            let _ = (e.code(), e.to_string());
        }
    }

    // The same bytes as a structured frame: the decoder must agree with
    // what the protocol says of it.
    let Ok(frame) = Frame::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let event = event_name(&frame, &["register", "cancel", "chat", "ping"]);
    let mut map = Map::new();
    map.insert("event".into(), json!(event));
    let (name_or_peer, message) = (&frame.a, &frame.b);
    match event.as_str() {
        "register" => name_or_peer.put(&mut map, "name"),
        "chat" => {
            name_or_peer.put(&mut map, "peer");
            message.put(&mut map, "message");
        }
        _ => {
            name_or_peer.put(&mut map, "x");
        }
    }
    let got = MatcherClientMsg::decode(&Value::Object(map).to_string());
    let want = match event.as_str() {
        "register" => name_or_peer
            .opt_string()
            .map(|name| MatcherClientMsg::Register {
                name,
                prefs: Default::default(),
            }),
        "cancel" => Ok(MatcherClientMsg::Cancel),
        "ping" => Ok(MatcherClientMsg::Ping),
        "chat" => match (name_or_peer.opt_string(), message) {
            (Ok(peer), Field::Str(m)) => Ok(MatcherClientMsg::Chat {
                peer,
                message: m.clone(),
            }),
            _ => Err(()),
        },
        other => {
            assert_eq!(got, Err(DecodeError::UnknownEvent(other.to_string())));
            return;
        }
    };
    match want {
        Ok(want) => assert_eq!(got, Ok(want)),
        Err(()) => assert!(
            matches!(got, Err(DecodeError::Invalid(_))),
            "{frame:?} gave {got:?}"
        ),
    }
}

fn encode_matcher(msg: &MatcherClientMsg) -> String {
    match msg {
        MatcherClientMsg::Register { name, prefs } => {
            let mut v = json!({"event": "register", "name": name});
            if let Value::Object(p) = serde_json::to_value(prefs).unwrap() {
                v.as_object_mut().unwrap().extend(p);
            }
            v
        }
        MatcherClientMsg::Cancel => json!({"event": "cancel"}),
        MatcherClientMsg::Chat { peer, message } => {
            json!({"event": "chat", "peer": peer, "message": message})
        }
        MatcherClientMsg::Report { reason, note } => {
            json!({"event": "report", "reason": reason, "note": note})
        }
        MatcherClientMsg::Block => json!({"event": "block"}),
        MatcherClientMsg::Ping => json!({"event": "ping"}),
    }
    .to_string()
}

fn matcher_register(data: &[u8]) {
    // The handler reads the body as bytes (`serde_json::from_slice`).
    if let Ok(body) = serde_json::from_slice::<RegisterBody>(data) {
        let _ = wire::limits::valid_name(&body.name);
        // Accepted preferences are already normal: checking them again
        // changes nothing.
        if let Ok(p) = wire::preferences::Preferences::parse(body.prefs.clone()) {
            let raw = wire::preferences::RawPreferences {
                interests: Some(p.interests.clone()),
                language: p.language.clone(),
                strict: Some(p.strict),
            };
            assert_eq!(wire::preferences::Preferences::parse(raw), Ok(p));
        }
        let again: RegisterBody = serde_json::from_slice(&serde_json::to_vec(&body).unwrap())
            .expect("an encoded body decodes");
        assert_eq!(again, body);
    }
}

fn signaller_ws(data: &[u8]) {
    let text = text(data);
    let result = SignallerClientMsg::decode(&text);
    not_json_is_malformed(&text, result.as_ref().map(|_| ()));
    match &result {
        Ok(msg) => {
            if let SignallerClientMsg::Signal(s) = msg {
                // Relayed verbatim and parsed again by the peer's node.
                assert!(serde_json::value::RawValue::from_string(s.data.get().into()).is_ok());
                if let Some(kind) = &s.kind {
                    assert!(serde_json::value::RawValue::from_string(kind.get().into()).is_ok());
                }
            }
            let again = SignallerClientMsg::decode(&encode_signaller(msg))
                .expect("an encoded frame decodes");
            assert_eq!(format!("{again:?}"), format!("{msg:?}"));
        }
        Err(e) => {
            let _ = (e.code(), e.to_string());
        }
    }

    let Ok(frame) = Frame::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let event = event_name(&frame, &["join", "signal", "chat", "leave", "ping"]);
    let mut map = Map::new();
    map.insert("event".into(), json!(event));
    let (a, b) = (&frame.a, &frame.b);
    let got = match event.as_str() {
        "join" => {
            a.put(&mut map, "room_code");
            b.put(&mut map, "ticket");
            SignallerClientMsg::decode(&Value::Object(map.clone()).to_string())
        }
        "signal" => {
            a.put(&mut map, "data");
            SignallerClientMsg::decode(&Value::Object(map.clone()).to_string())
        }
        _ => {
            a.put(&mut map, "message");
            SignallerClientMsg::decode(&Value::Object(map.clone()).to_string())
        }
    };
    match event.as_str() {
        "join" => match (a.opt_string(), b.opt_string()) {
            (Ok(room), Ok(ticket)) => {
                let Ok(SignallerClientMsg::Join(j)) = got else {
                    panic!("{frame:?} gave {got:?}")
                };
                assert_eq!((j.room_code, j.ticket), (room, ticket));
            }
            _ => assert!(matches!(got, Err(DecodeError::Invalid(_))), "{got:?}"),
        },
        "signal" => match (a, map.get("data")) {
            // `data` must be there; null counts as there for a raw value.
            (Field::Absent, _) => assert!(matches!(got, Err(DecodeError::Invalid(_)))),
            (_, Some(data)) => {
                let Ok(SignallerClientMsg::Signal(s)) = got else {
                    panic!("{frame:?} gave {got:?}")
                };
                assert_eq!(&serde_json::from_str::<Value>(s.data.get()).unwrap(), data);
            }
            (_, None) => unreachable!(),
        },
        "chat" => match a {
            Field::Str(m) => {
                let Ok(SignallerClientMsg::Chat { message }) = got else {
                    panic!("{frame:?} gave {got:?}")
                };
                assert_eq!(&message, m);
            }
            _ => assert!(matches!(got, Err(DecodeError::Invalid(_))), "{got:?}"),
        },
        "leave" => assert!(matches!(got, Ok(SignallerClientMsg::Leave))),
        "ping" => assert!(matches!(got, Ok(SignallerClientMsg::Ping))),
        other => assert_eq!(
            got.unwrap_err(),
            DecodeError::UnknownEvent(other.to_string())
        ),
    }
}

fn encode_signaller(msg: &SignallerClientMsg) -> String {
    match msg {
        SignallerClientMsg::Join(j) => json!({
            "event": "join", "room_code": j.room_code, "target": j.target,
            "role": j.role, "type": j.kind, "ticket": j.ticket,
        })
        .to_string(),
        // Raw values are spliced in verbatim, as the decoder keeps them.
        SignallerClientMsg::Signal(s) => {
            let mut out = format!(
                "{{\"event\":\"signal\",\"room_code\":{},\"data\":{}",
                json!(s.room_code),
                s.data.get()
            );
            if let Some(kind) = &s.kind {
                out.push_str(&format!(",\"type\":{}", kind.get()));
            }
            out.push('}');
            out
        }
        SignallerClientMsg::Chat { message } => {
            json!({"event": "chat", "message": message}).to_string()
        }
        SignallerClientMsg::Leave => json!({"event": "leave"}).to_string(),
        SignallerClientMsg::Ping => json!({"event": "ping"}).to_string(),
    }
}
