//! The browser page, built into the binary (or served from `--web-dir`).

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::SharedGateway;

/// The files of `web/` (not its tests), embedded at build time.
#[derive(rust_embed::Embed)]
#[folder = "../web/"]
#[exclude = "e2e/*"]
#[exclude = "*.md"]
#[exclude = "test/*"]
#[exclude = "package.json"]
struct Assets;

/// Serve `/` as `index.html` and any other page file by its path.
pub async fn serve(State(gw): State<SharedGateway>, uri: Uri) -> Response {
    let path = match uri.path().trim_start_matches('/') {
        "" => "index.html",
        p => p,
    };
    if path
        .split('/')
        .any(|part| part == ".." || part.starts_with('.'))
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mime = mime_of(path);
    let body = match &gw.settings.web_dir {
        Some(dir) => tokio::fs::read(dir.join(path)).await.ok(),
        None => Assets::get(path).map(|file| file.data.into_owned()),
    };
    match body {
        Some(body) => (
            [
                (header::CONTENT_TYPE, mime),
                (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The page runs only its own scripts and styles, talks only to its own
/// origin and to WebSocket endpoints (the signaller may be on another host
/// or port), and may not be framed by another site (clickjacking).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:; \
    connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn mime_of(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}
