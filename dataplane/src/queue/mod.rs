//! The provider's queue in native code: node/core/queues/share.py's `Share`, operation for
//! operation, so the Python class stays the reference and differential tests hold the two to
//! the same deliveries at the same times (tests/unit/test_share_native.py).
//!
//!     shaper.rs     the pacer and the per-client caps (shaper.py's TokenBucket)
//!     codel.rs      CoDel's state machine of one flow (codel.py, RFC 8289)
//!     fq_codel.rs   one client's flows: FQ-CoDel (fq_codel.py, RFC 8290)
//!     flow_hash.rs  the classifier and CPython's tuple hash of its integers
//!     share.rs      clients by deficit round robin, the byte limit, the pacer
//!     held.rs       share.rs over packets the native threads own (tx.rs, rx.rs)
//!
//! CE marking is the crate's ecn.rs (the receive thread's RFC 6040 decapsulation uses it too).
//! Items are whatever the caller queues (Py<PyAny> in share_bindings.rs); the queue reaches
//! them through `Host`, which marks and delivers them, so the core knows nothing of Python.
//! Floating-point expressions follow the Python ones in the same order (`pymax` is Python's
//! `max(a, b)`: `a` unless `b > a`), so times match to the bit.

pub mod codel;
pub mod flow_hash;
pub mod fq_codel;
pub mod held;
pub mod shaper;
pub mod share;

/// (enqueue time, size in bytes, item): codel.py's Entry.
pub struct Entry<T> {
    pub time: f64,
    pub size: i64,
    pub item: T,
}

/// What the queue asks of its owner: an item CE-marked (None: it cannot be, so CoDel drops
/// it) and an item delivered. Errors propagate to the caller of the queue's verb.
pub trait Host<T> {
    type Error;
    fn mark(&mut self, item: &T) -> Result<Option<T>, Self::Error>;
    fn deliver(&mut self, item: T, now: f64) -> Result<(), Self::Error>;
}

/// Python's `max(a, b)` on floats: `a` unless `b > a` (so NaN and ties behave the same).
pub fn pymax(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}
