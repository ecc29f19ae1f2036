//! Delivering a `matched` notice: exactly once, whichever path gets there
//! first (the inbox message, or a socket that connects after the match),
//! because the notice is taken from Redis with `GETDEL`.

use fred::prelude::*;
use wire::internal::{self, Inbox, MatchedNotice};
use wire::keys;
use wire::matcher_api::MatcherEvent;
use wire::ticket::{self, Ticket};
use wire::user::{Role, UserKey};

use super::{ConnHandle, Gateway};

/// Take `user`'s pending notice, if any, and send it to `conn`.
pub async fn deliver_pending(gw: &Gateway, user: &UserKey, conn: &ConnHandle) {
    let taken: Result<Option<bytes::Bytes>, Error> = gw.redis.getdel(keys::notice(user)).await;
    match taken {
        Ok(Some(bytes)) => match internal::decode::<Inbox>(&bytes) {
            Ok(Inbox::Matched(notice)) => send_matched(gw, user, conn, &notice),
            Ok(_) | Err(_) => tracing::warn!(%user, "undecodable matched notice dropped"),
        },
        Ok(None) => {}
        Err(e) => tracing::warn!(%user, error = %e, "could not take the matched notice"),
    }
}

/// The `matched` event for `notice`, with a freshly signed ticket.
pub fn matched_event(gw: &Gateway, conn: &ConnHandle, notice: &MatchedNotice) -> MatcherEvent {
    let role = if notice.initiator {
        Role::Initiator
    } else {
        Role::Responder
    };
    let ticket = ticket::sign(
        &gw.secret,
        &Ticket {
            room: notice.room.clone(),
            user: notice.user.clone(),
            name: notice.name.clone(),
            role,
            exp_ms: service::clock::now_ms() + gw.settings.ticket_ttl.as_millis() as u64,
        },
    );
    MatcherEvent::Matched {
        room_code: notice.room.clone(),
        initiator: notice.initiator,
        peer_name: Some(notice.peer_name.clone()),
        ticket: Some(ticket),
        signaller_url: Some(conn.signaller_url.clone()),
    }
}

fn send_matched(gw: &Gateway, user: &UserKey, conn: &ConnHandle, notice: &MatchedNotice) {
    if let Some(w) = gw.conns.waiting(user) {
        metrics::histogram!(service::metrics::TIME_TO_MATCH)
            .record(w.since.elapsed().as_secs_f64());
    }
    metrics::counter!(service::metrics::MATCHED_DELIVERED).increment(1);
    gw.conns.set_waiting(user, None);
    let delivered = conn.send(matched_event(gw, conn, notice).to_json());
    tracing::info!(%user, room = %notice.room, delivered, "matched");
}
