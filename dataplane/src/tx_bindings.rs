//! `Outbound`, the send thread as Python drives it (node/dataplane_loop.py): made over
//! the TUN and the UDP sockets, started and stopped, a sender per peer (its current
//! keypair's session, endpoint, time left and the largest inner packet its path
//! carries) and the prefix table installed, the hand-back queue taken through an
//! eventfd, the counters polled. `handle` runs the per-read work without I/O for tests.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::credit::Credit;
use crate::mask::{Padding, Skin};
use crate::prefix::Prefixes;
use crate::share_thread_bindings::ThreadShare;
use crate::tx::{Sender, TxBatch, TxShared, TxStats};
use crate::tx_thread::{self, TxIo};
use crate::worker::{self, Worker};
use crate::Session;

#[pyclass(module = "tidewire._dataplane")]
pub struct Outbound {
    shared: Arc<TxShared>,
    io: Option<TxIo>,
    worker: Worker,
}

pub fn prefixes(routes: Vec<(u8, Vec<u8>, u32, u32)>) -> PyResult<Prefixes> {
    let mut table = Prefixes::new();
    for (version, net, length, peer) in routes {
        let net: [u8; 16] =
            net.as_slice().try_into().map_err(|_| PyValueError::new_err("a network is 16 bytes"))?;
        if !table.insert(version, u128::from_be_bytes(net), length, peer) {
            return Err(PyValueError::new_err(format!("no IPv{version} prefix of length {length}")));
        }
    }
    Ok(table)
}

#[pymethods]
impl Outbound {
    #[new]
    #[pyo3(signature = (*, tun_fd, vnet, tso, v4, v6, gso, limit, mtu=None, ecn=true, masked_v4=-1, masked_v6=-1))]
    #[allow(clippy::too_many_arguments)]
    fn new(tun_fd: i32, vnet: bool, tso: bool, v4: i32, v6: i32, gso: bool, limit: u64, mtu: Option<usize>, ecn: bool, masked_v4: i32, masked_v6: i32) -> PyResult<Self> {
        let worker = Worker::new()?;
        let shared = Arc::new(TxShared::new(limit, mtu, Arc::clone(&worker.stop)));
        let (gso, ecn) = (AtomicBool::new(gso), AtomicBool::new(ecn));
        let event_fd = worker.event_fd;
        let io = Some(TxIo { tun_fd, vnet, tso, v4, v6, masked_v4, masked_v6, event_fd, gso, ecn });
        Ok(Outbound { shared, io, worker })
    }

    #[getter]
    fn event_fd(&self) -> i32 {
        self.worker.event_fd
    }

    fn start(&mut self) -> PyResult<()> {
        let io = self.io.take().ok_or_else(|| PyRuntimeError::new_err("already started"))?;
        let shared = Arc::clone(&self.shared);
        self.worker.start("tidewire-tx", move || tx_thread::run(shared, io))
    }

    fn stop(&mut self, py: Python<'_>) {
        self.worker.stop(py);
    }

    /// Seal the packets routed to `peer` with `session` and send them to `host`:`port`
    /// for `ttl` more seconds; larger inner packets than `carry` go back to Python. With
    /// `mask` (the listener's hp_key) and `sizes` (the padding's (low, high, weight)
    /// ranges), on the masked transport's socket under that skin.
    /// `key` (the peer's public key) is its client in the `[share]` queue.
    #[pyo3(signature = (session, *, peer, host, port, ttl, carry, credit=None, mask=None, sizes=Vec::new(), key=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn install(&self, py: Python<'_>, session: PyRef<'_, Session>, peer: u32, host: &str, port: u16, ttl: f64, carry: usize, credit: Option<PyRef<'_, Credit>>, mask: Option<Vec<u8>>, sizes: Vec<(usize, usize, u64)>, key: Vec<u8>) -> PyResult<()> {
        let credit = credit.map(|c| Arc::clone(&c.gate));
        let skin = match mask {
            None => None,
            Some(key) => Some(Arc::new(Skin { mask: crate::rx_bindings::mask(&key)?, padding: Padding::new(sizes).ok_or_else(|| PyValueError::new_err("sizes: not a checked PaddingSizes (a range with low > high or no weight)"))? })),
        };
        let ip: IpAddr =
            host.parse().map_err(|_| PyValueError::new_err(format!("host: {host:?} is not an IP address")))?;
        let endpoint = SocketAddr::new(ip, port);
        let deadline = Instant::now() + Duration::from_secs_f64(ttl.clamp(0.0, 1e6));
        let keys = Arc::clone(&session.keys);
        let shared = &self.shared;
        py.allow_threads(|| {
            let mut tables = shared.tables.write().unwrap_or_else(|e| e.into_inner());
            tables.stats.entry(peer).or_insert_with(|| Arc::new(TxStats::default()));
            tables.senders.insert(peer, Sender { keys, endpoint, deadline, carry, credit, skin, key });
        });
        Ok(())
    }

    /// Forget `peer`'s sender: its packets go to Python again.
    fn remove(&self, py: Python<'_>, peer: u32) {
        let shared = &self.shared;
        py.allow_threads(|| {
            shared.tables.write().unwrap_or_else(|e| e.into_inner()).senders.remove(&peer);
        });
    }

    /// Gate every packet the thread seals by `quota` (the Credit that node/quota_gate.py
    /// keeps at a provider's `[share]` quota's `limit - used - 1`), or by nothing (None).
    #[pyo3(signature = (quota))]
    fn set_quota(&self, py: Python<'_>, quota: Option<PyRef<'_, Credit>>) {
        let gate = quota.map(|q| Arc::clone(&q.gate));
        worker::write(py, &self.shared.tables, |t| t.quota = gate);
    }

    /// Queue what the thread seals in `share` (a ThreadShare: `[share]` shaping), or in
    /// nothing (None: each packet is sealed as it is read).
    #[pyo3(signature = (share))]
    fn set_share(&self, py: Python<'_>, share: Option<PyRef<'_, ThreadShare>>) {
        let queue = share.map(|s| Arc::clone(&s.queue));
        worker::write(py, &self.shared.tables, |t| t.share = queue);
    }

    /// Let go what the queue allows now (tests: the thread does it after each wake-up);
    /// the sealed datagrams as `handle` returns them.
    fn release<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        let shared = &self.shared;
        let mut batch = TxBatch::default();
        py.allow_threads(|| {
            let tables = shared.tables.read().unwrap_or_else(|e| e.into_inner());
            shared.release(&tables, Instant::now(), &mut batch);
            drop(tables);
            shared.publish(&mut batch);
        });
        datagrams(py, &batch)
    }

    /// Replace the prefix table, as `Inbound.set_routes`.
    fn set_routes(&self, py: Python<'_>, routes: Vec<(u8, Vec<u8>, u32, u32)>) -> PyResult<()> {
        let table = prefixes(routes)?;
        worker::write(py, &self.shared.tables, |t| t.routes = table);
        Ok(())
    }

    /// Up to `limit` handed-back inner packets, oldest first.
    fn take<'py>(&self, py: Python<'py>, limit: usize) -> Bound<'py, PyList> {
        let items: Vec<Vec<u8>> = {
            let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            let n = limit.min(queue.len());
            queue.drain(..n).map(|(packet, _)| packet).collect()
        };
        PyList::new_bound(py, items.iter().map(|p| PyBytes::new_bound(py, p)))
    }

    /// Up to `limit` packets of the Python path that the `[share]` queue let go, oldest
    /// first, as (peer id, inner packet): Python sends them without queueing again.
    fn take_shaped<'py>(&self, py: Python<'py>, limit: usize) -> Bound<'py, PyList> {
        let items: Vec<(u32, Vec<u8>)> = {
            let mut queue = self.shared.shaped.lock().unwrap_or_else(|e| e.into_inner());
            let n = limit.min(queue.len());
            queue.drain(..n).collect()
        };
        PyList::new_bound(py, items.iter().map(|(peer, p)| (*peer, PyBytes::new_bound(py, p))))
    }

    /// Per peer id, what was sent since the last call: (peer, datagrams, wire bytes,
    /// inner bytes); peers with nothing new are left out.
    fn stats(&self) -> Vec<(u32, u64, u64, u64)> {
        let tables = self.shared.tables.read().unwrap_or_else(|e| e.into_inner());
        tables
            .stats
            .iter()
            .filter_map(|(peer, s)| {
                let packets = s.packets.swap(0, Ordering::Relaxed);
                if packets == 0 {
                    return None;
                }
                let wire = s.wire_bytes.swap(0, Ordering::Relaxed);
                Some((*peer, packets, wire, s.inner_bytes.swap(0, Ordering::Relaxed)))
            })
            .collect()
    }

    fn drops(&self) -> Vec<(&'static str, u64)> {
        worker::swap(&self.shared.drops)
    }

    /// Events counted since the last call (not drops: `tun_super_packets`).
    fn events(&self) -> Vec<(&'static str, u64)> {
        worker::swap(&self.shared.events)
    }

    fn handed_back(&self) -> Vec<(&'static str, u64)> {
        worker::swap(&self.shared.handed_back)
    }

    /// The thread's work on one TUN read, without I/O: the sealed datagrams as (host,
    /// port, datagram, outer ECN field); hand-backs are queued for `take`, drops counted.
    fn handle<'py>(&self, py: Python<'py>, frame: Vec<u8>, vnet: bool, tso: bool) -> Bound<'py, PyList> {
        let shared = &self.shared;
        let mut batch = TxBatch::default();
        py.allow_threads(|| {
            let tables = shared.tables.read().unwrap_or_else(|e| e.into_inner());
            shared.handle_frame(&tables, &frame, vnet, tso, Instant::now(), &mut batch);
            drop(tables);
            shared.publish(&mut batch);
        });
        datagrams(py, &batch)
    }
}

/// A batch's sealed datagrams as (host, port, datagram, outer ECN field).
fn datagrams<'py>(py: Python<'py>, batch: &TxBatch) -> Bound<'py, PyList> {
    PyList::new_bound(
        py,
        batch.datagrams().map(|(to, d, ecn)| (to.ip().to_string(), to.port(), PyBytes::new_bound(py, d), ecn)),
    )
}
