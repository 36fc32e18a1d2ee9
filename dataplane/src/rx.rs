//! The receive thread's work (issue 17): the datagrams of a UDP read (one sender, a GRO
//! buffer cut at its segment size) opened for established sessions and written to the
//! TUN, with no Python on the way. Python installs the sessions (receiver index ->
//! keys, the peer's id and its current endpoint, how long the keypair may still be
//! used) and the prefix table; whatever this does not finish goes back to Python in
//! the hand-back queue with its reason, and Python's path takes it from the start
//! (`Raw`: not opened) or after authentication (`Opened`).
//!
//! Handed back unopened: handshake messages and anything not a transport message, an
//! index with no installed session (a new keypair Python has not installed yet), a
//! datagram from another endpoint than the installed one (roaming and path choice stay
//! Python's), an aged keypair. Handed back opened: keepalives (the link counts them),
//! and what inner.rs names. Counted here: replayed and forged datagrams (the link's own
//! reasons), inner sources outside the peer's allowed IPs, what an exit's policy refuses
//! (policy.rs, `exit_<reason>` as the Python path), a provider's client's packets while
//! it is over its credit window (credit.rs, the accountant's `credit_exhausted`), any
//! packet past a provider's quota (`quota_exhausted`, one such gate for all), and
//! outer CE on a Not-ECT packet (RFC 6040's decapsulation, ecn.rs, is done here in
//! place, so a CE-marked datagram keeps its place in its flow); the per-peer counters
//! the link's timers and accounting need (PeerStats) are polled by Python.
//!
//! The masked transport's sockets are read here too (mask.rs): a datagram from an
//! address with a registered listener key is unmasked under it, else under the node's
//! own key if it listens; what unmasks to a transport datagram goes on as one from
//! plain UDP would, for sessions installed on a masked path, a handshake wrapper goes
//! back as it came (`Via::Wire`: the Python skin's), and the rest (decoys, garbage) is
//! dropped, counted as the skin's opener counts it.
//!
//! With a `[share]` queue (`share`, queue/held.rs), what passed the credit gate is queued
//! under its client's key (DataPath.inbound's order) and written to the TUN when the
//! queue lets it go.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::credit;
use crate::ecn::{self, Decap};
use crate::inner::{classify, Inner};
use crate::keys::Keys;
use crate::mask::{Mask, Unmasked};
use crate::policy::Policy;
use crate::prefix::Prefixes;
use crate::queue::held::{Held, ThreadQueue};
use crate::transport::{Refusal, HEADER_SIZE, TAG_SIZE};
use crate::worker::{self, Counts};

pub const HANDBACK_LIMIT: usize = 4096; // items waiting for Python; more are dropped, counted
pub const TUN_BATCH: usize = 128; // inner packets coalesced per TUN write batch

pub struct Entry {
    pub keys: Arc<Keys>,
    pub peer: u32,
    pub endpoint: SocketAddr,
    pub deadline: Instant,
    pub credit: Option<Arc<credit::Gate>>, // a provider's client: its credit window (credit.rs)
    pub masked: bool,                      // its path is the masked transport's
    pub key: Vec<u8>,                      // the peer's public key: its client in the queue
}

/// Which transport a datagram came on, and whether it is still in its wire form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Udp,
    Masked, // unmasked to a link datagram
    Wire,   // from a masked socket, not unmasked here: for the Python skin
    Refused(&'static str), // from a masked socket, nothing under any key: dropped, counted
}

impl Via {
    pub fn transport(self) -> &'static str {
        if self == Via::Udp { "udp" } else { "masked" }
    }
}

/// What a peer's sessions received since Python last looked (it swaps them to 0).
#[derive(Default)]
pub struct PeerStats {
    pub packets: AtomicU64,     // authenticated datagrams (the link's timers, rx bytes)
    pub data: AtomicU64,        // of them, with inner data (the keepalive timer)
    pub wire_bytes: AtomicU64,  // their length on the wire (the peer's rx_bytes)
    pub inner_bytes: AtomicU64, // inner bytes written to the TUN (accounting)
}

pub struct Tables {
    pub entries: HashMap<u32, Entry>, // by our receiver index
    pub routes: Prefixes,
    pub stats: HashMap<u32, Arc<PeerStats>>, // by peer id
    pub policy: Option<Policy>,              // an exit's: where its clients may go
    pub masks: HashMap<SocketAddr, Arc<Mask>>, // the listener key at each address we dial
    pub own_mask: Option<Arc<Mask>>,           // ours, when we listen on masked://
    pub share: Option<Arc<ThreadQueue>>,       // the [share] queue before the TUN, when it shapes
    pub quota: Option<Arc<credit::Gate>>,      // a provider's [share] quota: every packet's gate
}

pub enum Handback {
    Raw { data: Vec<u8>, from: SocketAddr, via: Via, ecn: u8, reason: &'static str },
    Opened { index: u32, data: Vec<u8>, plain: Vec<u8>, from: SocketAddr, via: Via, ecn: u8, reason: &'static str },
}

pub struct Shared {
    pub tables: RwLock<Tables>,
    pub overlay: [u8; 16],
    pub limit: u64, // REJECT_AFTER_MESSAGES
    pub drops: Counts,
    pub events: Counts, // not drops: inner ECN fields the outer one changed
    pub handed_back: Counts,
    pub queue: Mutex<VecDeque<Handback>>,
    pub stop: Arc<AtomicBool>,
}

/// One wake-up's results, merged into `Shared` once. The datagrams are opened in
/// place in `arena`, one after another, so nothing is allocated per datagram; `tun`
/// holds where each inner packet for the TUN lies in it.
#[derive(Default)]
pub struct Batch {
    pub arena: Vec<u8>,
    pub tun: Vec<Range<usize>>,
    pub handback: Vec<Handback>,
    pub drops: HashMap<&'static str, u64>,
    pub ecn_applied: u64,
    pub wake: bool, // a client's gate crossed its wake mark: Python charges and invoices
}

impl Batch {
    pub fn drop(&mut self, reason: &'static str) {
        *self.drops.entry(reason).or_insert(0) += 1;
    }

    /// The inner packets for the TUN, in order.
    pub fn packets(&self) -> Vec<&[u8]> {
        self.tun.iter().map(|r| &self.arena[r.clone()]).collect()
    }

    /// An inner packet for the TUN, copied to the end of the arena.
    pub fn push_tun(&mut self, packet: &[u8]) {
        let start = self.arena.len();
        self.arena.extend_from_slice(packet);
        self.tun.push(start..start + packet.len());
    }

    /// Forget the TUN packets once written (the arena keeps its capacity).
    pub fn clear_tun(&mut self) {
        self.arena.clear();
        self.tun.clear();
    }
}

fn raw(batch: &mut Batch, d: &[u8], from: SocketAddr, via: Via, ecn: u8, reason: &'static str) {
    batch.handback.push(Handback::Raw { data: d.to_vec(), from, via, ecn, reason });
}

/// A masked socket's datagram `d` unmasked in place, as the skin's opener tries the
/// keys: the listener's at `from`, then our own if we listen. The bytes to handle and
/// how they came: the link datagram (`Via::Masked`), all of `d` as it was for the skin
/// (`Via::Wire`: a handshake wrapper's type under a key), or nothing under any key
/// (`Via::Refused`, with the reason the opener would count: a decoy's type under the key
/// it checks, our own if we listen, else the listener's).
pub fn unmask<'a>(tables: &Tables, d: &'a mut [u8], from: SocketAddr) -> (&'a [u8], Via) {
    let listener = tables.masks.get(&from);
    let own = tables.own_mask.as_ref();
    for mask in listener.into_iter().chain(own) {
        match mask.unwrap(d) {
            Unmasked::Transport(n) => return (&d[..n], Via::Masked),
            Unmasked::Handshake => return (d, Via::Wire), // its wrapper may authenticate there
            Unmasked::Nothing => {}
        }
    }
    let decoy = own.or(listener).map_or(false, |m| m.is_decoy(d));
    (d, Via::Refused(if decoy { "masked_decoys" } else { "masked_unwrap_failed" }))
}

/// One read cut into its datagrams (at the GRO segment size), a masked socket's unmasked.
pub fn cut<'a>(tables: &Tables, data: &'a mut [u8], size: usize, masked: bool, from: SocketAddr) -> Vec<(&'a [u8], Via)> {
    if data.is_empty() {
        return vec![if masked { unmask(tables, data, from) } else { (data, Via::Udp) }];
    }
    if !masked {
        return data.chunks(size).map(|d| (d, Via::Udp)).collect();
    }
    data.chunks_mut(size).map(|d| unmask(tables, d, from)).collect()
}

impl Shared {
    pub fn new(overlay: [u8; 16], limit: u64, stop: Arc<AtomicBool>) -> Self {
        Shared {
            tables: RwLock::new(Tables {
                entries: HashMap::new(),
                routes: Prefixes::new(),
                stats: HashMap::new(),
                policy: None,
                masks: HashMap::new(),
                own_mask: None,
                share: None,
                quota: None,
            }),
            overlay,
            limit,
            drops: Mutex::new(HashMap::new()),
            events: Mutex::new(HashMap::new()),
            handed_back: Mutex::new(HashMap::new()),
            queue: Mutex::new(VecDeque::new()),
            stop,
        }
    }

    /// The datagrams of one read from `from`, each with how it came, with the outer
    /// ECN field.
    pub fn handle(
        &self,
        tables: &Tables,
        datagrams: &[(&[u8], Via)],
        from: SocketAddr,
        ecn: u8,
        now: Instant,
        batch: &mut Batch,
    ) {
        for &(d, via) in datagrams {
            match via {
                Via::Wire => raw(batch, d, from, via, ecn, "masked"),
                Via::Refused(reason) => batch.drop(reason),
                _ => self.handle_one(tables, d, from, via, ecn, now, batch),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_one(
        &self,
        tables: &Tables,
        d: &[u8],
        from: SocketAddr,
        via: Via,
        ecn: u8,
        now: Instant,
        batch: &mut Batch,
    ) {
        if d.len() < HEADER_SIZE + TAG_SIZE || d[..4] != [4, 0, 0, 0] {
            let reason = if (1..=3).contains(&d.first().copied().unwrap_or(0)) {
                "handshake"
            } else {
                "not_transport"
            };
            return raw(batch, d, from, via, ecn, reason);
        }
        let index = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
        let entry = match tables.entries.get(&index) {
            Some(e) => e,
            None => return raw(batch, d, from, via, ecn, "unknown_index"),
        };
        if entry.endpoint != from || entry.masked != (via == Via::Masked) {
            return raw(batch, d, from, via, ecn, "endpoint");
        }
        if now >= entry.deadline {
            return raw(batch, d, from, via, ecn, "aged");
        }
        // opened in place in the arena: the datagram itself stays whole for a hand-back
        let start = batch.arena.len();
        batch.arena.extend_from_slice(d);
        let n = match entry.keys.open_in_place(self.limit, &mut batch.arena[start..]) {
            Ok(n) => n,
            Err(refusal) => {
                batch.arena.truncate(start);
                return match refusal {
                    Refusal::Expired => raw(batch, d, from, via, ecn, "expired"),
                    r => batch.drop(r.reason()),
                };
            }
        };
        let text = start + HEADER_SIZE..start + HEADER_SIZE + n;
        let opened = |batch: &mut Batch, reason: &'static str| {
            let plain = batch.arena[text.clone()].to_vec();
            batch.arena.truncate(start);
            let data = d.to_vec();
            batch.handback.push(Handback::Opened { index, data, plain, from, via, ecn, reason });
        };
        if n == 0 {
            return opened(batch, "keepalive");
        }
        let (version, src, dst, proto, dport, length) = match classify(&batch.arena[text.clone()], &self.overlay) {
            Inner::Deliver { version, src, dst, proto, dport, length } => (version, src, dst, proto, dport, length),
            Inner::Python(reason) => return opened(batch, reason),
        };
        let stats = tables.stats.get(&entry.peer);
        if let Some(s) = stats {
            s.packets.fetch_add(1, Ordering::Relaxed);
            s.data.fetch_add(1, Ordering::Relaxed);
            s.wire_bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
        }
        let owner = if version == 4 { tables.routes.v4.lookup(src) } else { tables.routes.v6.lookup(src) };
        if owner != Some(entry.peer) {
            batch.arena.truncate(start);
            return batch.drop("inner_source_not_allowed");
        }
        if let Some(reason) = tables.policy.as_ref().and_then(|p| p.check(version, dst, proto, dport)) {
            batch.arena.truncate(start);
            return batch.drop(reason);
        }
        if ecn & ecn::ECT_1 != 0 {
            // ECT(1) or CE outside: RFC 6040 section 4.2 may change the packet (before the
            // gates, as DataPath.inbound)
            match ecn::decapsulate(ecn, &mut batch.arena[text.start..text.start + length]) {
                Decap::Unchanged => {}
                Decap::Changed => batch.ecn_applied += 1,
                Decap::Drop => {
                    batch.arena.truncate(start);
                    return batch.drop("ecn_ce_not_ect");
                }
            }
        }
        if !credit::open(&tables.quota) {
            batch.arena.truncate(start); // before the credit gate, as DataPath.inbound
            return batch.drop(credit::QUOTA);
        }
        if !credit::open(&entry.credit) {
            batch.arena.truncate(start); // over its window: held back, as the Python path
            return batch.drop(credit::held(&entry.credit));
        }
        batch.wake |= credit::take(&entry.credit, length);
        credit::take(&tables.quota, length);
        if let Some(s) = stats {
            s.inner_bytes.fetch_add(length as u64, Ordering::Relaxed);
        }
        let queue = match &tables.share {
            Some(queue) => queue,
            None => {
                batch.arena.truncate(text.start + length);
                return batch.tun.push(text.start..text.start + length);
            }
        };
        let packet = batch.arena[text.start..text.start + length].to_vec();
        batch.arena.truncate(start);
        let held = Held { peer: entry.peer, packet, python: false };
        if !queue.enqueue(held, &entry.key, length as i64, |h| batch.push_tun(&h.packet)) {
            batch.drop("share_refused");
        }
    }

    /// What the queue lets go now, for the TUN.
    pub fn release(&self, batch: &mut Batch) {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        if let Some(queue) = &tables.share {
            queue.release(|h| batch.push_tun(&h.packet));
        }
    }

    /// How long the thread may wait for the sockets: `cap`, or less when the queue holds
    /// a packet for later.
    pub fn wait_ms(&self, cap: i32) -> i32 {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        tables.share.as_ref().map_or(cap, |q| q.timeout_ms(cap))
    }

    /// Merge a wake-up's drops and hand-backs; true if Python has something to read
    /// (or a gate crossed its wake mark).
    pub fn publish(&self, batch: &mut Batch) -> bool {
        let wake = std::mem::take(&mut batch.wake);
        worker::merge(&self.drops, &mut batch.drops);
        if batch.ecn_applied > 0 {
            let n = std::mem::take(&mut batch.ecn_applied);
            worker::merge(&self.events, &mut HashMap::from([("ecn_outer_applied", n)]));
        }
        let reason = |item: &Handback| match item {
            Handback::Raw { reason, .. } | Handback::Opened { reason, .. } => *reason,
        };
        worker::enqueue(&self.queue, &self.handed_back, &mut batch.handback, reason, HANDBACK_LIMIT) | wake
    }
}
