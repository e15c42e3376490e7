//! Servers: a listener, the TLS acceptor, the handshake policy (limits, Origin, accept hook),
//! and the registry of open connections that stopping drains.

pub(crate) mod handshake;
// srv-defense (issue 15 §2, §3.5)
mod admission;
mod http;
pub use http::{check_response, check_response_header, HttpHandler, HttpHandlerRef, Response};
mod ops;

use crate::connection::{run, Conn, Delivery, Event, Handler, Wire};
use crate::delivery::{in_callback, Mailbox};
use crate::error::{Error, ErrorKind, Result};
use crate::io::BoxIo;
use crate::options::ServerOptions;
use crate::protocol::{DeflateParams, Role};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};

pub use ops::{BroadcastReport, DrainReport, ServerStats};

/// An upgrade request, as the accept hook sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The HTTP method (always GET once the hook runs).
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string without '?' ("" when none).
    pub query: String,
    /// Every header in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The client's address.
    pub peer_addr: SocketAddr,
    /// The subprotocols the client offered, in its order of preference.
    pub subprotocols: Vec<String>,
    /// HTTP/1.x: the minor version (an upgrade needs 1.1).
    pub(crate) http_minor: u8,
    /// client-reach (issue 13): the subject of the client certificate the TLS layer verified
    /// ("CN=alice, O=Example"), when the client presented one.
    pub peer_cert_subject: Option<String>,
    /// What the accept hook set up for the connection (deadline, tags; `ops.rs`).
    pub(crate) setup: ops::SetupSlot,
}

impl Request {
    /// `p` when the client offered it (the subprotocol an accept decision may choose).
    pub fn offered(&self, p: Option<&str>) -> Result<Option<String>> {
        match p {
            None => Ok(None),
            Some(p) if self.subprotocols.iter().any(|o| o == p) => Ok(Some(p.to_owned())),
            Some(p) => Err(Error::invalid(format!(
                "the client did not offer subprotocol '{p}'"
            ))),
        }
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to do with an upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Accept, optionally choosing one of the offered subprotocols.
    Accept {
        /// The chosen subprotocol.
        subprotocol: Option<String>,
    },
    /// Refuse with an HTTP status (400-599) and a short text body.
    Reject {
        /// The HTTP status.
        status: u16,
        /// The response body.
        body: String,
    },
    /// Accept, then close at once with `code` (4000-4999 for applications) and `reason`:
    /// unlike an HTTP status, a browser can read these.
    Close {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
        /// The chosen subprotocol.
        subprotocol: Option<String>,
    },
}

impl Decision {
    /// Accepts, choosing `subprotocol`, which must be one the client offered.
    pub fn accept(req: &Request, subprotocol: Option<&str>) -> Result<Decision> {
        Ok(Decision::Accept {
            subprotocol: req.offered(subprotocol)?,
        })
    }

    /// Refuses with `status`, which must be an HTTP error (400-599), and a short text body.
    pub fn reject(status: u16, body: &str) -> Result<Decision> {
        let d = Decision::Reject {
            status,
            body: body.to_owned(),
        };
        d.check_shape()?;
        Ok(d)
    }

    /// Accepts and closes at once with `code` (one that may be sent; 4000-4999 for the
    /// application) and `reason` (at most 123 bytes).
    pub fn close(code: u16, reason: &str) -> Result<Decision> {
        let d = Decision::Close {
            code,
            reason: reason.to_owned(),
            subprotocol: None,
        };
        d.check_shape()?;
        Ok(d)
    }

    /// The rules every decision follows, whoever built it (the constructors above check them
    /// early; the server checks hand-built ones again before it acts).
    pub(crate) fn check(&self, req: &Request) -> Result<()> {
        self.check_shape()?;
        match self {
            Decision::Accept { subprotocol } | Decision::Close { subprotocol, .. } => {
                req.offered(subprotocol.as_deref()).map(drop)
            }
            Decision::Reject { .. } => Ok(()),
        }
    }

    fn check_shape(&self) -> Result<()> {
        match self {
            Decision::Reject { status, .. } if !(400..=599).contains(status) => {
                Err(Error::invalid(format!(
                    "HTTP status {status} is not a refusal (use 400-599)"
                )))
            }
            Decision::Close { code, reason, .. } => crate::connection::check_close(*code, reason),
            _ => Ok(()),
        }
    }
}

/// Decides on each upgrade request, on a callback thread.
pub trait AcceptHook: Send + Sync + 'static {
    /// Returns the decision for `req`.
    fn accept(&self, req: &Request) -> Decision;

    /// Returns the decision for `req`, and may add `headers` to the response it leads to (the
    /// 101, or the refusal): a `Set-Cookie`, for example. Each must pass
    /// `check_response_header`, or the request is refused with 500. By default, `accept`.
    fn accept_with_headers(&self, req: &Request, headers: &mut Vec<(String, String)>) -> Decision {
        let _ = headers;
        self.accept(req)
    }
}

struct Shared {
    opts: ServerOptions,
    /// The settings every accepted connection shares.
    conn_settings: Arc<crate::options::ConnectionSettings>,
    local_addr: SocketAddr,
    /// Where connections deliver; taken when the server is released.
    delivery: Mutex<Option<Delivery>>,
    hook: Mutex<Option<Arc<dyn AcceptHook>>>,
    hooks: Arc<HookGate>,
    /// Connections delivering to the application whose close event was not handled yet.
    undelivered: Arc<AtomicUsize>,
    /// Connections counted against `max_connections`: from the accepted request (waiting in
    /// the accept hook included) to the end of the connection.
    slots: AtomicUsize,
    tls: Option<tokio_rustls::TlsAcceptor>,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    drained: Condvar,
    /// Connections that deliver to the application; `None` once the server is released.
    attached: Mutex<Option<Vec<Weak<Conn>>>>,
    next_id: AtomicU64,
    stopping: AtomicBool,
    stop_accepting: Notify,
    // srv-defense: handshakes in progress, and a descriptor kept for when accept runs out.
    admission: Arc<admission::Admission>,
    reserve_fd: Mutex<Option<std::fs::File>>,
    /// The plain HTTP handler (taken out of the options); `None` once the server is released.
    http: Mutex<Option<HttpHandlerRef>>,
    /// Tag index and counters (`ops.rs`).
    ops: Arc<ops::ServerOps>,
}

/// Lets accept hooks run side by side on the callback threads, and keeps G7: after `release`
/// returns, none runs (called from inside a hook: none but that one).
#[derive(Default)]
struct HookGate {
    state: Mutex<(bool, Vec<std::thread::ThreadId>)>,
    idle: Condvar,
}

/// A hook running on this thread; leaving on drop (also when the hook panics).
struct HookRun<'a>(&'a HookGate);

impl HookGate {
    fn enter(&self) -> Option<HookRun<'_>> {
        let mut g = relock(&self.state);
        if g.0 {
            return None;
        }
        g.1.push(std::thread::current().id());
        Some(HookRun(self))
    }

    /// No hook starts after this; from a thread that is not running a callback, waits for
    /// the running ones (a callback thread never waits, see `delivery`).
    fn release(&self) {
        let me = std::thread::current().id();
        let mut g = relock(&self.state);
        g.0 = true;
        while !in_callback() && g.1.iter().any(|t| *t != me) {
            g = self.idle.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for HookRun<'_> {
    fn drop(&mut self) {
        let me = std::thread::current().id();
        let mut g = relock(&self.0.state);
        if let Some(i) = g.1.iter().position(|t| *t == me) {
            g.1.swap_remove(i);
        }
        self.0.idle.notify_all();
    }
}

/// A listening WebSocket server.
pub struct Server {
    shared: Arc<Shared>,
}

static SERVERS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Server {
    /// Listens on `host:port` (port 0 picks a free one). `handler` gets every accepted
    /// connection's events, starting with `Open`; `hook`, when given, decides on each request.
    pub fn listen(
        host: &str,
        port: u16,
        opts: &ServerOptions,
        hook: Option<Arc<dyn AcceptHook>>,
        delivery: Option<Delivery>,
    ) -> Result<Server> {
        opts.validate()?;
        let tls = match &opts.tls {
            Some((cert, key)) => Some(crate::tls::server_acceptor(cert, key, opts)?),
            None => None,
        };
        let rt = crate::runtime::handle()?;
        let std_listener = std::net::TcpListener::bind((host, port)).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::AddrInUse => "address already in use".to_owned(),
                std::io::ErrorKind::PermissionDenied => {
                    "permission denied (ports below 1024 need privileges)".to_owned()
                }
                _ => e.to_string(),
            };
            Error::new(
                ErrorKind::Io,
                format!("cannot listen on {host}:{port}: {why}"),
            )
        })?;
        std_listener.set_nonblocking(true)?;
        let local_addr = std_listener.local_addr()?;
        let listener = {
            let _enter = rt.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let shared = Arc::new(Shared {
            // The HTTP handler lives in `http` only, so that releasing the server lets go of it.
            opts: ServerOptions {
                http_handler: None,
                ..opts.clone()
            },
            conn_settings: Arc::new(opts.conn.clone()),
            local_addr,
            delivery: Mutex::new(delivery),
            hook: Mutex::new(hook),
            hooks: Arc::new(HookGate::default()),
            undelivered: Arc::new(AtomicUsize::new(0)),
            slots: AtomicUsize::new(0),
            tls,
            conns: Mutex::new(HashMap::new()),
            drained: Condvar::new(),
            attached: Mutex::new(Some(Vec::new())),
            next_id: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            stop_accepting: Notify::new(),
            admission: Arc::new(admission::Admission::new(
                opts.max_pending_handshakes,
                opts.max_pending_handshakes_per_ip,
                opts.pending_handshake_policy,
            )),
            reserve_fd: Mutex::new(admission::reserve_fd()),
            http: Mutex::new(opts.http_handler.clone()),
            ops: Default::default(),
        });
        {
            let mut all = relock(&SERVERS);
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&shared));
        }
        rt.spawn(accept_loop(shared.clone(), listener));
        Ok(Server { shared })
    }

    /// The bound address (its port is the real one when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Connections open now.
    pub fn connection_count(&self) -> usize {
        relock(&self.shared.conns).len()
    }

    /// Handshakes in progress now (accepted, upgrade not answered yet).
    pub fn pending_handshakes(&self) -> usize {
        self.shared.admission.pending()
    }

    /// Handshakes dropped to make room for newer ones, and connections refused at a cap on
    /// handshakes in progress (or at the descriptor limit), since the server started.
    pub fn admission_counts(&self) -> (u64, u64) {
        self.shared.admission.counts()
    }

    /// Stops accepting and closes every connection with 1001. From a thread that is not
    /// running a callback, waits until every connection has ended and its close event was
    /// handled (the callback returned, or the event was queued), at most `drain`; then aborts
    /// the rest and waits for their close events too (at most `drain` again, at least 1 s).
    /// From inside a callback it never waits: the rest happens in the background, and the
    /// close events follow. Safe to call twice.
    pub fn stop(&self, drain: Duration) {
        self.shared.stop(drain)
    }

    /// Stops (with the configured drain timeout) and ends the server's callbacks: no accept
    /// hook starts after this returns, and, from a thread that is not running a callback, none
    /// runs and every connection's close event was handled. From inside a callback it does not
    /// wait (see `stop`); the connections' remaining events are still delivered.
    pub fn release(&self) {
        let sh = &self.shared;
        let drain = sh.opts.drain_timeout;
        sh.stop(drain);
        // From now on a connection that completes its handshake delivers nothing; one that
        // completed it before this has its close event waited for below.
        drop(relock(&sh.attached).take());
        drop(relock(&sh.delivery).take());
        if !in_callback() {
            sh.wait_or_abort(drain);
        }
        sh.hooks.release();
        drop(relock(&sh.hook).take());
        drop(relock(&sh.http).take());
    }
}

impl Shared {
    fn stop(self: &Arc<Self>, drain: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop_accepting.notify_one();
        let open: Vec<Arc<Conn>> = relock(&self.conns).values().cloned().collect();
        for c in &open {
            let _ = c.close(1001, "server shutting down");
        }
        if in_callback() {
            // Waiting here could wait for this very thread: abort the stragglers later.
            let me = self.clone();
            if let Ok(rt) = crate::runtime::handle() {
                rt.spawn(async move {
                    tokio::time::sleep(drain).await;
                    me.abort_open();
                });
            }
            return;
        }
        self.wait_or_abort(drain);
    }

    /// Waits up to `drain` for every connection to end with its close event handled; then
    /// aborts the rest and waits for theirs (at most `drain` again, at least 1 s).
    fn wait_or_abort(&self, drain: Duration) {
        if !self.wait_ended(Instant::now() + drain) {
            self.abort_open();
            self.wait_ended(Instant::now() + drain.max(Duration::from_secs(1)));
        }
    }

    /// Waits until every connection ended and its close event was handled; false at `until`.
    fn wait_ended(&self, until: Instant) -> bool {
        loop {
            if relock(&self.conns).is_empty() && self.undelivered.load(Ordering::Acquire) == 0 {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn abort_open(&self) {
        let rest: Vec<Arc<Conn>> = relock(&self.conns).values().cloned().collect();
        for c in rest {
            c.abort();
        }
    }

    /// The delivery of one new connection: the server's, counted in `undelivered` until the
    /// connection's close event was handled (or the connection released).
    fn delivery_for_conn(&self) -> Option<Delivery> {
        let base = relock(&self.delivery).clone()?;
        let pending = PendingClose::new(self.undelivered.clone());
        Some(match base {
            Delivery::Callback(handler) => Delivery::Callback(Arc::new(Tracked {
                handler,
                _pending: pending,
            })),
            Delivery::Queue(mut target) => {
                target.keep = Some(Arc::new(pending));
                Delivery::Queue(target)
            }
        })
    }
}

/// Counts one connection whose close event was not handled yet; dropped once it was.
struct PendingClose(Arc<AtomicUsize>);

impl PendingClose {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        PendingClose(count)
    }
}

impl Drop for PendingClose {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The server's handler, for one connection, with its pending close.
struct Tracked {
    handler: Arc<dyn Handler>,
    _pending: PendingClose,
}

impl Handler for Tracked {
    fn on_event(&self, conn: &Arc<Conn>, event: &Event) {
        self.handler.on_event(conn, event)
    }
}

/// A connection's place under `max_connections`, given back when dropped.
struct Slot(Arc<Shared>);

impl Slot {
    fn take(shared: &Arc<Shared>) -> Option<Slot> {
        let max = shared.opts.max_connections;
        shared
            .slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(shared.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.slots.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Stops every server (used by the runtime's shutdown).
pub(crate) fn stop_all(drain: Duration) {
    let all: Vec<Arc<Shared>> = relock(&SERVERS)
        .drain(..)
        .filter_map(|w| w.upgrade())
        .collect();
    for s in all {
        s.stop(drain);
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let accepted = tokio::select! {
            _ = shared.stop_accepting.notified() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                // srv-defense: counted among the handshakes in progress, or refused.
                let Some(ticket) = shared.admission.admit(peer.ip()) else {
                    admission::refuse_at_cap(tcp, shared.tls.is_some(), true);
                    shared.ops.refused(503); // srv-ops: the server's counters
                    continue;
                };
                tokio::spawn(serve_one(shared.clone(), tcp, peer, ticket));
            }
            // Out of file descriptors and the like: make room without spinning or stalling.
            Err(e) => {
                let tls = shared.tls.is_some();
                admission::on_accept_error(&shared.admission, &shared.reserve_fd, &listener, tls, e)
                    .await
            }
        }
    }
}

/// The accepted connection after the handshake, or `None` when it was refused.
struct Upgraded {
    io: BoxIo,
    /// Bytes the client sent right after its request (frames already).
    leftover: Vec<u8>,
    subprotocol: Option<String>,
    /// permessage-deflate as agreed, and the response header value that said so.
    deflate: Option<(DeflateParams, String)>,
    close_now: Option<(u16, String)>,
    /// Held until the connection ends.
    slot: Slot,
    /// What the accept hook set up (deadline, tags).
    setup: ops::SessionSetup,
}

async fn serve_one(
    shared: Arc<Shared>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    ticket: admission::Ticket,
) {
    let limit = shared.opts.handshake_timeout;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
    let handshaking = ops::Handshaking::start(&shared);
    // Refusals are counted by the server's counters (ops.rs) through a task-local.
    let counted = ops::COUNTERS.scope(shared.ops.clone(), handshake(&shared, tcp, peer));
    // Boxed: the handshake's buffers are not part of the connection's task once it is over.
    let shaking = tokio::time::timeout(limit, Box::pin(counted));
    let done = tokio::select! {
        r = shaking => r,
        // Dropped to make room for a newer handshake (srv-defense): the socket closes here.
        _ = ticket.cancelled() => return,
    };
    drop(ticket);
    drop(handshaking);
    let Upgraded {
        io,
        leftover,
        subprotocol,
        deflate,
        close_now,
        slot,
        setup,
    } = match done {
        Ok(Ok(Some(u))) => u,
        Ok(Err(e)) => {
            log::info!(target: "wsnative::server", "handshake with {peer} failed: {e}");
            return;
        }
        Err(_) => {
            log::info!(target: "wsnative::server", "handshake with {peer} timed out after {} ms", limit.as_millis());
            return;
        }
        Ok(Ok(None)) => return, // refused (logged by handshake::refuse_with) or no request
    };
    // Made under the lock that `release` takes: a connection either is in the list it
    // releases, or never delivers anything (the server is gone).
    let conn = {
        let mut attached = relock(&shared.attached);
        match attached.as_mut().filter(|_| close_now.is_none()) {
            Some(list) => {
                if list.len() >= 64 && list.len().is_power_of_two() {
                    list.retain(|w| w.strong_count() > 0);
                }
                let made = Conn::new(shared.conn_settings.clone(), shared.delivery_for_conn());
                list.push(Arc::downgrade(&made));
                made
            }
            None => Conn::new(shared.conn_settings.clone(), None),
        }
    };
    conn.set_peer_addr(peer);
    conn.set_socket_fd(fd);
    conn.set_subprotocol(subprotocol);
    if let Some((code, reason)) = &close_now {
        let _ = conn.close(*code, reason);
    }
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    {
        let mut conns = relock(&shared.conns);
        if shared.stopping.load(Ordering::SeqCst) {
            let _ = conn.close(1001, "server shutting down");
        }
        conns.insert(id, conn.clone());
    }
    ops::apply_setup(&conn, id, &shared, setup);
    shared.ops.opened();
    if let Some((_, header)) = &deflate {
        conn.set_extensions(header.clone());
    }
    let wire = Wire {
        io,
        leftover,
        role: Role::Server,
        deflate: deflate.map(|d| d.0),
    };
    // The connection's own task from here on: this one, with room for the handshake, ends.
    drop(shared); // the slot holds the server
    tokio::spawn(run(conn, wire, move |conn| {
        let shared = slot.0.clone();
        shared.ops.ended(id, conn);
        drop(slot);
        let mut conns = relock(&shared.conns);
        conns.remove(&id);
        if conns.is_empty() {
            shared.drained.notify_all();
        }
    }));
}

async fn handshake(
    shared: &Arc<Shared>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
) -> Result<Option<Upgraded>> {
    let mut peer_cert_subject = None;
    let mut io: BoxIo = match &shared.tls {
        Some(acceptor) => {
            let s = acceptor.accept(tcp).await?;
            peer_cert_subject = s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| crate::tls::subject(c));
            Box::new(s)
        }
        None => Box::new(tcp),
    };
    let Some((mut req, leftover)) =
        handshake::read_request(&mut io, shared.opts.max_header_size, peer).await?
    else {
        return Ok(None);
    };
    req.peer_cert_subject = peer_cert_subject;
    // srv-defense: a request that is not an upgrade goes to the HTTP handler, when there is one.
    let http_handler = relock(&shared.http).clone();
    if let Some(h) = http_handler {
        if !http::is_upgrade(&req) {
            http::serve_plain(shared, &mut io, &req, h).await;
            return Ok(None);
        }
    }
    let key = match handshake::check(&req) {
        Ok(k) => k,
        Err((status, why)) => {
            handshake::refuse(&mut io, status, why).await;
            return Ok(None);
        }
    };
    let o = &shared.opts;
    if !o.allowed_origins.is_empty() {
        if let Some(origin) = req.header("origin") {
            if !o
                .allowed_origins
                .iter()
                .any(|a| a.eq_ignore_ascii_case(origin.trim()))
            {
                handshake::refuse(&mut io, 403, "origin not allowed").await;
                return Ok(None);
            }
        }
    }
    if shared.stopping.load(Ordering::SeqCst) {
        handshake::refuse(&mut io, 503, "server shutting down").await;
        return Ok(None);
    }
    let Some(slot) = Slot::take(shared) else {
        handshake::refuse(&mut io, 503, "too many connections").await;
        return Ok(None);
    };
    let default_proto = req
        .subprotocols
        .iter()
        .find(|p| o.subprotocols.contains(p))
        .cloned();
    let hook = relock(&shared.hook).clone();
    // Headers the accept hook adds to its response (srv-defense, issue 15 §3.5).
    let mut extra: Vec<(String, String)> = Vec::new();
    let decision = match &hook {
        None => Decision::Accept {
            subprotocol: default_proto,
        },
        Some(hook) => {
            let (tx, rx) = oneshot::channel();
            let hook = hook.clone();
            let req2 = req.clone();
            let gate = shared.hooks.clone();
            // A mailbox of its own: hooks of different requests run side by side.
            Arc::new(Mailbox::default()).post(Box::new(move || {
                if let Some(_running) = gate.enter() {
                    let mut headers = Vec::new();
                    let d = hook.accept_with_headers(&req2, &mut headers);
                    let _ = tx.send((d, headers));
                }
            }));
            match rx.await {
                Ok((d, headers)) => match http::check_hook_headers(&headers) {
                    Ok(()) => {
                        extra = headers;
                        handshake::validate(d, &req)
                    }
                    Err(e) => Decision::Reject {
                        status: 500,
                        body: e.to_string(),
                    },
                },
                Err(_) => Decision::Reject {
                    status: 503,
                    body: "server shutting down".into(),
                },
            }
        }
    };
    let (subprotocol, close_now) = match decision {
        Decision::Accept { subprotocol } => (subprotocol, None),
        Decision::Close {
            code,
            reason,
            subprotocol,
        } => (subprotocol, Some((code, reason))),
        Decision::Reject { status, body } => {
            handshake::refuse_with(&mut io, status, &body, &extra).await;
            return Ok(None);
        }
    };
    let offers: Vec<&str> = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, v)| v.as_str())
        .collect();
    let deflate = crate::protocol::deflate::negotiate(&o.conn.compression, &offers);
    handshake::switch(
        &mut io,
        &key,
        subprotocol.as_deref(),
        deflate.as_ref().map(|d| d.1.as_str()),
        &extra,
    )
    .await?;
    let setup = std::mem::take(&mut *relock(&req.setup));
    Ok(Some(Upgraded {
        io,
        leftover,
        subprotocol,
        deflate,
        close_now,
        slot,
        setup,
    }))
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.shared.local_addr)
            .finish()
    }
}
