//! The protocol of one matching socket, as a plain state machine.
//!
//! A [`Session`] decides what to answer to each client frame, what to make
//! of each notice from Redis, and what to do on drain and close, with no
//! socket, Redis or clock of its own: it returns [`Action`]s, and the async
//! shell in [`super::connection`] performs them and feeds the results back
//! (`on_located`, `on_registered`, …). Every rule of the matching protocol
//! is therefore testable in microseconds (below).
//!
//! A session goes `Locating` → `Open` → `Closed`; within `Open` the user is
//! idle, waiting in the pool (with a registration), or matched. A legacy
//! socket whose name is held by another live socket ends at once.

use std::time::Instant;

use wire::internal::{ChatNotice, MatchedNotice, PoolPreferences};
use wire::matcher_api::{IceServers, MatcherClientMsg, MatcherEvent};
use wire::preferences::Preferences;
use wire::ticket::{self, Ticket};
use wire::user::{Role, UserKey};
use wire::{CloseCode, ErrorCode};

use crate::store::{ChatOutcome, Located, Registered, Unparked};

/// Display name of a native user who gives none.
pub const DEFAULT_NAME: &str = "Stranger";

/// Who is on the socket, fixed by the URL it connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// `WS /ws/{name}`: the original React client, identified by its name
    /// (unique among connected legacy users).
    Legacy { name: String },
    /// `WS /ws`: our own client, identified by a fresh session id, or
    /// (`resume`, `WS /ws?resume=<session id>`) by the id of a session
    /// whose socket closed within the resume grace window.
    Native { session: String, resume: bool },
}

impl Identity {
    pub fn user(&self) -> UserKey {
        match self {
            Identity::Legacy { name } => UserKey::legacy(name),
            Identity::Native { session, .. } => UserKey::native(session),
        }
    }

    pub fn is_legacy(&self) -> bool {
        matches!(self, Identity::Legacy { .. })
    }
}

/// What a session needs to sign tickets and point clients at the signaller.
#[derive(Debug, Clone)]
pub struct TicketIssuer {
    pub secret: std::sync::Arc<[u8]>,
    pub ticket_ttl_ms: u64,
    /// Signaller URL handed to this client in `matched`.
    pub signaller_url: String,
}

/// How this gateway takes part in matchmaking filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matchmaking {
    /// This gateway's region (empty: none), given to the pairing script
    /// with every register.
    pub region: String,
    /// How long the pool looks for a shared interest before anyone will
    /// do, ms (told to the client in `queued`).
    pub interest_wait_ms: u64,
}

impl Default for Matchmaking {
    fn default() -> Self {
        Matchmaking {
            region: String::new(),
            interest_wait_ms: 5000,
        }
    }
}

impl Matchmaking {
    /// What the pairing script is told of `prefs` registered here.
    pub fn pool_preferences(&self, prefs: &Preferences) -> Option<PoolPreferences> {
        PoolPreferences::new(prefs, &self.region)
    }
}

/// A registration this socket's user holds in the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reg: String,
    pub name: String,
    /// What the registration asked of a partner (kept to register again
    /// after Redis lost it).
    pub prefs: Option<PoolPreferences>,
    /// When the user registered, for the time-to-match metric.
    pub since: Instant,
}

/// Something the shell must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this event to the client.
    Send(MatcherEvent),
    /// Close the socket with this code and end the connection.
    Close(CloseCode),
    /// Record where this socket is (exclusively for a legacy name), taking
    /// the notice that waits for it; then call [`Session::on_located`].
    Locate { exclusive: bool },
    /// Redis could not record the location: try again later, then call
    /// [`Session::on_located`].
    LocateLater,
    /// Register the user with a fresh registration id under `name`, with
    /// these preferences; then call [`Session::on_registered`].
    Register {
        name: String,
        prefs: Option<PoolPreferences>,
    },
    /// Register again with an existing registration (after Redis lost it);
    /// then call [`Session::on_requeued`] (a failure asks the gateway for
    /// another restore).
    Requeue(Waiting),
    /// Keep the waiting registration alive in Redis (it has a short lifetime).
    RefreshWait { reg: String },
    /// Take the user out of the pool; then call [`Session::on_withdrawn`]
    /// when `reply`, else ignore the outcome.
    Withdraw { reply: bool },
    /// Take the notice that waits for the user; then call [`Session::on_notice`].
    TakeNotice,
    /// Relay a chat line to the partner; then call [`Session::on_chat_result`].
    Chat { name: String, message: String },
    /// Count a delivered match, with how long the user waited since register
    /// on this socket (if known).
    CountMatch { since: Option<Instant> },
    /// Record a report about the partner met last; then call
    /// [`Session::on_reported`].
    Report {
        reason: wire::moderation::ReportReason,
        note: String,
    },
    /// Block the partner met last; then call [`Session::on_blocked`].
    Block,
    /// Forget this socket's location and withdraw the user (the socket is over).
    Release,
    /// A native socket is over but its session may come back within the
    /// resume grace window: forget the location, take the user out of the
    /// pool, keep its registration and pending notice for the window.
    Park,
    /// Take back a parked session (its registration or pending notice);
    /// then call [`Session::on_unparked`].
    Unpark,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for the location to be recorded.
    Locating,
    Open,
    Closed,
}

/// One socket's matching protocol state.
#[derive(Debug)]
pub struct Session {
    identity: Identity,
    issuer: TicketIssuer,
    matchmaking: Matchmaking,
    state: State,
    /// The display name used for the next register and for chat.
    name: String,
    waiting: Option<Waiting>,
    /// The registration last matched, so a late register result for it is
    /// not taken for a new wait.
    last_matched_reg: Option<String>,
    draining: bool,
    /// A restore is under way: register again once located, if still waiting.
    restoring: bool,
    /// Another live socket held the name: this one never held the location.
    name_taken: bool,
    /// ICE servers minted for this session by the shell, given with `hello`.
    hello_ice: Option<IceServers>,
    /// The device identity token given to a native client with `hello`.
    device: Option<String>,
}

impl Session {
    pub fn new(identity: Identity, issuer: TicketIssuer) -> Session {
        let name = match &identity {
            Identity::Legacy { name } => name.clone(),
            Identity::Native { .. } => DEFAULT_NAME.to_string(),
        };
        Session {
            identity,
            issuer,
            matchmaking: Matchmaking::default(),
            state: State::Locating,
            name,
            waiting: None,
            last_matched_reg: None,
            draining: false,
            restoring: false,
            name_taken: false,
            hello_ice: None,
            device: None,
        }
    }

    /// Give a native client this device identity token with its `hello`.
    pub fn with_device(mut self, token: String) -> Session {
        self.device = Some(token);
        self
    }

    /// The socket's identity or address is banned: say so (with when it
    /// lifts) and close. Nothing was recorded for this socket.
    pub fn on_banned(&mut self, retry_after: u64) -> Vec<Action> {
        self.name_taken = true; // Nothing of ours to release.
        self.refuse_banned(retry_after)
    }

    /// Tell a banned user so (with when it lifts) and close the socket.
    fn refuse_banned(&mut self, retry_after: u64) -> Vec<Action> {
        self.state = State::Closed;
        vec![
            Action::Send(MatcherEvent::banned(retry_after)),
            Action::Close(CloseCode::Banned),
        ]
    }

    /// This gateway's matchmaking settings (default: no region, 5 s).
    pub fn with_matchmaking(mut self, matchmaking: Matchmaking) -> Session {
        self.matchmaking = matchmaking;
        self
    }

    /// Give a native client these ICE servers (minted by the shell for
    /// this session, TURN credential included) with its `hello`.
    pub fn with_ice_servers(mut self, ice: IceServers) -> Session {
        self.hello_ice = Some(ice);
        self
    }

    pub fn user(&self) -> UserKey {
        self.identity.user()
    }

    /// The registration the user holds, if waiting.
    pub fn waiting(&self) -> Option<&Waiting> {
        self.waiting.as_ref()
    }

    /// The registration whose `matched` this socket delivered last. Its
    /// notice may still be stored (a notice pushed with the pairing's
    /// message is not taken from Redis): the next register and the park
    /// forget it there.
    pub fn last_matched_reg(&self) -> Option<&str> {
        self.last_matched_reg.as_deref()
    }

    /// The socket is open: greet a native client, record the location.
    pub fn on_open(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Identity::Native { session, .. } = &self.identity {
            let ice = self.hello_ice.take();
            actions.push(Action::Send(MatcherEvent::Hello {
                session: session.clone(),
                protocol: wire::PROTOCOL_VERSION,
                ice_ttl: ice.as_ref().map(|i| i.ttl),
                ice_servers: ice.map(|i| i.ice_servers),
                // Given once: not kept for the socket's life.
                device: self.device.take(),
            }));
        }
        actions.push(match self.identity {
            Identity::Native { resume: true, .. } => Action::Unpark,
            _ => Action::Locate {
                exclusive: self.identity.is_legacy(),
            },
        });
        actions
    }

    /// Fresh ICE servers, minted by the shell before the ones given earlier
    /// expire: a native client gets them as `ice-servers` (a legacy client
    /// knows no such event; a closed socket gets nothing).
    pub fn on_ice_servers(&mut self, ice: IceServers) -> Vec<Action> {
        if self.identity.is_legacy() || self.state == State::Closed {
            return Vec::new();
        }
        vec![Action::Send(MatcherEvent::IceServers {
            ice_servers: ice.ice_servers,
            ttl: ice.ttl,
        })]
    }

    /// The result of [`Action::Unpark`]: the session is back (with its
    /// pending `matched`, or its registration back in the pool, `since`
    /// now), or it is not parked (its window passed): the client is told
    /// and the socket closed, so it starts a new session.
    pub fn on_unparked(
        &mut self,
        result: Result<Unparked, ()>,
        since: Instant,
        now_ms: u64,
    ) -> Vec<Action> {
        if self.state != State::Locating {
            return Vec::new();
        }
        match result {
            Ok(Unparked::Banned { retry_after }) => self.on_banned(retry_after),
            Ok(Unparked::Gone) => {
                self.state = State::Closed;
                self.name_taken = true; // Nothing of ours to release.
                vec![
                    send_error(
                        ErrorCode::ExpiredResume,
                        "this matching session is over (its resume grace window passed); \
                         connect without resume to start a new one",
                    ),
                    Action::Close(CloseCode::Policy),
                ]
            }
            Err(()) => {
                self.state = State::Closed;
                vec![unavailable(), Action::Close(CloseCode::GoingAway)]
            }
            Ok(Unparked::Matched(notice)) => {
                self.state = State::Open;
                self.deliver(notice, now_ms)
            }
            Ok(Unparked::Waiting { reg, name, prefs }) => {
                self.state = State::Open;
                self.name = name.clone();
                let interest_wait_ms = self.interest_wait_ms(prefs.as_ref());
                self.waiting = Some(Waiting {
                    reg,
                    name,
                    prefs,
                    since,
                });
                vec![Action::Send(MatcherEvent::Queued { interest_wait_ms })]
            }
            // Not waiting (never was, or a drain withdrew it): say so, so
            // that a client that was searching registers again.
            Ok(Unparked::Idle) => {
                self.state = State::Open;
                vec![Action::Send(MatcherEvent::Cancelled {})]
            }
        }
    }

    /// The result of [`Action::Locate`] or [`Action::LocateLater`].
    pub fn on_located(&mut self, result: Result<Located, ()>, now_ms: u64) -> Vec<Action> {
        match result {
            Ok(Located::NameTaken) if self.state == State::Locating => {
                self.state = State::Closed;
                self.name_taken = true;
                vec![
                    Action::Send(MatcherEvent::error(
                        ErrorCode::NameTaken,
                        "this name is already connected",
                    )),
                    Action::Close(CloseCode::NameTaken),
                ]
            }
            // A restore found the name taken over meanwhile: nothing to do.
            Ok(Located::NameTaken) => {
                self.restoring = false;
                Vec::new()
            }
            Ok(Located::Here(notice)) => {
                if self.state == State::Locating {
                    self.state = State::Open;
                }
                let mut actions = Vec::new();
                // A notice this socket delivered already (pushed to it) may
                // still be stored: never a second `matched`.
                if let Some(notice) = notice.filter(|n| !self.delivered(n)) {
                    actions.extend(self.deliver(notice, now_ms));
                }
                if std::mem::take(&mut self.restoring) {
                    if let Some(w) = &self.waiting {
                        actions.push(Action::Requeue(w.clone()));
                    }
                }
                actions
            }
            // Redis is down or slow: keep the socket and keep trying. (A
            // registration made meanwhile is made again once located.)
            Err(()) => {
                self.restoring = true;
                if self.state == State::Locating {
                    self.state = State::Open;
                }
                vec![Action::LocateLater]
            }
        }
    }

    /// A text frame from the client, within the rate limit.
    pub fn on_text(&mut self, text: &str) -> Vec<Action> {
        if self.state == State::Closed {
            return Vec::new();
        }
        let msg = match MatcherClientMsg::decode(text) {
            Ok(msg) => msg,
            Err(e) => return vec![send_error(e.code(), e.to_string())],
        };
        match msg {
            MatcherClientMsg::Ping => vec![Action::Send(MatcherEvent::Pong {})],
            MatcherClientMsg::Register { .. } if self.draining => vec![send_error(
                ErrorCode::Draining,
                "this server is shutting down; reconnect and register again",
            )],
            MatcherClientMsg::Register {
                name: wanted,
                prefs,
            } => {
                let prefs = match Preferences::parse(prefs) {
                    Ok(p) => p,
                    Err(e) => return vec![send_error(ErrorCode::BadPreferences, e.to_string())],
                };
                if let (Identity::Native { .. }, Some(wanted)) = (&self.identity, wanted) {
                    if !wire::limits::valid_name(&wanted) {
                        return vec![send_error(
                            ErrorCode::BadName,
                            "names are 1 to 64 characters, no control characters",
                        )];
                    }
                    self.name = wire::limits::normalize_name(&wanted);
                }
                vec![Action::Register {
                    name: self.name.clone(),
                    prefs: self.matchmaking.pool_preferences(&prefs),
                }]
            }
            MatcherClientMsg::Cancel => {
                self.waiting = None;
                vec![Action::Withdraw { reply: true }]
            }
            MatcherClientMsg::Chat { message, .. } => {
                if message.chars().count() > wire::limits::MAX_CHAT_CHARS {
                    return vec![send_error(
                        ErrorCode::TooLong,
                        "chat messages are at most 2000 characters",
                    )];
                }
                vec![Action::Chat {
                    name: self.name.clone(),
                    message,
                }]
            }
            MatcherClientMsg::Report { reason, note } => {
                match wire::moderation::check_report(&reason, note) {
                    Ok((reason, note)) => vec![Action::Report { reason, note }],
                    Err(why) => vec![send_error(ErrorCode::BadReport, why)],
                }
            }
            MatcherClientMsg::Block => vec![Action::Block],
        }
    }

    /// The result of [`Action::Report`].
    pub fn on_reported(&mut self, result: Result<crate::store::Reported, ()>) -> Vec<Action> {
        use crate::store::Reported;
        match result {
            Ok(Reported::Stored { .. }) => vec![Action::Send(MatcherEvent::Reported {})],
            Ok(Reported::NoPartner) => vec![send_error(
                ErrorCode::NoPartner,
                "nobody to report: you can report your partner during a chat and for a minute after it",
            )],
            Ok(Reported::RateLimited) => vec![send_error(
                ErrorCode::RateLimited,
                "report refused: too many reports this hour",
            )],
            Err(()) => vec![unavailable()],
        }
    }

    /// The result of [`Action::Block`] (`false`: nobody to block).
    pub fn on_blocked(&mut self, result: Result<bool, ()>) -> Vec<Action> {
        match result {
            Ok(true) => vec![Action::Send(MatcherEvent::Blocked {})],
            Ok(false) => vec![send_error(
                ErrorCode::NoPartner,
                "nobody to block: you can block your partner during a chat and for a minute after it",
            )],
            Err(()) => vec![unavailable()],
        }
    }

    /// A text frame over the socket's rate: refused, and the client is told
    /// which (nothing is dropped silently).
    pub fn on_rate_limited(&mut self, text: &str) -> Vec<Action> {
        vec![send_error(
            ErrorCode::RateLimited,
            service::ws::rate_limited_message(text),
        )]
    }

    /// The result of [`Action::Register`], with the registration it made.
    pub fn on_registered(&mut self, result: Result<(Registered, Waiting), ()>) -> Vec<Action> {
        match result {
            Ok((Registered::Queued, w)) => {
                let interest_wait_ms = self.interest_wait_ms(w.prefs.as_ref());
                if self.last_matched_reg.as_deref() != Some(w.reg.as_str()) {
                    self.waiting = Some(w);
                }
                vec![Action::Send(MatcherEvent::Queued { interest_wait_ms })]
            }
            Ok((Registered::AlreadyWaiting, _)) => vec![send_error(
                ErrorCode::AlreadyWaiting,
                "already waiting for a partner",
            )],
            // A fresh registration id is never matched already; if it were,
            // its notice waits.
            Ok((Registered::AlreadyMatched, _)) => vec![Action::TakeNotice],
            Ok((Registered::BoundElsewhere, _)) => vec![send_error(
                ErrorCode::NameTaken,
                "this name is registered from another address",
            )],
            // Located already: the close releases what was recorded.
            Ok((Registered::Banned { retry_after }, _)) => self.refuse_banned(retry_after),
            Err(()) => vec![unavailable()],
        }
    }

    /// How long the pool looks for someone sharing `prefs` before anyone
    /// will do: only when there is something to share and no strictness.
    fn interest_wait_ms(&self, prefs: Option<&PoolPreferences>) -> Option<u64> {
        prefs
            .filter(|p| !p.strict && (!p.interests.is_empty() || p.language.is_some()))
            .map(|_| self.matchmaking.interest_wait_ms)
    }

    /// [`Action::Register`] was refused before it reached the pool: the
    /// client's address is over its rate.
    pub fn on_register_refused(&mut self, message: String) -> Vec<Action> {
        vec![send_error(ErrorCode::RateLimited, message)]
    }

    /// The result of [`Action::Requeue`]. A registration matched meanwhile
    /// is not put back: its notice is taken instead (never two matches).
    pub fn on_requeued(&mut self, result: Result<Registered, ()>) -> Vec<Action> {
        match result {
            Ok(Registered::AlreadyMatched) => {
                self.waiting = None;
                vec![Action::TakeNotice]
            }
            Ok(Registered::BoundElsewhere | Registered::Banned { .. }) => {
                self.waiting = None;
                Vec::new()
            }
            Ok(Registered::Queued | Registered::AlreadyWaiting) | Err(()) => Vec::new(),
        }
    }

    /// The periodic tick of a waiting socket: keep the registration alive.
    pub fn on_tick(&mut self) -> Vec<Action> {
        match (&self.state, &self.waiting) {
            (State::Open, Some(w)) => vec![Action::RefreshWait { reg: w.reg.clone() }],
            _ => Vec::new(),
        }
    }

    /// The name's registrant connected from another address and took this
    /// socket's place: it receives nothing more.
    pub fn on_replaced(&mut self) -> Vec<Action> {
        self.state = State::Closed;
        self.waiting = None;
        vec![Action::Close(CloseCode::Replaced)]
    }

    /// The user was registered by another path (the legacy HTTP register).
    pub fn on_registered_elsewhere(&mut self, waiting: Waiting) -> Vec<Action> {
        if self.last_matched_reg.as_deref() != Some(waiting.reg.as_str()) {
            self.waiting = Some(waiting);
        }
        Vec::new()
    }

    /// The result of [`Action::Withdraw`] with `reply`: `Ok(true)` if the
    /// user was waiting.
    pub fn on_withdrawn(&mut self, result: Result<bool, ()>) -> Vec<Action> {
        vec![match result {
            Ok(true) => Action::Send(MatcherEvent::Cancelled {}),
            Ok(false) => send_error(ErrorCode::NotWaiting, "not waiting for a partner"),
            Err(()) => unavailable(),
        }]
    }

    /// The result of [`Action::Chat`].
    pub fn on_chat_result(&mut self, result: Result<ChatOutcome, ()>) -> Vec<Action> {
        match result {
            Ok(ChatOutcome::Relayed) => Vec::new(),
            Ok(ChatOutcome::NoPartner) => {
                vec![send_error(ErrorCode::NoPartner, "no partner to chat with")]
            }
            Ok(ChatOutcome::PeerOffline) => vec![send_error(
                ErrorCode::PeerOffline,
                "your partner is not connected",
            )],
            Err(()) => vec![unavailable()],
        }
    }

    /// Word that a `matched` notice waits for this user.
    pub fn on_notice_waiting(&mut self) -> Vec<Action> {
        match self.state {
            // The location script takes it anyway.
            State::Locating | State::Closed => Vec::new(),
            State::Open => vec![Action::TakeNotice],
        }
    }

    /// A `matched` notice pushed with the pairing's message to this very
    /// socket (native users). Its copy stays stored for the paths that take
    /// it instead; whichever comes first is delivered, once per registration.
    pub fn on_notice_pushed(&mut self, notice: MatchedNotice, now_ms: u64) -> Vec<Action> {
        match self.state {
            // The location script takes the stored copy.
            State::Locating | State::Closed => Vec::new(),
            State::Open if self.delivered(&notice) => Vec::new(),
            State::Open => self.deliver(notice, now_ms),
        }
    }

    /// Whether `notice`'s registration was delivered on this socket already.
    fn delivered(&self, notice: &MatchedNotice) -> bool {
        self.last_matched_reg.as_deref() == Some(notice.reg.as_str())
    }

    /// The result of [`Action::TakeNotice`] (`None`: another path took it).
    pub fn on_notice(&mut self, notice: Option<MatchedNotice>, now_ms: u64) -> Vec<Action> {
        match notice {
            Some(notice) if self.state != State::Closed => self.deliver(notice, now_ms),
            _ => Vec::new(),
        }
    }

    /// A chat line from the partner.
    pub fn on_chat(&mut self, chat: ChatNotice) -> Vec<Action> {
        if self.state == State::Closed {
            return Vec::new();
        }
        vec![Action::Send(MatcherEvent::Chat {
            sender: chat.sender,
            message: chat.message,
            timestamp: wire::unix_seconds(chat.sent_ms),
        })]
    }

    /// Redis came back (possibly empty) or this gateway was presumed dead:
    /// record the location again, deliver what waits, register again if the
    /// user still waits.
    pub fn on_restore(&mut self) -> Vec<Action> {
        if self.state != State::Open {
            return Vec::new();
        }
        self.restoring = true;
        vec![Action::Locate { exclusive: false }]
    }

    /// The gateway drains: a waiting user leaves the pool (it is never
    /// matched while it moves); a native client is asked to move now, a
    /// legacy one keeps its socket until [`Session::on_drain_deadline`].
    pub fn on_drain(&mut self) -> Vec<Action> {
        self.draining = true;
        let mut actions = Vec::new();
        if self.waiting.take().is_some() {
            actions.push(Action::Withdraw { reply: false });
        }
        if !self.identity.is_legacy() {
            actions.push(Action::Send(MatcherEvent::Reconnect {
                reason: "draining".into(),
            }));
        }
        actions
    }

    /// The drain's grace period is over.
    pub fn on_drain_deadline(&mut self) -> Vec<Action> {
        self.state = State::Closed;
        vec![Action::Close(CloseCode::GoingAway)]
    }

    /// The socket ended (either side, or a write failed): clean up, unless
    /// the name was never ours.
    pub fn on_closed(&mut self) -> Vec<Action> {
        self.state = State::Closed;
        self.waiting = None;
        if self.name_taken {
            Vec::new()
        } else if self.identity.is_legacy() {
            vec![Action::Release]
        } else {
            vec![Action::Park]
        }
    }

    /// The `matched` event for `notice`, with a freshly signed ticket.
    fn deliver(&mut self, notice: MatchedNotice, now_ms: u64) -> Vec<Action> {
        let since = self
            .waiting
            .take()
            .filter(|w| w.reg == notice.reg)
            .map(|w| w.since);
        self.last_matched_reg = Some(notice.reg.clone());
        let role = if notice.initiator {
            Role::Initiator
        } else {
            Role::Responder
        };
        let ticket = ticket::sign(
            &self.issuer.secret,
            &Ticket {
                room: notice.room.clone(),
                user: notice.user.clone(),
                name: notice.name.clone(),
                role,
                exp_ms: now_ms + self.issuer.ticket_ttl_ms,
            },
        );
        vec![
            Action::Send(MatcherEvent::Matched {
                room_code: notice.room,
                initiator: notice.initiator,
                peer_name: Some(notice.peer_name),
                ticket: Some(ticket),
                signaller_url: Some(self.issuer.signaller_url.clone()),
                common_interests: notice.common,
            }),
            Action::CountMatch { since },
        ]
    }
}

fn send_error(code: ErrorCode, message: impl Into<String>) -> Action {
    Action::Send(MatcherEvent::error(code, message))
}

fn unavailable() -> Action {
    send_error(
        ErrorCode::Unavailable,
        "the service is temporarily unavailable; retry shortly",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_000_000;

    fn issuer() -> TicketIssuer {
        TicketIssuer {
            secret: SECRET.into(),
            ticket_ttl_ms: 600_000,
            signaller_url: "ws://sig/ws".into(),
        }
    }

    fn legacy(name: &str) -> Session {
        Session::new(
            Identity::Legacy {
                name: name.to_string(),
            },
            issuer(),
        )
    }

    fn native() -> Session {
        Session::new(
            Identity::Native {
                session: "S1".into(),
                resume: false,
            },
            issuer(),
        )
    }

    /// A session whose location is recorded, with nothing pending.
    fn open(mut s: Session) -> Session {
        s.on_open();
        assert!(s.on_located(Ok(Located::Here(None)), NOW).is_empty());
        s
    }

    /// The JSON of every event the actions send.
    fn sent(actions: &[Action]) -> Vec<Value> {
        let mut events = Vec::new();
        for action in actions {
            if let Action::Send(event) = action {
                events.push(serde_json::to_value(event).unwrap());
            }
        }
        events
    }

    fn error_code(actions: &[Action]) -> String {
        let events = sent(actions);
        assert_eq!(events.len(), 1, "{actions:?}");
        assert_eq!(events[0]["event"], "error");
        events[0]["code"].as_str().unwrap().to_string()
    }

    fn waiting(reg: &str) -> Waiting {
        Waiting {
            reg: reg.into(),
            name: "x".into(),
            prefs: None,
            since: Instant::now(),
        }
    }

    fn notice(user: &str, reg: &str) -> MatchedNotice {
        MatchedNotice {
            user: user.into(),
            reg: reg.into(),
            addr: "127.0.0.1".into(),
            room: "ann_bob_01J".into(),
            initiator: true,
            peer: "l:bob".into(),
            peer_name: "bob".into(),
            name: "ann".into(),
            common: vec![],
        }
    }

    #[test]
    fn native_hello_comes_first_then_a_non_exclusive_location() {
        let mut s = native();
        let actions = s.on_open();
        assert_eq!(sent(&actions)[0]["event"], "hello");
        assert_eq!(sent(&actions)[0]["session"], "S1");
        assert_eq!(actions[1], Action::Locate { exclusive: false });
    }

    fn ice() -> IceServers {
        IceServers {
            ice_servers: vec![wire::matcher_api::IceServer {
                urls: vec!["turn:relay:3478".into()],
                username: Some("1000:S1".into()),
                credential: Some("c".into()),
            }],
            ttl: 60,
        }
    }

    #[test]
    fn native_hello_carries_the_ice_servers_minted_for_the_session() {
        let mut s = native().with_ice_servers(ice());
        let hello = &sent(&s.on_open())[0];
        assert_eq!(hello["event"], "hello");
        assert_eq!(hello["iceServers"][0]["urls"][0], "turn:relay:3478");
        assert_eq!(hello["iceServers"][0]["username"], "1000:S1");
        assert_eq!(hello["iceServers"][0]["credential"], "c");
        assert_eq!(hello["iceTtl"], 60);
        // Without any configured, the fields are absent.
        let hello = &sent(&native().on_open())[0];
        assert!(hello.get("iceServers").is_none() && hello.get("iceTtl").is_none());
    }

    #[test]
    fn fresh_ice_servers_go_to_native_clients_only_while_open() {
        let mut s = open(native());
        let refresh = &sent(&s.on_ice_servers(ice()))[0];
        assert_eq!(refresh["event"], "ice-servers");
        assert_eq!(refresh["iceServers"][0]["username"], "1000:S1");
        assert_eq!(refresh["ttl"], 60);
        s.on_closed();
        assert!(s.on_ice_servers(ice()).is_empty());
        assert!(open(legacy("ann")).on_ice_servers(ice()).is_empty());
    }

    #[test]
    fn legacy_claims_its_name_exclusively_and_says_nothing_first() {
        let mut s = legacy("ann");
        assert_eq!(s.on_open(), vec![Action::Locate { exclusive: true }]);
    }

    #[test]
    fn a_taken_name_is_refused_with_4409_and_never_released() {
        let mut s = legacy("ann");
        s.on_open();
        let actions = s.on_located(Ok(Located::NameTaken), NOW);
        assert_eq!(error_code(&actions), "name_taken");
        assert_eq!(actions.last(), Some(&Action::Close(CloseCode::NameTaken)));
        assert!(s.on_text(r#"{"event":"ping"}"#).is_empty());
        assert!(
            s.on_closed().is_empty(),
            "the name belongs to the other socket"
        );
    }

    #[test]
    fn a_notice_waiting_at_connect_is_delivered_with_a_ticket() {
        let mut s = legacy("ann");
        s.on_open();
        let actions = s.on_located(Ok(Located::Here(Some(notice("l:ann", "R1")))), NOW);
        let events = sent(&actions);
        assert_eq!(events[0]["event"], "matched");
        assert_eq!(events[0]["room_code"], "ann_bob_01J");
        assert_eq!(events[0]["initiator"], true);
        assert_eq!(events[0]["signaller_url"], "ws://sig/ws");
        let t = ticket::verify(SECRET, events[0]["ticket"].as_str().unwrap(), NOW).unwrap();
        assert_eq!((t.room.as_str(), t.user.as_str()), ("ann_bob_01J", "l:ann"));
        assert_eq!(t.role, Role::Initiator);
        assert_eq!(t.exp_ms, NOW + 600_000);
        assert!(matches!(
            actions.last(),
            Some(Action::CountMatch { since: None })
        ));
    }

    #[test]
    fn register_queues_and_a_second_register_is_already_waiting() {
        let mut s = open(native());
        let actions = s.on_text(r#"{"event":"register","name":"Zoë"}"#);
        assert_eq!(
            actions,
            vec![Action::Register {
                name: "Zoë".into(),
                prefs: None,
            }]
        );
        let actions = s.on_registered(Ok((Registered::Queued, waiting("R1"))));
        assert_eq!(sent(&actions)[0]["event"], "queued");
        assert_eq!(s.waiting().unwrap().reg, "R1");
        assert_eq!(
            error_code(&s.on_registered(Ok((Registered::AlreadyWaiting, waiting("R2"))))),
            "already_waiting"
        );
        assert_eq!(s.waiting().unwrap().reg, "R1");
    }

    #[test]
    fn a_native_user_without_a_name_is_a_stranger_and_a_bad_name_is_refused() {
        let mut s = open(native());
        assert_eq!(
            s.on_text(r#"{"event":"register"}"#),
            vec![Action::Register {
                name: DEFAULT_NAME.into(),
                prefs: None,
            }]
        );
        assert_eq!(
            error_code(&s.on_text(r#"{"event":"register","name":"a\u0007b"}"#)),
            "bad_name"
        );
    }

    #[test]
    fn a_legacy_socket_keeps_its_url_name_whatever_register_says() {
        let mut s = open(legacy("ann"));
        assert_eq!(
            s.on_text(r#"{"event":"register","name":"mallory"}"#),
            vec![Action::Register {
                name: "ann".into(),
                prefs: None,
            }]
        );
    }

    #[test]
    fn matched_clears_the_wait_and_times_it() {
        let mut s = open(native());
        s.on_registered(Ok((Registered::Queued, waiting("R1"))));
        assert_eq!(s.on_notice_waiting(), vec![Action::TakeNotice]);
        let actions = s.on_notice(Some(notice("s:S1", "R1")), NOW);
        assert_eq!(sent(&actions)[0]["event"], "matched");
        assert!(matches!(
            actions.last(),
            Some(Action::CountMatch { since: Some(_) })
        ));
        assert!(s.waiting().is_none());
        // Another path took the notice first: nothing more.
        assert!(s.on_notice(None, NOW).is_empty());
    }

    #[test]
    fn a_register_result_for_a_registration_already_matched_does_not_wait_again() {
        let mut s = open(legacy("ann"));
        s.on_notice(Some(notice("l:ann", "R1")), NOW);
        s.on_registered_elsewhere(waiting("R1"));
        assert!(s.waiting().is_none());
        s.on_registered_elsewhere(waiting("R2"));
        assert_eq!(s.waiting().unwrap().reg, "R2");
    }

    #[test]
    fn cancel_withdraws_and_reports_whether_the_user_waited() {
        let mut s = open(native());
        s.on_registered(Ok((Registered::Queued, waiting("R1"))));
        assert_eq!(
            s.on_text(r#"{"event":"cancel"}"#),
            vec![Action::Withdraw { reply: true }]
        );
        assert!(s.waiting().is_none());
        assert_eq!(sent(&s.on_withdrawn(Ok(true)))[0]["event"], "cancelled");
        assert_eq!(error_code(&s.on_withdrawn(Ok(false))), "not_waiting");
        assert_eq!(error_code(&s.on_withdrawn(Err(()))), "unavailable");
    }

    #[test]
    fn chat_is_relayed_under_the_users_name_and_failures_are_explained() {
        let mut s = open(legacy("ann"));
        assert_eq!(
            s.on_text(r#"{"event":"chat","peer":"whoever","message":"hi"}"#),
            vec![Action::Chat {
                name: "ann".into(),
                message: "hi".into()
            }]
        );
        assert!(s.on_chat_result(Ok(ChatOutcome::Relayed)).is_empty());
        assert_eq!(
            error_code(&s.on_chat_result(Ok(ChatOutcome::NoPartner))),
            "no_partner"
        );
        assert_eq!(
            error_code(&s.on_chat_result(Ok(ChatOutcome::PeerOffline))),
            "peer_offline"
        );
        assert_eq!(error_code(&s.on_chat_result(Err(()))), "unavailable");
        let long = format!(
            r#"{{"event":"chat","message":"{}"}}"#,
            "x".repeat(wire::limits::MAX_CHAT_CHARS + 1)
        );
        assert_eq!(error_code(&s.on_text(&long)), "too_long");
    }

    #[test]
    fn partner_chat_is_sent_in_the_legacy_shape() {
        let mut s = open(legacy("ann"));
        let events = sent(&s.on_chat(ChatNotice {
            to: "l:ann".into(),
            sender: "bob".into(),
            message: "yo".into(),
            sent_ms: 1_500,
        }));
        assert_eq!(events[0]["event"], "chat");
        assert_eq!(events[0]["sender"], "bob");
        assert_eq!(events[0]["timestamp"], 1.5);
    }

    #[test]
    fn ping_is_answered_and_bad_frames_are_explained_without_closing() {
        let mut s = open(native());
        assert_eq!(sent(&s.on_text(r#"{"event":"ping"}"#))[0]["event"], "pong");
        assert_eq!(error_code(&s.on_text("{oops")), "bad_json");
        assert_eq!(
            error_code(&s.on_text(r#"{"event":"dance"}"#)),
            "unknown_event"
        );
        assert_eq!(error_code(&s.on_text(r#"{"event":"chat"}"#)), "bad_message");
    }

    #[test]
    fn a_rate_limited_frame_is_refused_by_name() {
        let mut s = open(native());
        let actions = s.on_rate_limited(r#"{"event":"register"}"#);
        assert_eq!(error_code(&actions), "rate_limited");
        assert!(sent(&actions)[0]["message"]
            .as_str()
            .unwrap()
            .contains("register"));
        assert_eq!(error_code(&s.on_rate_limited("garbage")), "rate_limited");
    }

    #[test]
    fn drain_withdraws_a_waiting_user_and_asks_native_clients_to_move() {
        let mut s = open(native());
        s.on_registered(Ok((Registered::Queued, waiting("R1"))));
        let actions = s.on_drain();
        assert_eq!(actions[0], Action::Withdraw { reply: false });
        assert_eq!(sent(&actions)[0]["event"], "reconnect");
        assert_eq!(
            error_code(&s.on_text(r#"{"event":"register"}"#)),
            "draining"
        );
        assert_eq!(
            s.on_drain_deadline(),
            vec![Action::Close(CloseCode::GoingAway)]
        );
        // A native session may come back elsewhere within the grace window.
        assert_eq!(s.on_closed(), vec![Action::Park]);
    }

    #[test]
    fn drain_leaves_a_legacy_client_its_socket_until_the_deadline() {
        let mut s = open(legacy("ann"));
        assert!(
            s.on_drain().is_empty(),
            "not waiting, and legacy has no reconnect"
        );
    }

    #[test]
    fn redis_down_at_connect_keeps_the_socket_and_registers_again_once_located() {
        let mut s = native();
        s.on_open();
        assert_eq!(s.on_located(Err(()), NOW), vec![Action::LocateLater]);
        // The user registers meanwhile (Redis answered that one).
        s.on_text(r#"{"event":"register"}"#);
        s.on_registered(Ok((Registered::Queued, waiting("R1"))));
        let actions = s.on_located(Ok(Located::Here(None)), NOW);
        assert_eq!(actions, vec![Action::Requeue(s.waiting().unwrap().clone())]);
    }

    #[test]
    fn restore_relocates_then_delivers_a_pending_notice_instead_of_waiting_again() {
        let mut s = open(native());
        s.on_registered(Ok((Registered::Queued, waiting("R1"))));
        assert_eq!(s.on_restore(), vec![Action::Locate { exclusive: false }]);
        let actions = s.on_located(Ok(Located::Here(Some(notice("s:S1", "R1")))), NOW);
        assert_eq!(sent(&actions)[0]["event"], "matched");
        assert!(!actions.iter().any(|a| matches!(a, Action::Requeue(_))));
    }

    #[test]
    fn a_pushed_notice_is_delivered_once_whichever_copy_comes_first() {
        // Pushed first, then a restore finds the stored copy: one `matched`.
        let mut s = open(native());
        s.on_registered(Ok((Registered::Queued, waiting("R1"))));
        let actions = s.on_notice_pushed(notice("s:S1", "R1"), NOW);
        assert_eq!(sent(&actions)[0]["event"], "matched");
        assert_eq!(s.last_matched_reg(), Some("R1"));
        s.on_restore();
        let actions = s.on_located(Ok(Located::Here(Some(notice("s:S1", "R1")))), NOW);
        assert!(sent(&actions).is_empty(), "{actions:?}");
        assert!(s.on_notice_pushed(notice("s:S1", "R1"), NOW).is_empty());
        // Taken by a restore first, then pushed: one `matched`.
        let mut s = open(native());
        s.on_registered(Ok((Registered::Queued, waiting("R1"))));
        s.on_restore();
        let actions = s.on_located(Ok(Located::Here(Some(notice("s:S1", "R1")))), NOW);
        assert_eq!(sent(&actions)[0]["event"], "matched");
        assert!(s.on_notice_pushed(notice("s:S1", "R1"), NOW).is_empty());
        // The next registration's match is delivered.
        s.on_registered(Ok((Registered::Queued, waiting("R2"))));
        let actions = s.on_notice_pushed(notice("s:S1", "R2"), NOW);
        assert_eq!(sent(&actions)[0]["event"], "matched");
    }

    #[test]
    fn a_notice_pushed_before_the_socket_is_located_is_left_to_the_location_script() {
        let mut s = native();
        s.on_open();
        assert!(s.on_notice_pushed(notice("s:S1", "R1"), NOW).is_empty());
        s.on_closed();
        assert!(s.on_notice_pushed(notice("s:S1", "R1"), NOW).is_empty());
    }

    #[test]
    fn restore_registers_a_still_waiting_user_again() {
        let mut s = open(native());
        s.on_registered(Ok((Registered::Queued, waiting("R1"))));
        s.on_restore();
        let actions = s.on_located(Ok(Located::Here(None)), NOW);
        assert_eq!(actions, vec![Action::Requeue(s.waiting().unwrap().clone())]);
    }

    #[test]
    fn a_register_over_the_addresss_rate_is_refused_by_name() {
        let mut s = open(native());
        s.on_text(r#"{"event":"register"}"#);
        let actions = s.on_register_refused("too many registrations; retry in 2 s".into());
        assert_eq!(error_code(&actions), "rate_limited");
        assert!(s.waiting().is_none());
    }

    #[test]
    fn a_legacy_register_for_a_name_bound_elsewhere_is_refused() {
        let mut s = open(legacy("ann"));
        s.on_text(r#"{"event":"register"}"#);
        let actions = s.on_registered(Ok((Registered::BoundElsewhere, waiting("R1"))));
        assert_eq!(error_code(&actions), "name_taken");
        assert!(s.waiting().is_none());
    }

    #[test]
    fn a_requeue_of_a_registration_matched_meanwhile_takes_the_notice_instead() {
        let mut s = open(native());
        s.on_registered(Ok((Registered::Queued, waiting("R1"))));
        s.on_restore();
        let actions = s.on_located(Ok(Located::Here(None)), NOW);
        assert!(matches!(actions[0], Action::Requeue(_)));
        assert_eq!(
            s.on_requeued(Ok(Registered::AlreadyMatched)),
            vec![Action::TakeNotice]
        );
        assert!(s.waiting().is_none());
    }

    #[test]
    fn a_waiting_socket_keeps_its_registration_alive_and_an_idle_one_does_not() {
        let mut s = open(native());
        assert!(s.on_tick().is_empty());
        s.on_registered(Ok((Registered::Queued, waiting("R1"))));
        assert_eq!(s.on_tick(), vec![Action::RefreshWait { reg: "R1".into() }]);
        s.on_notice(Some(notice("s:S1", "R1")), NOW);
        assert!(s.on_tick().is_empty());
    }

    #[test]
    fn a_replaced_socket_is_closed_and_receives_nothing_more() {
        let mut s = open(legacy("ann"));
        assert_eq!(s.on_replaced(), vec![Action::Close(CloseCode::Replaced)]);
        assert!(s.on_notice(Some(notice("l:ann", "R1")), NOW).is_empty());
        assert!(s
            .on_chat(ChatNotice {
                to: "l:ann".into(),
                sender: "bob".into(),
                message: "x".into(),
                sent_ms: 1
            })
            .is_empty());
    }

    #[test]
    fn closing_releases_and_forgets_the_wait() {
        let mut s = open(legacy("ann"));
        s.on_registered(Ok((Registered::Queued, waiting("R1"))));
        assert_eq!(s.on_closed(), vec![Action::Release]);
        assert!(s.waiting().is_none());
        assert!(s.on_notice(Some(notice("l:ann", "R1")), NOW).is_empty());
    }

    #[test]
    fn a_native_socket_closing_parks_its_session_for_the_grace_window() {
        let mut s = open(native());
        s.on_registered(Ok((Registered::Queued, waiting("R1"))));
        assert_eq!(s.on_closed(), vec![Action::Park]);
        assert!(s.waiting().is_none());
    }

    fn resuming() -> Session {
        let mut s = Session::new(
            Identity::Native {
                session: "S1".into(),
                resume: true,
            },
            issuer(),
        );
        let actions = s.on_open();
        assert_eq!(sent(&actions)[0]["session"], "S1");
        assert_eq!(actions.last(), Some(&Action::Unpark));
        s
    }

    #[test]
    fn a_resumed_session_gets_its_pending_match_once_or_its_place_back() {
        let mut s = resuming();
        let out = sent(&s.on_unparked(
            Ok(Unparked::Matched(notice("s:S1", "R1"))),
            Instant::now(),
            NOW,
        ));
        assert_eq!(out[0]["event"], "matched");
        assert!(s.waiting().is_none());

        let mut s = resuming();
        let out = sent(&s.on_unparked(
            Ok(Unparked::Waiting {
                reg: "R1".into(),
                name: "ann".into(),
                prefs: None,
            }),
            Instant::now(),
            NOW,
        ));
        assert_eq!(out, vec![serde_json::json!({"event":"queued"})]);
        assert_eq!(s.waiting().map(|w| w.reg.as_str()), Some("R1"));
        // It waits as any socket does: refreshed, and parked again on close.
        assert_eq!(s.on_tick(), vec![Action::RefreshWait { reg: "R1".into() }]);
        assert_eq!(s.on_closed(), vec![Action::Park]);
    }

    #[test]
    fn a_resumed_session_that_was_not_waiting_is_told_so() {
        let mut s = resuming();
        let out = sent(&s.on_unparked(Ok(Unparked::Idle), Instant::now(), NOW));
        assert_eq!(out, vec![serde_json::json!({"event":"cancelled"})]);
    }

    #[test]
    fn a_session_back_after_its_grace_window_is_told_to_start_anew() {
        let mut s = resuming();
        let actions = s.on_unparked(Ok(Unparked::Gone), Instant::now(), NOW);
        assert_eq!(error_code(&actions), "expired_resume");
        assert_eq!(actions.last(), Some(&Action::Close(CloseCode::Policy)));
        // It held nothing: nothing to release or park.
        assert!(s.on_closed().is_empty());
    }

    #[test]
    fn preferences_are_checked_normalised_and_sent_with_the_region() {
        let mut s = open(native()).with_matchmaking(Matchmaking {
            region: "eu".into(),
            interest_wait_ms: 3000,
        });
        assert_eq!(
            s.on_text(r#"{"event":"register","interests":[" Chess ","chess"],"language":"EN"}"#),
            vec![Action::Register {
                name: DEFAULT_NAME.into(),
                prefs: Some(PoolPreferences {
                    interests: vec!["chess".into()],
                    language: Some("en".into()),
                    region: Some("eu".into()),
                    strict: false,
                }),
            }]
        );
        for (bad, field) in [
            (r#"{"event":"register","interests":[""]}"#, "interests"),
            (r#"{"event":"register","language":"english"}"#, "language"),
        ] {
            let actions = s.on_text(bad);
            assert_eq!(error_code(&actions), "bad_preferences");
            let message = sent(&actions)[0]["message"].as_str().unwrap().to_string();
            assert!(message.starts_with(field), "{message}");
        }
    }

    #[test]
    fn queued_tells_how_long_interests_are_looked_for_unless_strict() {
        let mut s = open(native());
        let with = |interests: &[&str], strict: bool| Waiting {
            prefs: Some(PoolPreferences {
                interests: interests.iter().map(|t| t.to_string()).collect(),
                strict,
                ..Default::default()
            }),
            ..waiting("R1")
        };
        let queued = |s: &mut Session, w: Waiting| {
            sent(&s.on_registered(Ok((Registered::Queued, w))))[0].clone()
        };
        assert_eq!(
            queued(&mut s, with(&["chess"], false))["interest_wait_ms"],
            5000
        );
        assert!(queued(&mut s, with(&["chess"], true))
            .get("interest_wait_ms")
            .is_none());
        assert!(queued(&mut s, waiting("R2"))
            .get("interest_wait_ms")
            .is_none());
    }

    #[test]
    fn matched_carries_the_common_interests() {
        let mut s = open(native());
        s.on_registered(Ok((Registered::Queued, waiting("R1"))));
        let mut n = notice("s:S1", "R1");
        n.common = vec!["chess".into()];
        let actions = s.on_notice(Some(n), NOW);
        assert_eq!(sent(&actions)[0]["common_interests"][0], "chess");
    }
}
