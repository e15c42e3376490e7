//! wsncat: a WebSocket command-line client and server built on wsnative (its Rust API), in the
//! shape of websocat and wscat.
//!
//!   wsncat [OPTIONS] ws://host:port/path     stdin lines out as messages, messages in to stdout
//!   wsncat [OPTIONS] --listen PORT           a server: prints what arrives, or echoes (--echo)
//!
//! Run `wsncat --help` for the options and exit codes.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wsnative::{ClientOptions, CloseInfo, Conn, Delivery, Event, Handler, Server, ServerOptions};

const USAGE: &str = "\
usage: wsncat [OPTIONS] ws[s]://host[:port]/path
       wsncat [OPTIONS] --listen PORT

Client: each line of stdin is sent as a text message (--binary: binary); each message received
is written to stdout, one per line. At the end of stdin the client closes with 1000 and waits
for the peer's answer. How the connection closed goes to stderr:
  closed: code 1000, reason \"bye\", clean
  -H, --header 'NAME: VALUE'   an extra request header (repeatable)
  -s, --subprotocol NAME       offer a subprotocol (repeatable; the server's choice is printed)
      --origin ORIGIN          the Origin header
      --ca-file FILE           trust this PEM CA (besides the bundled roots; repeatable)
      --system-roots           trust the system's CA store instead of the bundled roots
      --trust-fingerprint SHA  trust exactly the certificate with this SHA-256 (hex; repeatable)
      --client-cert FILE --client-key FILE
                               present this PEM certificate chain and key (mutual TLS)
      --proxy URL              connect through http://[user:pass@]host:port or socks5://...
      --proxy-env              the proxy of the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY,
                               NO_PROXY)
  -b, --binary                 send lines as binary messages

Server (--listen PORT, 0 picks a free port; prints \"listening on ADDR\" to stderr):
  -l, --listen PORT            listen on PORT
      --host ADDR              the address to listen on (default 127.0.0.1)
  -e, --echo                   send every message back instead of printing it
      --cert FILE --key FILE   serve wss:// with this PEM certificate chain and key
  -s, --subprotocol NAME       a subprotocol the server speaks (repeatable, in its preference)
      --origin ORIGIN          allow only browsers from these origins (repeatable; others: 403)
      --once                   exit when the first connection has closed
  Stops on SIGINT or SIGTERM, closing its connections with 1001.

Both:
  -v, --verbose                wsnative's log on stderr (-v: info, -vv: debug)
  -h, --help                   this text;   -V, --version   the version

Exit codes: 0 a clean close with 1000, 1001 or 1005 (or a server stopped by a signal); 1 an
unclean close (a refused handshake, a timeout, a reset, a protocol error) or an error; 2 bad
usage; 3 a clean close with another code.
";

#[derive(Default)]
struct Args {
    url: Option<String>,
    listen: Option<u16>,
    host: String,
    headers: Vec<(String, String)>,
    subprotocols: Vec<String>,
    origins: Vec<String>,
    ca_files: Vec<PathBuf>,
    system_roots: bool,
    binary: bool,
    echo: bool,
    once: bool,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    fingerprints: Vec<String>,
    proxy: Option<String>,
    proxy_env: bool,
    verbose: u8,
}

fn usage_error(msg: &str) -> ! {
    eprintln!("wsncat: {msg}\n{USAGE}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        host: "127.0.0.1".into(),
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    let value = |it: &mut dyn Iterator<Item = String>, flag: &str| {
        it.next()
            .unwrap_or_else(|| usage_error(&format!("{flag} needs a value")))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0)
            }
            "-V" | "--version" => {
                println!("wsncat {}", wsnative::VERSION);
                std::process::exit(0)
            }
            "-H" | "--header" => {
                let h = value(&mut it, &arg);
                let Some((n, v)) = h.split_once(':') else {
                    usage_error(&format!("header {h:?} is not 'NAME: VALUE'"))
                };
                a.headers.push((n.trim().to_owned(), v.trim().to_owned()));
            }
            "-s" | "--subprotocol" => a.subprotocols.push(value(&mut it, &arg)),
            "--origin" => a.origins.push(value(&mut it, &arg)),
            "--ca-file" => a.ca_files.push(value(&mut it, &arg).into()),
            "--system-roots" => a.system_roots = true,
            "-b" | "--binary" => a.binary = true,
            "-l" | "--listen" => {
                let p = value(&mut it, &arg);
                a.listen = Some(
                    p.parse()
                        .unwrap_or_else(|_| usage_error(&format!("bad port {p:?}"))),
                );
            }
            "--host" => a.host = value(&mut it, &arg),
            "-e" | "--echo" => a.echo = true,
            "--once" => a.once = true,
            "--cert" => a.cert = Some(value(&mut it, &arg).into()),
            "--key" => a.key = Some(value(&mut it, &arg).into()),
            "--client-cert" => a.client_cert = Some(value(&mut it, &arg).into()),
            "--client-key" => a.client_key = Some(value(&mut it, &arg).into()),
            "--trust-fingerprint" => a.fingerprints.push(value(&mut it, &arg)),
            "--proxy" => a.proxy = Some(value(&mut it, &arg)),
            "--proxy-env" => a.proxy_env = true,
            "-v" | "--verbose" => a.verbose += 1,
            "-vv" => a.verbose += 2,
            s if s.starts_with('-') => usage_error(&format!("unknown option {s}")),
            _ if a.url.is_none() => a.url = Some(arg),
            _ => usage_error("more than one URL"),
        }
    }
    match (&a.url, a.listen) {
        (Some(_), Some(_)) => usage_error("a URL and --listen: choose one"),
        (None, None) => usage_error("a URL or --listen PORT is needed"),
        _ => {}
    }
    if a.url.is_some() && a.origins.len() > 1 {
        usage_error("a client sends one --origin");
    }
    if a.cert.is_some() != a.key.is_some() {
        usage_error("--cert and --key go together");
    }
    if a.client_cert.is_some() != a.client_key.is_some() {
        usage_error("--client-cert and --client-key go together");
    }
    a
}

/// wsnative's log records on stderr (the library logs through the `log` crate).
struct StderrLog;
impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let conn = r
                .key_values()
                .get(log::kv::Key::from_str("conn"))
                .map(|v| format!(" conn={v}"))
                .unwrap_or_default();
            eprintln!("[{} {}{conn}] {}", r.level(), r.target(), r.args());
        }
    }
    fn flush(&self) {}
}

fn describe(info: &CloseInfo) -> String {
    let mut s = format!(
        "code {}, reason {:?}, {}",
        info.code,
        info.reason,
        if info.was_clean { "clean" } else { "not clean" }
    );
    if let Some(e) = &info.error {
        s.push_str(&format!(", error: {e}"));
        if e.http_status() != 0 {
            s.push_str(&format!(" (HTTP {})", e.http_status()));
        }
    }
    s
}

fn exit_code(info: &CloseInfo) -> i32 {
    match (info.was_clean, info.code) {
        (true, 1000 | 1001 | 1005) => 0,
        (true, _) => 3,
        (false, _) => 1,
    }
}

/// Writes a message to stdout, one per line.
fn print_message(text: bool, data: &[u8]) {
    // Text is UTF-8 already; binary goes out as it came.
    let _ = text;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(data);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

struct ClientHandler {
    closed: Mutex<Option<mpsc::Sender<CloseInfo>>>,
}

impl Handler for ClientHandler {
    fn on_event(&self, conn: &Arc<Conn>, event: &Event) {
        match event {
            Event::Open => {
                let sp = conn.subprotocol().to_string_lossy();
                if sp.is_empty() {
                    eprintln!("connected");
                } else {
                    eprintln!("connected (subprotocol {sp:?})");
                }
            }
            Event::Message { text, data } => print_message(*text, data),
            Event::Close(info) => {
                if let Some(tx) = self.closed.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    let _ = tx.send(info.clone());
                }
            }
            Event::Reconnecting { attempt, delay, .. } => {
                eprintln!(
                    "reconnecting: attempt {attempt} in {} ms",
                    delay.as_millis()
                )
            }
            Event::ReconnectGaveUp { error, .. } => eprintln!("gave up reconnecting: {error}"),
            Event::Drain { .. } => {}
        }
    }
}

fn client(a: &Args, url: &str) -> i32 {
    let mut o = ClientOptions {
        headers: a.headers.clone(),
        subprotocols: a.subprotocols.clone(),
        origin: a.origins.first().cloned(),
        ca_files: a.ca_files.clone(),
        ..ClientOptions::default()
    };
    if a.system_roots {
        o.tls_roots = wsnative::TlsRoots::System;
    }
    if let (Some(chain), Some(key)) = (&a.client_cert, &a.client_key) {
        o.client_cert = Some(wsnative::Identity {
            chain: wsnative::Pem::File(chain.clone()),
            key: wsnative::Pem::File(key.clone()),
        });
    }
    for f in &a.fingerprints {
        match wsnative::parse_fingerprint(f) {
            Ok(fp) => o.trusted_fingerprints.push(fp),
            Err(e) => usage_error(&e.to_string()),
        }
    }
    if let Some(p) = &a.proxy {
        match wsnative::Proxy::parse(p) {
            Ok(p) => o.proxy = Some(p),
            Err(e) => usage_error(&e.to_string()),
        }
    }
    o.proxy_from_env = a.proxy_env;
    let (tx, rx) = mpsc::channel();
    let handler: Arc<dyn Handler> = Arc::new(ClientHandler {
        closed: Mutex::new(Some(tx)),
    });
    let conn = match wsnative::connect(url, &o, Some(Delivery::Callback(handler))) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wsncat: {e}");
            return 1;
        }
    };
    let sender = conn.clone();
    let binary = a.binary;
    // stdin on a thread of its own: the peer may close while we wait for a line.
    std::thread::spawn(move || {
        // The connect and handshake timeouts bound this wait.
        while sender.state() == wsnative::State::Connecting {
            std::thread::sleep(Duration::from_millis(5));
        }
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let sent = if binary {
                sender.send_binary(line.as_bytes())
            } else {
                sender.send_text(&line)
            };
            if let Err(e) = sent {
                if sender.state() == wsnative::State::Open {
                    eprintln!("wsncat: {e}");
                }
                return;
            }
        }
        let _ = sender.close(1000, "");
    });
    // The library ends every connection within its timeouts; the close event comes last.
    let info = match rx.recv() {
        Ok(i) => i,
        Err(_) => return 1,
    };
    eprintln!("closed: {}", describe(&info));
    conn.release();
    exit_code(&info)
}

struct ServerHandler {
    echo: bool,
    once: Option<mpsc::Sender<()>>,
}

impl Handler for ServerHandler {
    fn on_event(&self, conn: &Arc<Conn>, event: &Event) {
        let peer = conn.peer_addr().map(|p| p.to_string()).unwrap_or_default();
        match event {
            Event::Open => eprintln!("{peer}: connected"),
            Event::Message { text, data } => {
                if self.echo {
                    let _ = conn.send_bytes(*text, data.clone());
                } else {
                    print_message(*text, data);
                }
            }
            Event::Close(info) => {
                eprintln!("{peer}: closed: {}", describe(info));
                conn.release();
                if let Some(tx) = &self.once {
                    let _ = tx.send(());
                }
            }
            // Client events only.
            Event::Reconnecting { .. } | Event::ReconnectGaveUp { .. } | Event::Drain { .. } => {}
        }
    }
}

fn server(a: &Args, port: u16) -> i32 {
    // SIGINT and SIGTERM are taken by sigwait below: block them before any thread starts.
    // SAFETY: plain libc calls on a local signal set.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let o = ServerOptions {
        tls: a.cert.clone().zip(a.key.clone()),
        subprotocols: a.subprotocols.clone(),
        allowed_origins: a.origins.clone(),
        ..ServerOptions::default()
    };
    let (tx, rx) = mpsc::channel();
    let handler: Arc<dyn Handler> = Arc::new(ServerHandler {
        echo: a.echo,
        once: a.once.then_some(tx.clone()),
    });
    let server = match Server::listen(&a.host, port, &o, None, Some(Delivery::Callback(handler))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wsncat: {e}");
            return 1;
        }
    };
    eprintln!("listening on {}", server.local_addr());
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: waits for one of the blocked signals.
        unsafe { libc::sigwait(&set, &mut sig) };
        let _ = tx.send(());
    });
    let _ = rx.recv();
    server.stop(Duration::from_secs(2));
    0
}

fn main() {
    let a = parse_args();
    if a.verbose > 0 {
        let _ = log::set_logger(&StderrLog);
        log::set_max_level(if a.verbose > 1 {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        });
    }
    let code = match (&a.url, a.listen) {
        (Some(url), _) => client(&a, url),
        (None, Some(port)) => server(&a, port),
        _ => 2,
    };
    std::process::exit(code)
}
