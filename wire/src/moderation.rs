//! Who a user is for moderation, and what a report says: the device
//! identity a native browser keeps, the subjects a ban or block names, the
//! report reasons, and the records the matcher stores.
//!
//! A display name is never an identity. A native browser gets a device
//! identity signed by the gateway (HMAC-SHA256 with the shared ticket
//! secret, under its own domain, so a ticket or resume credential never
//! passes for one) and presents it on every visit; a legacy client is
//! known by its client address. Bans name the identity *and* the address,
//! so clearing the browser's storage does not lift one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Longest report note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// Chat lines of the room kept with a report.
pub const REPORT_CHAT_LINES: usize = 20;

/// Why a user reports another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportReason {
    Nudity,
    Harassment,
    Spam,
    Underage,
    Other,
}

impl ReportReason {
    pub const ALL: [ReportReason; 5] = [
        ReportReason::Nudity,
        ReportReason::Harassment,
        ReportReason::Spam,
        ReportReason::Underage,
        ReportReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportReason::Nudity => "nudity",
            ReportReason::Harassment => "harassment",
            ReportReason::Spam => "spam",
            ReportReason::Underage => "underage",
            ReportReason::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<ReportReason> {
        ReportReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A checked report request: reason and optional note.
pub fn check_report(reason: &str, note: Option<String>) -> Result<(ReportReason, String), String> {
    let Some(reason) = ReportReason::parse(reason) else {
        return Err(format!(
            "reason must be one of nudity, harassment, spam, underage, other ({reason:?} given)"
        ));
    };
    let note = note.unwrap_or_default();
    let chars = note.chars().count();
    if chars > MAX_NOTE_CHARS {
        return Err(format!(
            "note is at most {MAX_NOTE_CHARS} characters ({chars} given)"
        ));
    }
    Ok((reason, note))
}

/// Whom a socket or a register speaks for: its identity (`d:<device>`
/// for a native browser, the address subject for a legacy client) and its
/// address subject (`a:<address key>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Who {
    pub identity: String,
    pub address: String,
}

impl Who {
    /// A native browser with device `device_id`, from `address_key`.
    pub fn device(device_id: &str, address_key: &str) -> Who {
        Who {
            identity: device_subject(device_id),
            address: address_subject(address_key),
        }
    }

    /// A legacy client, known by its address only.
    pub fn address(address_key: &str) -> Who {
        let address = address_subject(address_key);
        Who {
            identity: address.clone(),
            address,
        }
    }
}

/// The ban and block subject of a native device: `d:<device id>`.
pub fn device_subject(device_id: &str) -> String {
    format!("d:{device_id}")
}

/// The ban subject of a client address key (IPv4 /32, IPv6 /64): `a:<key>`.
/// A legacy user's identity is its address subject.
pub fn address_subject(address_key: &str) -> String {
    format!("a:{address_key}")
}

/// The ban subject of one matching session (`u:<user key>`): what the
/// signaller checks when a session asks to resume.
pub fn user_subject(user_key: &str) -> String {
    format!("u:{user_key}")
}

const DEVICE_DOMAIN: &[u8] = b"rvc device identity v1\0";

/// A device identity token for `device_id`: `<id>.<signature>`.
pub fn sign_device(secret: &[u8], device_id: &str) -> String {
    format!(
        "{device_id}.{}",
        URL_SAFE_NO_PAD.encode(device_mac(secret, device_id))
    )
}

/// The device id of a token this secret signed, or `None` (forged, or not
/// a token): the caller then issues a new identity.
pub fn verify_device(secret: &[u8], token: &str) -> Option<String> {
    let (id, sig) = token.rsplit_once('.')?;
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(DEVICE_DOMAIN);
    mac.update(id.as_bytes());
    mac.verify_slice(&sig).ok()?;
    Some(id.to_string())
}

fn device_mac(secret: &[u8], id: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(DEVICE_DOMAIN);
    mac.update(id.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// A ban as stored (MessagePack, `rvc:{m}:banrec:<id>`) and listed by the
/// admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub id: String,
    /// The subjects banned: identity and/or address (`d:…`, `a:…`, `u:…`).
    pub subjects: Vec<String>,
    pub reason: String,
    /// Unix ms when it was made and when it lifts.
    pub since_ms: u64,
    pub until_ms: u64,
    /// `reports` or `admin`.
    pub by: String,
}

/// What a banned user is told (socket event and legacy reply alike).
pub fn banned_message(retry_after: u64) -> String {
    format!(
        "you are banned for reports from other users; you may come back in {}",
        human_duration(retry_after)
    )
}

/// "2 h 5 min", "40 s": a wait told to a person.
pub fn human_duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs.div_ceil(60)),
        _ => {
            let h = secs / 3600;
            let m = (secs % 3600).div_ceil(60);
            if m == 0 {
                format!("{h} h")
            } else {
                format!("{h} h {m} min")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_device_token_verifies_only_with_its_secret_and_id() {
        let t = sign_device(SECRET, "01JDEVICE");
        assert_eq!(verify_device(SECRET, &t).as_deref(), Some("01JDEVICE"));
        assert_eq!(verify_device(b"another secret of 32 bytes......", &t), None);
        let forged = t.replace("01JDEVICE", "01JOTHER0");
        assert_eq!(verify_device(SECRET, &forged), None);
        assert_eq!(verify_device(SECRET, "nonsense"), None);
        assert_eq!(verify_device(SECRET, ".abc"), None);
    }

    #[test]
    fn reports_name_a_known_reason_and_a_short_note() {
        assert_eq!(check_report("spam", None).unwrap().0, ReportReason::Spam);
        assert!(check_report("rude", None)
            .unwrap_err()
            .starts_with("reason"));
        assert!(check_report("other", Some("x".repeat(501)))
            .unwrap_err()
            .starts_with("note"));
        assert!(check_report("other", Some("é".repeat(500))).is_ok());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(40), "40 s");
        assert_eq!(human_duration(61), "2 min");
        assert_eq!(human_duration(3600), "1 h");
        assert_eq!(human_duration(7500), "2 h 5 min");
    }
}
