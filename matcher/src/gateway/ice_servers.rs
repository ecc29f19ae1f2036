//! ICE servers for the browsers' `RTCPeerConnection`, with time-limited
//! TURN credentials minted per client session (no I/O, no clock: the caller
//! passes the time).
//!
//! Two browsers behind symmetric NATs or strict firewalls only ever connect
//! through a relay. The relay (coturn) must not be open to anyone, yet the
//! page must not carry a long-lived password either (anyone could read it
//! and use our bandwidth). coturn's REST API scheme (`use-auth-secret`,
//! `static-auth-secret`) solves this without any call between us and
//! coturn: the username is `"<expiry unix seconds>:<session id>"` and the
//! password is `base64(HMAC-SHA1(secret, username))`. coturn recomputes the
//! HMAC with the secret it shares with us and refuses a username whose
//! expiry has passed, so a credential is worth something for `ttl` seconds
//! only, and names the session it was minted for (in coturn's logs).

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use wire::matcher_api::{IceServer, IceServers};

/// The shortest TURN secret accepted: it is all that stops strangers from
/// minting credentials for our relay.
pub const MIN_TURN_SECRET_BYTES: usize = 16;

/// What the gateway hands out: STUN URLs as they are, TURN URLs with a
/// credential when a TURN secret is configured.
#[derive(Clone, Default)]
pub struct IceSettings {
    pub turn_urls: Vec<String>,
    pub stun_urls: Vec<String>,
    /// coturn's `static-auth-secret`; `Some` exactly when `turn_urls` is not empty.
    pub turn_secret: Option<Arc<[u8]>>,
    /// Lifetime of a minted credential, s.
    pub ttl_secs: u64,
}

impl std::fmt::Debug for IceSettings {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceSettings")
            .field("turn_urls", &self.turn_urls)
            .field("stun_urls", &self.stun_urls)
            .field("turn_secret", &self.turn_secret.as_ref().map(|_| "<set>"))
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

impl IceSettings {
    /// Whether minting gives out TURN credentials (what the metric counts,
    /// and what needs refreshing).
    pub fn issues_credentials(&self) -> bool {
        self.turn_secret.is_some() && !self.turn_urls.is_empty()
    }

    /// The ICE servers for client session `session` at `now_unix_secs`:
    /// the STUN entry (if any) first, then the TURN entry with a credential
    /// valid until `now + ttl`. With nothing configured the list is empty
    /// (the browser then offers its host candidates only).
    pub fn mint(&self, session: &str, now_unix_secs: u64) -> IceServers {
        let mut ice_servers = Vec::new();
        if !self.stun_urls.is_empty() {
            ice_servers.push(IceServer {
                urls: self.stun_urls.clone(),
                username: None,
                credential: None,
            });
        }
        if let (Some(secret), false) = (&self.turn_secret, self.turn_urls.is_empty()) {
            let username = username(now_unix_secs + self.ttl_secs, session);
            ice_servers.push(IceServer {
                urls: self.turn_urls.clone(),
                credential: Some(credential(secret, &username)),
                username: Some(username),
            });
        }
        IceServers {
            ice_servers,
            ttl: self.ttl_secs,
        }
    }

    /// When a socket's client gets fresh credentials: at 80% of their
    /// lifetime, so a client always holds one that is valid for a while
    /// yet (a browser may start a new call, or an ICE restart, any time).
    /// `None` when no credential is issued: nothing expires.
    pub fn refresh_after(&self) -> Option<Duration> {
        self.issues_credentials()
            .then(|| Duration::from_millis(self.ttl_secs * 800))
    }
}

/// coturn's REST API username: `"<expiry unix seconds>:<session id>"`.
pub fn username(expiry_unix_secs: u64, session: &str) -> String {
    format!("{expiry_unix_secs}:{session}")
}

/// coturn's REST API password for `username`: `base64(HMAC-SHA1(secret, username))`.
pub fn credential(secret: &[u8], username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// A comma-separated list of ICE URLs, each with one of `schemes` (e.g.
/// `turn:`), a host, no spaces. Empty items (a trailing comma) are
/// skipped; the error names the first bad URL.
pub fn parse_urls(list: &str, schemes: &[&str]) -> Result<Vec<String>, String> {
    let mut urls = Vec::new();
    for url in list.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let rest = schemes
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme))
            .ok_or_else(|| format!("{url:?} must start with {}", schemes.join(" or ")))?;
        let host = rest.split(['?', ':']).next().unwrap_or("");
        let host = if rest.starts_with('[') {
            rest.split(']').next().unwrap_or("")
        } else {
            host
        };
        if host.is_empty() || url.chars().any(char::is_whitespace) {
            return Err(format!("{url:?} needs a host and no spaces"));
        }
        urls.push(url.to_string());
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"coturn-test-secret";

    fn settings() -> IceSettings {
        IceSettings {
            turn_urls: vec!["turn:relay.example:3478?transport=udp".into()],
            stun_urls: vec!["stun:relay.example:3478".into()],
            turn_secret: Some(SECRET.into()),
            ttl_secs: 3600,
        }
    }

    /// The vector was computed apart from this code:
    /// `printf '%s' '1700003600:01J0000000000000000000TEST' | openssl dgst
    /// -sha1 -hmac 'coturn-test-secret' -binary | base64` (and Python's
    /// `hmac` agrees).
    #[test]
    fn credential_matches_a_vector_computed_with_openssl() {
        assert_eq!(
            credential(SECRET, "1700003600:01J0000000000000000000TEST"),
            "KLy/+VL1wacjoJf2TaSTNFEgT/s="
        );
    }

    #[test]
    fn minted_servers_carry_an_expiring_username_for_the_session() {
        let ice = settings().mint("01J0000000000000000000TEST", 1_700_000_000);
        assert_eq!(ice.ttl, 3600);
        assert_eq!(ice.ice_servers.len(), 2);
        assert_eq!(ice.ice_servers[0].urls, ["stun:relay.example:3478"]);
        assert_eq!(ice.ice_servers[0].username, None);
        let turn = &ice.ice_servers[1];
        assert_eq!(turn.urls, ["turn:relay.example:3478?transport=udp"]);
        assert_eq!(
            turn.username.as_deref(),
            Some("1700003600:01J0000000000000000000TEST")
        );
        assert_eq!(
            turn.credential.as_deref(),
            Some("KLy/+VL1wacjoJf2TaSTNFEgT/s=")
        );
        assert_eq!(
            serde_json::to_value(&ice).unwrap()["iceServers"][1]["username"],
            "1700003600:01J0000000000000000000TEST"
        );
    }

    #[test]
    fn without_turn_only_stun_is_handed_out_and_nothing_is_refreshed() {
        let stun_only = IceSettings {
            turn_urls: vec![],
            turn_secret: None,
            ..settings()
        };
        let ice = stun_only.mint("S", 1);
        assert_eq!(ice.ice_servers.len(), 1);
        assert!(ice.ice_servers[0].credential.is_none());
        assert!(!stun_only.issues_credentials());
        assert_eq!(stun_only.refresh_after(), None);
        assert!(IceSettings::default().mint("S", 1).ice_servers.is_empty());
    }

    #[test]
    fn credentials_are_refreshed_at_four_fifths_of_their_lifetime() {
        assert_eq!(settings().refresh_after(), Some(Duration::from_secs(2880)));
    }

    #[test]
    fn urls_of_the_wrong_scheme_or_without_a_host_are_refused() {
        let turn = &["turn:", "turns:"];
        assert_eq!(
            parse_urls("turn:a:3478?transport=tcp, turns:b:5349,", turn).unwrap(),
            ["turn:a:3478?transport=tcp", "turns:b:5349"]
        );
        assert_eq!(parse_urls("turn:[::1]:3478", turn).unwrap().len(), 1);
        assert!(parse_urls("stun:a:3478", turn).is_err());
        assert!(parse_urls("http://a", turn).is_err());
        assert!(parse_urls("turn::3478", turn).is_err());
        assert!(parse_urls("turn:a b", turn).is_err());
        assert!(parse_urls("", turn).unwrap().is_empty());
        assert!(parse_urls("turn:a", &["stun:", "stuns:"]).is_err());
    }
}
