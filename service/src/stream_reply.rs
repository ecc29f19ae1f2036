//! Reading Redis stream replies (`XRANGE`, `XREADGROUP`, `XAUTOCLAIM`) as
//! raw values: fred's typed conversions reject some valid shapes (nil for
//! "nothing new", RESP3 maps), and both services read streams.

use bytes::Bytes;
use fred::types::Value;

/// One stream entry: its id and its fields, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub id: String,
    pub fields: Vec<(String, Bytes)>,
}

impl StreamEntry {
    /// The value of `field`, if the entry has it.
    pub fn field(&self, field: &str) -> Option<&Bytes> {
        self.fields.iter().find(|(k, _)| k == field).map(|(_, v)| v)
    }
}

/// The entries of an `XRANGE` reply (or of the entry list of any other
/// stream reply): `[[id, [field, value, ..]], ..]`. Malformed entries are
/// skipped.
pub fn entries(list: Value) -> Vec<StreamEntry> {
    match list {
        Value::Array(entries) => entries.into_iter().filter_map(entry).collect(),
        _ => Vec::new(),
    }
}

/// The entries of an `XREAD`/`XREADGROUP` reply, whatever its shape: nil
/// (nothing new), `[[stream, entries], ..]` (RESP2), or a map of stream to
/// entries (RESP3); the entries of every stream, in order.
pub fn read_entries(reply: Value) -> Vec<StreamEntry> {
    let lists: Vec<Value> = match reply {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .collect(),
        Value::Map(map) => map.inner().into_values().collect(),
        _ => Vec::new(),
    };
    lists.into_iter().flat_map(entries).collect()
}

/// The next cursor and the entries of an `XAUTOCLAIM` reply:
/// `[cursor, entries, (Redis 7) deleted ids]`.
pub fn autoclaim(reply: Value) -> (String, Vec<StreamEntry>) {
    let Value::Array(mut parts) = reply else {
        return (String::new(), Vec::new());
    };
    parts.truncate(2);
    let claimed = parts.pop().map(entries).unwrap_or_default();
    let cursor = parts.pop().and_then(|v| v.as_string()).unwrap_or_default();
    (cursor, claimed)
}

/// One `[id, [field, value, ..]]` entry.
fn entry(value: Value) -> Option<StreamEntry> {
    let Value::Array(mut parts) = value else {
        return None;
    };
    if parts.len() != 2 {
        return None;
    }
    let flat = parts.pop()?;
    let id = parts.pop()?.as_string()?;
    let mut fields = Vec::new();
    if let Value::Array(flat) = flat {
        for kv in flat.chunks_exact(2) {
            if let (Some(k), Some(v)) = (kv[0].as_string(), kv[1].as_bytes()) {
                fields.push((k, Bytes::copy_from_slice(v)));
            }
        }
    }
    Some(StreamEntry { id, fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_entry(id: &str, k: &str, v: &[u8]) -> Value {
        Value::Array(vec![
            Value::from(id),
            Value::Array(vec![
                Value::from(k),
                Value::Bytes(Bytes::copy_from_slice(v)),
            ]),
        ])
    }

    #[test]
    fn every_reply_shape() {
        let list = || Value::Array(vec![raw_entry("1-0", "m", b"x"), Value::from("junk")]);
        let got = entries(list());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "1-0");
        assert_eq!(got[0].field("m").map(|b| &b[..]), Some(&b"x"[..]));
        assert!(got[0].field("n").is_none());
        let resp2 = Value::Array(vec![Value::Array(vec![Value::from("s"), list()])]);
        assert_eq!(read_entries(resp2), got);
        assert!(read_entries(Value::Null).is_empty());
        let claimed = Value::Array(vec![Value::from("0-0"), list(), Value::Array(vec![])]);
        assert_eq!(autoclaim(claimed), ("0-0".to_string(), got));
    }
}
