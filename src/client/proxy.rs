//! client-reach (issue 13): proxies. Which proxy a connection uses (the options, or the
//! environment variables as curl reads them, with NO_PROXY), and the tunnel through it: HTTP
//! CONNECT (with Basic credentials and extra headers) or SOCKS5 (RFC 1928, user/password RFC
//! 1929). After the tunnel, TLS and the upgrade run over it as over a direct connection.

use crate::error::{Error, ErrorKind, Result};
use crate::options::{host_port, ClientOptions, Proxy, ProxyKind};
use std::net::IpAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The proxy for a connection to `host`:`port`: the options' proxy, else (when the application
/// asked for it) the environment's.
pub(crate) fn choose(
    opts: &ClientOptions,
    secure: bool,
    host: &str,
    port: u16,
) -> Result<Option<Proxy>> {
    if let Some(p) = &opts.proxy {
        return Ok(Some(p.clone()));
    }
    if !opts.proxy_from_env {
        return Ok(None);
    }
    from_env(|k| std::env::var(k).ok(), secure, host, port)
}

/// The environment's proxy for `host`:`port`, looked up with `var`: `https_proxy` /
/// `HTTPS_PROXY` for wss://, `http_proxy` / `HTTP_PROXY` for ws://, then `all_proxy` /
/// `ALL_PROXY` (lower case first, as curl); none when `no_proxy` / `NO_PROXY` names the host.
pub(crate) fn from_env(
    var: impl Fn(&str) -> Option<String>,
    secure: bool,
    host: &str,
    port: u16,
) -> Result<Option<Proxy>> {
    let get = |name: &str| {
        var(&name.to_ascii_lowercase())
            .or_else(|| var(&name.to_ascii_uppercase()))
            .filter(|v| !v.trim().is_empty())
    };
    let scheme_var = if secure { "https_proxy" } else { "http_proxy" };
    let Some((name, value)) = get(scheme_var)
        .map(|v| (scheme_var, v))
        .or_else(|| get("all_proxy").map(|v| ("all_proxy", v)))
    else {
        return Ok(None);
    };
    if let Some(list) = get("no_proxy") {
        if no_proxy_matches(&list, host, port) {
            return Ok(None);
        }
    }
    Proxy::parse(&value).map(Some).map_err(|e| {
        e.context(format!(
            "the environment variable {name} (or its upper case)"
        ))
    })
}

/// Whether a NO_PROXY list exempts `host`:`port`. Entries, separated by commas or spaces:
/// `*` (every host), a host name (itself and its subdomains; a leading `.` or `*.` is the
/// same), an IP address, a CIDR block (`10.0.0.0/8`, `fd00::/8`), each optionally with
/// `:port`.
pub(crate) fn no_proxy_matches(list: &str, host: &str, port: u16) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let ip: Option<IpAddr> = host.parse().ok();
    for entry in list
        .split([',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        if entry == "*" {
            return true;
        }
        let (pattern, entry_port) = split_port(entry);
        if entry_port.is_some_and(|p| p != port) {
            continue;
        }
        let pattern = pattern.to_ascii_lowercase();
        if let Some((net, bits)) = pattern.split_once('/') {
            if let (Some(ip), Ok(net), Ok(bits)) = (ip, net.parse::<IpAddr>(), bits.parse::<u8>()) {
                if in_cidr(ip, net, bits) {
                    return true;
                }
            }
            continue;
        }
        if let Ok(p) = pattern.parse::<IpAddr>() {
            if ip == Some(p) {
                return true;
            }
            continue;
        }
        let domain = pattern
            .trim_start_matches('*')
            .trim_start_matches('.')
            .trim_end_matches('.');
        if domain.is_empty() {
            continue;
        }
        if host == domain || host.ends_with(&format!(".{domain}")) {
            return true;
        }
    }
    false
}

/// `host:port` -> (host, Some(port)); IPv6 with brackets or a CIDR stays whole.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            return (h, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Opens the tunnel to `host`:`port` through `proxy` on `tcp` (connected to the proxy).
pub(crate) async fn tunnel(
    tcp: &mut TcpStream,
    proxy: &Proxy,
    headers: &[(String, String)],
    host: &str,
    port: u16,
) -> Result<()> {
    match proxy.kind {
        ProxyKind::HttpConnect => http_connect(tcp, proxy, headers, host, port).await,
        ProxyKind::Socks5 => socks5(tcp, proxy, host, port).await,
    }
}

fn lost(proxy: &Proxy, what: &str) -> impl Fn(std::io::Error) -> Error {
    let context = format!(
        "the connection to the proxy {} failed during {what}",
        proxy.address()
    );
    move |e| Error::from(e).context(&context)
}

async fn http_connect(
    tcp: &mut TcpStream,
    proxy: &Proxy,
    headers: &[(String, String)],
    host: &str,
    port: u16,
) -> Result<()> {
    let target = host_port(host, port);
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some((user, pass)) = &proxy.credentials {
        req.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64(format!("{user}:{pass}").as_bytes())
        ));
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let io = lost(proxy, "the CONNECT request");
    tcp.write_all(req.as_bytes()).await.map_err(&io)?;
    // The response head, a byte at a time: nothing after it may be consumed (it is the
    // server's, through the tunnel).
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= 16 << 10 {
            return Err(Error::new(
                ErrorKind::Handshake,
                format!(
                    "the proxy {} sent a response head over 16 KiB",
                    proxy.address()
                ),
            ));
        }
        if tcp.read(&mut byte).await.map_err(&io)? == 0 {
            return Err(Error::new(
                ErrorKind::Handshake,
                format!(
                    "the proxy {} closed the connection instead of answering CONNECT {target}",
                    proxy.address()
                ),
            ));
        }
        head.push(byte[0]);
    }
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut hs);
    if resp.parse(&head).is_err() || resp.code.is_none() {
        return Err(Error::new(
            ErrorKind::Handshake,
            format!(
                "the proxy {} answered CONNECT with something that is not HTTP",
                proxy.address()
            ),
        ));
    }
    let status = resp.code.unwrap_or(0);
    if (200..300).contains(&status) {
        return Ok(());
    }
    let reason = resp.reason.unwrap_or("").to_owned();
    let hint = match status {
        407 if proxy.credentials.is_none() => {
            ": it wants a user and password (http://user:password@host:port)"
        }
        // tinyproxy answers wrong credentials with 401.
        401 | 407 => ": check the user and password in the proxy URL",
        403 => ": the proxy's rules do not allow this destination (or port)",
        500 | 502 | 504 => ": the proxy could not reach the server",
        _ => "",
    };
    Err(Error::http(
        status,
        format!(
            "the proxy {} refused the tunnel to {target}: HTTP {status} {reason}{hint}",
            proxy.address()
        ),
    ))
}

async fn socks5(tcp: &mut TcpStream, proxy: &Proxy, host: &str, port: u16) -> Result<()> {
    let io = lost(proxy, "the SOCKS5 handshake");
    let refused = |why: String| {
        Error::new(
            ErrorKind::Handshake,
            format!("the SOCKS5 proxy {} {why}", proxy.address()),
        )
    };
    let methods: &[u8] = if proxy.credentials.is_some() {
        &[5, 2, 0, 2]
    } else {
        &[5, 1, 0]
    };
    tcp.write_all(methods).await.map_err(&io)?;
    let mut r = [0u8; 2];
    tcp.read_exact(&mut r).await.map_err(&io)?;
    if r[0] != 5 {
        return Err(refused(
            "is not a SOCKS5 proxy (wrong version in its answer)".into(),
        ));
    }
    match r[1] {
        0 => {}
        2 => {
            let Some((user, pass)) = &proxy.credentials else {
                return Err(refused("asked for a user and password that were not given".into()));
            };
            let mut auth = vec![1, user.len() as u8];
            auth.extend_from_slice(user.as_bytes());
            auth.push(pass.len() as u8);
            auth.extend_from_slice(pass.as_bytes());
            tcp.write_all(&auth).await.map_err(&io)?;
            tcp.read_exact(&mut r).await.map_err(&io)?;
            if r[1] != 0 {
                return Err(refused(
                    "refused the user name and password (check them in the proxy URL)".into(),
                ));
            }
        }
        0xff if proxy.credentials.is_none() => {
            return Err(refused(
                "accepts none of our authentication methods: it wants a user and password (socks5://user:password@host:port)"
                    .into(),
            ))
        }
        m => {
            return Err(refused(format!(
                "chose an authentication method we do not offer ({m})"
            )))
        }
    }
    let mut req = vec![5, 1, 0];
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => {
            req.push(1);
            req.extend_from_slice(&a.octets());
        }
        Ok(IpAddr::V6(a)) => {
            req.push(4);
            req.extend_from_slice(&a.octets());
        }
        Err(_) => {
            if host.len() > 255 {
                return Err(Error::invalid(format!(
                    "host name '{host}' is too long for SOCKS5"
                )));
            }
            req.push(3);
            req.push(host.len() as u8);
            req.extend_from_slice(host.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    tcp.write_all(&req).await.map_err(&io)?;
    let mut head = [0u8; 4];
    tcp.read_exact(&mut head).await.map_err(&io)?;
    if head[1] != 0 {
        let why = match head[1] {
            1 => "general failure",
            2 => "not allowed by its rules",
            3 => "network unreachable",
            4 => "host unreachable",
            5 => "connection refused by the destination",
            6 => "TTL expired",
            7 => "command not supported",
            8 => "address type not supported",
            _ => "unknown error",
        };
        let kind = if matches!(head[1], 3..=5) {
            ErrorKind::Connect
        } else {
            ErrorKind::Handshake
        };
        return Err(Error::new(
            kind,
            format!(
                "the SOCKS5 proxy {} could not connect to {}: {why} (reply {})",
                proxy.address(),
                host_port(host, port),
                head[1]
            ),
        ));
    }
    // The bound address, which nobody needs.
    let skip = match head[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut n = [0u8; 1];
            tcp.read_exact(&mut n).await.map_err(&io)?;
            n[0] as usize
        }
        t => {
            return Err(refused(format!(
                "answered with an unknown address type {t}"
            )))
        }
    };
    let mut rest = vec![0u8; skip + 2];
    tcp.read_exact(&mut rest).await.map_err(&io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_matches_hosts_domain_suffixes_ips_cidrs_and_ports() {
        let list =
            "localhost, .internal.example,corp.example:8443, 10.0.0.0/8 ,fd00::/8,192.168.1.7";
        assert!(no_proxy_matches(list, "localhost", 80));
        assert!(no_proxy_matches(list, "a.internal.example", 443));
        assert!(no_proxy_matches(list, "internal.example", 443));
        assert!(!no_proxy_matches(list, "notinternal.example", 443));
        assert!(no_proxy_matches(list, "corp.example", 8443));
        assert!(no_proxy_matches(list, "x.corp.example", 8443));
        assert!(!no_proxy_matches(list, "corp.example", 443));
        assert!(no_proxy_matches(list, "10.20.30.40", 80));
        assert!(!no_proxy_matches(list, "11.0.0.1", 80));
        assert!(no_proxy_matches(list, "fd12::1", 80));
        assert!(no_proxy_matches(list, "192.168.1.7", 80));
        assert!(!no_proxy_matches(list, "192.168.1.8", 80));
        assert!(no_proxy_matches("*", "anything", 1));
        assert!(!no_proxy_matches("", "localhost", 1));
    }

    #[test]
    fn the_environment_is_read_lower_case_first_per_scheme_then_all_proxy() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = env(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:2"),
            ("HTTP_PROXY", "http://plain:3"),
            ("ALL_PROXY", "socks5://all:4"),
            ("NO_PROXY", ".skip.example"),
        ]);
        assert_eq!(from_env(e, true, "h", 443).unwrap().unwrap().host, "lower");
        assert_eq!(from_env(e, false, "h", 80).unwrap().unwrap().host, "plain");
        assert_eq!(from_env(e, true, "a.skip.example", 443).unwrap(), None);
        let all = env(&[("ALL_PROXY", "socks5://all:4")]);
        let p = from_env(all, true, "h", 443).unwrap().unwrap();
        assert_eq!((p.kind, p.port), (ProxyKind::Socks5, 4));
        assert_eq!(from_env(env(&[]), true, "h", 443).unwrap(), None);
        let bad = env(&[("http_proxy", "ftp://x")]);
        assert!(from_env(bad, false, "h", 80)
            .unwrap_err()
            .to_string()
            .contains("http_proxy"));
    }

    #[test]
    fn basic_credentials_are_base64() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
