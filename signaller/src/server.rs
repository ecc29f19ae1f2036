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
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use futures_util::FutureExt;
use service::address_limit::AddressLimits;
use service::client_addr::{ClientIp, TrustedProxies};
use service::health::Health;
use service::origin::AllowedOrigins;
use service::ws::ConnTasks;

use crate::connection::{self, Shared};
use crate::session::Dialect;

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    tasks: ConnTasks,
    addresses: AddressLimits,
}

/// The node's routes. Handshakes pass the Origin check, then their
/// client address's rate and socket cap (`429` with `Retry-After`).
pub fn router(
    shared: Arc<Shared>,
    tasks: ConnTasks,
    origins: AllowedOrigins,
    health: Health,
    addresses: AddressLimits,
    trusted_proxies: TrustedProxies,
) -> Router {
    Router::new()
        .route("/ws", any(native))
        .route("/ws/{name}", any(legacy))
        .route_layer(middleware::from_fn_with_state(
            Arc::new(origins),
            service::ws::check_origin,
        ))
        .route_layer(middleware::from_fn_with_state(
            Arc::new(trusted_proxies),
            service::client_addr::resolve,
        ))
        .with_state(App {
            shared,
            tasks,
            addresses,
        })
        .merge(service::health::routes(health))
        .merge(service::metrics::routes())
}

async fn native(State(app): State<App>, client: ClientIp, ws: WebSocketUpgrade) -> Response {
    upgrade(app, ws, client, Dialect::Native).await
}

async fn legacy(
    State(app): State<App>,
    Path(name): Path<String>,
    client: ClientIp,
    ws: WebSocketUpgrade,
) -> Response {
    // A bad name is refused over the socket (`error` `bad_name`), where the
    // client can see why.
    upgrade(app, ws, client, Dialect::Legacy { name }).await
}

async fn upgrade(app: App, ws: WebSocketUpgrade, client: ClientIp, dialect: Dialect) -> Response {
    let permit = match app.addresses.admit_socket(&client.key()).await {
        Ok(permit) => permit,
        Err(refusal) => return refusal.into_response(),
    };
    service::ws::configure(ws).on_upgrade(move |socket| async move {
        let shared = app.shared.clone();
        // `map`, not an `async` block awaiting `run`: the block would keep
        // the socket twice for the socket's whole life (as its capture and
        // inside `run`'s future).
        app.tasks.spawn(move |id| {
            connection::run(socket, dialect, shared, id).map(move |()| drop(permit))
        });
    })
}
