//! Admission of handshakes (issue 15 §2): how many may be in progress at once, in all and per
//! client address, and what happens to a new one when a cap is reached. A handshake is in
//! progress from the accepted TCP connection until its upgrade (or its refusal, or its plain
//! HTTP answer) was written; each holds a `Ticket` until then.
//!
//! Dropping the oldest (the default policy) is what keeps a server usable while slow clients
//! hold sockets: a legitimate client finishes its handshake in a round trip, so it is never the
//! oldest for long, while a client that sends one byte and stops soon is. Refusing new ones
//! instead would let a few hundred such sockets lock everyone out until their handshake
//! timeouts expire.

use crate::options::PendingHandshakePolicy;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// The address a per-address cap counts by: an IPv4 address, or an IPv6 /64 (one subscriber's
/// usual allocation: counting single IPv6 addresses would cap nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IpKey {
    V4(u32),
    V6(u64),
}

impl IpKey {
    pub(crate) fn of(ip: IpAddr) -> IpKey {
        match ip {
            IpAddr::V4(a) => IpKey::V4(u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => IpKey::V4(u32::from(v4)),
                None => IpKey::V6((u128::from(a) >> 64) as u64),
            },
        }
    }
}

struct Entry {
    ip: IpKey,
    cancel: Arc<Notify>,
}

#[derive(Default)]
struct State {
    next: u64,
    /// Every handshake in progress, oldest first.
    order: BTreeMap<u64, Entry>,
    /// Per address: its handshakes in progress, oldest first.
    per_ip: HashMap<IpKey, BTreeSet<u64>>,
    /// Handshakes dropped to make room, and new connections refused (for stats and tests).
    dropped: u64,
    refused: u64,
}

impl State {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.order.remove(&id)?;
        if let Some(set) = self.per_ip.get_mut(&e.ip) {
            set.remove(&id);
            if set.is_empty() {
                self.per_ip.remove(&e.ip);
            }
        }
        Some(e)
    }

    /// Drops handshake `id`: its task is told to close its socket.
    fn drop_one(&mut self, id: u64) {
        if let Some(e) = self.remove(id) {
            e.cancel.notify_one();
            self.dropped += 1;
        }
    }
}

/// The caps and the handshakes in progress of one server.
pub(crate) struct Admission {
    max_total: usize,
    max_per_ip: usize,
    policy: PendingHandshakePolicy,
    state: Mutex<State>,
}

/// One handshake in progress; leaves the count when dropped. `cancelled` completes when the
/// handshake was dropped to make room for a newer one.
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    cancel: Arc<Notify>,
}

impl Ticket {
    /// Completes when this handshake was dropped to make room.
    pub(crate) async fn cancelled(&self) {
        self.cancel.notified().await
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut st = self.admission.lock();
        st.remove(self.id);
    }
}

impl Admission {
    pub(crate) fn new(max_total: usize, max_per_ip: usize, policy: PendingHandshakePolicy) -> Self {
        Admission {
            max_total,
            max_per_ip,
            policy,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a new handshake from `ip`, dropping older ones when the policy says so; `None`
    /// when the policy refuses it.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        let key = IpKey::of(ip);
        let mut st = self.lock();
        let drop_oldest = self.policy == PendingHandshakePolicy::DropOldest;
        if self.max_per_ip > 0 {
            let here = st.per_ip.get(&key).map_or(0, |s| s.len());
            if here >= self.max_per_ip {
                if !drop_oldest {
                    st.refused += 1;
                    return None;
                }
                let excess = here + 1 - self.max_per_ip;
                let oldest: Vec<u64> = st.per_ip[&key].iter().take(excess).copied().collect();
                for id in oldest {
                    st.drop_one(id);
                }
            }
        }
        if self.max_total > 0 && st.order.len() >= self.max_total {
            if !drop_oldest {
                st.refused += 1;
                return None;
            }
            while st.order.len() >= self.max_total {
                let Some(id) = st.order.keys().next().copied() else {
                    break;
                };
                st.drop_one(id);
            }
        }
        let id = st.next;
        st.next += 1;
        let cancel = Arc::new(Notify::new());
        st.order.insert(
            id,
            Entry {
                ip: key,
                cancel: cancel.clone(),
            },
        );
        st.per_ip.entry(key).or_default().insert(id);
        Some(Ticket {
            admission: self.clone(),
            id,
            cancel,
        })
    }

    /// Drops the oldest handshake in progress (used when accept runs out of descriptors);
    /// false when there is none.
    pub(crate) fn drop_oldest(&self) -> bool {
        let mut st = self.lock();
        match st.order.keys().next().copied() {
            Some(id) => {
                st.drop_one(id);
                true
            }
            None => false,
        }
    }

    /// Handshakes in progress now.
    pub(crate) fn pending(&self) -> usize {
        self.lock().order.len()
    }

    /// Handshakes dropped to make room, and connections refused at a cap, so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let st = self.lock();
        (st.dropped, st.refused)
    }
}

impl Admission {
    fn note_refused(&self) {
        self.lock().refused += 1;
    }
}

/// A descriptor kept in reserve (on /dev/null): when accept fails for lack of descriptors and
/// there is no handshake to drop, it is closed to accept one connection, answer it and close
/// it, then reopened. `None` when /dev/null cannot be opened (the server then only backs off).
pub(crate) fn reserve_fd() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Connections being turned away that are still open (see `refuse_at_cap`).
static LINGERING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// At most this many turned-away connections linger at once; beyond, they are closed at once.
const MAX_LINGERING: usize = 64;

/// Turns away a new connection at a cap: a 503 when the stream is plain TCP (written only if
/// the socket takes it at once), then close. A TLS client just sees the connection close.
/// With `linger` (not at the descriptor limit) and fewer than 64 already lingering, the
/// connection is half-closed and what the client sends is read and discarded for up to 500 ms
/// first: closing a socket with unread bytes (the client's request, arriving just after the
/// accept) sends a reset, which can destroy the 503 before the client reads it.
pub(crate) fn refuse_at_cap(tcp: tokio::net::TcpStream, tls: bool, linger: bool) {
    use std::sync::atomic::Ordering;
    if tls {
        return;
    }
    let _ = tcp.try_write(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
          Content-Length: 31\r\nConnection: close\r\n\r\ntoo many handshakes in progress",
    );
    if !linger || LINGERING.fetch_add(1, Ordering::AcqRel) >= MAX_LINGERING {
        if linger {
            LINGERING.fetch_sub(1, Ordering::AcqRel);
        }
        return;
    }
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tcp;
        let _ = tcp.shutdown().await;
        let drain = async {
            let mut buf = [0u8; 4096];
            let mut total = 0usize;
            while total < 64 << 10 {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), drain).await;
        LINGERING.fetch_sub(1, Ordering::AcqRel);
    });
}

/// What the accept loop does when accept fails. Out of descriptors (EMFILE, ENFILE, and the
/// kernel's ENOBUFS/ENOMEM): under the drop-oldest policy the oldest unfinished handshake is
/// dropped, which frees a descriptor within a moment; otherwise (or when there is none) the
/// reserve descriptor is spent to accept one waiting connection and turn it away, so that
/// clients in the backlog get an answer instead of waiting there. Then a short pause: the loop
/// neither spins on the error nor stalls for long. Other errors (a connection reset before it
/// was accepted): a 1 ms pause.
pub(crate) async fn on_accept_error(
    adm: &Admission,
    reserve: &Mutex<Option<std::fs::File>>,
    listener: &tokio::net::TcpListener,
    tls: bool,
    e: std::io::Error,
) {
    use futures_util::FutureExt;
    use std::time::Duration;
    let out_of_fds = matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    );
    if !out_of_fds {
        tokio::time::sleep(Duration::from_millis(1)).await;
        return;
    }
    if adm.policy == PendingHandshakePolicy::DropOldest && adm.drop_oldest() {
        // Its task closes the socket as soon as it runs: give it that moment.
        tokio::time::sleep(Duration::from_millis(1)).await;
        return;
    }
    let spare = reserve.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(spare) = spare {
        drop(spare);
        if let Some(Ok((tcp, _))) = listener.accept().now_or_never() {
            adm.note_refused();
            refuse_at_cap(tcp, tls, false);
        }
        *reserve.lock().unwrap_or_else(|p| p.into_inner()) = reserve_fd();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_address_cap_drops_that_address_oldest_only() {
        let a = Arc::new(Admission::new(0, 2, PendingHandshakePolicy::DropOldest));
        let t1 = a.admit(ip("10.0.0.1")).unwrap();
        let _other = a.admit(ip("10.0.0.2")).unwrap();
        let _t2 = a.admit(ip("10.0.0.1")).unwrap();
        let _t3 = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(a.pending(), 3);
        assert_eq!(a.counts(), (1, 0));
        // t1 was told to go.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), t1.cancelled())
                .await
                .unwrap()
        });
    }

    #[test]
    fn total_cap_refuses_under_the_refuse_policy_and_ipv6_counts_by_64() {
        let a = Arc::new(Admission::new(3, 2, PendingHandshakePolicy::Refuse));
        let _x = a.admit(ip("2001:db8::1")).unwrap();
        let _y = a.admit(ip("2001:db8::2")).unwrap();
        assert!(a.admit(ip("2001:db8::3")).is_none(), "same /64");
        let _z = a.admit(ip("2001:db9::1")).unwrap();
        assert!(a.admit(ip("10.0.0.1")).is_none(), "total cap");
        assert_eq!(a.counts(), (0, 2));
        drop(_z);
        assert!(a.admit(ip("::ffff:10.0.0.1")).is_some());
    }
}
