//! One keypair's keys and replay window, shared between the `Session` Python holds and
//! the threads (rx.rs, tx.rs): the window is behind a mutex, so both consult one window,
//! never two; the send counter is atomic, so both draw from one counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;


use crate::cipher::Cipher;
use crate::replay::ReplayWindow;
use crate::transport::{self, Refusal};

pub struct Keys {
    pub send: Cipher,
    pub recv: Cipher,
    pub local_index: u32,
    pub remote_index: u32,
    pub window: Mutex<ReplayWindow>,
    /// the next send counter: the send thread (tx.rs) and Python's sealing both take
    /// theirs from here, so no counter is ever used twice
    pub send_counter: AtomicU64,
}

impl Keys {
    /// Take `n` consecutive send counters; the first of them.
    pub fn take_counters(&self, n: u64) -> u64 {
        self.send_counter.fetch_add(n, Ordering::Relaxed)
    }

    /// Open one datagram with this keypair's window (transport::open's checks).
    pub fn open(&self, limit: u64, data: &[u8]) -> Result<Vec<u8>, Refusal> {
        // a poisoned lock only means a panic elsewhere; the window itself is intact
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        transport::open(&self.recv, &mut window, self.local_index, limit, data)
    }

    /// Open one datagram in place (transport::open_in_place): the text's length.
    pub fn open_in_place(&self, limit: u64, data: &mut [u8]) -> Result<usize, Refusal> {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        transport::open_in_place(&self.recv, &mut window, self.local_index, limit, data)
    }
}
