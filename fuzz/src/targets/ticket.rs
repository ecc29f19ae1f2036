//! Tickets: the signaller verifies whatever a client shows as `ticket`.

use std::collections::HashSet;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use wire::ticket::{sign, verify, Ticket, TicketError};
use wire::user::Role;

use super::{text, NOW_MS, OTHER_SECRET, SECRET};
use crate::Target;

const DICT: &[&[u8]] = &[
    b".",
    b"eyJ",
    b"==",
    b"-_",
    b"+/",
    b"AAAA",
    b"\"exp_ms\"",
    b"\"role\"",
];

pub const VERIFY: Target = Target {
    name: "ticket_verify",
    covers: "wire::ticket::verify on any token text",
    run: verify_target,
    seeds: ticket_seeds,
    dict: DICT,
};

pub const SIGN: Target = Target {
    name: "ticket_sign_verify",
    covers: "sign/verify of arbitrary claims and secrets; tampering, expiry",
    run: sign_target,
    seeds: Vec::new,
    dict: &[],
};

pub fn sample_ticket(exp_ms: u64) -> Ticket {
    Ticket {
        room: "alice_bob_01JD00000000000000000000AA".into(),
        user: "s:01USER".into(),
        name: "ann".into(),
        role: Role::Initiator,
        exp_ms,
    }
}

/// Every token the seeds hold that verifies under [`SECRET`] at [`NOW_MS`].
fn signed_tokens() -> &'static (Vec<String>, HashSet<String>) {
    static TOKENS: OnceLock<(Vec<String>, HashSet<String>)> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let mut all = Vec::new();
        let mut valid = HashSet::new();
        for (secret, exp) in [
            (SECRET, NOW_MS + 30_000),
            (SECRET, NOW_MS),
            (SECRET, 0),
            (SECRET, u64::MAX),
            (OTHER_SECRET, NOW_MS + 30_000),
        ] {
            let mut t = sample_ticket(exp);
            for name in ["ann", "日本 語", "a\"b\\c"] {
                t.name = name.into();
                t.role = if name == "ann" {
                    Role::Initiator
                } else {
                    Role::Responder
                };
                let token = sign(secret, &t);
                if secret == SECRET && NOW_MS < exp {
                    valid.insert(token.clone());
                }
                all.push(token);
            }
        }
        (all, valid)
    })
}

fn ticket_seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = signed_tokens()
        .0
        .iter()
        .map(|t| t.clone().into_bytes())
        .collect();
    out.push(b"abc.def".to_vec());
    out.push(b"".to_vec());
    out
}

fn verify_target(data: &[u8]) {
    let token = text(data);
    let mine = verify(SECRET, &token, NOW_MS);
    let theirs = verify(OTHER_SECRET, &token, NOW_MS);
    if let Err(e) = &mine {
        let _ = (e.code(), e.to_string());
    }
    if let Ok(t) = &mine {
        // Only what was signed with the secret verifies: no mutation of a
        // signed token is accepted, and no token is good for both secrets.
        assert!(
            signed_tokens().1.contains(token.as_ref()),
            "an unsigned token verified: {token:?} as {t:?}"
        );
        assert!(NOW_MS < t.exp_ms);
        assert_eq!(theirs, Err(TicketError::BadSignature));
        assert_eq!(verify(SECRET, &sign(SECRET, t), NOW_MS).as_ref(), Ok(t));
    }
}

#[derive(Debug, Arbitrary)]
struct Case {
    room: String,
    user: String,
    name: String,
    initiator: bool,
    exp_ms: u64,
    now_ms: u64,
    /// Secret length beyond the minimum.
    extra: u8,
    secret_bytes: Vec<u8>,
    flip_at: u16,
    flip_to: u8,
}

fn sign_target(data: &[u8]) {
    let Ok(c) = Case::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let ticket = Ticket {
        room: c.room,
        user: c.user,
        name: c.name,
        role: if c.initiator {
            Role::Initiator
        } else {
            Role::Responder
        },
        exp_ms: c.exp_ms,
    };
    // Two secrets of the same length that differ (HMAC pads shorter keys
    // with zeros, so only equal lengths are sure to be different keys).
    let len = wire::ticket::MIN_SECRET_BYTES + (c.extra % 64) as usize;
    let mut secret: Vec<u8> = c.secret_bytes.iter().copied().cycle().take(len).collect();
    secret.resize(len, 7);
    let mut other = secret.clone();
    let at = c.flip_at as usize % len;
    other[at] = other[at].wrapping_add(1 + c.flip_to % 255);

    let token = sign(&secret, &ticket);
    let want = if c.now_ms < ticket.exp_ms {
        Ok(ticket.clone())
    } else {
        Err(TicketError::Expired)
    };
    assert_eq!(verify(&secret, &token, c.now_ms), want);
    assert_eq!(
        verify(&other, &token, c.now_ms),
        Err(TicketError::BadSignature)
    );

    // Any one changed byte of the token: never accepted.
    let mut tampered = token.clone().into_bytes();
    let i = c.flip_at as usize % tampered.len();
    let replacement = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
        [c.flip_to as usize % 66];
    if tampered[i] != replacement {
        tampered[i] = replacement;
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(
            verify(&secret, &tampered, 0).is_err(),
            "a tampered token verified: {tampered}"
        );
    }
    // Nor with something appended.
    assert!(verify(&secret, &format!("{token}A"), 0).is_err());
}
