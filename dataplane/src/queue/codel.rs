//! codel.py's CoDel (RFC 8289, Linux's include/net/codel_impl.h): the state of one queue and
//! its dequeue. The queue is the caller's, behind `CodelQueue`, as in codel.py: `pop` the
//! head, `drop` a popped entry, `mark` one (None: it cannot be marked), `backlog` the bytes
//! the MTU check looks at.

use super::Entry;

pub const TARGET: f64 = 0.005;
pub const INTERVAL: f64 = 0.100;
pub const REENTRY_INTERVALS: f64 = 16.0;

pub trait CodelQueue<T> {
    type Error;
    fn pop(&mut self) -> Option<Entry<T>>;
    fn backlog(&self) -> i64;
    fn drop_entry(&mut self, entry: Entry<T>);
    fn mark(&mut self, entry: &Entry<T>) -> Result<Option<Entry<T>>, Self::Error>;
}

#[derive(Clone, Copy)]
pub struct CoDel {
    pub count: i64,
    pub lastcount: i64,
    pub dropping: bool,
    pub first_above_time: f64,
    pub drop_next: f64,
}

pub struct Params {
    pub target: f64,
    pub interval: f64,
    pub mtu: i64,
}

impl CoDel {
    pub fn new() -> Self {
        CoDel {
            count: 0,
            lastcount: 0,
            dropping: false,
            first_above_time: 0.0,
            drop_next: 0.0,
        }
    }

    pub fn is_idle(&self, now: f64, interval: f64) -> bool {
        !self.dropping
            && self.first_above_time == 0.0
            && now - self.drop_next >= REENTRY_INTERVALS * interval
    }

    fn should_drop<T>(
        &mut self,
        entry: Option<&Entry<T>>,
        backlog: i64,
        now: f64,
        p: &Params,
    ) -> bool {
        let entry = match entry {
            None => {
                self.first_above_time = 0.0;
                return false;
            }
            Some(e) => e,
        };
        let sojourn = now - entry.time;
        if sojourn < p.target || backlog <= p.mtu {
            self.first_above_time = 0.0;
            return false;
        }
        if self.first_above_time == 0.0 {
            self.first_above_time = now + p.interval;
            return false;
        }
        now > self.first_above_time
    }

    pub fn dequeue<T, Q: CodelQueue<T>>(
        &mut self,
        queue: &mut Q,
        now: f64,
        p: &Params,
    ) -> Result<Option<Entry<T>>, Q::Error> {
        let first = match queue.pop() {
            None => {
                self.dropping = false;
                return Ok(None);
            }
            Some(e) => e,
        };
        let drop = self.should_drop(Some(&first), queue.backlog(), now, p);
        let mut entry = Some(first);
        if self.dropping {
            if !drop {
                self.dropping = false; // sojourn below target: leave the dropping state
            } else {
                while self.dropping && now >= self.drop_next {
                    let current = match entry.take() {
                        Some(e) => e,
                        None => break, // dropping implies an entry: should_drop(None) is false
                    };
                    self.count += 1;
                    if let Some(marked) = queue.mark(&current)? {
                        self.drop_next += p.interval / (self.count as f64).sqrt();
                        return Ok(Some(marked));
                    }
                    queue.drop_entry(current);
                    entry = queue.pop();
                    if !self.should_drop(entry.as_ref(), queue.backlog(), now, p) {
                        self.dropping = false;
                    } else {
                        self.drop_next += p.interval / (self.count as f64).sqrt();
                    }
                }
            }
        } else if drop {
            if let Some(current) = entry.take() {
                match queue.mark(&current)? {
                    Some(marked) => entry = Some(marked),
                    None => {
                        queue.drop_entry(current);
                        entry = queue.pop();
                        self.should_drop(entry.as_ref(), queue.backlog(), now, p);
                    }
                }
            }
            self.dropping = true;
            let delta = self.count - self.lastcount;
            if delta > 1 && now - self.drop_next < REENTRY_INTERVALS * p.interval {
                self.count = delta;
            } else {
                self.count = 1;
            }
            self.lastcount = self.count;
            self.drop_next = now + p.interval / (self.count as f64).sqrt();
        }
        Ok(entry)
    }
}
