//! The gateway's routes: the legacy register endpoint, both WebSocket
//! endpoints, the ICE servers, health, and the web page. CORS is a tower layer.

use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::FutureExt;
use service::address_limit::{Refusal, SocketPermit};
use service::client_addr::ClientIp;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use wire::limits::valid_name;
use wire::matcher_api::{RegisterBody, RegisterReply, RegisterStatus};
use wire::preferences::Preferences;

use super::connection;
use super::session::Identity;
use super::{web, SharedGateway};
use crate::store::Registered;

/// All routes of a gateway.
pub fn router(gw: SharedGateway) -> Router {
    let origins = &gw.settings.origins;
    let allow_origin = if origins.allows_any() {
        AllowOrigin::from(Any)
    } else {
        AllowOrigin::list(origins.list().iter().filter_map(|o| o.parse().ok()))
    };
    let cors = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(Any);
    let routes = Router::new()
        .route("/ws", get(native_ws))
        .route("/ice-servers", get(ice_servers));
    let routes = if gw.settings.legacy_api {
        routes
            .route("/registerForMatching", post(register_http))
            .route("/ws/{name}", get(legacy_ws))
    } else {
        routes
    };
    routes
        .merge(service::health::routes(gw.health.clone()))
        .merge(service::metrics::routes())
        .fallback(web::serve)
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(gw.settings.trusted_proxies.clone()),
            service::client_addr::resolve,
        ))
        .with_state(gw)
        .layer(cors)
}

fn reply(status: StatusCode, s: RegisterStatus, message: impl Into<String>) -> Response {
    (
        status,
        Json(RegisterReply {
            status: s,
            message: message.into(),
            code: None,
            retry_after: None,
        }),
    )
        .into_response()
}

/// `429` with `Retry-After` and the usual JSON error body.
fn too_many(refusal: Refusal) -> Response {
    let mut response = reply(
        StatusCode::TOO_MANY_REQUESTS,
        RegisterStatus::Error,
        refusal.message(),
    );
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        refusal.retry_after_header(),
    );
    response
}

/// Legacy `POST /registerForMatching {"name": ..}`, as `application/json`
/// only: a cross-site `text/plain` form needs no CORS preflight, so any site
/// could otherwise make its visitors register names here. The Origin
/// allow-list holds as for the sockets. Every POST counts against its
/// address's rate, well-formed or not.
async fn register_http(
    State(gw): State<SharedGateway>,
    client: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = gw.addresses.admit(&client.key()).await {
        return too_many(refusal);
    }
    if let Some(refused) = service::ws::origin::refusal(&gw.settings.origins, &headers) {
        return refused;
    }
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RegisterStatus::Error,
            "send the body as application/json",
        );
    }
    let Ok(RegisterBody { name, prefs }) = serde_json::from_slice::<RegisterBody>(&body) else {
        return reply(
            StatusCode::BAD_REQUEST,
            RegisterStatus::Error,
            "expected a JSON body {\"name\": \"...\"} (optional: \"interests\": [\"...\"], \"language\": \"en\", \"strict\": false)",
        );
    };
    let prefs = match Preferences::parse(prefs) {
        Ok(prefs) => prefs,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                RegisterStatus::Error,
                e.to_string(),
            )
        }
    };
    if !valid_name(&name) {
        return reply(
            StatusCode::BAD_REQUEST,
            RegisterStatus::Error,
            "names are 1 to 64 characters, no control characters",
        );
    }
    if gw.health.is_draining() {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            RegisterStatus::Error,
            "this server is shutting down; retry",
        );
    }
    match gw.register_legacy(&name, &prefs, client.0).await {
        Ok(Registered::Queued | Registered::AlreadyMatched) => reply(
            StatusCode::OK,
            RegisterStatus::Queued,
            format!("{name} added to the matching queue"),
        ),
        Ok(Registered::Banned { retry_after }) => {
            let message = wire::moderation::banned_message(retry_after);
            let mut response = (
                StatusCode::FORBIDDEN,
                Json(RegisterReply {
                    status: RegisterStatus::Error,
                    message,
                    code: Some(wire::ErrorCode::Banned),
                    retry_after: Some(retry_after),
                }),
            )
                .into_response();
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after),
            );
            response
        }
        Ok(Registered::BoundElsewhere) => reply(
            StatusCode::CONFLICT,
            RegisterStatus::Error,
            format!("{name} is in use from another address"),
        ),
        Ok(Registered::AlreadyWaiting) => reply(
            StatusCode::OK,
            RegisterStatus::Exists,
            format!("{name} is already waiting"),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "register failed");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                RegisterStatus::Error,
                "the matching service is temporarily unavailable; retry",
            )
        }
    }
}

/// `GET /ice-servers`: `{"iceServers": [...], "ttl": N}`, ready for
/// `RTCPeerConnection`, with a TURN credential minted for this request (its
/// username names a fresh id, as a socket's names its session). Any client
/// may ask (the legacy React client has no socket event for it), so each
/// request counts against its address's rate, and the Origin allow-list
/// holds as for the other endpoints. Never cached: a credential expires.
async fn ice_servers(
    State(gw): State<SharedGateway>,
    client: ClientIp,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = gw.addresses.admit(&client.key()).await {
        return too_many(refusal);
    }
    if let Some(refused) = service::ws::origin::refusal(&gw.settings.origins, &headers) {
        return refused;
    }
    let ice = gw.mint_ice_servers(&ulid::Ulid::new().to_string(), "http");
    let mut response = Json(ice).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// Why a handshake is refused: an origin not allowed, or a draining node.
fn refusal(gw: &SharedGateway, headers: &HeaderMap) -> Option<Response> {
    if let Some(refused) = service::ws::origin::refusal(&gw.settings.origins, headers) {
        return Some(refused);
    }
    if gw.health.is_draining() {
        return Some((StatusCode::SERVICE_UNAVAILABLE, "draining").into_response());
    }
    None
}

/// The signaller URL for a client: configured, or the host it reached us
/// by, on the signaller's default port.
fn signaller_url(gw: &SharedGateway, headers: &HeaderMap) -> String {
    if let Some(url) = &gw.settings.signaller_url {
        return url.clone();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https");
    format!("{}://{host}:4000/ws", if secure { "wss" } else { "ws" })
}

/// Upgrade to a matching socket served by its own tracked task, once the
/// client's address is within its rate and socket cap (else `429` with
/// `Retry-After`, before upgrading). The permit lives as long as the
/// socket's task.
async fn upgrade(
    gw: SharedGateway,
    ws: WebSocketUpgrade,
    client: ClientIp,
    identity: Identity,
    url: String,
    device: Option<String>,
) -> Response {
    let permit: SocketPermit = match gw.addresses.admit_socket(&client.key()).await {
        Ok(permit) => permit,
        Err(refusal) => return refusal.into_response(),
    };
    service::ws::configure(ws).on_upgrade(move |socket| async move {
        let tasks = gw.tasks.clone();
        // `map`, not an async block around the call: the block would hold
        // the arguments beside the future made from them (see
        // [`connection::run`]).
        tasks.spawn(move |id| {
            connection::run(gw, socket, identity, client, url, device, id)
                .map(move |()| drop(permit))
        });
    })
}

async fn legacy_ws(
    State(gw): State<SharedGateway>,
    Path(name): Path<String>,
    client: ClientIp,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(refused) = refusal(&gw, &headers) {
        return refused;
    }
    if !valid_name(&name) {
        return (
            StatusCode::BAD_REQUEST,
            "names are 1 to 64 characters, no control characters",
        )
            .into_response();
    }
    let url = signaller_url(&gw, &headers);
    upgrade(gw, ws, client, Identity::Legacy { name }, url, None).await
}

/// `WS /ws?resume=<session id>`: a native session coming back.
#[derive(Debug, serde::Deserialize)]
struct NativeQuery {
    resume: Option<String>,
    /// The device identity token from an earlier `hello` (see
    /// `wire::moderation`); a missing or forged one gets a new identity.
    device: Option<String>,
}

async fn native_ws(
    State(gw): State<SharedGateway>,
    client: ClientIp,
    headers: HeaderMap,
    Query(query): Query<NativeQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(refused) = refusal(&gw, &headers) {
        return refused;
    }
    let url = signaller_url(&gw, &headers);
    let identity = match query.resume {
        // Session ids are ULIDs: anything else names no session.
        Some(session) if ulid::Ulid::from_string(&session).is_err() => {
            return (
                StatusCode::BAD_REQUEST,
                "resume must be the session id from hello (a ULID)",
            )
                .into_response()
        }
        Some(session) => Identity::Native {
            session,
            resume: true,
        },
        None => Identity::Native {
            session: ulid::Ulid::new().to_string(),
            resume: false,
        },
    };
    let device = query
        .device
        .as_deref()
        .and_then(|token| wire::moderation::verify_device(&gw.secret, token))
        .unwrap_or_else(|| ulid::Ulid::new().to_string());
    upgrade(gw, ws, client, identity, url, Some(device)).await
}
