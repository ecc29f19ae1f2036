//! Values the matcher keeps in Redis string keys, read back by Rust.

use arbitrary::{Arbitrary, Unstructured};
use wire::stored::{Location, PartnerValue, WaitingValue};

use super::text;
use crate::Target;

pub const VALUES: Target = Target {
    name: "stored_values",
    covers: "wire::stored::{WaitingValue, Location, PartnerValue}::parse",
    run,
    seeds,
    dict: &[
        b" ",
        b"/",
        b"_",
        b"0 ",
        b"7 ",
        b"18446744073709551616 ",
        b"\xc3\xa9",
        b"\xe6\x97\xa5",
    ],
};

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for name in ["bob", "a b c", "x/y", "5 9", "é 日本"] {
        out.push(
            WaitingValue {
                reg: "01JREG".into(),
                addr: "::1".into(),
                identity: "d:01JDEV".into(),
                address: "a:::/64".into(),
                name: name.into(),
            }
            .encode(),
        );
        out.push(
            PartnerValue {
                room: wire::stored::legacy_room_code(name, "zoé", "01JD00000000000000000000AA"),
                peer: format!("l:{name}"),
            }
            .encode(),
        );
    }
    out.push(
        Location {
            addr: "127.0.0.9".into(),
            gateway: "pod/a".into(),
            socket: "01K".into(),
        }
        .encode(),
    );
    out.into_iter().map(String::into_bytes).collect()
}

#[derive(Debug, Arbitrary)]
struct Parts {
    a: String,
    b: String,
    c: String,
}

fn run(data: &[u8]) {
    let v = text(data);
    if let Some(w) = WaitingValue::parse(&v) {
        assert_eq!(WaitingValue::parse(&w.encode()), Some(w));
    }
    if let Some(l) = Location::parse(&v) {
        assert_eq!(Location::parse(&l.encode()), Some(l));
    }
    if let Some(p) = PartnerValue::parse(&v) {
        assert_eq!(PartnerValue::parse(&p.encode()), Some(p));
    }

    // Any value built by the rules of the format reads back as itself.
    let Ok(p) = Parts::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let no_space = |s: &str| s.replace(' ', "_");
    let w = WaitingValue {
        reg: no_space(&p.a),
        addr: no_space(&p.b),
        identity: format!("d:{}", no_space(&p.a)),
        address: format!("a:{}", no_space(&p.b)),
        name: p.c.clone(),
    };
    assert_eq!(WaitingValue::parse(&w.encode()), Some(w));
    let l = Location {
        addr: no_space(&p.a),
        gateway: p.b.clone(),
        socket: p.c.replace('/', "_"),
    };
    assert_eq!(Location::parse(&l.encode()), Some(l));
    let pv = PartnerValue {
        room: p.a.clone(),
        peer: p.b.clone(),
    };
    assert_eq!(PartnerValue::parse(&pv.encode()), Some(pv));
}
