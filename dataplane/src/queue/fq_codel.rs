//! fq_codel.py's FqCoDel as one client of share.rs uses it (RFC 8290): FLOWS queues and a
//! fallback one for non-IP bytes, new and old lists served by deficit round robin with a
//! quantum of one MTU, CoDel at dequeue, drop from the fattest flow past the byte limit.
//!
//! Python keeps the flows in a dict, and dict order (creation order) breaks the fattest
//! flow's ties: each flow here carries the sequence number of its creation, the smallest
//! winning a tie, and a flow let go and made again is new, as a key deleted and re-added.

use std::collections::VecDeque;

use super::codel::{CoDel, CodelQueue, Params};
use super::{Entry, Host};

pub const FLOWS: usize = 1024;
pub const DROP_BATCH: i64 = 64;

pub struct Flow<T> {
    seq: u64,
    pub packets: VecDeque<Entry<T>>,
    pub bytes: i64,
    deficit: i64,
    listed: bool,
    codel: CoDel,
}

pub struct FqCoDel<T> {
    flows: Vec<Option<Box<Flow<T>>>>, // FLOWS + 1 slots, made at the first packet
    made: u64,
    new_flows: VecDeque<usize>,
    old_flows: VecDeque<usize>,
    quantum: i64,
    pub backlog: i64,
    pub packets: i64,
    pub drops: i64,
    pub overlimit: i64,
    pub marks: i64,
    pub sojourn: f64,
}

/// One flow of a client seen as codel.rs's queue: the client's totals move with it.
struct FlowQueue<'a, T, H> {
    fq: &'a mut FqCoDel<T>,
    index: usize,
    host: &'a mut H,
}

impl<'a, T, H: Host<T>> CodelQueue<T> for FlowQueue<'a, T, H> {
    type Error = H::Error;

    fn pop(&mut self) -> Option<Entry<T>> {
        let fq = &mut *self.fq;
        let flow = fq.flows[self.index].as_mut()?;
        let entry = flow.packets.pop_front()?;
        flow.bytes -= entry.size;
        fq.backlog -= entry.size;
        fq.packets -= 1;
        Some(entry)
    }

    fn backlog(&self) -> i64 {
        self.fq.backlog // the MTU check looks at all the client's flows
    }

    fn drop_entry(&mut self, _entry: Entry<T>) {
        self.fq.drops += 1;
    }

    fn mark(&mut self, entry: &Entry<T>) -> Result<Option<Entry<T>>, H::Error> {
        Ok(match self.host.mark(&entry.item)? {
            None => None,
            Some(item) => {
                self.fq.marks += 1;
                Some(Entry {
                    time: entry.time,
                    size: entry.size,
                    item,
                })
            }
        })
    }
}

impl<T> FqCoDel<T> {
    pub fn new(quantum: i64) -> Self {
        FqCoDel {
            flows: Vec::new(),
            made: 0,
            new_flows: VecDeque::new(),
            old_flows: VecDeque::new(),
            quantum,
            backlog: 0,
            packets: 0,
            drops: 0,
            overlimit: 0,
            marks: 0,
            sojourn: 0.0,
        }
    }

    /// Queue an item in flow `index` (0..=FLOWS, from flow_hash::classify).
    pub fn add(&mut self, index: usize, item: T, size: i64, now: f64) {
        if self.flows.is_empty() {
            self.flows.resize_with(FLOWS + 1, || None);
        }
        let index = index.min(FLOWS);
        let quantum = self.quantum;
        if self.flows[index].is_none() {
            self.made += 1;
            self.flows[index] = Some(Box::new(Flow {
                seq: self.made,
                packets: VecDeque::new(),
                bytes: 0,
                deficit: 0,
                listed: false,
                codel: CoDel::new(),
            }));
        }
        if let Some(flow) = self.flows[index].as_mut() {
            flow.packets.push_back(Entry {
                time: now,
                size,
                item,
            });
            flow.bytes += size;
            if !flow.listed {
                flow.listed = true;
                flow.deficit = quantum;
                self.new_flows.push_back(index);
            }
        }
        self.backlog += size;
        self.packets += 1;
    }

    /// The next packet to send at `now`, after CoDel's drops and marks (None: nothing held).
    pub fn dequeue<H: Host<T>>(
        &mut self,
        now: f64,
        p: &Params,
        host: &mut H,
    ) -> Result<Option<Entry<T>>, H::Error> {
        loop {
            let from_new = !self.new_flows.is_empty();
            let index = match if from_new {
                self.new_flows.front()
            } else {
                self.old_flows.front()
            } {
                Some(&i) => i,
                None => return Ok(None),
            };
            let mut state = match self.flows[index].as_mut() {
                Some(flow) if flow.deficit <= 0 => {
                    flow.deficit += self.quantum;
                    self.head(from_new).pop_front();
                    self.old_flows.push_back(index);
                    continue;
                }
                Some(flow) => flow.codel,
                None => {
                    self.head(from_new).pop_front(); // cannot happen: a listed flow is kept
                    continue;
                }
            };
            let got = state.dequeue(
                &mut FlowQueue {
                    fq: self,
                    index,
                    host,
                },
                now,
                p,
            );
            if let Some(flow) = self.flows[index].as_mut() {
                flow.codel = state;
            }
            match got? {
                None => {
                    self.head(from_new).pop_front();
                    if from_new && !self.old_flows.is_empty() {
                        self.old_flows.push_back(index);
                    } else if let Some(flow) = self.flows[index].as_mut() {
                        flow.listed = false;
                        if flow.codel.is_idle(now, p.interval) {
                            self.flows[index] = None;
                        }
                    }
                }
                Some(entry) => {
                    if let Some(flow) = self.flows[index].as_mut() {
                        flow.deficit -= entry.size;
                    }
                    self.sojourn = now - entry.time;
                    return Ok(Some(entry));
                }
            }
        }
    }

    fn head(&mut self, new: bool) -> &mut VecDeque<usize> {
        if new {
            &mut self.new_flows
        } else {
            &mut self.old_flows
        }
    }

    /// Drop from the head of the flow holding most bytes (the first made among equals): half
    /// its bytes or DROP_BATCH packets, whichever comes first. The packets dropped.
    pub fn drop_fattest(&mut self) -> i64 {
        if self.packets == 0 {
            return 0;
        }
        let mut fattest: Option<&mut Box<Flow<T>>> = None;
        for flow in self.flows.iter_mut().flatten() {
            let better = match &fattest {
                None => true,
                Some(f) => flow.bytes > f.bytes || (flow.bytes == f.bytes && flow.seq < f.seq),
            };
            if better {
                fattest = Some(flow);
            }
        }
        let flow = match fattest {
            Some(f) => f,
            None => return 0,
        };
        let threshold = flow.bytes >> 1;
        let (mut dropped, mut freed) = (0, 0);
        while dropped < DROP_BATCH {
            let size = match flow.packets.pop_front() {
                Some(e) => e.size,
                None => break,
            };
            dropped += 1;
            freed += size;
            if freed >= threshold {
                break;
            }
        }
        flow.bytes -= freed;
        self.backlog -= freed;
        self.packets -= dropped;
        self.drops += dropped;
        self.overlimit += dropped;
        dropped
    }

    /// Every queued item, for the garbage collector's traversal.
    pub fn items(&self) -> impl Iterator<Item = &T> {
        self.flows
            .iter()
            .flatten()
            .flat_map(|f| f.packets.iter().map(|e| &e.item))
    }
}
