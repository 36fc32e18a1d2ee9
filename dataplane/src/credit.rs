//! A provider's credit window for one client, as the threads see it (`Credit`): the bytes
//! the client may still be served before it is over its window, one signed counter that
//! both threads take each packet's length from. Python keeps it equal to node/core/
//! accounting.py's `window - owed` less what the threads passed and Python has not yet
//! charged (node/accounting_gate.py): it adds the difference whenever receipts, the
//! window or the Python path's own counting move that target.
//!
//! A packet passes while the counter is not negative (as `ClientCredit.allowed`: owed at
//! most the window, the packet counted after), so the window is overrun by at most one
//! packet per thread; a packet that finds it negative is held back (dropped, counted as
//! the accountant counts it, `credit_exhausted`) in the thread, as the Python path would:
//! a receipt reopens the gate at once (Python syncs it when the receipt is committed), so
//! nothing needs Python per packet, and an unpaid flood costs the node no Python work.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;

/// The drop reasons of a packet held back: the accountant's own, for a client with a
/// session and for one before its hello.
pub const HELD: &str = "credit_exhausted";
pub const NO_SESSION: &str = "credit_no_session";
/// The drop reason of a packet past a provider's `[share]` quota, whose one gate all the
/// node's packets take from (node/quota_gate.py keeps it at `limit - used - 1`, so it is
/// open while `used < limit`): the Python path's own.
pub const QUOTA: &str = "quota_exhausted";

/// The counter and its wake mark: a thread that takes it below the mark writes its
/// eventfd, so Python charges the bytes and invoices them at once, not a poll later (at
/// a gigabit a 4 MiB window lasts 33 ms, less than the 50 ms between polls).
pub struct Gate {
    pub left: AtomicI64,
    pub wake: AtomicI64,
    pub session: AtomicBool, // the client has a session: which reason a held packet counts
}

#[pyclass(module = "tidewire._dataplane")]
pub struct Credit {
    pub gate: Arc<Gate>,
}

#[pymethods]
impl Credit {
    #[new]
    fn new(left: i64) -> Self {
        let gate = Gate { left: AtomicI64::new(left), wake: AtomicI64::new(i64::MIN), session: AtomicBool::new(true) };
        Credit { gate: Arc::new(gate) }
    }

    /// Whether the client has a session now (a held packet is `credit_exhausted`) or
    /// not yet (`credit_no_session`), as the accountant counts it.
    fn set_session(&self, session: bool) {
        self.gate.session.store(session, Ordering::Relaxed);
    }

    /// Write the eventfd once a thread takes the counter below `mark` (none: i64::MIN).
    fn wake_below(&self, mark: i64) {
        self.gate.wake.store(mark, Ordering::Relaxed);
    }

    /// Move the counter by `delta` (a receipt, a larger window: up; Python's own count:
    /// down), whatever the threads took meanwhile.
    fn add(&self, delta: i64) {
        self.gate.left.fetch_add(delta, Ordering::Relaxed);
    }

    /// What is left now (negative: over the window).
    #[getter]
    fn left(&self) -> i64 {
        self.gate.left.load(Ordering::Relaxed)
    }
}

/// May a packet pass? Only reads: the length is taken (`take`) once it is sure to go.
pub fn open(gate: &Option<Arc<Gate>>) -> bool {
    gate.as_ref().map_or(true, |g| g.left.load(Ordering::Relaxed) >= 0)
}

/// The reason a packet held back at a closed gate is counted under.
pub fn held(gate: &Option<Arc<Gate>>) -> &'static str {
    match gate {
        Some(g) if !g.session.load(Ordering::Relaxed) => NO_SESSION,
        _ => HELD,
    }
}

/// Take `n` bytes; true if that crossed the wake mark (the thread writes its eventfd).
pub fn take(gate: &Option<Arc<Gate>>, n: usize) -> bool {
    match gate {
        None => false,
        Some(g) => {
            let n = n as i64;
            let before = g.left.fetch_sub(n, Ordering::Relaxed);
            let mark = g.wake.load(Ordering::Relaxed);
            before >= mark && before.saturating_sub(n) < mark
        }
    }
}
