//! One keypair's keys and replay window, shared between the `Session` Python holds and
//! the receive thread (rx.rs) that opens its datagrams: the window is behind a mutex,
//! so both consult one window, never two.

use std::sync::Mutex;

use chacha20poly1305::ChaCha20Poly1305;

use crate::replay::ReplayWindow;
use crate::transport::{self, Refusal};

pub struct Keys {
    pub send: ChaCha20Poly1305,
    pub recv: ChaCha20Poly1305,
    pub local_index: u32,
    pub remote_index: u32,
    pub window: Mutex<ReplayWindow>,
}

impl Keys {
    /// Open one datagram with this keypair's window (transport::open's checks).
    pub fn open(&self, limit: u64, data: &[u8]) -> Result<Vec<u8>, Refusal> {
        // a poisoned lock only means a panic elsewhere; the window itself is intact
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        transport::open(&self.recv, &mut window, self.local_index, limit, data)
    }
}
