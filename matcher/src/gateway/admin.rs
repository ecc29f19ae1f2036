//! The admin API, on a listener of its own (`--admin-listen`), on only when
//! a token is configured: reports, bans and figures for the people who run
//! the service. Every request needs `Authorization: Bearer <token>`
//! (compared in constant time); every action is logged and counted.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use crate::store::Store;

/// Most reports one request lists.
const MAX_LIMIT: u64 = 1000;

/// What the admin handlers share.
pub struct Admin {
    pub store: Store,
    /// HMAC of the token under a fixed key: requests are compared to it in
    /// constant time, whatever their length.
    token_mac: Vec<u8>,
}

impl Admin {
    pub fn new(store: Store, token: &str) -> Admin {
        Admin {
            store,
            token_mac: mac(token.as_bytes()).finalize().into_bytes().to_vec(),
        }
    }

    fn authorized(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        mac(given.as_bytes()).verify_slice(&self.token_mac).is_ok()
    }
}

fn mac(bytes: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(b"rvc admin token").expect("HMAC takes any key");
    m.update(bytes);
    m
}

pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/admin/reports", get(list_reports))
        .route("/admin/bans", get(list_bans).post(add_ban))
        .route("/admin/bans/{id}", delete(remove_ban))
        .route("/admin/stats", get(stats))
        .layer(middleware::from_fn_with_state(admin.clone(), require_token))
        .with_state(admin)
}

async fn require_token(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !admin.authorized(header) {
        let path = request.uri().path().to_string();
        log(
            action_of(request.method().as_str(), &path),
            "unauthorized",
            json!({"path": path}),
        );
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"status": "error", "message": "missing or wrong bearer token"})),
        )
            .into_response();
    }
    next.run(request).await
}

/// The action a request names, for logs and metrics.
fn action_of(method: &str, path: &str) -> &'static str {
    match (method, path) {
        ("GET", "/admin/reports") => "list_reports",
        ("GET", "/admin/bans") => "list_bans",
        ("POST", "/admin/bans") => "add_ban",
        ("DELETE", _) if path.starts_with("/admin/bans/") => "remove_ban",
        ("GET", "/admin/stats") => "stats",
        _ => "unknown",
    }
}

/// One JSON-able log line and one count per admin action.
fn log(action: &'static str, outcome: &'static str, detail: serde_json::Value) {
    metrics::counter!(service::metrics::ADMIN_ACTIONS, "action" => action, "outcome" => outcome)
        .increment(1);
    tracing::info!(target: "admin", action, outcome, detail = %detail, "admin action");
}

fn unavailable(action: &'static str, e: impl std::fmt::Display) -> Response {
    log(action, "error", json!({"error": e.to_string()}));
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "error", "message": "Redis is unavailable; retry"})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<u64>,
}

async fn list_reports(State(admin): State<Arc<Admin>>, Query(q): Query<Limit>) -> Response {
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    match admin.store.reports(limit).await {
        Ok(reports) => {
            log(
                "list_reports",
                "ok",
                json!({"limit": limit, "count": reports.len()}),
            );
            Json(json!({"reports": reports})).into_response()
        }
        Err(e) => unavailable("list_reports", e),
    }
}

async fn list_bans(State(admin): State<Arc<Admin>>) -> Response {
    match admin.store.bans().await {
        Ok(bans) => {
            log("list_bans", "ok", json!({"count": bans.len()}));
            Json(json!({"bans": bans})).into_response()
        }
        Err(e) => unavailable("list_bans", e),
    }
}

#[derive(Deserialize)]
struct NewBan {
    identity: Option<String>,
    address: Option<String>,
    secs: u64,
    #[serde(default)]
    reason: String,
}

/// The subject a new ban names: an identity as reports show it (`d:…`,
/// `a:…`), or a client address (IPv6 banned by its /64).
fn subject_of(ban: &NewBan) -> Result<String, String> {
    match (&ban.identity, &ban.address) {
        (Some(identity), None) => {
            let ok = (identity.starts_with("d:") || identity.starts_with("a:"))
                && identity.len() > 2
                && !identity.contains(char::is_whitespace);
            ok.then(|| identity.clone()).ok_or_else(|| {
                format!("identity must be as reports show it (d:… or a:…), not {identity:?}")
            })
        }
        (None, Some(address)) => address
            .parse::<std::net::IpAddr>()
            .map(|ip| {
                wire::moderation::address_subject(service::client_addr::AddressKey::of(ip).as_str())
            })
            .map_err(|_| format!("address must be an IP address, not {address:?}")),
        _ => Err("give exactly one of identity and address".to_string()),
    }
}

async fn add_ban(State(admin): State<Arc<Admin>>, body: axum::body::Bytes) -> Response {
    let bad = |message: String| {
        log("add_ban", "refused", json!({"message": message}));
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"status": "error", "message": message})),
        )
            .into_response()
    };
    let ban: NewBan = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad(format!(
                "expected {{\"identity\"|\"address\": .., \"secs\": N, \"reason\": \"..\"}}: {e}"
            ))
        }
    };
    if ban.secs == 0 || ban.secs > 365 * 24 * 3600 {
        return bad("secs must be 1 to 31536000".to_string());
    }
    let subject = match subject_of(&ban) {
        Ok(s) => s,
        Err(m) => return bad(m),
    };
    match admin
        .store
        .add_ban(&subject, Duration::from_secs(ban.secs), &ban.reason)
        .await
    {
        Ok(id) => {
            metrics::counter!(service::metrics::BANS, "by" => "admin").increment(1);
            log(
                "add_ban",
                "ok",
                json!({"id": id, "subject": subject, "secs": ban.secs, "reason": ban.reason}),
            );
            (
                StatusCode::CREATED,
                Json(json!({"id": id, "subject": subject})),
            )
                .into_response()
        }
        Err(e) => unavailable("add_ban", e),
    }
}

async fn remove_ban(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Response {
    match admin.store.remove_ban(&id).await {
        Ok(true) => {
            log("remove_ban", "ok", json!({"id": id}));
            Json(json!({"status": "ok", "id": id})).into_response()
        }
        Ok(false) => {
            log("remove_ban", "not_found", json!({"id": id}));
            (
                StatusCode::NOT_FOUND,
                Json(json!({"status": "error", "message": "no such ban"})),
            )
                .into_response()
        }
        Err(e) => unavailable("remove_ban", e),
    }
}

async fn stats(State(admin): State<Arc<Admin>>) -> Response {
    match admin.store.stats().await {
        Ok(stats) => {
            log("stats", "ok", json!({}));
            Json(stats).into_response()
        }
        Err(e) => unavailable("stats", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let mac = mac(b"the-admin-token-123").finalize().into_bytes().to_vec();
        let admin = |h: Option<&str>| {
            let given = h.and_then(|h| h.strip_prefix("Bearer "));
            given.is_some_and(|g| super::mac(g.as_bytes()).verify_slice(&mac).is_ok())
        };
        assert!(admin(Some("Bearer the-admin-token-123")));
        assert!(!admin(Some("Bearer the-admin-token-12")));
        assert!(!admin(Some("the-admin-token-123")));
        assert!(!admin(None));
    }

    #[test]
    fn a_ban_names_one_identity_or_one_address() {
        let ban = |identity: Option<&str>, address: Option<&str>| NewBan {
            identity: identity.map(str::to_string),
            address: address.map(str::to_string),
            secs: 60,
            reason: String::new(),
        };
        assert_eq!(subject_of(&ban(Some("d:01J"), None)).unwrap(), "d:01J");
        assert_eq!(
            subject_of(&ban(None, Some("192.0.2.7"))).unwrap(),
            "a:192.0.2.7"
        );
        assert!(subject_of(&ban(None, Some("2001:db8:1:2::9")))
            .unwrap()
            .ends_with("/64"));
        assert!(subject_of(&ban(Some("bob"), None)).is_err());
        assert!(subject_of(&ban(None, None)).is_err());
        assert!(subject_of(&ban(Some("d:1"), Some("192.0.2.7"))).is_err());
    }
}
