//! A lenient RESP2/RESP3 reader that turns any bytes into a fred [`Value`],
//! so the stream-reply parsers can be fed replies of every shape from a
//! corpus of real replies. Harness code: it never fails, it guesses.

use bytes::Bytes;
use fred::types::{Key, Map, Value};

/// Deepest nesting read; deeper aggregates become nil.
const MAX_DEPTH: usize = 16;

/// The value `bytes` encode (extra bytes after the first value are ignored).
pub fn parse(bytes: &[u8]) -> Value {
    let mut pos = 0;
    read(bytes, &mut pos, 0)
}

fn line<'a>(bytes: &'a [u8], pos: &mut usize) -> &'a [u8] {
    let rest = &bytes[*pos..];
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            *pos += end + 2;
            &rest[..end]
        }
        None => {
            *pos = bytes.len();
            rest
        }
    }
}

fn number(text: &[u8]) -> i64 {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn text_value(raw: &[u8]) -> Value {
    match std::str::from_utf8(raw) {
        Ok(s) => Value::String(s.into()),
        Err(_) => Value::Bytes(Bytes::copy_from_slice(raw)),
    }
}

fn read(bytes: &[u8], pos: &mut usize, depth: usize) -> Value {
    if *pos >= bytes.len() {
        return Value::Null;
    }
    let kind = bytes[*pos];
    *pos += 1;
    match kind {
        b'+' | b'-' => text_value(line(bytes, pos)),
        b':' => Value::Integer(number(line(bytes, pos))),
        b',' => Value::Double(
            std::str::from_utf8(line(bytes, pos))
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0),
        ),
        b'#' => Value::Boolean(line(bytes, pos) == b"t"),
        b'_' => {
            line(bytes, pos);
            Value::Null
        }
        b'$' | b'=' | b'!' => {
            let len = number(line(bytes, pos));
            if len < 0 {
                return Value::Null;
            }
            let len = (len as usize).min(bytes.len() - *pos);
            let raw = &bytes[*pos..*pos + len];
            *pos += len;
            if bytes[*pos..].starts_with(b"\r\n") {
                *pos += 2;
            }
            // Bulk strings arrive as bytes; fred keeps valid UTF-8 as a string.
            if kind == b'$' && raw.first() == Some(&0xff) {
                Value::Bytes(Bytes::copy_from_slice(raw))
            } else {
                text_value(raw)
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = number(line(bytes, pos));
            if n < 0 || depth >= MAX_DEPTH {
                return Value::Null;
            }
            // Each element takes at least one byte.
            let n = (n as usize).min(bytes.len() - *pos);
            if kind == b'%' || kind == b'|' {
                let mut map = Map::new();
                for _ in 0..n {
                    let key = read(bytes, pos, depth + 1);
                    let value = read(bytes, pos, depth + 1);
                    let key = match key.as_bytes() {
                        Some(k) => Key::from(k),
                        None => Key::from(key.as_string().unwrap_or_default()),
                    };
                    map.insert(key, value);
                }
                Value::Map(map)
            } else {
                Value::Array((0..n).map(|_| read(bytes, pos, depth + 1)).collect())
            }
        }
        _ => {
            // Not a type byte: an inline command-like line, as a string.
            *pos -= 1;
            text_value(line(bytes, pos))
        }
    }
}

/// Encode `value` as RESP3 (for seeds and for the properties).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"_\r\n"),
        Value::Queued => out.extend_from_slice(b"+QUEUED\r\n"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Value::Integer(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
        Value::Double(d) => out.extend_from_slice(format!(",{d}\r\n").as_bytes()),
        Value::String(s) => bulk(s.as_bytes(), out),
        Value::Bytes(b) => bulk(b, out),
        Value::Array(items) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for item in items {
                write(item, out);
            }
        }
        Value::Map(map) => {
            out.extend_from_slice(format!("%{}\r\n", map.len()).as_bytes());
            for (k, v) in map.iter() {
                bulk(k.as_bytes(), out);
                write(v, out);
            }
        }
    }
}

fn bulk(raw: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("${}\r\n", raw.len()).as_bytes());
    out.extend_from_slice(raw);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes() {
        let v = Value::Array(vec![
            Value::from("1-0"),
            Value::Array(vec![Value::from("m"), Value::Integer(-3), Value::Null]),
        ]);
        assert_eq!(parse(&encode(&v)), v);
        // Anything at all is some value.
        let _ = parse(b"*99\r\n%3\r\n$-7\r\n\xff");
    }
}
