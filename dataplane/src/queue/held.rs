//! The provider's queue as the native threads hold it (issue 17, `[share]` in the
//! threads): share.rs's `Share` over packets the thread owns (`Held`), behind a mutex
//! Python takes only for settings and counters, on the queue's own clock.
//!
//! The send thread enqueues after its carry check and seals what the queue lets go
//! (tx.rs); the receive thread enqueues after the credit take and writes what is let go
//! to the TUN (rx.rs): the order of DataPath.outbound and .inbound. Each thread's poll
//! waits at most `timeout_ms`, and a `release` follows each wake-up.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::flow_hash;
use super::share::Share;
use super::shaper::RateError;
use super::Host;
use crate::ecn;

/// An inner packet in the queue, with the thread's id of the peer it goes to or came from;
/// `python`: queued by the Python path (a stream skin's peer, a hand-back), which sends it
/// itself when the send thread lets it go (the receive thread writes either to the TUN).
pub struct Held {
    pub peer: u32,
    pub packet: Vec<u8>,
    pub python: bool,
}

/// CE marks by ecn.rs, deliveries to `F` (the thread's sealing or its TUN batch).
struct Deliver<F: FnMut(Held)>(F);

impl<F: FnMut(Held)> Host<Held> for Deliver<F> {
    type Error = RateError;

    fn mark(&mut self, item: &Held) -> Result<Option<Held>, RateError> {
        Ok(ecn::mark_ce(&item.packet).map(|packet| Held { peer: item.peer, packet, python: item.python }))
    }

    fn deliver(&mut self, item: Held, _now: f64) -> Result<(), RateError> {
        (self.0)(item);
        Ok(())
    }
}

pub struct ThreadQueue {
    core: Mutex<Share<Held>>,
    seed: i64, // hash(seed), as share_bindings.rs computes it for the flow hash
    epoch: Instant,
}

impl ThreadQueue {
    pub fn new(core: Share<Held>, seed: i64) -> Self {
        ThreadQueue { core: Mutex::new(core), seed, epoch: Instant::now() }
    }

    /// Seconds on the queue's clock: monotonic, from its making. Python's `now` (Trio's
    /// clock, with its random offset) is another clock, so its verbs will not take it.
    pub fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// The queue, for settings and counters (a poisoned lock still holds a sound queue:
    /// every verb keeps its totals consistent before it calls out).
    pub fn lock(&self) -> MutexGuard<'_, Share<Held>> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `item` for client `key` (charged `size` bytes) at `at`, or deliver it at once
    /// if nothing waits and the pacer allows; false if the queue refused it (a cap that
    /// cannot make a bucket), which the caller counts as a drop.
    pub fn enqueue_at(&self, item: Held, key: &[u8], size: i64, at: f64, deliver: impl FnMut(Held)) -> bool {
        let seed = self.seed;
        let classify = |h: &Held| -> Result<usize, RateError> { Ok(flow_hash::classify(&h.packet, seed)) };
        self.lock().enqueue(item, key, size, at, classify, &mut Deliver(deliver)).is_ok()
    }

    pub fn enqueue(&self, item: Held, key: &[u8], size: i64, deliver: impl FnMut(Held)) -> bool {
        self.enqueue_at(item, key, size, self.now(), deliver)
    }

    /// Let go what the pacer allows at `at`.
    pub fn release_at(&self, at: f64, deliver: impl FnMut(Held)) {
        // the host never fails: the only error is a cap bucket, made at enqueue
        let _ = self.lock().release(at, &mut Deliver(deliver));
    }

    pub fn release(&self, deliver: impl FnMut(Held)) {
        self.release_at(self.now(), deliver)
    }

    /// Milliseconds until the queue wants a `release` at `at`, at most `cap` (rounded up:
    /// an early wake-up would find nothing to let go and wait again).
    pub fn timeout_ms_at(&self, at: f64, cap: i32) -> i32 {
        match self.lock().get_timer() {
            None => cap,
            Some(t) if t <= at => 0,
            Some(t) => ((t - at) * 1000.0).ceil().min(f64::from(cap)) as i32,
        }
    }

    pub fn timeout_ms(&self, cap: i32) -> i32 {
        self.timeout_ms_at(self.now(), cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::codel;
    use crate::queue::share::{Config, LIMIT};

    fn queue(rate: Option<f64>) -> ThreadQueue {
        let config = Config {
            rate,
            overhead: 0,
            cap: None,
            limit: LIMIT,
            mtu: 1500,
            quantum: 1500,
            target: codel::TARGET,
            interval: codel::INTERVAL,
        };
        ThreadQueue::new(Share::new(config).unwrap(), 7)
    }

    fn udp(n: usize, port: u8) -> Held {
        let mut p = vec![0u8; n];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        p[9] = 17;
        p[12..20].copy_from_slice(&[10, 0, 0, 2, 10, 0, 0, 1]);
        p[21] = port;
        Held { peer: 3, packet: p, python: false }
    }

    #[test]
    fn unpaced_packets_go_at_once_and_the_timer_is_idle() {
        let q = queue(None);
        let mut out = Vec::new();
        assert!(q.enqueue_at(udp(100, 1), b"k", 100, 1.0, |h| out.push(h.packet.len())));
        assert_eq!(out, vec![100]);
        assert_eq!(q.timeout_ms_at(1.0, 100), 100);
    }

    #[test]
    fn the_pacer_holds_packets_until_their_time_and_the_timeout_says_when() {
        let q = queue(Some(100_000.0)); // 100 kB/s: a 1000-byte packet every 10 ms
        let mut out: Vec<usize> = Vec::new();
        for i in 0..10 {
            q.enqueue_at(udp(1000, i), b"k", 1000, 1.0, |h| out.push(h.packet.len()));
        }
        let first = out.len();
        assert!((1..10).contains(&first), "a burst goes, the rest waits: {first}");
        let wait = q.timeout_ms_at(1.0, 100); // 10 ms, rounded up past the float's error
        assert!((1..=11).contains(&wait), "{wait}");
        q.release_at(1.0, |h| out.push(h.packet.len()));
        assert_eq!(out.len(), first, "nothing is due yet");
        q.release_at(1.0 + (f64::from(wait) + 0.5) / 1000.0, |h| out.push(h.packet.len()));
        assert_eq!(out.len(), first + 1);
        // the rest, on the pacer's timer (one late release lets out at most the burst),
        // before any has waited CoDel's 100 ms interval
        q.release_at(1.05, |h| out.push(h.packet.len()));
        q.release_at(1.08, |h| out.push(h.packet.len()));
        assert_eq!(out.len(), 10);
        assert_eq!(q.timeout_ms_at(1.08, 100), 100);
        let core = q.lock();
        assert_eq!((core.backlog, core.drops), (0, 0));
    }

    #[test]
    fn deliveries_keep_the_peer_and_the_bytes() {
        let q = queue(Some(1e9));
        let mut got = Vec::new();
        let item = udp(60, 9);
        let bytes = item.packet.clone();
        q.enqueue_at(item, b"k", 60, 5.0, |h| got.push((h.peer, h.packet)));
        q.release_at(6.0, |h| got.push((h.peer, h.packet)));
        assert_eq!(got, vec![(3, bytes)]);
    }
}
