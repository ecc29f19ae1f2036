//! The HTTP side: routes, the WebSocket upgrade with its limits, and the
//! Origin allow-list as a middleware in front of the socket routes.
//!
//! | route | |
//! |---|---|
//! | `GET /ws/{name}` | legacy socket (the original React client) |
//! | `GET /ws` | native socket |
//! | `GET /healthz`, `GET /readyz` | liveness, readiness (`service::health`) |

use std::sync::Arc;

use axum::extract::{Path, Request, State, WebSocketUpgrade};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use service::health::Health;
use service::origin::AllowedOrigins;

use crate::conn_tasks::ConnTasks;
use crate::connection::{self, Shared};
use crate::session::Dialect;

/// Read buffer per socket. Frames are small (signals of a few KiB) and most
/// sockets are idle for the length of a call, so keep it small; a bigger
/// frame grows the buffer as needed, up to the message limit.
const READ_BUFFER: usize = 4 * 1024;

/// Below this much buffered output a write is not yet flushed; every send
/// here is flushed at once anyway, so keep it small too.
const WRITE_BUFFER: usize = 4 * 1024;

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    tasks: ConnTasks,
}

/// The node's routes.
pub fn router(
    shared: Arc<Shared>,
    tasks: ConnTasks,
    origins: AllowedOrigins,
    health: Health,
) -> Router {
    Router::new()
        .route("/ws", any(native))
        .route("/ws/{name}", any(legacy))
        .route_layer(middleware::from_fn_with_state(
            Arc::new(origins),
            check_origin,
        ))
        .with_state(App { shared, tasks })
        .merge(service::health::routes(health))
        .merge(service::metrics::routes())
}

async fn native(State(app): State<App>, ws: WebSocketUpgrade) -> Response {
    upgrade(app, ws, Dialect::Native)
}

async fn legacy(
    State(app): State<App>,
    Path(name): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    // A bad name is refused over the socket (`error` `bad_name`), where the
    // client can see why.
    upgrade(app, ws, Dialect::Legacy { name })
}

fn upgrade(app: App, ws: WebSocketUpgrade, dialect: Dialect) -> Response {
    ws.max_message_size(wire::limits::MAX_MESSAGE_BYTES)
        .max_frame_size(wire::limits::MAX_MESSAGE_BYTES)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            let shared = app.shared.clone();
            app.tasks
                .spawn(move |id| connection::run(socket, dialect, shared, id));
        })
}

/// Refuse WebSocket handshakes from browser origins not on the allow-list
/// (403). Requests without an `Origin` come from programs, not browsers,
/// and pass.
async fn check_origin(
    State(origins): State<Arc<AllowedOrigins>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or(""));
    if origins.allows(origin) {
        next.run(request).await
    } else {
        tracing::info!("WebSocket refused: origin not allowed");
        (StatusCode::FORBIDDEN, "origin not allowed").into_response()
    }
}
