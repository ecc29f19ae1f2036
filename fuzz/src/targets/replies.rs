//! Redis and Lua replies: the stream-reply parsers of both services.

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use fred::types::{Key, Map, Value};
use service::stream_reply::{autoclaim, entries, read_entries, StreamEntry};
use wire::internal::{encode, RoomEvent, StreamId};

use super::internal::sample_room_events;
use crate::resp;
use crate::Target;

const DICT: &[&[u8]] = &[
    b"*2\r\n",
    b"*0\r\n",
    b"*-1\r\n",
    b"$-1\r\n",
    b"_\r\n",
    b"%1\r\n",
    b"$1\r\nm\r\n",
    b"+1-0\r\n",
    b":7\r\n",
    b",1.5\r\n",
    b"#t\r\n",
    b"$3\r\n\xff\xfe\xfd\r\n",
    b"\r\n",
];

pub const STREAM_REPLY: Target = Target {
    name: "stream_reply",
    covers: "service::stream_reply::{entries, read_entries, autoclaim}",
    run: stream_reply,
    seeds: stream_seeds,
    dict: DICT,
};

pub const ROOM_LOG_REPLY: Target = Target {
    name: "room_log_reply",
    covers: "signaller::room_log::entries (XRANGE of the room log, MessagePack inside)",
    run: room_log_reply,
    seeds: room_log_seeds,
    dict: DICT,
};

/// One stream entry as Redis sends it: `[id, [field, value, ...]]`.
fn raw_entry(id: &str, fields: &[(impl AsRef<str>, impl AsRef<[u8]>)]) -> Value {
    Value::Array(vec![
        Value::from(id),
        Value::Array(
            fields
                .iter()
                .flat_map(|(k, v)| {
                    [
                        Value::from(k.as_ref()),
                        Value::Bytes(Bytes::copy_from_slice(v.as_ref())),
                    ]
                })
                .collect(),
        ),
    ])
}

fn stream_seeds() -> Vec<Vec<u8>> {
    let list = Value::Array(vec![
        raw_entry("1-0", &[("m", b"\x83\xa1v\x01")]),
        raw_entry("1-1", &[("m", b"x"), ("n", b"\xff")]),
    ]);
    let mut map = Map::new();
    map.insert(Key::from("matcher:register"), list.clone());
    [
        list.clone(),
        // XREADGROUP, RESP2 and RESP3.
        Value::Array(vec![Value::Array(vec![
            Value::from("matcher:register"),
            list.clone(),
        ])]),
        Value::Map(map),
        Value::Null,
        // XAUTOCLAIM, Redis 6 and 7.
        Value::Array(vec![Value::from("0-0"), list.clone()]),
        Value::Array(vec![
            Value::from("1700000000000-5"),
            list,
            Value::Array(vec![Value::from("1-2")]),
        ]),
    ]
    .iter()
    .map(resp::encode)
    .collect()
}

fn room_log_seeds() -> Vec<Vec<u8>> {
    let mut list = Vec::new();
    for (i, ev) in sample_room_events().iter().enumerate() {
        let id = format!("1700000000000-{i}");
        list.push(raw_entry(&id, &[("m", &encode(ev))]));
    }
    let mut out = vec![resp::encode(&Value::Array(list.clone()))];
    list.truncate(2);
    out.push(resp::encode(&Value::Array(list)));
    out
}

/// An entry as plain data: its id and its fields, for comparisons.
type Plain = (String, Vec<(String, Vec<u8>)>);

fn plain(list: &[StreamEntry]) -> Vec<Plain> {
    list.iter()
        .map(|e| {
            (
                e.id.clone(),
                e.fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_vec()))
                    .collect(),
            )
        })
        .collect()
}

/// Up to eight values made from `data`. (`Vec::arbitrary` reads a
/// continue-bit before each element, and RESP's `*` has it clear: every
/// RESP-shaped input would make an empty list.)
fn list_of<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<Vec<T>> {
    let mut u = Unstructured::new(data);
    let n = u.int_in_range(0..=8u8).ok()?;
    (0..n).map(|_| T::arbitrary(&mut u).ok()).collect()
}

#[derive(Debug, Arbitrary)]
struct AnyEntry {
    ms: u64,
    seq: u64,
    fields: Vec<(String, Vec<u8>)>,
}

fn stream_reply(data: &[u8]) {
    let reply = resp::parse(data);
    let listed = entries(reply.clone());
    if let Value::Array(items) = &reply {
        assert!(listed.len() <= items.len());
    } else {
        assert!(listed.is_empty());
    }
    for e in &listed {
        for (k, _) in &e.fields {
            assert!(e.field(k).is_some());
        }
    }
    let _ = read_entries(reply.clone());
    let (cursor, claimed) = autoclaim(reply.clone());
    match &reply {
        Value::Array(parts) if parts.len() >= 2 => {
            assert_eq!(claimed, entries(parts[1].clone()));
            assert_eq!(cursor, parts[0].as_string().unwrap_or_default());
        }
        // Not a reply Redis gives: no cursor, and the one part read as entries.
        Value::Array(parts) => {
            assert_eq!(
                claimed,
                parts.first().cloned().map(entries).unwrap_or_default()
            );
            assert_eq!(cursor, "");
        }
        _ => assert_eq!((cursor.as_str(), claimed.len()), ("", 0)),
    }

    // A well-formed reply of arbitrary entries reads back exactly, in
    // every shape it can come in.
    let Some(list) = list_of::<AnyEntry>(data) else {
        return;
    };
    let want: Vec<Plain> = list
        .iter()
        .map(|e| {
            let id = StreamId {
                ms: e.ms,
                seq: e.seq,
            }
            .to_string();
            (id, e.fields.clone())
        })
        .collect();
    let raw = Value::Array(
        want.iter()
            .map(|(id, fields)| raw_entry(id, fields))
            .collect(),
    );
    assert_eq!(plain(&entries(raw.clone())), want);
    // Through the RESP encoding too (keys and values as bulk strings).
    assert_eq!(plain(&entries(resp::parse(&resp::encode(&raw)))), want);
    let resp2 = Value::Array(vec![Value::Array(vec![Value::from("s"), raw.clone()])]);
    assert_eq!(plain(&read_entries(resp2)), want);
    let mut map = Map::new();
    map.insert(Key::from("s"), raw.clone());
    assert_eq!(plain(&read_entries(Value::Map(map))), want);
    let claimed = Value::Array(vec![Value::from("0-0"), raw, Value::Array(vec![])]);
    let (cursor, got) = autoclaim(claimed);
    assert_eq!(cursor, "0-0");
    assert_eq!(plain(&got), want);
}

fn room_log_reply(data: &[u8]) {
    let reply = resp::parse(data);
    // At most one event per item of the reply, seen as an array.
    let n = reply.clone().into_array().len();
    let got = signaller::room_log::entries(reply);
    assert!(got.len() <= n);

    // A well-formed log (ids and senders arbitrary, bodies of every kind)
    // reads back exactly, through the RESP encoding too.
    let Some(list) = list_of::<(u64, u64, String)>(data) else {
        return;
    };
    let samples = sample_room_events();
    let want: Vec<(StreamId, RoomEvent)> = list
        .into_iter()
        .zip(samples.iter().cycle())
        .map(|((ms, seq, from), sample)| {
            (
                StreamId { ms, seq },
                RoomEvent {
                    from,
                    ..sample.clone()
                },
            )
        })
        .collect();
    let raw = Value::Array(
        want.iter()
            .map(|(id, ev)| raw_entry(&id.to_string(), &[("m", encode(ev))]))
            .collect(),
    );
    assert_eq!(
        signaller::room_log::entries(resp::parse(&resp::encode(&raw))),
        want
    );
    assert_eq!(signaller::room_log::entries(raw), want);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RESP-shaped inputs (the seeds) make non-empty lists too, so the
    /// read-back properties are exercised by more than the random inputs.
    #[test]
    fn the_seeds_make_lists() {
        for seed in stream_seeds().iter().chain(&room_log_seeds()) {
            assert!(list_of::<AnyEntry>(seed).is_some_and(|l| !l.is_empty()));
            assert!(list_of::<(u64, u64, String)>(seed).is_some_and(|l| !l.is_empty()));
        }
    }
}
