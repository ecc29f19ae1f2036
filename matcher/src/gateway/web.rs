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
    if let Some(dir) = &gw.settings.web_dir {
        return match tokio::fs::read(dir.join(path)).await {
            Ok(body) => ([(header::CONTENT_TYPE, mime)], body).into_response(),
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        };
    }
    match Assets::get(path) {
        Some(file) => ([(header::CONTENT_TYPE, mime)], file.data.into_owned()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

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
