//! The input generator: coverage-less but structured.
//!
//! Most inputs are a valid seed of the target (a JSON frame, a MessagePack
//! message, a ticket, a stored value, a RESP reply) put through a few random
//! mutations: bit flips, bytes that matter to the format, insertions and
//! deletions, duplicated or spliced chunks, tokens from the target's
//! dictionary. The rest are plain random bytes, which the targets that build
//! values with `arbitrary` turn into structured values of their own.

use rand::rngs::SmallRng;
use rand::Rng;

/// Bytes that change the meaning of JSON, MessagePack, RESP or the stored
/// formats when they appear in the wrong place.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xff, 0xc0, 0xc1, 0xc2, 0xc3, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xcf, 0xcc,
    0x90, 0x91, 0x92, 0x80, 0x81, 0xa0, 0xa1, b'"', b'\\', b'{', b'}', b'[', b']', b',', b':',
    b' ', b'-', b'+', b'/', b'_', b'.', b'0', b'9', b'e', b'\r', b'\n', b'*', b'$', b'%', b'#',
];

/// Tokens every target's dictionary gets in addition to its own.
const COMMON_TOKENS: &[&str] = &[
    "null",
    "true",
    "false",
    "-1",
    "0",
    "18446744073709551615",
    "18446744073709551616",
    "1e999",
    "-0.0",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "é",
    "日本",
    "🦀",
    "\u{200b}",
    "\u{7f}",
    "{}",
    "[]",
];

/// Upper bound on a generated input, in bytes (a WebSocket frame is at most
/// 64 KiB; most bugs show up far below).
pub const MAX_LEN: usize = 4096;

/// The next input: usually a mutated seed, sometimes random bytes.
pub fn next_input(rng: &mut SmallRng, seeds: &[Vec<u8>], dict: &[&[u8]]) -> Vec<u8> {
    if seeds.is_empty() || rng.random_ratio(1, 10) {
        let len = rng.random_range(0..=256);
        return (0..len).map(|_| rng.random()).collect();
    }
    let mut data = seeds[rng.random_range(0..seeds.len())].clone();
    // Sometimes the seed itself, unchanged: the valid path must hold too.
    if rng.random_ratio(1, 20) {
        return data;
    }
    let rounds = 1 + rng.random_range(0..8u32).min(rng.random_range(0..8u32));
    for _ in 0..rounds {
        mutate(rng, &mut data, seeds, dict);
    }
    data.truncate(MAX_LEN);
    data
}

fn mutate(rng: &mut SmallRng, data: &mut Vec<u8>, seeds: &[Vec<u8>], dict: &[&[u8]]) {
    let len = data.len();
    match rng.random_range(0..10u32) {
        // Flip one bit.
        0 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] ^= 1 << rng.random_range(0..8);
        }
        // Overwrite a byte with an interesting one.
        1 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
        }
        // Overwrite a byte with a random one.
        2 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] = rng.random();
        }
        // Insert a few random or interesting bytes.
        3 => {
            let at = rng.random_range(0..=len);
            let n = rng.random_range(1..=4);
            for k in 0..n {
                let b = if rng.random() {
                    INTERESTING[rng.random_range(0..INTERESTING.len())]
                } else {
                    rng.random()
                };
                data.insert(at + k, b);
            }
        }
        // Delete a range.
        4 if len > 0 => {
            let at = rng.random_range(0..len);
            let n = rng.random_range(1..=(len - at).min(16));
            data.drain(at..at + n);
        }
        // Duplicate a chunk in place (repeated fields, nested arrays).
        5 if len > 0 => {
            let at = rng.random_range(0..len);
            let n = rng.random_range(1..=(len - at).min(64));
            let chunk = data[at..at + n].to_vec();
            let to = rng.random_range(0..=len);
            data.splice(to..to, chunk);
        }
        // Splice in a chunk of another seed.
        6 if !seeds.is_empty() => {
            let other = &seeds[rng.random_range(0..seeds.len())];
            if !other.is_empty() {
                let at = rng.random_range(0..other.len());
                let n = rng.random_range(1..=(other.len() - at));
                let to = rng.random_range(0..=len);
                data.splice(to..to, other[at..at + n].iter().copied());
            }
        }
        // Insert or overwrite with a dictionary token.
        7 | 8 => {
            let n_dict = dict.len() + COMMON_TOKENS.len();
            let k = rng.random_range(0..n_dict);
            let token: &[u8] = if k < dict.len() {
                dict[k]
            } else {
                COMMON_TOKENS[k - dict.len()].as_bytes()
            };
            let at = rng.random_range(0..=len);
            if rng.random() || at == len {
                data.splice(at..at, token.iter().copied());
            } else {
                let end = (at + token.len()).min(len);
                data.splice(at..end, token.iter().copied());
            }
        }
        // Truncate.
        _ if len > 0 => {
            data.truncate(rng.random_range(0..len));
        }
        _ => data.push(rng.random()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mutations_stay_bounded_and_vary() {
        let mut rng = SmallRng::seed_from_u64(1);
        let seeds = vec![b"{\"event\":\"ping\"}".to_vec()];
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..1000 {
            let input = next_input(&mut rng, &seeds, &[b"\"chat\""]);
            assert!(input.len() <= MAX_LEN);
            distinct.insert(input);
        }
        assert!(distinct.len() > 500, "{}", distinct.len());
    }
}
