//! share.py's Share: clients by deficit round robin (a quantum of one MTU, charged size plus
//! the per-packet overhead), FQ-CoDel within each client (fq_codel.rs), one pacer and a cap
//! bucket per client (shaper.rs), a byte limit across clients with drop-from-fattest.
//!
//! Python keeps the clients in a dict whose order (first seen, a forgotten key re-added
//! last) breaks the fattest client's ties and orders `client_stats`: each client carries the
//! sequence number of its creation. The Python class's inlined fast paths are the plain
//! FqCoDel.dequeue and CoDel.dequeue unrolled (tests/unit/test_queues_order.py), so this
//! follows the plain ones. Every counter is written before `deliver` or `mark` is called, so
//! an error from either leaves totals that add up: a packet whose mark failed counts as a drop
//! of the direction.

use std::collections::{HashMap, VecDeque};

use super::codel::Params;
use super::fq_codel::FqCoDel;
use super::shaper::{RateError, TokenBucket};
use super::{pymax, Host};

pub const LIMIT: i64 = 1 << 22;
/// share.py's BURST_TIME: the rate and each cap may catch up 20 ms of late wake-ups.
pub const BURST_TIME: f64 = 0.020;

pub struct Client<T> {
    pub key: Vec<u8>,
    seq: u64,
    pub fq: FqCoDel<T>,
    deficit: i64,
    active: bool,
    pub cap: Option<TokenBucket>,
    pub sent_bytes: i64,
    pub sent_packets: i64,
}

pub struct Config {
    pub rate: Option<f64>,
    pub overhead: i64,
    pub cap: Option<f64>,
    pub limit: i64,
    pub mtu: i64,
    pub quantum: i64,
    pub target: f64,
    pub interval: f64,
}

pub struct Share<T> {
    pub bucket: TokenBucket,
    pub overhead: i64,
    pub cap: Option<f64>,
    pub cap_int: bool, // the cap was a Python int (shaper.rs's int_rate)
    pub limit: i64,
    pub mtu: i64,
    pub quantum: i64,
    pub params: Params,
    index: HashMap<Vec<u8>, usize>,
    slots: Vec<Option<Client<T>>>,
    free: Vec<usize>,
    made: u64,
    active: VecDeque<usize>,
    throttled: Vec<usize>,
    pub backlog: i64,
    pub drops: i64,
    pub overlimit: i64,
    last_now: f64,
}

impl<T> Share<T> {
    pub fn new(c: Config) -> Result<Self, RateError> {
        Ok(Share {
            bucket: TokenBucket::new(c.rate, c.overhead, c.mtu, BURST_TIME)?,
            overhead: c.overhead,
            cap: c.cap,
            cap_int: false,
            limit: c.limit,
            mtu: c.mtu,
            quantum: c.quantum,
            params: Params {
                target: c.target,
                interval: c.interval,
                mtu: c.mtu,
            },
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            made: 0,
            active: VecDeque::new(),
            throttled: Vec::new(),
            backlog: 0,
            drops: 0,
            overlimit: 0,
            last_now: f64::NEG_INFINITY,
        })
    }

    fn cap_bucket(&self, rate: f64) -> Result<TokenBucket, RateError> {
        TokenBucket::new(Some(rate), self.overhead, self.mtu, BURST_TIME)
    }

    /// The slot of `key`'s client, made (with the direction's cap) if it is new.
    fn client(&mut self, key: &[u8]) -> Result<usize, RateError> {
        if let Some(&slot) = self.index.get(key) {
            return Ok(slot);
        }
        let cap = match self.cap {
            Some(rate) => {
                let mut bucket = self.cap_bucket(rate)?;
                bucket.int_rate = self.cap_int;
                Some(bucket)
            }
            None => None,
        };
        self.made += 1;
        let client = Client {
            key: key.to_vec(),
            seq: self.made,
            fq: FqCoDel::new(self.mtu),
            deficit: 0,
            active: false,
            cap,
            sent_bytes: 0,
            sent_packets: 0,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(client);
                slot
            }
            None => {
                self.slots.push(Some(client));
                self.slots.len() - 1
            }
        };
        self.index.insert(key.to_vec(), slot);
        Ok(slot)
    }

    fn at(&mut self, slot: usize) -> &mut Client<T> {
        match self.slots[slot].as_mut() {
            Some(c) => c,
            None => unreachable!("a listed slot holds its client"),
        }
    }

    /// The clients in the order Python's dict holds them.
    pub fn clients(&self) -> Vec<&Client<T>> {
        let mut all: Vec<&Client<T>> = self.slots.iter().flatten().collect();
        all.sort_by_key(|c| c.seq);
        all
    }

    pub fn set_rate(&mut self, rate: Option<f64>, now: f64) -> Result<(), RateError> {
        self.bucket.set_rate(rate, now)
    }

    pub fn set_cap(&mut self, key: &[u8], rate: Option<f64>, now: f64) -> Result<(), RateError> {
        let slot = self.client(key)?;
        let bucket = match rate {
            Some(r) if self.at(slot).cap.is_none() => Some(self.cap_bucket(r)?),
            _ => None,
        };
        let client = self.at(slot);
        match (rate, bucket) {
            (None, _) => client.cap = None,
            (Some(_), Some(b)) => client.cap = Some(b),
            (Some(r), None) => {
                if let Some(cap) = client.cap.as_mut() {
                    cap.set_rate(Some(r), now)?;
                }
            }
        }
        Ok(())
    }

    /// The cap bucket of `key`'s client, if it has one.
    pub fn cap_of(&mut self, key: &[u8]) -> Option<&mut TokenBucket> {
        let slot = *self.index.get(key)?;
        self.slots[slot].as_mut()?.cap.as_mut()
    }

    pub fn forget(&mut self, key: &[u8]) {
        let slot = match self.index.remove(key) {
            Some(slot) => slot,
            None => return,
        };
        if let Some(client) = self.slots[slot].take() {
            self.backlog -= client.fq.backlog;
            self.drops += client.fq.packets;
        }
        self.free.push(slot);
        if let Some(at) = self.active.iter().position(|&s| s == slot) {
            self.active.remove(at);
        }
        if let Some(at) = self.throttled.iter().position(|&s| s == slot) {
            self.throttled.remove(at);
        }
    }

    pub fn len(&self) -> i64 {
        self.slots.iter().flatten().map(|c| c.fq.packets).sum()
    }

    pub fn marks(&self) -> i64 {
        self.slots.iter().flatten().map(|c| c.fq.marks).sum()
    }

    /// Queue an item, or deliver it at once when nothing is queued and the buckets allow it.
    /// `classify` gives its flow index (flow_hash.rs) and is only called when it is queued.
    pub fn enqueue<H: Host<T>>(
        &mut self,
        item: T,
        key: &[u8],
        size: i64,
        now: f64,
        classify: impl FnOnce(&T) -> Result<usize, H::Error>,
        host: &mut H,
    ) -> Result<(), H::Error>
    where
        H::Error: From<RateError>,
    {
        let slot = self.client(key)?;
        let idle = self.active.is_empty();
        let (bucket, client) = match self.slots[slot].as_mut() {
            Some(c) => (&mut self.bucket, c),
            None => unreachable!("a listed slot holds its client"),
        };
        if idle && client.fq.packets == 0 {
            let cap_ready = match &client.cap {
                None => true,
                Some(cap) => now >= cap.next_at,
            };
            if (bucket.rate.is_none() || now >= bucket.next_at) && cap_ready {
                bucket.consume(size, now);
                if let Some(cap) = client.cap.as_mut() {
                    cap.consume(size, now);
                }
                client.fq.sojourn = 0.0;
                client.sent_bytes += size;
                client.sent_packets += 1;
                return host.deliver(item, now);
            }
        }
        let index = classify(&item)?;
        client.fq.add(index, item, size, now);
        let join = !client.active;
        if join {
            client.active = true;
            client.deficit = self.quantum;
        }
        self.last_now = now;
        self.backlog += size;
        if join {
            self.active.push_back(slot);
        }
        if self.backlog > self.limit {
            self.overflow();
        }
        Ok(())
    }

    fn overflow(&mut self) {
        while self.backlog > self.limit {
            let mut fattest: Option<&mut Client<T>> = None;
            for client in self.slots.iter_mut().flatten() {
                let better = match &fattest {
                    None => true,
                    Some(f) => {
                        client.fq.backlog > f.fq.backlog
                            || (client.fq.backlog == f.fq.backlog && client.seq < f.seq)
                    }
                };
                if better {
                    fattest = Some(client);
                }
            }
            let client = match fattest {
                Some(c) => c,
                None => return,
            };
            let before = client.fq.backlog;
            let dropped = client.fq.drop_fattest();
            self.backlog -= before - client.fq.backlog;
            self.drops += dropped;
            self.overlimit += dropped;
            if dropped == 0 {
                return; // only sizes of 0 or less could get here; Python would spin
            }
        }
    }

    fn wake(&mut self, now: f64) {
        let mut waiting = Vec::new();
        for slot in std::mem::take(&mut self.throttled) {
            let ready = match self.slots[slot].as_ref().and_then(|c| c.cap.as_ref()) {
                None => true,
                Some(cap) => now >= cap.next_at,
            };
            if ready {
                self.active.push_back(slot);
            } else {
                waiting.push(slot);
            }
        }
        self.throttled = waiting;
    }

    /// Deficit round robin until the pacer says wait or nothing is left (share.py's _drain).
    fn drain<H: Host<T>>(&mut self, now: f64, host: &mut H) -> Result<(), H::Error> {
        self.last_now = now;
        if !self.throttled.is_empty() {
            self.wake(now);
        }
        if self.active.is_empty() {
            return Ok(());
        }
        let start = now - self.bucket.slack;
        let per_byte = self.bucket.per_byte;
        let charge = self.bucket.per_packet_overhead;
        let (quantum, overhead) = (self.quantum, self.overhead);
        while let Some(&slot) = self.active.front() {
            if now < self.bucket.next_at {
                return Ok(());
            }
            let client = match self.slots[slot].as_mut() {
                Some(c) => c,
                None => unreachable!("a listed slot holds its client"),
            };
            if client.deficit <= 0 {
                client.deficit += quantum;
                self.active.rotate_left(1);
                continue;
            }
            if let Some(cap) = &client.cap {
                if now < cap.next_at {
                    self.active.pop_front();
                    self.throttled.push(slot);
                    continue;
                }
            }
            let (held, queued) = (client.fq.backlog, client.fq.packets);
            let got = client.fq.dequeue(now, &self.params, host);
            self.backlog -= held - client.fq.backlog;
            let entry = match got {
                Err(e) => {
                    self.drops += queued - client.fq.packets;
                    return Err(e);
                }
                Ok(None) => {
                    self.drops += queued - client.fq.packets;
                    self.active.pop_front();
                    client.active = false;
                    continue;
                }
                Ok(Some(entry)) => {
                    self.drops += queued - client.fq.packets - 1;
                    entry
                }
            };
            let size = entry.size;
            client.deficit -= size + overhead;
            let next_at = self.bucket.next_at;
            self.bucket.next_at =
                (if next_at > start { next_at } else { start }) + (size + charge) as f64 * per_byte;
            if let Some(cap) = client.cap.as_mut() {
                cap.consume(size, now);
            }
            client.sent_bytes += size;
            client.sent_packets += 1;
            let rotate = client.deficit <= 0;
            host.deliver(entry.item, now)?;
            if rotate && now >= self.bucket.next_at {
                // what the next round does first
                if let Some(c) = self.slots[slot].as_mut() {
                    c.deficit += quantum;
                }
                self.active.rotate_left(1);
            }
        }
        Ok(())
    }

    pub fn release<H: Host<T>>(&mut self, now: f64, host: &mut H) -> Result<(), H::Error> {
        if !self.active.is_empty() || !self.throttled.is_empty() {
            return self.drain(now, host);
        }
        Ok(())
    }

    /// share.py's get_timer; the wake-up is Python's `min` (the first of equals, NaN as it does).
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn get_timer(&self) -> Option<f64> {
        let paced = if self.bucket.rate.is_some() {
            self.bucket.next_at
        } else {
            f64::NEG_INFINITY
        };
        if !self.active.is_empty() {
            return Some(pymax(paced, self.last_now));
        }
        let mut wake: Option<f64> = None;
        for &slot in &self.throttled {
            let at = match self.slots[slot].as_ref().and_then(|c| c.cap.as_ref()) {
                Some(cap) => cap.next_at,
                None => f64::NEG_INFINITY, // its cap was lifted: due now
            };
            wake = Some(match wake {
                Some(w) if !(at < w) => w,
                _ => at,
            });
        }
        wake.map(|w| pymax(paced, w))
    }

    /// Every queued item, for the garbage collector's traversal.
    pub fn items(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten().flat_map(|c| c.fq.items())
    }

    /// Let every item go (the garbage collector's clear).
    pub fn clear(&mut self) {
        self.slots.clear();
        self.index.clear();
        self.free.clear();
        self.active.clear();
        self.throttled.clear();
        self.backlog = 0;
    }
}
