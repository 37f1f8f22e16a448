//! An in-memory xenstored for host tests: it serves the real store-ring
//! layout in a [`SharedMem`] page, so the client's ring code runs as it
//! does in a guest, and it can play a hostile or silent peer.

use super::ring::StoreRing;
use super::wire;
use super::{Transport, XsError};
use crate::abi::xenstore::{msg, ring, xsd_sockmsg, HEADER_SIZE, XENSTORE_RING_SIZE};
use crate::shared_mem::SharedMem;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

#[derive(Debug, Clone, Default)]
struct Node {
    value: Vec<u8>,
    perms: Vec<String>,
}

#[derive(Debug)]
struct Tx {
    nodes: BTreeMap<String, Node>,
    base_generation: u64,
    changed: Vec<String>,
}

/// The fake daemon's state and knobs.
#[derive(Debug)]
pub struct FakeXenstored {
    page: SharedMem<'static>,
    inbuf: Vec<u8>,
    out: VecDeque<u8>,
    /// The client's domid (relative paths resolve under its home).
    pub domid: u16,
    nodes: BTreeMap<String, Node>,
    watches: Vec<(String, String)>,
    /// Watch events to send after the current reply.
    deferred: Vec<(String, String)>,
    txs: BTreeMap<u32, Tx>,
    next_tx: u32,
    generation: u64,
    /// Fail this many commits with EAGAIN (a conflicting writer).
    pub fail_commits: u32,
    /// Commits answered so far.
    pub commits: u32,
    /// Before every reply, also send this watch event (path, token).
    pub event_before_reply: Option<(String, String)>,
    /// Never answer.
    pub silent: bool,
    /// Do not even take requests off the ring.
    pub stalled: bool,
    /// Answer the next requests with these raw bytes instead (hostile).
    pub raw_replies: VecDeque<Vec<u8>>,
    /// After this many more steps (client waits), write the node as
    /// another domain would: (steps, path, value).
    pub write_later: Option<(u32, String, Vec<u8>)>,
    /// Answer the next reads with these errors (`"EACCES"`, ...).
    pub read_errors: VecDeque<&'static str>,
    /// Answer the next directory listings with these errors.
    pub directory_errors: VecDeque<&'static str>,
    /// Another domain acting on every step (client wait), e.g. a split
    /// driver's backend answering the frontend's state changes.
    pub peer: Option<fn(&mut FakeXenstored)>,
    /// Headers of every request received.
    pub requests: Vec<xsd_sockmsg>,
    /// Every `XS_WRITE` the client sent, in order: (tx_id, path, value).
    pub writes: Vec<(u32, String, Vec<u8>)>,
    /// Cut the next reply to this many bytes, header included, and never
    /// send the rest (a buggy or hostile daemon).
    pub truncate_next_reply: Option<usize>,
    /// A message sent over and over, as fast as the client reads, up to
    /// `flood_left` copies (a hostile daemon, or a storm of watch events).
    pub flood: Option<Vec<u8>>,
    /// How many more copies of `flood` to send.
    pub flood_left: u64,
    /// How many copies of `flood` were queued for the client so far.
    pub flooded: u64,
    /// The store this daemon shares with others ([`SharedStore`]): it,
    /// our member number, and how much of its log we applied.
    shared: Option<(Arc<spin::Mutex<SharedStore>>, usize, usize)>,
}

/// One store seen by several domains, each through its own ring and
/// [`FakeXenstored`] ([`FakeXenstored::join`]): what one daemon's client
/// (or test) changes, the others apply at their next step, firing their
/// clients' watches, as xenstored does for every domain. Two ends of a
/// split driver in two threads talk through it.
#[derive(Debug, Default)]
pub struct SharedStore {
    /// (who changed it, path, value after: `None` when removed).
    log: Vec<(usize, String, Option<Vec<u8>>)>,
    members: usize,
}

impl SharedStore {
    /// An empty shared store.
    pub fn new() -> Arc<spin::Mutex<SharedStore>> {
        Arc::new(spin::Mutex::new(SharedStore::default()))
    }
}

impl FakeXenstored {
    /// A daemon serving `page` for domain `domid`, with its home directory
    /// holding `name` and `domid`.
    pub fn new(page: SharedMem<'static>, domid: u16, name: &str) -> Self {
        let mut s = FakeXenstored {
            page,
            inbuf: Vec::new(),
            out: VecDeque::new(),
            domid,
            nodes: BTreeMap::new(),
            watches: Vec::new(),
            deferred: Vec::new(),
            txs: BTreeMap::new(),
            next_tx: 1,
            generation: 0,
            fail_commits: 0,
            commits: 0,
            event_before_reply: None,
            silent: false,
            stalled: false,
            raw_replies: VecDeque::new(),
            write_later: None,
            read_errors: VecDeque::new(),
            directory_errors: VecDeque::new(),
            peer: None,
            requests: Vec::new(),
            writes: Vec::new(),
            truncate_next_reply: None,
            flood: None,
            flood_left: 0,
            flooded: 0,
            shared: None,
        };
        let home = s.home();
        s.nodes.insert("/".into(), Node::default());
        let d = domid.to_string();
        s.set(&home, b"");
        s.set(&alloc::format!("{home}/name"), name.as_bytes());
        s.set(&alloc::format!("{home}/domid"), d.as_bytes());
        s
    }

    fn home(&self) -> String {
        alloc::format!("/local/domain/{}", self.domid)
    }

    fn canon(&self, p: &str) -> String {
        if p.starts_with('/') {
            p.trim_end_matches('/').to_string().max("/".to_string())
        } else {
            alloc::format!("{}/{}", self.home(), p.trim_end_matches('/'))
        }
    }

    /// Writes a node directly, as another domain (dom0's xenstore-write)
    /// would, firing watches.
    pub fn external_write(&mut self, path: &str, value: &[u8]) {
        let p = self.canon(path);
        self.set(&p, value);
        self.share(&p);
        self.generation += 1;
        self.fire(&p);
        self.send_deferred();
        self.flush();
    }

    /// Removes a node and everything below it, as another domain would
    /// (a toolstack tearing a device down), firing watches.
    pub fn external_rm(&mut self, path: &str) {
        let p = self.canon(path);
        self.remove_tree(&p);
        self.share(&p);
        self.generation += 1;
        self.fire_removed(&p);
        self.send_deferred();
        self.flush();
    }

    fn remove_tree(&mut self, p: &str) {
        let prefix = alloc::format!("{p}/");
        self.nodes.retain(|k, _| k != p && !k.starts_with(&prefix));
    }

    /// Fires the watches on a removed node and below it.
    fn fire_removed(&mut self, p: &str) {
        let prefix = alloc::format!("{p}/");
        self.fire(p);
        // xenstored also fires the watches below a removed node.
        let below: Vec<(String, String)> = self
            .watches
            .iter()
            .filter(|(w, _)| w.starts_with(&prefix))
            .cloned()
            .collect();
        self.deferred.extend(below);
    }

    /// Joins `store`: from the next step on, this daemon applies what the
    /// store's other members change (all of it so far included) and
    /// shares what its client changes.
    pub fn join(&mut self, store: &Arc<spin::Mutex<SharedStore>>) {
        let me = {
            let mut s = store.lock();
            s.members += 1;
            s.members
        };
        self.shared = Some((store.clone(), me, 0));
        // What was here before joining is everyone's.
        let paths: Vec<String> = self.nodes.keys().cloned().collect();
        for p in paths {
            self.share(&p);
        }
    }

    /// Logs node `p` as it is now, for the other members.
    fn share(&mut self, p: &str) {
        if let Some((store, me, seen)) = &mut self.shared {
            let value = self.nodes.get(p).map(|n| n.value.clone());
            let mut s = store.lock();
            s.log.push((*me, p.to_string(), value));
            // Our own entries need no applying.
            if *seen + 1 == s.log.len() {
                *seen += 1;
            }
        }
    }

    /// Applies the other members' changes since the last step.
    fn apply_shared(&mut self) {
        let Some((store, me, seen)) = &mut self.shared else {
            return;
        };
        let news: Vec<(String, Option<Vec<u8>>)> = {
            let s = store.lock();
            let n = s.log[*seen..]
                .iter()
                .filter(|(who, _, _)| who != me)
                .map(|(_, p, v)| (p.clone(), v.clone()))
                .collect();
            *seen = s.log.len();
            n
        };
        for (p, v) in news {
            match v {
                Some(v) => {
                    self.set(&p, &v);
                    self.generation += 1;
                    self.fire(&p);
                }
                None => {
                    self.remove_tree(&p);
                    self.generation += 1;
                    self.fire_removed(&p);
                }
            }
        }
        self.send_deferred();
        self.flush();
    }

    /// The watches the client has set: (path, token).
    pub fn watches(&self) -> &[(String, String)] {
        &self.watches
    }

    /// Sends `bytes` unasked, as they are (hostile or broken output).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.out.extend(bytes);
        self.flush();
    }

    /// Keeps the response ring full of `flood` copies while any are left,
    /// as a daemon on another CPU would.
    pub fn top_up(&mut self) {
        // Without a flood, output moves only in `step` (as before).
        let Some(m) = &self.flood else { return };
        while self.flood_left > 0 && self.out.len() < XENSTORE_RING_SIZE {
            self.out.extend(m.iter().copied());
            self.flood_left -= 1;
            self.flooded += 1;
        }
        self.flush();
    }

    fn send_deferred(&mut self) {
        for (path, token) in core::mem::take(&mut self.deferred) {
            let payload = [path.as_bytes(), b"\0", token.as_bytes(), b"\0"].concat();
            self.push(msg::XS_WATCH_EVENT, 0, 0, &payload);
        }
    }

    /// The value of a node, if it exists.
    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        self.nodes.get(&self.canon(path)).map(|n| n.value.clone())
    }

    fn set(&mut self, p: &str, value: &[u8]) {
        set_in(&mut self.nodes, p, value, self.domid);
    }

    fn fire(&mut self, changed: &str) {
        let hits: Vec<(String, String)> = self
            .watches
            .iter()
            .filter(|(w, _)| {
                changed == w || changed.starts_with(&alloc::format!("{w}/")) || w == "/"
            })
            .cloned()
            .collect();
        for (_, token) in hits {
            self.deferred.push((changed.to_string(), token));
        }
    }

    fn push(&mut self, ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
        let h = wire::encode_header(&xsd_sockmsg {
            type_: ty,
            req_id,
            tx_id,
            len: payload.len() as u32,
        });
        self.out.extend(h);
        self.out.extend(payload);
    }

    /// Consumes requests from the ring, answers complete ones, and moves
    /// as much output into the response ring as fits.
    pub fn step(&mut self) {
        self.apply_shared();
        if let Some(peer) = self.peer {
            peer(self);
        }
        if let Some((steps, path, value)) = self.write_later.take() {
            match steps {
                0 => self.external_write(&path, &value),
                n => self.write_later = Some((n - 1, path, value)),
            }
        }
        if self.stalled {
            return;
        }
        let cons = self
            .page
            .load_u32(ring::REQ_CONS, Ordering::Relaxed)
            .unwrap();
        let prod = self
            .page
            .load_u32(ring::REQ_PROD, Ordering::Acquire)
            .unwrap();
        let mut c = cons;
        while c != prod {
            let mut b = [0u8];
            self.page
                .read(ring::REQ + (c as usize % XENSTORE_RING_SIZE), &mut b)
                .unwrap();
            self.inbuf.push(b[0]);
            c = c.wrapping_add(1);
        }
        self.page
            .store_u32(ring::REQ_CONS, c, Ordering::Release)
            .unwrap();
        while self.inbuf.len() >= HEADER_SIZE {
            let h = wire::decode_header(self.inbuf[..HEADER_SIZE].try_into().unwrap())
                .expect("client sent a bad header");
            let total = HEADER_SIZE + h.len as usize;
            if self.inbuf.len() < total {
                break;
            }
            let payload: Vec<u8> = self.inbuf.drain(..total).skip(HEADER_SIZE).collect();
            self.requests.push(h);
            if self.silent {
                continue;
            }
            if let Some(raw) = self.raw_replies.pop_front() {
                self.out.extend(raw);
                continue;
            }
            if let Some((path, token)) = self.event_before_reply.clone() {
                let payload = [path.as_bytes(), b"\0", token.as_bytes(), b"\0"].concat();
                self.push(msg::XS_WATCH_EVENT, 0, 0, &payload);
            }
            let (ty, reply) = match self.handle(&h, &payload) {
                Ok(r) => (h.type_, r),
                Err(name) => (msg::XS_ERROR, [name.as_bytes(), b"\0"].concat()),
            };
            let start = self.out.len();
            self.push(ty, h.req_id, h.tx_id, &reply);
            if let Some(n) = self.truncate_next_reply.take() {
                self.out.truncate(start + n);
            }
            self.send_deferred();
        }
        self.flush();
    }

    fn flush(&mut self) {
        let cons = self
            .page
            .load_u32(ring::RSP_CONS, Ordering::Acquire)
            .unwrap();
        let mut prod = self
            .page
            .load_u32(ring::RSP_PROD, Ordering::Relaxed)
            .unwrap();
        while prod.wrapping_sub(cons) < XENSTORE_RING_SIZE as u32 {
            let Some(b) = self.out.pop_front() else { break };
            self.page
                .write(ring::RSP + (prod as usize % XENSTORE_RING_SIZE), &[b])
                .unwrap();
            prod = prod.wrapping_add(1);
        }
        self.page
            .store_u32(ring::RSP_PROD, prod, Ordering::Release)
            .unwrap();
    }

    fn handle(&mut self, h: &xsd_sockmsg, payload: &[u8]) -> Result<Vec<u8>, &'static str> {
        let strings: Vec<&str> = payload
            .split(|&b| b == 0)
            .map(|s| core::str::from_utf8(s).unwrap_or(""))
            .collect();
        let arg0 = strings.first().copied().unwrap_or("");
        let ok = b"OK\0".to_vec();
        let tx = h.tx_id;
        if tx != 0 && !self.txs.contains_key(&tx) && h.type_ != msg::XS_TRANSACTION_START {
            return Err("ENOENT");
        }
        match h.type_ {
            msg::XS_READ => {
                if let Some(name) = self.read_errors.pop_front() {
                    return Err(name);
                }
                let p = self.canon(arg0);
                self.view(tx)
                    .get(&p)
                    .map(|n| n.value.clone())
                    .ok_or("ENOENT")
            }
            msg::XS_WRITE => {
                let split = payload.iter().position(|&b| b == 0).ok_or("EINVAL")?;
                let p = self.canon(arg0);
                let value = payload[split + 1..].to_vec();
                self.writes.push((tx, p.clone(), value.clone()));
                self.modify(tx, &p, |nodes, d| set_in(nodes, &p, &value, d));
                Ok(ok)
            }
            msg::XS_MKDIR => {
                let p = self.canon(arg0);
                if !self.view(tx).contains_key(&p) {
                    self.modify(tx, &p, |nodes, d| set_in(nodes, &p, b"", d));
                }
                Ok(ok)
            }
            msg::XS_RM => {
                let p = self.canon(arg0);
                if !self.view(tx).contains_key(&p) {
                    return Err("ENOENT");
                }
                self.modify(tx, &p, |nodes, _| {
                    let prefix = alloc::format!("{p}/");
                    nodes.retain(|k, _| k != &p && !k.starts_with(&prefix));
                });
                Ok(ok)
            }
            msg::XS_DIRECTORY => {
                if let Some(name) = self.directory_errors.pop_front() {
                    return Err(name);
                }
                let p = self.canon(arg0);
                let view = self.view(tx);
                if !view.contains_key(&p) {
                    return Err("ENOENT");
                }
                let prefix = if p == "/" {
                    p.clone()
                } else {
                    alloc::format!("{p}/")
                };
                let mut out = Vec::new();
                for k in view.keys() {
                    if let Some(rest) = k.strip_prefix(&prefix) {
                        if !rest.is_empty() && !rest.contains('/') {
                            out.extend_from_slice(rest.as_bytes());
                            out.push(0);
                        }
                    }
                }
                Ok(out)
            }
            msg::XS_GET_PERMS => {
                let p = self.canon(arg0);
                let n = self.view(tx).get(&p).ok_or("ENOENT")?;
                Ok(n.perms.iter().flat_map(|s| s.bytes().chain([0])).collect())
            }
            msg::XS_SET_PERMS => {
                let p = self.canon(arg0);
                let perms: Vec<String> = strings[1..]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| s.to_string())
                    .collect();
                if perms.is_empty() || perms.iter().any(|s| wire::parse_perm(s).is_err()) {
                    return Err("EINVAL");
                }
                if !self.view(tx).contains_key(&p) {
                    return Err("ENOENT");
                }
                self.modify(tx, &p, |nodes, _| {
                    if let Some(n) = nodes.get_mut(&p) {
                        n.perms = perms;
                    }
                });
                Ok(ok)
            }
            msg::XS_WATCH => {
                let token = strings.get(1).copied().unwrap_or("");
                let p = self.canon(arg0);
                self.watches.push((p, token.to_string()));
                // The protocol fires every new watch once, after the reply.
                self.deferred.push((arg0.to_string(), token.to_string()));
                Ok(ok)
            }
            msg::XS_UNWATCH => {
                let token = strings.get(1).copied().unwrap_or("");
                let p = self.canon(arg0);
                let before = self.watches.len();
                self.watches.retain(|(w, t)| !(w == &p && t == token));
                if self.watches.len() == before {
                    return Err("ENOENT");
                }
                Ok(ok)
            }
            msg::XS_TRANSACTION_START => {
                let id = self.next_tx;
                self.next_tx += 1;
                self.txs.insert(
                    id,
                    Tx {
                        nodes: self.nodes.clone(),
                        base_generation: self.generation,
                        changed: Vec::new(),
                    },
                );
                Ok(alloc::format!("{id}\0").into_bytes())
            }
            msg::XS_TRANSACTION_END => {
                let t = self.txs.remove(&tx).ok_or("ENOENT")?;
                if arg0 != "T" {
                    return Ok(ok);
                }
                self.commits += 1;
                if self.fail_commits > 0 || t.base_generation != self.generation {
                    self.fail_commits = self.fail_commits.saturating_sub(1);
                    return Err("EAGAIN");
                }
                self.nodes = t.nodes;
                self.generation += 1;
                for p in t.changed {
                    self.share(&p);
                    self.fire(&p);
                }
                Ok(ok)
            }
            msg::XS_GET_DOMAIN_PATH => Ok(alloc::format!("/local/domain/{arg0}\0").into_bytes()),
            _ => Err("EINVAL"),
        }
    }

    fn view(&self, tx: u32) -> &BTreeMap<String, Node> {
        match self.txs.get(&tx) {
            Some(t) => &t.nodes,
            None => &self.nodes,
        }
    }

    fn modify(&mut self, tx: u32, path: &str, f: impl FnOnce(&mut BTreeMap<String, Node>, u16)) {
        let d = self.domid;
        match self.txs.get_mut(&tx) {
            Some(t) => {
                f(&mut t.nodes, d);
                t.changed.push(path.to_string());
            }
            None => {
                f(&mut self.nodes, d);
                self.generation += 1;
                self.share(path);
                self.fire(path);
            }
        }
    }
}

fn set_in(nodes: &mut BTreeMap<String, Node>, p: &str, value: &[u8], domid: u16) {
    // Create missing parents, as xenstored does.
    let mut at = 0;
    while let Some(i) = p[at + 1..].find('/') {
        let parent = &p[..at + 1 + i];
        nodes.entry(parent.to_string()).or_insert_with(|| Node {
            value: Vec::new(),
            perms: alloc::vec![alloc::format!("n{domid}")],
        });
        at += 1 + i;
    }
    let n = nodes.entry(p.to_string()).or_insert_with(|| Node {
        value: Vec::new(),
        perms: alloc::vec![alloc::format!("n{domid}")],
    });
    n.value = value.to_vec();
}

/// A [`Transport`] whose peer is a [`FakeXenstored`] on a shared page.
/// Its clock advances 1 ms per wait (and `ns_per_recv` per read of the
/// ring), so timeouts are deterministic.
#[derive(Debug)]
pub struct FakeTransport {
    ring: StoreRing<'static>,
    /// The daemon.
    pub server: FakeXenstored,
    clock: u64,
    /// How many times the client waited.
    pub waits: u64,
    /// Clock advance per `recv` (0: reading is free): time passes even
    /// for a client that never has to wait (a flooding daemon).
    pub ns_per_recv: u64,
}

impl FakeTransport {
    /// A fresh page, a daemon for `domid`/`name`, and the client's ring.
    pub fn new(domid: u16, name: &str) -> Self {
        let page = SharedMem::leak_zeroed(4096);
        FakeTransport {
            ring: StoreRing::new(page).unwrap(),
            server: FakeXenstored::new(page, domid, name),
            clock: 0,
            waits: 0,
            ns_per_recv: 0,
        }
    }

    /// The shared page (to corrupt it from a test).
    pub fn page(&self) -> SharedMem<'static> {
        self.server.page
    }
}

impl Transport for FakeTransport {
    fn send(&mut self, bytes: &[u8]) -> Result<usize, XsError> {
        Ok(self.ring.write_request(bytes)?)
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        self.clock += self.ns_per_recv;
        self.server.top_up();
        Ok(self.ring.read_response(buf)?)
    }
    fn now_ns(&self) -> u64 {
        self.clock
    }
    fn wait(&mut self, _deadline_ns: u64) -> Result<(), XsError> {
        self.waits += 1;
        self.clock += 1_000_000;
        self.server.step();
        Ok(())
    }
}
