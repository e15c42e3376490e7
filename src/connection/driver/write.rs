//! Writing: the send queue encoded into the write buffer, vectored writes, and the ids of
//! messages handed to the kernel (send completion, drain events).

use super::*;

impl Driver {
    /// Writes what is encoded. `Err` ends the connection (the socket failed); `Ok(Some)` when
    /// the closing handshake completed with this write.
    pub(super) fn write(
        &mut self,
        cx: &mut Context<'_>,
        busy: &mut bool,
    ) -> Result<Option<CloseInfo>, CloseInfo> {
        while !self.wbuf.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = self.wbuf.io_slices(&mut slices);
            // One slice (small messages, batched): send(2), which costs the kernel less than
            // writev(2) (no iovec to import, no VFS layer): measured, writev took 44% of the
            // server's CPU echoing 64 B messages to 50 clients.
            let wrote = if n == 1 {
                Pin::new(&mut self.io).poll_write(cx, &slices[0])
            } else {
                Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n])
            };
            match wrote {
                Poll::Ready(Ok(0)) => {
                    return Err(
                        self.write_failed(Error::new(ErrorKind::Io, "the socket took no bytes"))
                    )
                }
                Poll::Ready(Ok(k)) => {
                    self.wbuf.advance(k);
                    self.written += k as u64;
                    // Out of the buffered count before counted as sent: an observer never
                    // sees a byte in both.
                    self.conn.set_unwritten(self.wbuf.len(), 0);
                    self.conn.add_wire_written(k);
                    self.flush_due = true;
                    *busy = true;
                    self.sent_up_to();
                }
                Poll::Ready(Err(e)) => {
                    return Err(self.write_failed(Error::from(e).context("write failed")))
                }
                Poll::Pending => return Ok(None),
            }
        }
        self.wbuf.release();
        if self.flush_due {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flush_due = false,
                Poll::Ready(Err(e)) => {
                    return Err(self.write_failed(Error::from(e).context("write failed")))
                }
                Poll::Pending => return Ok(None),
            }
        }
        if self.ours.is_some() && self.written >= self.ours_end && !self.close_out {
            self.close_out = true;
            // Our Close is out.
            if let Some(f) = self.failure.take() {
                // The Close frame told the peer why; there is nothing to wait for.
                return Ok(Some(failed(*f)));
            }
            if self.theirs.is_some() {
                return Ok(Some(read_end(&self.theirs, &self.ours, self.we_started)));
            }
            self.stall = None;
            self.deadline = Some(Instant::now() + self.conn.settings.close_timeout);
            self.deadline_seen = self.conn.delivered();
        }
        Ok(None)
    }

    /// Records which messages the socket has taken, and delivers a drain event when asked.
    pub(super) fn sent_up_to(&mut self) {
        let mut last = None;
        while let Some(&(end, id)) = self.in_flight.front() {
            if end > self.written {
                break;
            }
            last = Some(id);
            self.in_flight.pop_front();
        }
        if let Some(id) = last {
            self.conn.sent(id);
        }
    }

    pub(super) fn write_failed(&mut self, error: Error) -> CloseInfo {
        if let Some(f) = self.failure.take() {
            return failed(*f);
        }
        if self.theirs.is_some() {
            // The peer closed (and may have gone): its Close made the close clean.
            return read_end(&self.theirs, &self.ours, self.we_started);
        }
        unclean(error)
    }
}
