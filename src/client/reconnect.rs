//! client-reach (issue 13): reconnecting, as a policy the application opts into. One task
//! owns the connection across its lives: it connects, runs each connection (`session`: the
//! socket's one owner, as for any connection), and when one ends without the application
//! closing it, waits a backoff with full jitter and connects again, on the same `Conn`. Sends
//! made meanwhile wait in the send queue (the offline queue, bounded by the policy); after
//! each reconnect the `Open` event runs again (the hook: authenticate, resubscribe) and the
//! messages it sends go out before the offline queue.

use super::{establish, handshake, Target};
use crate::connection::{self, session, unless_cancelled, CloseInfo, Conn, Event, State};
use crate::error::{Error, ErrorKind};
use crate::options::{ClientOptions, Proxy, ReconnectPolicy};
use crate::tls::ClientTls;
use std::sync::Arc;
use std::time::Instant;

/// What a connect starts with: the first upgrade request (checked by `connect`).
pub(crate) struct First {
    pub(crate) request: Vec<u8>,
    pub(crate) pending: handshake::Pending,
}

fn closed_while_offline() -> CloseInfo {
    connection::failed(Error::new(
        ErrorKind::Aborted,
        "closed by this side while reconnecting",
    ))
}

/// Why the policy stops after `info`, if it does.
fn stop_reason(policy: &ReconnectPolicy, info: &CloseInfo) -> Option<String> {
    let http = info.error.as_ref().map_or(0, |e| e.http_status());
    if http != 0 && policy.stop_statuses.contains(&http) {
        return Some(format!("HTTP {http} stops reconnecting"));
    }
    if policy.stop_codes.contains(&info.code) {
        return Some(format!("close code {} stops reconnecting", info.code));
    }
    None
}

/// Ends the connection for good.
fn end(c: &Arc<Conn>, info: CloseInfo) {
    c.set_offline(false);
    c.commands.close();
    connection::finish(c, info);
}

/// Waits until the callbacks queued so far ran (the reconnect hook), at most `limit`. In poll
/// mode there are no callbacks to wait for.
async fn callbacks_done(c: &Arc<Conn>, limit: std::time::Duration) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    c.mailbox.post(Box::new(move || {
        let _ = tx.send(());
    }));
    let _ = tokio::time::timeout(limit, rx).await;
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    c: Arc<Conn>,
    url: String,
    target: Target,
    via: Option<Proxy>,
    tls: Option<ClientTls>,
    opts: ClientOptions,
    policy: ReconnectPolicy,
    first: First,
) {
    c.set_offline_queue(policy.offline_max_bytes, policy.offline_policy);
    let mut first = Some(first);
    let mut attempt: u32 = 0;
    let mut since: Option<Instant> = None;
    let mut opened_before = false;
    loop {
        let (request, pending) = match first.take() {
            Some(f) => (f.request, f.pending),
            None => match handshake::request(
                &url,
                &opts.headers,
                &opts.subprotocols,
                opts.origin.as_deref(),
                &opts.conn.compression,
            ) {
                Ok(r) => r,
                Err(e) => return end(&c, connection::failed(Error::invalid(e))),
            },
        };
        let attempt_fut = Box::pin(establish(
            &c,
            target.clone(),
            via.clone(),
            request,
            pending,
            tls.clone(),
            &opts,
        ));
        let info = match unless_cancelled(&c, attempt_fut).await {
            None => return end(&c, closed_while_offline()),
            Some(Err(e)) => connection::failed(e),
            Some(Ok(wire)) => {
                attempt = 0;
                since = None;
                c.set_offline(false);
                if opened_before {
                    // The hook: Open again; what it sends goes out before the offline queue.
                    let held = c.take_queued();
                    c.set_state(State::Open);
                    c.deliver(Event::Open);
                    callbacks_done(&c, opts.handshake_timeout).await;
                    c.requeue(held);
                    session(&c, wire, false, false).await
                } else {
                    opened_before = true;
                    session(&c, wire, true, false).await
                }
            }
        };
        if c.user_closed() {
            return end(&c, info);
        }
        let now = Instant::now();
        let since_drop = *since.get_or_insert(now);
        attempt += 1;
        let over_budget = (policy.max_attempts > 0 && attempt > policy.max_attempts)
            || (!policy.max_elapsed.is_zero() && now - since_drop >= policy.max_elapsed);
        let why = stop_reason(&policy, &info).or_else(|| {
            over_budget.then(|| {
                format!(
                    "the reconnect budget is spent ({} attempts, {} ms since the drop)",
                    attempt - 1,
                    (now - since_drop).as_millis()
                )
            })
        });
        if let Some(why) = why {
            let last = info
                .error
                .as_ref()
                .map(|e| format!(": the last error was: {e}"))
                .unwrap_or_else(|| format!(": the last close code was {}", info.code));
            c.deliver(Event::ReconnectGaveUp {
                attempts: attempt - 1,
                error: Error::new(
                    info.error.as_ref().map_or(ErrorKind::Aborted, |e| e.kind()),
                    format!("reconnecting stopped: {why}{last}"),
                ),
            });
            return end(&c, info);
        }
        if !c.reopen_gate() {
            return end(&c, info);
        }
        c.set_offline(true);
        c.set_state(State::Connecting);
        let delay = policy.delay(attempt, rand::random::<f64>());
        c.deliver(Event::Reconnecting {
            attempt,
            delay,
            code: info.code,
            error: info.error.clone(),
        });
        if unless_cancelled(&c, tokio::time::sleep(delay))
            .await
            .is_none()
        {
            return end(&c, closed_while_offline());
        }
    }
}
