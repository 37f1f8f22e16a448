//! The request/reply engine of the xenstore client.

use super::wire::{self, check_path};
use super::{Malformed, Perm, XsError};
use crate::abi::xenstore::{msg, xsd_sockmsg, HEADER_SIZE};
use crate::errno::Errno;
use crate::types::DomId;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

/// How a client reaches xenstored: the store ring and its event channel
/// in a guest, an in-memory xenstored in the host tests.
pub trait Transport {
    /// Copies up to `bytes.len()` bytes towards xenstored and notifies
    /// it; returns how many were taken (0 when there is no room).
    fn send(&mut self, bytes: &[u8]) -> Result<usize, XsError>;
    /// Copies up to `buf.len()` bytes from xenstored (0 when none wait).
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, XsError>;
    /// A monotonic clock in nanoseconds.
    fn now_ns(&self) -> u64;
    /// Sleeps until xenstored may have made progress (its notification),
    /// or the clock reaches `deadline_ns`. Spurious returns are fine.
    fn wait(&mut self, deadline_ns: u64) -> Result<(), XsError>;
}

/// A transaction id (`tx_id`); [`TxId::NONE`] outside transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxId(pub u32);

impl TxId {
    /// Not in a transaction.
    pub const NONE: TxId = TxId(0);
}

/// A fired watch: the node that changed and the watch's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The path that changed (may be below the watched path).
    pub path: String,
    /// The token given to [`Client::watch`].
    pub token: String,
}

/// How long a request waits for its reply by default: 5 s.
pub const DEFAULT_TIMEOUT_NS: u64 = 5_000_000_000;

/// How many times [`Client::transaction`] runs its body when commits
/// keep failing with `EAGAIN`.
pub const MAX_TRANSACTION_ATTEMPTS: u32 = 16;

/// How many events of one watch token wait in the queue at most, by
/// default ([`Client::set_watch_queue_limit`]). Any domain allowed to
/// write a watched node makes xenstored send us events; queued without
/// limit they would grow our heap at that domain's will (compare
/// XSA-349). Further events of a token whose queue is full are dropped
/// and counted ([`Client::take_dropped_watch_events`]).
pub const DEFAULT_WATCH_QUEUE_LIMIT: usize = 256;

/// How many messages [`Client::poll_watch_event`] takes in per call at
/// most: a daemon that keeps the ring full (of stale replies, say) must
/// not turn a non-blocking poll into an endless loop.
const MAX_MESSAGES_PER_POLL: usize = 64;

struct Message {
    header: xsd_sockmsg,
    payload: Vec<u8>,
}

/// The queue of one watch token: how many of its events wait, how many
/// were dropped, how many watches use the token.
#[derive(Debug)]
struct WatchQueue {
    token: String,
    watches: usize,
    queued: usize,
    dropped: u64,
}

impl WatchQueue {
    const fn new(token: String) -> Self {
        WatchQueue {
            token,
            watches: 0,
            queued: 0,
            dropped: 0,
        }
    }
}

/// A queued event and whose queue it counts against.
struct Queued {
    event: WatchEvent,
    /// Counted in `Client::stray` (its token had no queue on arrival).
    stray: bool,
}

/// One message taken in.
enum Incoming {
    /// A reply, to be matched by `req_id`.
    Reply(Message),
    /// A watch event, now queued.
    Event,
}

/// A xenstore connection.
pub struct Client<T: Transport> {
    transport: T,
    next_req_id: u32,
    /// The message being received: header bytes, then payload.
    rx: Vec<u8>,
    /// The clock when the first byte of the message in `rx` arrived.
    rx_since: u64,
    /// Events of all tokens in arrival order; each token's count is
    /// bounded by its queue in `watch_queues` (or `stray`).
    events: VecDeque<Queued>,
    /// One per token we watch (created by `watch`): the token strings
    /// come from our own calls, so the peer cannot grow this list.
    watch_queues: Vec<WatchQueue>,
    /// The shared queue of events whose token we do not (or no longer)
    /// watch: without it, made-up tokens would each get a fresh limit.
    stray: WatchQueue,
    watch_queue_limit: usize,
    timeout_ns: u64,
    broken: Option<Malformed>,
    /// Numbers the tokens of `wait_for_node`'s watches.
    wait_seq: u32,
}

impl<T: Transport> core::fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("next_req_id", &self.next_req_id)
            .field("queued_events", &self.events.len())
            .field("broken", &self.broken)
            .finish()
    }
}

impl<T: Transport> Client<T> {
    /// A client over `transport`, with [`DEFAULT_TIMEOUT_NS`].
    pub fn new(transport: T) -> Self {
        Client {
            transport,
            next_req_id: 1,
            rx: Vec::new(),
            rx_since: 0,
            events: VecDeque::new(),
            watch_queues: Vec::new(),
            stray: WatchQueue::new(String::new()),
            watch_queue_limit: DEFAULT_WATCH_QUEUE_LIMIT,
            timeout_ns: DEFAULT_TIMEOUT_NS,
            broken: None,
            wait_seq: 0,
        }
    }

    /// Changes how long each request waits for its reply.
    pub fn set_timeout_ns(&mut self, ns: u64) {
        self.timeout_ns = ns;
    }

    /// Changes how many events of one watch token may wait in the queue
    /// ([`DEFAULT_WATCH_QUEUE_LIMIT`]); events already queued stay.
    pub fn set_watch_queue_limit(&mut self, events_per_token: usize) {
        self.watch_queue_limit = events_per_token;
    }

    /// How many events of `token` were dropped because its queue was
    /// full, since the last call for it (or since it was first watched);
    /// resets the count. Nonzero means changes were missed: re-read what
    /// the watch covers. Tokens not (or no longer) watched share one
    /// queue, and one count.
    pub fn take_dropped_watch_events(&mut self, token: &str) -> u64 {
        let q = match self.watch_queues.iter_mut().find(|q| q.token == token) {
            Some(q) => q,
            None => &mut self.stray,
        };
        core::mem::take(&mut q.dropped)
    }

    /// Queues an event unless its token's queue is full (then counts it).
    fn push_event(&mut self, event: WatchEvent) {
        let (q, stray) = match self
            .watch_queues
            .iter_mut()
            .find(|q| q.token == event.token)
        {
            Some(q) => (q, false),
            None => (&mut self.stray, true),
        };
        if q.queued >= self.watch_queue_limit {
            q.dropped = q.dropped.saturating_add(1);
            return;
        }
        q.queued += 1;
        self.events.push_back(Queued { event, stray });
    }

    fn pop_event(&mut self) -> Option<WatchEvent> {
        self.take_event(0)
    }

    /// Takes queued event `i`, keeping the per-token counts right.
    fn take_event(&mut self, i: usize) -> Option<WatchEvent> {
        let Queued { event, stray } = self.events.remove(i)?;
        if stray {
            self.stray.queued = self.stray.queued.saturating_sub(1);
        } else if let Some(i) = self
            .watch_queues
            .iter()
            .position(|q| q.token == event.token)
        {
            let q = &mut self.watch_queues[i];
            q.queued = q.queued.saturating_sub(1);
            if q.queued == 0 && q.watches == 0 {
                self.watch_queues.swap_remove(i);
            }
        }
        Some(event)
    }

    /// The transport (tests reach their fake through it).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    fn fail(&mut self, m: Malformed) -> XsError {
        self.broken = Some(m);
        XsError::Broken(m)
    }

    /// Receives whatever is available towards the current message;
    /// returns it once complete. Never reads past the message's end.
    fn pump(&mut self) -> Result<Option<Message>, XsError> {
        loop {
            let header = if self.rx.len() >= HEADER_SIZE {
                let mut h = [0u8; HEADER_SIZE];
                h.copy_from_slice(&self.rx[..HEADER_SIZE]);
                match wire::decode_header(&h) {
                    Ok(h) => Some(h),
                    // Too long to skip: the stream cannot be re-framed.
                    Err(m) => return Err(self.fail(m)),
                }
            } else {
                None
            };
            let want = match header {
                None => HEADER_SIZE,
                Some(h) => HEADER_SIZE + h.len as usize,
            };
            if let (Some(h), true) = (header, self.rx.len() == want) {
                let mut payload = core::mem::take(&mut self.rx);
                payload.drain(..HEADER_SIZE);
                return Ok(Some(Message { header: h, payload }));
            }
            let have = self.rx.len();
            self.rx.resize(want, 0);
            let got = match self.transport.recv(&mut self.rx[have..]) {
                Ok(n) => n.min(want - have),
                Err(e) => {
                    self.rx.truncate(have);
                    if let XsError::Broken(m) = e {
                        self.broken = Some(m);
                    }
                    return Err(e);
                }
            };
            self.rx.truncate(have + got);
            if got == 0 {
                return Ok(None);
            }
            if have == 0 {
                self.rx_since = self.transport.now_ns();
            }
        }
    }

    /// Takes in at most one message, if complete: a watch event goes to
    /// the queue, a reply (or a malformed message's error) to the caller.
    /// One at a time, so that every caller can check its deadline between
    /// messages however fast they arrive.
    fn next_incoming(&mut self) -> Result<Option<Incoming>, XsError> {
        if let Some(m) = self.broken {
            return Err(XsError::Broken(m));
        }
        let Some(m) = self.pump()? else {
            return Ok(None);
        };
        wire::check_type(m.header.type_)?;
        if m.header.type_ == msg::XS_WATCH_EVENT {
            let (path, token) = wire::parse_watch_event(&m.payload)?;
            self.push_event(WatchEvent { path, token });
            return Ok(Some(Incoming::Event));
        }
        Ok(Some(Incoming::Reply(m)))
    }

    /// A message that started more than `max_age_ns` ago is still
    /// incomplete: xenstored cut it short or stalled in its middle. The
    /// stream has no framing but the lengths, so its missing bytes cannot
    /// be told from the next messages' bytes; reading on would take later
    /// replies for its remainder and misread everything after them (seen:
    /// nine timeouts, then a garbage header). So stop reading: every
    /// later call fails with `Broken(Desynchronized)`.
    fn give_up_on_a_stalled_message(&mut self, now: u64, max_age_ns: u64) {
        if !self.rx.is_empty() && now.saturating_sub(self.rx_since) >= max_age_ns {
            self.broken = Some(Malformed::Desynchronized);
        }
    }

    /// Sends one request and waits for the reply with its `req_id`.
    fn request(&mut self, ty: u32, tx: TxId, parts: &[&[u8]]) -> Result<Vec<u8>, XsError> {
        if let Some(m) = self.broken {
            return Err(XsError::Broken(m));
        }
        let id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1).max(1);
        let bytes = wire::encode_request(ty, id, tx.0, parts)?;
        let deadline = self.transport.now_ns().saturating_add(self.timeout_ns);
        let mut sent = 0;
        while sent < bytes.len() {
            let n = match self.transport.send(&bytes[sent..]) {
                Ok(n) => n.min(bytes.len() - sent),
                Err(XsError::Broken(m)) => return Err(self.fail(m)),
                Err(e) => return Err(e),
            };
            sent += n;
            if n == 0 {
                if self.transport.now_ns() >= deadline {
                    if sent > 0 {
                        // Half a request is in the ring: whatever we send
                        // next would be read as its remainder.
                        self.broken = Some(Malformed::Desynchronized);
                    }
                    return Err(XsError::Timeout);
                }
                self.transport.wait(deadline)?;
            }
        }
        loop {
            let waiting = match self.next_incoming()? {
                Some(Incoming::Reply(m)) if m.header.req_id == id => {
                    return match m.header.type_ {
                        msg::XS_ERROR => Err(wire::parse_error(&m.payload)),
                        t if t != ty => Err(Malformed::UnexpectedType {
                            expected: ty,
                            got: t,
                        }
                        .into()),
                        _ => Ok(m.payload),
                    };
                }
                // A late reply to a request that timed out (dropped), or a
                // watch event (queued): look for ours next.
                Some(_) => false,
                None => true,
            };
            // Checked after every message too, not only when the ring is
            // empty: a daemon flooding us with replies to other req_ids
            // must not hold the request past its deadline.
            let now = self.transport.now_ns();
            if now >= deadline {
                // Whatever message is half in after a whole timeout was
                // cut short: the stream is lost.
                self.give_up_on_a_stalled_message(now, 0);
                return Err(XsError::Timeout);
            }
            if waiting {
                self.transport.wait(deadline)?;
            }
        }
    }

    fn path_request(&mut self, ty: u32, tx: TxId, path: &str) -> Result<Vec<u8>, XsError> {
        check_path(path)?;
        self.request(ty, tx, &[path.as_bytes(), b"\0"])
    }

    /// `XS_READ` in transaction `tx`: the node's value, raw bytes.
    pub fn read_in(&mut self, tx: TxId, path: &str) -> Result<Vec<u8>, XsError> {
        self.path_request(msg::XS_READ, tx, path)
    }

    /// `XS_WRITE` in transaction `tx` (creates missing parents).
    pub fn write_in(&mut self, tx: TxId, path: &str, value: &[u8]) -> Result<(), XsError> {
        check_path(path)?;
        self.request(msg::XS_WRITE, tx, &[path.as_bytes(), b"\0", value])
            .map(drop)
    }

    /// `XS_MKDIR` in transaction `tx`.
    pub fn mkdir_in(&mut self, tx: TxId, path: &str) -> Result<(), XsError> {
        self.path_request(msg::XS_MKDIR, tx, path).map(drop)
    }

    /// `XS_RM` in transaction `tx`: removes the node and its subtree.
    pub fn rm_in(&mut self, tx: TxId, path: &str) -> Result<(), XsError> {
        self.path_request(msg::XS_RM, tx, path).map(drop)
    }

    /// `XS_DIRECTORY` in transaction `tx`: the children's names.
    pub fn directory_in(&mut self, tx: TxId, path: &str) -> Result<Vec<String>, XsError> {
        let p = self.path_request(msg::XS_DIRECTORY, tx, path)?;
        Ok(wire::parse_strings(&p)?
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect())
    }

    /// `XS_READ`.
    #[doc(alias = "XS_READ")]
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, XsError> {
        self.read_in(TxId::NONE, path)
    }

    /// `XS_READ` of a value that must be UTF-8.
    pub fn read_string(&mut self, path: &str) -> Result<String, XsError> {
        let v = self.read(path)?;
        String::from_utf8(v).map_err(|_| Malformed::InvalidUtf8.into())
    }

    /// `XS_WRITE`.
    #[doc(alias = "XS_WRITE")]
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.write_in(TxId::NONE, path, value)
    }

    /// `XS_MKDIR`.
    #[doc(alias = "XS_MKDIR")]
    pub fn mkdir(&mut self, path: &str) -> Result<(), XsError> {
        self.mkdir_in(TxId::NONE, path)
    }

    /// `XS_RM`.
    #[doc(alias = "XS_RM")]
    pub fn rm(&mut self, path: &str) -> Result<(), XsError> {
        self.rm_in(TxId::NONE, path)
    }

    /// `XS_DIRECTORY`.
    #[doc(alias = "XS_DIRECTORY")]
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, XsError> {
        self.directory_in(TxId::NONE, path)
    }

    /// `XS_GET_PERMS`.
    #[doc(alias = "XS_GET_PERMS")]
    pub fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, XsError> {
        let p = self.path_request(msg::XS_GET_PERMS, TxId::NONE, path)?;
        let strings = wire::parse_strings(&p)?;
        Ok(strings
            .into_iter()
            .map(wire::parse_perm)
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// `XS_SET_PERMS`: `perms[0]` is the owner and the default access.
    #[doc(alias = "XS_SET_PERMS")]
    pub fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        self.set_perms_in(TxId::NONE, path, perms)
    }

    /// `XS_SET_PERMS` inside transaction `tx`.
    pub fn set_perms_in(&mut self, tx: TxId, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        check_path(path)?;
        let mut payload = Vec::new();
        payload.extend_from_slice(path.as_bytes());
        payload.push(0);
        for p in perms {
            payload.extend_from_slice(wire::encode_perm(p).as_bytes());
            payload.push(0);
        }
        self.request(msg::XS_SET_PERMS, tx, &[&payload]).map(drop)
    }

    /// `XS_WATCH`: events for `path` and below arrive tagged with
    /// `token` (xenstored also fires one at once, per the protocol).
    #[doc(alias = "XS_WATCH")]
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        check_path(path)?;
        check_path(token)?;
        self.request(
            msg::XS_WATCH,
            TxId::NONE,
            &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
        )?;
        match self.watch_queues.iter_mut().find(|q| q.token == token) {
            Some(q) => q.watches += 1,
            None => {
                let mut q = WatchQueue::new(String::from(token));
                q.watches = 1;
                self.watch_queues.push(q);
            }
        }
        Ok(())
    }

    /// `XS_UNWATCH`.
    #[doc(alias = "XS_UNWATCH")]
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        check_path(path)?;
        check_path(token)?;
        self.request(
            msg::XS_UNWATCH,
            TxId::NONE,
            &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
        )?;
        if let Some(i) = self.watch_queues.iter().position(|q| q.token == token) {
            let q = &mut self.watch_queues[i];
            q.watches = q.watches.saturating_sub(1);
            // Kept while its events wait, so that they count against it.
            if q.watches == 0 && q.queued == 0 {
                self.watch_queues.swap_remove(i);
            }
        }
        Ok(())
    }

    /// A queued watch event, after taking in whatever has arrived (a
    /// bounded number of messages). Never blocks. Events queued before
    /// the connection broke are still handed out, then its error.
    pub fn poll_watch_event(&mut self) -> Result<Option<WatchEvent>, XsError> {
        for _ in 0..MAX_MESSAGES_PER_POLL {
            if let Some(e) = self.pop_event() {
                return Ok(Some(e));
            }
            // No request is outstanding: a reply now is a stale one.
            if self.next_incoming()?.is_none() {
                break;
            }
        }
        Ok(self.pop_event())
    }

    /// A queued event of watch `token` only, after taking in whatever
    /// has arrived (a bounded number of messages). Never blocks. Events
    /// of other tokens stay queued for their owners: a driver polling its
    /// own watch must not eat another's (a second device's, a vchan's).
    pub fn poll_watch_event_for(&mut self, token: &str) -> Result<Option<WatchEvent>, XsError> {
        for _ in 0..MAX_MESSAGES_PER_POLL {
            if let Some(i) = self.position_of(token) {
                return Ok(self.take_event(i));
            }
            if self.next_incoming()?.is_none() {
                break;
            }
        }
        Ok(self.position_of(token).and_then(|i| self.take_event(i)))
    }

    /// Drops every queued event of watch `token` (after unwatching it, say:
    /// they would otherwise wait for a reader that is gone); returns how many.
    pub fn discard_watch_events(&mut self, token: &str) -> usize {
        let mut n = 0;
        while let Some(i) = self.position_of(token) {
            self.take_event(i);
            n += 1;
        }
        n
    }

    /// Where the first queued event of watch `token` is.
    fn position_of(&self, token: &str) -> Option<usize> {
        self.events
            .iter()
            .position(|q| !q.stray && q.event.token == token)
    }

    /// Waits up to `timeout_ns` for a watch event.
    pub fn wait_watch_event(&mut self, timeout_ns: u64) -> Result<WatchEvent, XsError> {
        let deadline = self.transport.now_ns().saturating_add(timeout_ns);
        loop {
            if let Some(e) = self.pop_event() {
                return Ok(e);
            }
            let waiting = self.next_incoming()?.is_none();
            if !self.events.is_empty() {
                continue;
            }
            let now = self.transport.now_ns();
            if now >= deadline {
                // A short wait may well end between two chunks of a healthy
                // message; one incomplete for a whole request timeout was
                // cut short.
                self.give_up_on_a_stalled_message(now, self.timeout_ns);
                return Err(XsError::Timeout);
            }
            if waiting {
                self.transport.wait(deadline)?;
            }
        }
    }

    /// Waits up to `timeout_ns` for node `path` to exist and returns its
    /// value: a watch on `path` wakes the wait when another domain writes
    /// it (no polling). Events for other tokens stay queued; the watch
    /// and its events are gone when this returns. A node we may not read
    /// (`EACCES`) counts as not there yet: its writer may still be
    /// setting its permissions.
    pub fn wait_for_node(&mut self, path: &str, timeout_ns: u64) -> Result<Vec<u8>, XsError> {
        // Some(value) is returned only for an existing node.
        self.wait_node_until(path, timeout_ns, |v| v.is_some())
            .map(Option::unwrap_or_default)
    }

    /// Waits up to `timeout_ns` until `done(value)` holds for node `path`
    /// (`None` while it does not exist or we may not read it), woken by a
    /// watch on it as [`wait_for_node`](Self::wait_for_node) is, and
    /// returns the value `done` accepted. A xenbus driver waits for its
    /// peer's `state` this way.
    pub fn wait_node_until(
        &mut self,
        path: &str,
        timeout_ns: u64,
        mut done: impl FnMut(Option<&[u8]>) -> bool,
    ) -> Result<Option<Vec<u8>>, XsError> {
        let deadline = self.transport.now_ns().saturating_add(timeout_ns);
        self.wait_seq = self.wait_seq.wrapping_add(1);
        let token = alloc::format!("xenpv-wait-for-node-{}", self.wait_seq);
        self.watch(path, &token)?;
        let result = loop {
            let value = match self.read(path) {
                Ok(v) => Some(v),
                Err(XsError::Errno(e)) if e == Errno::ENOENT || e == Errno::EACCES => None,
                Err(e) => break Err(e),
            };
            if done(value.as_deref()) {
                break Ok(value);
            }
            if let Err(e) = self.wait_token_event(&token, deadline) {
                break Err(e);
            }
        };
        let unwatched = self.unwatch(path, &token);
        self.discard_watch_events(&token);
        let value = result?;
        unwatched?;
        Ok(value)
    }

    /// [`wait_for_node`](Self::wait_for_node), as text.
    pub fn wait_for_string(&mut self, path: &str, timeout_ns: u64) -> Result<String, XsError> {
        let v = self.wait_for_node(path, timeout_ns)?;
        String::from_utf8(v).map_err(|_| Malformed::InvalidUtf8.into())
    }

    /// Waits until an event for `token` is queued (taking it), or the
    /// clock reaches `deadline`.
    fn wait_token_event(&mut self, token: &str, deadline: u64) -> Result<(), XsError> {
        loop {
            if let Some(i) = self.position_of(token) {
                self.take_event(i);
                return Ok(());
            }
            let waiting = self.next_incoming()?.is_none();
            let now = self.transport.now_ns();
            if now >= deadline {
                return Err(XsError::Timeout);
            }
            if waiting {
                self.transport.wait(deadline)?;
            }
        }
    }

    /// How many watch events are queued.
    pub fn queued_watch_events(&self) -> usize {
        self.events.len()
    }

    /// `XS_TRANSACTION_START`.
    #[doc(alias = "XS_TRANSACTION_START")]
    pub fn transaction_start(&mut self) -> Result<TxId, XsError> {
        let p = self.request(msg::XS_TRANSACTION_START, TxId::NONE, &[b"\0"])?;
        let id = wire::parse_u32(wire::parse_string(&p)?)?;
        Ok(TxId(id))
    }

    /// `XS_TRANSACTION_END`: commits (`T`) or aborts (`F`). A commit that
    /// conflicted with another writer fails with `Errno(EAGAIN)`.
    #[doc(alias = "XS_TRANSACTION_END")]
    pub fn transaction_end(&mut self, tx: TxId, commit: bool) -> Result<(), XsError> {
        let flag: &[u8] = if commit { b"T\0" } else { b"F\0" };
        self.request(msg::XS_TRANSACTION_END, tx, &[flag]).map(drop)
    }

    /// Runs `body` in a transaction and commits it, starting over while
    /// xenstored answers `EAGAIN` (a conflicting write happened), at most
    /// [`MAX_TRANSACTION_ATTEMPTS`] times. Any other error aborts.
    pub fn transaction<R>(
        &mut self,
        mut body: impl FnMut(&mut Transaction<'_, T>) -> Result<R, XsError>,
    ) -> Result<R, XsError> {
        for _ in 0..MAX_TRANSACTION_ATTEMPTS {
            let id = self.transaction_start()?;
            let result = body(&mut Transaction { client: self, id });
            match result {
                Ok(r) => match self.transaction_end(id, true) {
                    Ok(()) => return Ok(r),
                    Err(XsError::Errno(Errno::EAGAIN)) => continue,
                    Err(e) => return Err(e),
                },
                Err(e) => {
                    let _ = self.transaction_end(id, false);
                    if e != XsError::Errno(Errno::EAGAIN) {
                        return Err(e);
                    }
                }
            }
        }
        Err(XsError::Errno(Errno::EAGAIN))
    }

    /// `XS_GET_DOMAIN_PATH`: `/local/domain/<domid>`.
    #[doc(alias = "XS_GET_DOMAIN_PATH")]
    pub fn domain_path(&mut self, domid: DomId) -> Result<String, XsError> {
        let id = alloc::format!("{}", domid.0);
        let p = self.request(msg::XS_GET_DOMAIN_PATH, TxId::NONE, &[id.as_bytes(), b"\0"])?;
        Ok(String::from(wire::parse_string(&p)?))
    }

    /// Our own domid: the `domid` key of our home directory (a relative
    /// path resolves against `/local/domain/<own id>`).
    pub fn own_domid(&mut self) -> Result<DomId, XsError> {
        let v = self.read_string("domid")?;
        let id = wire::parse_u32(&v)?;
        u16::try_from(id)
            .map(DomId)
            .map_err(|_| Malformed::BadNumber.into())
    }

    /// Our own domain path, `/local/domain/<own id>`.
    pub fn own_domain_path(&mut self) -> Result<String, XsError> {
        let id = self.own_domid()?;
        self.domain_path(id)
    }
}

/// Operations inside one transaction (see [`Client::transaction`]).
pub struct Transaction<'c, T: Transport> {
    client: &'c mut Client<T>,
    id: TxId,
}

impl<T: Transport> core::fmt::Debug for Transaction<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transaction").field("id", &self.id).finish()
    }
}

impl<T: Transport> Transaction<'_, T> {
    /// This transaction's id.
    pub fn id(&self) -> TxId {
        self.id
    }
    /// `XS_READ` inside the transaction.
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, XsError> {
        self.client.read_in(self.id, path)
    }
    /// `XS_WRITE` inside the transaction.
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), XsError> {
        self.client.write_in(self.id, path, value)
    }
    /// `XS_MKDIR` inside the transaction.
    pub fn mkdir(&mut self, path: &str) -> Result<(), XsError> {
        self.client.mkdir_in(self.id, path)
    }
    /// `XS_RM` inside the transaction.
    pub fn rm(&mut self, path: &str) -> Result<(), XsError> {
        self.client.rm_in(self.id, path)
    }
    /// `XS_DIRECTORY` inside the transaction.
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, XsError> {
        self.client.directory_in(self.id, path)
    }
    /// `XS_SET_PERMS` inside the transaction.
    pub fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        self.client.set_perms_in(self.id, path, perms)
    }
}
