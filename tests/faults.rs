//! Fault injection: a TCP relay between a wsnative client and a wsnative server (both through
//! the C ABI) that, on command, drops one side's bytes silently (a black hole), delays them,
//! splits them into 1-byte writes, resets that side's connection (the other leg then stays
//! open and silent), half-closes the direction towards that side, or stops reading from it.
//! For every fault x side (client, server) x moment (during the handshake, in the middle of a
//! message, during the close) it checks that each end that opened gets exactly one CLOSE event
//! with the expected code and cause within its bound (short handshake, heartbeat and close
//! timeouts make every case end in seconds), that nothing hangs, and that no message arrives
//! twice or out of order (every message carries its sequence number). The matrix is printed.
mod common;

use common::*;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use wsnative::ffi::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    BlackHole,
    Delay,
    Split,
    Reset,
    HalfClose,
    StopReading,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Moment {
    Handshake,
    MidMessage,
    Close,
}

const FAULTS: [Fault; 6] = [
    Fault::BlackHole,
    Fault::Delay,
    Fault::Split,
    Fault::Reset,
    Fault::HalfClose,
    Fault::StopReading,
];

impl Fault {
    /// Delays and 1-byte segments slow a connection down but lose nothing.
    fn benign(self) -> bool {
        matches!(self, Fault::Delay | Fault::Split)
    }
}

/// The relay's shared control: the fault, once active, and the one waiting for its byte.
struct Ctl {
    active: watch::Sender<Option<(Fault, Side)>>,
    /// (fault, side, bytes from that side still to pass before it starts)
    armed: Mutex<Option<(Fault, Side, u64)>>,
    relayed: [AtomicU64; 2],
}

struct Relay {
    rt: tokio::runtime::Runtime,
    port: u16,
    ctl: Arc<Ctl>,
}

impl Relay {
    fn start(server_port: u16) -> Relay {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (tx, _) = watch::channel(None);
        let ctl = Arc::new(Ctl {
            active: tx,
            armed: Mutex::new(None),
            relayed: [AtomicU64::new(0), AtomicU64::new(0)],
        });
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let c = ctl.clone();
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(Side::Client, cr, sw, c.clone()));
                tokio::spawn(pump(Side::Server, sr, cw, c.clone()));
            }
        });
        Relay { rt, port, ctl }
    }

    /// The fault starts once `after` more bytes came from `side` (0: now).
    fn arm(&self, fault: Fault, side: Side, after: u64) {
        if after == 0 {
            self.ctl.active.send_replace(Some((fault, side)));
        } else {
            *self.ctl.armed.lock().unwrap() = Some((fault, side, after));
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Ends every pump (and closes the sockets they hold).
        let rt = std::mem::replace(
            &mut self.rt,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        );
        rt.shutdown_background();
    }
}

async fn park() {
    std::future::pending::<()>().await
}

/// Reads and forgets everything (a peer that is there but says nothing).
async fn discard(mut rd: OwnedReadHalf) {
    let mut buf = vec![0u8; 65536];
    while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
    park().await
}

/// Carries the bytes that come from `from` (read from `rd`) to the other side (`wr`).
async fn pump(from: Side, mut rd: OwnedReadHalf, mut wr: OwnedWriteHalf, ctl: Arc<Ctl>) {
    let mut active = ctl.active.subscribe();
    let mut buf = vec![0u8; 65536];
    let idx = from as usize;
    loop {
        let now = *active.borrow_and_update();
        match now {
            Some((Fault::Reset, s)) if s == from => {
                // RST to `from`: its socket closes with linger 0 once both halves are gone
                // (the other pump drops the write half); the other leg stays open, silent.
                #[allow(deprecated)]
                let _ = rd.as_ref().set_linger(Some(Duration::ZERO));
                drop(rd);
                let _keep = wr;
                return park().await;
            }
            Some((Fault::Reset, _)) => {
                // No FIN first: the socket closes (with the RST) when the other pump drops
                // its read half.
                #[allow(deprecated)]
                let _ = wr.as_ref().set_linger(Some(Duration::ZERO));
                wr.forget();
                return discard(rd).await;
            }
            Some((Fault::HalfClose, s)) if s != from => {
                // The direction towards `s` ends (it reads EOF); what `s` sends still passes.
                let _ = wr.shutdown().await;
                return discard(rd).await;
            }
            Some((Fault::StopReading, s)) if s == from => {
                let _keep = (rd, wr);
                return park().await;
            }
            _ => {}
        }
        let n = tokio::select! {
            biased;
            _ = active.changed() => continue,
            r = rd.read(&mut buf) => r.unwrap_or(0),
        };
        // A fault armed while this read was pending applies to what it read.
        let later = *active.borrow();
        let stops_here = match later {
            Some((Fault::Reset, _)) => true,
            Some((Fault::HalfClose, s)) => s != from,
            Some((Fault::StopReading, s)) => s == from,
            _ => false,
        };
        if later != now && stops_here {
            continue;
        }
        if n == 0 {
            let now = *active.borrow();
            if matches!(now, Some((Fault::BlackHole, s)) if s == from) {
                return park().await; // even the FIN is swallowed
            }
            let _ = wr.shutdown().await;
            return park().await;
        }
        ctl.relayed[idx].fetch_add(n as u64, SeqCst);
        let mut chunk = &buf[..n];
        // An armed fault starts at its byte: the bytes before it pass as usual.
        let trigger = {
            let mut a = ctl.armed.lock().unwrap();
            match *a {
                Some((f, s, left)) if s == from => {
                    if (n as u64) < left {
                        *a = Some((f, s, left - n as u64));
                        None
                    } else {
                        *a = None;
                        Some((f, left as usize))
                    }
                }
                _ => None,
            }
        };
        if let Some((f, at)) = trigger {
            if wr.write_all(&chunk[..at]).await.is_err() {
                return park().await;
            }
            chunk = &chunk[at..];
            ctl.active.send_replace(Some((f, from)));
            active.borrow_and_update();
            if !matches!(f, Fault::BlackHole | Fault::Delay | Fault::Split) {
                continue; // the rest of this read is lost with the connection
            }
        }
        let now = *active.borrow();
        let ok = match now {
            Some((Fault::BlackHole, s)) if s == from => true,
            Some((Fault::Delay, s)) if s == from => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                wr.write_all(chunk).await.is_ok()
            }
            Some((Fault::Split, s)) if s == from => {
                let mut ok = true;
                for b in chunk {
                    if wr.write_all(std::slice::from_ref(b)).await.is_err() {
                        ok = false;
                        break;
                    }
                }
                ok
            }
            _ => wr.write_all(chunk).await.is_ok(),
        };
        if !ok {
            return park().await;
        }
    }
}

/// How one end's connection ended.
#[derive(Debug, Clone, PartialEq)]
struct End {
    code: u16,
    clean: bool,
    status: wsn_status,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = match self.status {
            wsn_status::WSN_OK => "",
            wsn_status::WSN_ERR_TIMEOUT => " timeout",
            wsn_status::WSN_ERR_IO => " io",
            wsn_status::WSN_ERR_HANDSHAKE => " handshake",
            wsn_status::WSN_ERR_CONNECT => " connect",
            wsn_status::WSN_ERR_PROTOCOL => " protocol",
            s => return write!(f, "{} {:?}", self.code, s),
        };
        write!(
            f,
            "{}{}{st}",
            self.code,
            if self.clean { " clean" } else { "" }
        )
    }
}

#[derive(Debug)]
struct Outcome {
    client: Option<End>,
    /// None: the server never opened the connection (no event at all, as it must be).
    server: Option<End>,
    took: Duration,
    problems: Vec<String>,
}

const TIMEOUT_MS: u32 = 600;
/// Every case's connections must have ended this long after the fault (or the close).
const BOUND: Duration = Duration::from_secs(6);
const BIG: usize = 200_000;
const SEQ: usize = 10;

fn server_options() -> *mut wsn_server_options {
    unsafe {
        let o = wsn_server_options_new();
        wsn_server_options_set_handshake_timeout_ms(o, 1000);
        wsn_server_options_set_close_timeout_ms(o, TIMEOUT_MS);
        wsn_server_options_set_close_max_ms(o, 2000);
        wsn_server_options_set_ping_interval_ms(o, 300);
        wsn_server_options_set_pong_timeout_ms(o, TIMEOUT_MS);
        wsn_server_options_set_drain_timeout_ms(o, 500);
        o
    }
}

fn client_options() -> *mut wsn_client_options {
    unsafe {
        let o = wsn_client_options_new();
        wsn_client_options_set_connect_timeout_ms(o, 1000);
        wsn_client_options_set_handshake_timeout_ms(o, 1000);
        wsn_client_options_set_close_timeout_ms(o, TIMEOUT_MS);
        wsn_client_options_set_close_max_ms(o, 2000);
        wsn_client_options_set_ping_interval_ms(o, 300);
        wsn_client_options_set_pong_timeout_ms(o, TIMEOUT_MS);
        o
    }
}

fn ends(evs: &[Ev]) -> Vec<End> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Close {
                code,
                clean,
                status,
                ..
            } => Some(End {
                code: *code,
                clean: *clean,
                status: *status,
            }),
            _ => None,
        })
        .collect()
}

/// The messages one end got must be the sender's sequence, in order, each once: a prefix of
/// p1, p2, ... (and the big one in its place, when it came).
fn check_sequence(who: &str, evs: &[Ev], prefix: char, problems: &mut Vec<String>) {
    let mut next = 1usize;
    for e in evs {
        if let Ev::Msg { data, text, .. } = e {
            if !*text {
                if data.len() != BIG || next != SEQ + 1 {
                    problems.push(format!(
                        "{who}: the big message out of place (before {next})"
                    ));
                }
                continue;
            }
            let s = String::from_utf8_lossy(data);
            let want = format!("{prefix}{next}");
            if s != want {
                problems.push(format!("{who}: got {s} where {want} was due"));
                return;
            }
            next += 1;
        }
    }
}

fn send_seq(conn: *mut wsn_conn, prefix: char, range: std::ops::RangeInclusive<usize>) {
    for i in range {
        let m = format!("{prefix}{i}");
        unsafe { wsn_conn_send_text(conn, m.as_ptr() as *const _, m.len()) };
    }
}

fn wait_until(bound: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + bound;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

fn run_case(fault: Fault, side: Side, moment: Moment) -> Outcome {
    // The server's connection handle is freed at the end of the case, not in its CLOSE
    // callback: the case sends on it from this thread while the fault may be closing it (a
    // handle freed in between made the send a use after free: CI saw tokio's task count go
    // below zero when that send dropped the last reference).
    let srec = Recorder::new();
    let sopts = server_options();
    let server = TestServer::start(srec.clone(), sopts, None);
    unsafe { wsn_server_options_free(sopts) };
    let relay = Relay::start(server.port);
    let mut problems = Vec::new();
    let t0 = Instant::now();
    if moment == Moment::Handshake {
        relay.arm(fault, side, 0);
    }
    let copts = client_options();
    let client = TestClient::connect(&relay.url(), copts);
    unsafe { wsn_client_options_free(copts) };
    let crec = client.rec.clone();
    let opened = |r: &Recorder| {
        r.events
            .lock()
            .unwrap()
            .iter()
            .find_map(|e| if let Ev::Open(c) = e { Some(*c) } else { None })
    };
    let closed = |r: &Recorder| !ends(&r.events.lock().unwrap()).is_empty();
    let both_open = wait_until(Duration::from_secs(3), || {
        (opened(&crec).is_some() && opened(&srec).is_some()) || closed(&crec)
    }) && opened(&crec).is_some();
    let mut t_fault = t0;
    if both_open && (moment != Moment::Handshake || fault.benign()) {
        let sconn = opened(&srec).unwrap() as *mut wsn_conn;
        send_seq(client.conn, 'c', 1..=SEQ);
        send_seq(sconn, 's', 1..=SEQ);
        let got = |r: &Recorder, n: usize| r.count_messages() >= n;
        if !wait_until(Duration::from_secs(5), || {
            got(&crec, SEQ) && got(&srec, SEQ)
        }) {
            problems.push("the first messages did not arrive".into());
        }
        match moment {
            Moment::MidMessage => {
                relay.arm(fault, side, 20_000);
                t_fault = Instant::now();
                let big = vec![7u8; BIG];
                unsafe {
                    wsn_conn_send_binary(client.conn, big.as_ptr(), big.len());
                    if srec
                        .events
                        .lock()
                        .unwrap()
                        .iter()
                        .all(|e| !matches!(e, Ev::Close { .. }))
                    {
                        wsn_conn_send_binary(sconn, big.as_ptr(), big.len());
                        send_seq(sconn, 's', SEQ + 1..=SEQ + 3);
                    }
                }
                send_seq(client.conn, 'c', SEQ + 1..=SEQ + 3);
                if fault.benign() {
                    let all = SEQ + 4;
                    if !wait_until(Duration::from_secs(10), || {
                        got(&crec, all) && got(&srec, all)
                    }) {
                        problems.push("a slow connection lost messages".into());
                    }
                    client.close(1000, "bye");
                }
            }
            Moment::Close => {
                relay.arm(fault, side, 0);
                t_fault = Instant::now();
                client.close(1000, "bye");
            }
            Moment::Handshake => {
                client.close(1000, "bye");
            }
        }
    }
    // Every end that opened ends within the bound after the fault.
    let done = wait_until(BOUND, || {
        closed(&crec) && (opened(&srec).is_none() || closed(&srec))
    });
    let took = t_fault.elapsed();
    if !done {
        problems.push(format!("no CLOSE within {BOUND:?}: a hang"));
    }
    // Nothing more may come (a second CLOSE, a late message).
    std::thread::sleep(Duration::from_millis(300));
    let cev = crec.events.lock().unwrap().clone();
    let sev = srec.events.lock().unwrap().clone();
    let (cends, sends) = (ends(&cev), ends(&sev));
    if cends.len() != 1 {
        problems.push(format!("client: {} CLOSE events", cends.len()));
    }
    if opened(&srec).is_some() && sends.len() != 1 {
        problems.push(format!("server: {} CLOSE events", sends.len()));
    }
    if opened(&srec).is_none() && !sev.is_empty() {
        problems.push("server: events of a connection that never opened".into());
    }
    for (who, evs) in [("client", &cev), ("server", &sev)] {
        if let Some(i) = evs.iter().position(|e| matches!(e, Ev::Close { .. })) {
            if i + 1 != evs.len() {
                problems.push(format!("{who}: events after CLOSE"));
            }
        }
    }
    if std::env::var_os("FAULTS_DEBUG").is_some() {
        eprintln!(
            "{fault:?} {side:?} {moment:?}\n  client {cev:?}\n  server {:?}",
            sev.iter()
                .filter(|e| !matches!(e, Ev::Msg { .. }))
                .collect::<Vec<_>>()
        );
    }
    check_sequence("client", &cev, 's', &mut problems);
    check_sequence("server", &sev, 'c', &mut problems);
    drop(client);
    drop(relay);
    drop(server);
    if let Some(sconn) = opened(&srec) {
        unsafe { wsn_conn_free(sconn as *mut wsn_conn) };
    }
    Outcome {
        client: cends.first().cloned(),
        server: sends.first().cloned(),
        took,
        problems,
    }
}

/// What each end must report: the accepted (code, clean, cause) per end; `None` for the server
/// means it never saw the connection (no OPEN, no CLOSE: its handshake failed). Two causes
/// are accepted only where two timers race (a heartbeat against a close or handshake timeout
/// on the other end, whose end of the stream then arrives first).
fn expected(fault: Fault, side: Side, moment: Moment) -> (Vec<End>, Vec<Option<End>>) {
    use wsn_status::*;
    use Fault::*;
    use Moment::*;
    let e = |code, clean, status| End {
        code,
        clean,
        status,
    };
    let clean = || e(1000, true, WSN_OK);
    let timeout = || e(1006, false, WSN_ERR_TIMEOUT);
    let io = || e(1006, false, WSN_ERR_IO);
    let handshake = || e(1006, false, WSN_ERR_HANDSHAKE);
    if fault.benign() {
        return (vec![clean()], vec![Some(clean())]);
    }
    // Silent faults (the side's bytes go nowhere): the end that hears nothing times out.
    let silent = matches!(fault, BlackHole | StopReading);
    match (moment, side) {
        (Handshake, Side::Client) => match fault {
            // The request never arrives: the client's handshake timeout; no server event. Two
            // timers race: the server's handshake timeout (also 1 s) may end the stream first,
            // which the client reports as a handshake cut short (seen under load).
            _ if silent => (vec![timeout(), handshake()], vec![None]),
            // Reset as the TCP connection completes: reported as a failed connect or as an
            // I/O error, depending on which call meets it.
            Reset => (vec![io(), e(1006, false, WSN_ERR_CONNECT)], vec![None]),
            // The stream to the client ends before the 101: the request still got through.
            _ => (vec![handshake()], vec![None, Some(io())]),
        },
        (Handshake, Side::Server) => match fault {
            // The server opened and its 101 is lost: it times out (heartbeat) or sees the
            // client give up; the client's handshake times out.
            _ if silent => (vec![timeout()], vec![Some(timeout()), Some(io())]),
            Reset => (vec![timeout()], vec![None]),
            _ => (vec![handshake()], vec![None]),
        },
        (_, Side::Client) if silent => {
            // Nothing from the client arrives: the server's heartbeat ends it; the client
            // times out too (heartbeat or close), or sees the server's end first.
            (vec![timeout(), io()], vec![Some(timeout())])
        }
        (MidMessage, Side::Server) if silent => {
            (vec![timeout()], vec![Some(timeout()), Some(io())])
        }
        // The client's Close reached the server, which answered: clean there; the answer
        // never comes back: the client's close timeout.
        (Close, Side::Server) if silent => (vec![timeout()], vec![Some(clean())]),
        (_, Side::Client) if fault == Reset => (vec![io()], vec![Some(timeout())]),
        (_, Side::Server) if fault == Reset => (vec![timeout()], vec![Some(io())]),
        // The client reads the end of the stream: 1006. The server got the client's Close
        // and answered it (clean), unless the client read the end before its Close went out
        // (then it ends without one, and the server sees the stream end: io).
        (Close, Side::Client) => (vec![io()], vec![Some(clean()), Some(io())]),
        (_, _) => (vec![io()], vec![Some(io())]),
    }
}

type Case = (Fault, Side, Moment);

#[test]
fn fault_matrix() {
    let mut cases = Vec::new();
    for fault in FAULTS {
        for side in [Side::Client, Side::Server] {
            for moment in [Moment::Handshake, Moment::MidMessage, Moment::Close] {
                cases.push((fault, side, moment));
            }
        }
    }
    // Six cases at a time: each mostly waits for its timeouts.
    let results: Mutex<Vec<(Case, Outcome)>> = Mutex::new(Vec::new());
    let queue = Mutex::new(cases.clone());
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| loop {
                let Some(c) = queue.lock().unwrap().pop() else {
                    return;
                };
                let o = run_case(c.0, c.1, c.2);
                results.lock().unwrap().push((c, o));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(c, _)| cases.iter().position(|x| x == c));
    let show = |e: &Option<End>| e.as_ref().map_or("-".to_owned(), |e| e.to_string());
    println!("fault matrix: {} cases", results.len());
    println!(
        "| fault | side | moment | client CLOSE | server CLOSE | ended after | result |\n| --- | --- | --- | --- | --- | ---: | --- |"
    );
    let mut failures = 0;
    for ((f, s, m), o) in &results {
        let (ok_client, ok_server) = expected(*f, *s, *m);
        let mut problems = o.problems.clone();
        if !o.client.as_ref().is_some_and(|c| ok_client.contains(c)) {
            problems.push(format!(
                "client CLOSE {} not among {ok_client:?}",
                show(&o.client)
            ));
        }
        if !ok_server.contains(&o.server) {
            problems.push(format!(
                "server CLOSE {} not among {ok_server:?}",
                show(&o.server)
            ));
        }
        let result = if problems.is_empty() {
            "ok".to_owned()
        } else {
            failures += 1;
            format!("FAILED: {}", problems.join("; "))
        };
        println!(
            "| {f:?} | {s:?} | {m:?} | {} | {} | {:.1} s | {result} |",
            show(&o.client),
            show(&o.server),
            o.took.as_secs_f64()
        );
    }
    assert_eq!(
        failures,
        0,
        "{failures} of {} fault cases failed",
        results.len()
    );
}
