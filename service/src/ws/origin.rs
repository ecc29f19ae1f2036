//! The Origin check in front of WebSocket handshakes.
//!
//! Browsers send cookies and connect to any host a page names, so a page
//! on another site could open sockets to us on a visitor's behalf; the
//! allow-list ([`crate::origin::AllowedOrigins`], shared with CORS) stops
//! that at the handshake.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::origin::AllowedOrigins;

/// Middleware refusing handshakes from browser origins not on the
/// allow-list (403). Requests without an `Origin` come from programs, not
/// browsers, and pass. Put it in front of the socket routes:
///
/// ```ignore
/// router.route_layer(axum::middleware::from_fn_with_state(
///     Arc::new(origins),
///     service::ws::check_origin,
/// ))
/// ```
pub async fn check_origin(
    State(origins): State<Arc<AllowedOrigins>>,
    request: Request,
    next: Next,
) -> Response {
    match refusal(&origins, request.headers()) {
        Some(refused) => refused,
        None => next.run(request).await,
    }
}

/// The 403 for a handshake whose `Origin` is not allowed, if it is not.
/// An `Origin` that is not valid text counts as a foreign one.
pub fn refusal(origins: &AllowedOrigins, headers: &HeaderMap) -> Option<Response> {
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or(""));
    if origins.allows(origin) {
        return None;
    }
    tracing::info!("WebSocket refused: origin not allowed");
    Some((StatusCode::FORBIDDEN, "origin not allowed").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn foreign_and_garbled_origins_are_refused() {
        let origins = AllowedOrigins::new(&["https://chat.example".into()]);
        let mut headers = HeaderMap::new();
        assert!(
            refusal(&origins, &headers).is_none(),
            "no Origin: a program"
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://chat.example"),
        );
        assert!(refusal(&origins, &headers).is_none());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        let refused = refusal(&origins, &headers).expect("refused");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_bytes(b"https://\xffx").unwrap(),
        );
        assert!(refusal(&origins, &headers).is_some());
    }
}
