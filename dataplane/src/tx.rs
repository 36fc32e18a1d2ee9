//! The send thread's work (issue 17): the packets of a TUN read (TSO super-packets cut
//! by offload.rs) routed by destination in the prefix table Python installs, sealed with
//! the peer's current keypair (its send counter taken from the one shared counter,
//! keys.rs) and queued for the peer's endpoint, where tx_thread.rs sends them with UDP
//! GSO. Handed back to Python (its `DataPath.outbound` takes them from the start): a
//! peer with no installed sender (no session yet: Python stages and starts the
//! handshake), a packet larger than the path carries (the ICMP "too big"), TCP SYNs (the
//! MSS clamp), fragments, extension headers and anything malformed, an aged keypair or
//! one at REKEY_AFTER_MESSAGES. Counted: a provider's client's packet while the client is
//! over its credit window (`credit_exhausted`, credit.rs), and any packet past a
//! provider's quota (`quota_exhausted`, the same kind of gate for all). The outer ECN field copies the inner one (RFC 6040
//! section 4.1, ecn.rs): each datagram keeps it, and tx_thread.rs sends it as the TOS.
//! Counted here: no route (`tun_no_route`), TUN frames offload.rs refuses (its reason).
//! A peer on a masked path has its listener's skin: each sealed datagram is masked and
//! padded in place (mask.rs) and goes out on the masked transport's socket.
//! With `[share]` queues (`share`, queue/held.rs), a packet that passed the carry check
//! is queued under its client's key and sealed when the queue lets it go (the order of
//! DataPath.outbound and `_send_packet`: the credit gate and the send counter after the
//! queue, so a provider charges only what left); one whose sender went meanwhile goes
//! back to Python as `no_session`. Packets the Python path queued (ThreadShare's
//! `enqueue_packet`: a stream skin's peer, a hand-back) are handed back when they leave,
//! by peer id, for Python to send (`shaped`).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::credit;
use crate::ecn;
use crate::inner::TCP;
use crate::keys::Keys;
use crate::mask::{self, Rng, Skin};
use crate::offload;
use crate::prefix::Prefixes;
use crate::queue::held::{Held, ThreadQueue};
use crate::transport;
use crate::worker::{self, Counts};

pub const HANDBACK_LIMIT: usize = 4096;
pub const VNET_HDR_LEN: usize = 10;

pub struct Sender {
    pub keys: Arc<Keys>,
    pub endpoint: SocketAddr,
    pub deadline: Instant,
    pub carry: usize, // the largest inner packet the peer's path carries
    pub credit: Option<Arc<credit::Gate>>, // a provider's client: its credit window (credit.rs)
    pub skin: Option<Arc<Skin>>,           // on a masked path: its listener's mask and padding
    pub key: Vec<u8>,                      // the peer's public key: its client in the queue
}

/// What a peer's sessions sent since Python last looked (it swaps them to 0).
#[derive(Default)]
pub struct TxStats {
    pub packets: AtomicU64,
    pub wire_bytes: AtomicU64,
    pub inner_bytes: AtomicU64,
}

pub struct TxTables {
    pub senders: HashMap<u32, Sender>, // by peer id
    pub routes: Prefixes,
    pub stats: HashMap<u32, Arc<TxStats>>,
    pub share: Option<Arc<ThreadQueue>>, // the [share] queue before sealing, when it shapes
    pub quota: Option<Arc<credit::Gate>>, // a provider's [share] quota: every packet's gate
}

pub struct TxShared {
    pub tables: RwLock<TxTables>,
    pub limit: u64, // REKEY_AFTER_MESSAGES: from there on Python seals (and rekeys)
    pub mtu: Option<usize>,
    pub drops: Counts,
    pub events: Counts, // not drops: TUN super-packets cut
    pub handed_back: Counts,
    pub queue: Mutex<VecDeque<(Vec<u8>, &'static str)>>,
    pub shaped: Mutex<VecDeque<(u32, Vec<u8>)>>, // what the queue let go for Python to send
    pub stop: Arc<AtomicBool>,
}

/// One wake-up's results. The sealed datagrams lie one after another in `sealed` (a
/// GSO run is one slice of it, sent without a copy); `out` says where each lies, where
/// it goes, its outer ECN field and whether it goes on the masked transport.
#[derive(Default)]
pub struct TxBatch {
    pub sealed: Vec<u8>,
    pub out: Vec<Out>,
    pub rng: Option<Rng>, // the padding's, made on the first masked datagram
    pub handback: Vec<(Vec<u8>, &'static str)>,
    pub drops: HashMap<&'static str, u64>,
    pub super_packets: u64,
    pub wake: bool, // a client's gate crossed its wake mark: Python charges and invoices
    pub shaped: Vec<(u32, Vec<u8>)>, // the Python path's packets the queue let go, by peer id
}

pub struct Out {
    pub to: SocketAddr,
    pub range: Range<usize>,
    pub ecn: u8,
    pub masked: bool,
}

impl TxBatch {
    pub fn drop(&mut self, reason: &'static str, n: u64) {
        *self.drops.entry(reason).or_insert(0) += n;
    }

    /// The sealed datagrams with their endpoints and outer ECN fields, in order.
    pub fn datagrams(&self) -> impl ExactSizeIterator<Item = (SocketAddr, &[u8], u8)> {
        self.out.iter().map(move |o| (o.to, &self.sealed[o.range.clone()], o.ecn))
    }
}

fn be(bytes: &[u8]) -> u128 {
    bytes.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
}

/// (IP version, destination, length) of a packet the thread may seal, or why not.
fn classify(p: &[u8]) -> Result<(u8, u128, usize), &'static str> {
    let n = p.len();
    if n < 20 {
        return Err("inner");
    }
    match p[0] >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 0x0F) * 4;
            let total = usize::from(p[2]) << 8 | usize::from(p[3]);
            if ihl < 20 || total < ihl || total > n {
                return Err("inner");
            }
            if p[6] & 0x3F != 0 || p[7] != 0 {
                return Err("fragment");
            }
            if p[9] == TCP && (total < ihl + 20 || p[ihl + 13] & 2 != 0) {
                return Err("syn");
            }
            Ok((4, be(&p[16..20]), total))
        }
        6 => {
            if n < 40 {
                return Err("inner");
            }
            let total = 40 + (usize::from(p[4]) << 8 | usize::from(p[5]));
            if total > n {
                return Err("inner");
            }
            let proto = p[6];
            if proto != TCP && proto != 17 && proto != 58 {
                return Err("extension");
            }
            if proto == TCP && (total < 60 || p[53] & 2 != 0) {
                return Err("syn");
            }
            Ok((6, be(&p[24..40]), total))
        }
        _ => Err("inner"),
    }
}

impl TxShared {
    pub fn new(limit: u64, mtu: Option<usize>, stop: Arc<AtomicBool>) -> Self {
        TxShared {
            tables: RwLock::new(TxTables {
                senders: HashMap::new(),
                routes: Prefixes::new(),
                stats: HashMap::new(),
                share: None,
                quota: None,
            }),
            limit,
            mtu,
            drops: Mutex::new(HashMap::new()),
            events: Mutex::new(HashMap::new()),
            handed_back: Mutex::new(HashMap::new()),
            queue: Mutex::new(VecDeque::new()),
            shaped: Mutex::new(VecDeque::new()),
            stop,
        }
    }

    /// One TUN read: with `vnet`, a virtio-net header first (with `tso`, possibly a
    /// super-packet or an unfinished checksum, cut by offload.rs).
    pub fn handle_frame(&self, tables: &TxTables, frame: &[u8], vnet: bool, tso: bool, now: Instant, batch: &mut TxBatch) {
        if !vnet {
            return self.handle_packet(tables, frame, now, batch);
        }
        if !tso {
            return self.handle_packet(tables, frame.get(VNET_HDR_LEN..).unwrap_or(&[]), now, batch);
        }
        match offload::split_each(frame, |p| self.handle_packet(tables, p, now, batch)) {
            Ok(count) => batch.super_packets += u64::from(count > 1),
            Err(reason) => batch.drop(reason, 1),
        }
    }

    pub fn handle_packet(&self, tables: &TxTables, p: &[u8], now: Instant, batch: &mut TxBatch) {
        let (version, dst, length) = match classify(p) {
            Ok(c) => c,
            Err(reason) => return batch.handback.push((p.to_vec(), reason)),
        };
        let peer = if version == 4 { tables.routes.v4.lookup(dst) } else { tables.routes.v6.lookup(dst) };
        let peer = match peer {
            Some(peer) => peer,
            None => return batch.drop("tun_no_route", 1),
        };
        let sender = match tables.senders.get(&peer) {
            Some(s) => s,
            None => return batch.handback.push((p.to_vec(), "no_session")),
        };
        if length > sender.carry {
            return batch.handback.push((p.to_vec(), "too_big"));
        }
        match &tables.share {
            None => self.seal(tables, peer, sender, p, now, batch),
            Some(queue) => {
                let held = Held { peer, packet: p.to_vec(), python: false };
                let deliver = |h: Held| self.seal_held(tables, h, now, batch);
                if !queue.enqueue(held, &sender.key, p.len() as i64, deliver) {
                    batch.drop("share_refused", 1);
                }
            }
        }
    }

    /// A packet the queue let go: sealed for its peer's sender, if it still has one.
    fn seal_held(&self, tables: &TxTables, held: Held, now: Instant, batch: &mut TxBatch) {
        if held.python {
            return batch.shaped.push((held.peer, held.packet)); // the Python path's to send
        }
        match tables.senders.get(&held.peer) {
            Some(sender) => self.seal(tables, held.peer, sender, &held.packet, now, batch),
            None => batch.handback.push((held.packet, "no_session")),
        }
    }

    /// What the queue lets go now, sealed into `batch`.
    pub fn release(&self, tables: &TxTables, now: Instant, batch: &mut TxBatch) {
        if let Some(queue) = &tables.share {
            queue.release(|h| self.seal_held(tables, h, now, batch));
        }
    }

    /// How long the thread may wait for the TUN: `cap`, or less when the queue holds a
    /// packet for later.
    pub fn wait_ms(&self, cap: i32) -> i32 {
        let tables = self.tables.read().unwrap_or_else(|e| e.into_inner());
        tables.share.as_ref().map_or(cap, |q| q.timeout_ms(cap))
    }

    fn seal(&self, tables: &TxTables, peer: u32, sender: &Sender, p: &[u8], now: Instant, batch: &mut TxBatch) {
        if now >= sender.deadline {
            return batch.handback.push((p.to_vec(), "aged"));
        }
        if !credit::open(&tables.quota) {
            return batch.drop(credit::QUOTA, 1); // first, as DataPath._send_packet
        }
        if !credit::open(&sender.credit) {
            return batch.drop(credit::held(&sender.credit), 1); // over its window: held back
        }
        let counter = sender.keys.take_counters(1);
        if counter >= self.limit {
            return batch.handback.push((p.to_vec(), "rekey"));
        }
        let start = batch.sealed.len();
        let (keys, mtu) = (&sender.keys, self.mtu);
        transport::seal_into(&keys.send, keys.remote_index, counter, p, mtu, &mut batch.sealed);
        let wire = batch.sealed.len() - start; // the link's datagram, before any padding
        if let Some(skin) = &sender.skin {
            let rng = batch.rng.get_or_insert_with(Rng::new);
            mask::wrap_into(skin, rng, &mut batch.sealed, start);
        }
        let end = batch.sealed.len();
        batch.wake |= credit::take(&sender.credit, p.len());
        credit::take(&tables.quota, p.len());
        if let Some(s) = tables.stats.get(&peer) {
            s.packets.fetch_add(1, Ordering::Relaxed);
            s.wire_bytes.fetch_add(wire as u64, Ordering::Relaxed);
            s.inner_bytes.fetch_add(p.len() as u64, Ordering::Relaxed);
        }
        let ecn = ecn::ecn_of(p).unwrap_or(ecn::NOT_ECT);
        batch.out.push(Out { to: sender.endpoint, range: start..end, ecn, masked: sender.skin.is_some() });
    }

    /// Merge drops, events and hand-backs; true if Python has something to read (or a
    /// gate crossed its wake mark).
    pub fn publish(&self, batch: &mut TxBatch) -> bool {
        let wake = std::mem::take(&mut batch.wake);
        worker::merge(&self.drops, &mut batch.drops);
        if batch.super_packets > 0 {
            let n = std::mem::take(&mut batch.super_packets);
            worker::merge(&self.events, &mut HashMap::from([("tun_super_packets", n)]));
        }
        let shaped = worker::enqueue(&self.shaped, &self.handed_back, &mut batch.shaped, |_| "shaped", HANDBACK_LIMIT);
        worker::enqueue(&self.queue, &self.handed_back, &mut batch.handback, |h| h.1, HANDBACK_LIMIT) | wake | shaped
    }
}
