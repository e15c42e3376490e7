//! Time: the heartbeat (ping and pong deadlines, or unsolicited pongs), the session
//! deadline, and the close deadlines (the close timeout counted from the last byte the peer
//! took, and `close_max` over the whole close).

use super::*;

impl Driver {
    pub(super) fn timers(&mut self, cx: &mut Context<'_>, busy: &mut bool) -> Option<CloseInfo> {
        let Some(next) = self.next_timer() else {
            return None; // no timer: no need to read the clock
        };
        // The sleep was set for the earliest timer and has not fired: nothing is due (and
        // neither the clock nor the timer wheel need a look; it wakes the task when it fires).
        if self.sleep_armed && self.sleep.deadline() == next.into() && !self.sleep.is_elapsed() {
            return None;
        }
        let s = &*self.conn.settings.clone();
        let now = Instant::now();
        if self.cap.is_some_and(|d| now >= d) {
            let e = Error::new(
                ErrorKind::Timeout,
                format!("close timed out: the closing handshake did not finish within {} ms in all (the peer reads too slowly)", ms(s.close_max)),
            );
            return Some(match self.failure.take() {
                Some(f) => failed((f.0, f.1, f.2.context(e))),
                None => unclean(e),
            });
        }
        if self.callbacks_due.is_some_and(|d| now >= d) {
            // A callback is slow: go on without waiting any longer.
            self.callbacks_due = None;
            self.fail_waits = false;
            self.answer_due = false;
            *busy = true;
        }
        if let Some(d) = self.deadline {
            if now >= d {
                let delivered = self.conn.delivered();
                if delivered != self.deadline_seen
                    || (!self.close_out && self.wbuf.is_empty() && self.ours.is_none())
                {
                    // Our Close is still on its way behind data the peer keeps taking.
                    self.deadline_seen = delivered;
                    self.deadline = Some(now + s.close_timeout);
                } else {
                    let e = Error::new(
                        ErrorKind::Timeout,
                        format!("close timed out: the peer did not complete the closing handshake within {} ms", ms(s.close_timeout)),
                    );
                    return Some(match self.failure.take() {
                        Some(f) => failed((f.0, f.1, f.2.context(e))),
                        None => unclean(e),
                    });
                }
            }
        }
        if let Some((at, seen)) = self.stall {
            if now >= at {
                let delivered = self.conn.delivered();
                if delivered == seen {
                    return Some(unclean(Error::new(
                        ErrorKind::Timeout,
                        format!("close timed out: queued messages could not be written for {} ms (the peer is not reading)", ms(s.close_timeout)),
                    )));
                }
                self.stall = Some((now + s.close_timeout, delivered));
            }
        }
        if self.pong_due.is_some_and(|d| now >= d) {
            if self.blocked {
                // Reading is paused: the Pong may be waiting unread behind messages.
                self.pong_due = Some(now + s.pong_timeout);
            } else {
                return Some(unclean(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no Pong within {} ms of a Ping: the peer is unreachable",
                        ms(s.pong_timeout)
                    ),
                )));
            }
        }
        if self.ping_at.is_some_and(|p| now >= p) {
            self.ping_at = Some(now + s.ping_interval);
            if self.conn.state() == State::Open && self.ours.is_none() {
                let before = self.wbuf.len();
                let sent = match s.heartbeat {
                    Heartbeat::Ping => {
                        self.pong_due.get_or_insert(now + s.pong_timeout);
                        self.ping_out = Some(Box::new((now, Vec::new())));
                        self.encoder.ping(&mut self.wbuf, &[])
                    }
                    Heartbeat::Pong => self.encoder.pong(&mut self.wbuf, &[]),
                };
                if sent.is_ok() {
                    self.encoded += (self.wbuf.len() - before) as u64;
                    *busy = true;
                }
            }
        }
        self.sleep_armed = false;
        if let Some(next) = self.next_timer() {
            if self.sleep.deadline() != next.into() {
                self.sleep.as_mut().reset(next.into());
            }
            if self.sleep.as_mut().poll(cx).is_ready() {
                *busy = true;
            } else {
                self.sleep_armed = true;
            }
        }
        None
    }

    /// The earliest timer set, if any.
    fn next_timer(&self) -> Option<Instant> {
        [
            self.cap,
            self.callbacks_due,
            self.deadline,
            self.stall.map(|s| s.0),
            self.pong_due,
            self.ping_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

pub(super) fn ms(d: Duration) -> u128 {
    d.as_millis()
}
