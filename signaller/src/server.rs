//! The HTTP side: routes, and in front of the socket routes the shared
//! WebSocket handshake (`service::ws`: Origin allow-list, limits, buffers).
//!
//! | route | |
//! |---|---|
//! | `GET /ws/{name}` | legacy socket (the original React client) |
//! | `GET /ws` | native socket |
//! | `GET /healthz`, `GET /readyz` | liveness, readiness (`service::health`) |

use std::sync::Arc;

use axum::extract::{Path, State, WebSocketUpgrade};
use axum::middleware;
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use service::health::Health;
use service::origin::AllowedOrigins;
use service::ws::ConnTasks;

use crate::connection::{self, Shared};
use crate::session::Dialect;

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
            service::ws::check_origin,
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
    service::ws::configure(ws).on_upgrade(move |socket| async move {
        let shared = app.shared.clone();
        app.tasks
            .spawn(move |id| connection::run(socket, dialect, shared, id));
    })
}
