//! The Python class `tidewire._dataplane.ThreadShare`: the provider's queue as the native
//! threads hold it (queue/held.rs; `Outbound.set_share` and `Inbound.set_share` put it
//! in), with the settings and counters of the Python-driven `Share` (share_bindings.rs's
//! helpers, so both read the same), for node/sharing.py.
//!
//! Its packets are the threads' and its clock is the queue's: the `now` that Python's verbs
//! pass (Trio's clock) is not used, and `release` has nothing to do (the thread releases on
//! its own timer). `enqueue_at` and `release_at` drive it on a given clock and return what
//! it let go, for the tests that hold it to the Python Share.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::queue::codel;
use crate::queue::held::{Held, ThreadQueue};
use crate::queue::share::LIMIT;
use crate::share_bindings as sb;

#[pyclass(module = "tidewire._dataplane", name = "ThreadShare")]
pub struct ThreadShare {
    pub queue: Arc<ThreadQueue>,
    #[pyo3(get)]
    seed: Py<PyAny>,
}

fn packets<'py>(py: Python<'py>, held: &[Held]) -> Bound<'py, PyList> {
    PyList::new_bound(py, held.iter().map(|h| PyBytes::new_bound(py, &h.packet)))
}

#[pymethods]
impl ThreadShare {
    #[new]
    #[pyo3(signature = (
        *, rate, seed, per_packet_overhead=0, cap=None, limit=LIMIT, mtu=1500, quantum=1500,
        target=codel::TARGET, interval=codel::INTERVAL
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        rate: Option<&Bound<'_, PyAny>>,
        seed: &Bound<'_, PyAny>,
        per_packet_overhead: i64,
        cap: Option<&Bound<'_, PyAny>>,
        limit: i64,
        mtu: i64,
        quantum: i64,
        target: f64,
        interval: f64,
    ) -> PyResult<Self> {
        let core = sb::core(rate, per_packet_overhead, cap, limit, mtu, quantum, target, interval)?;
        let queue = Arc::new(ThreadQueue::new(core, sb::seed_hash(seed)?));
        Ok(ThreadShare { queue, seed: seed.clone().unbind() })
    }

    /// Queue an inner packet for client `key` at time `at` on a given clock (tests); the
    /// packets it let go at once.
    fn enqueue_at<'py>(&self, py: Python<'py>, packet: Vec<u8>, key: &[u8], size: i64, at: f64) -> Bound<'py, PyList> {
        let mut out = Vec::new();
        self.queue.enqueue_at(Held { peer: 0, packet, python: false }, key, size, at, |h| out.push(h));
        packets(py, &out)
    }

    /// Queue an inner packet of the Python path (a stream skin's peer, a hand-back) for
    /// client `key`, its peer `peer` by the threads' id, so it shares the threads'
    /// pacer, caps and fairness: True if it may go at once (the caller delivers it),
    /// False if it waits (the receive thread writes it to the TUN when it leaves; the
    /// send thread hands it back, `Outbound.take_shaped`) or the queue refused it.
    fn enqueue_packet(&self, py: Python<'_>, packet: Vec<u8>, key: &[u8], size: i64, peer: u32) -> bool {
        let mut now = false;
        let queue = &self.queue;
        py.allow_threads(|| queue.enqueue(Held { peer, packet, python: true }, key, size, |_| now = true));
        now
    }

    /// What the queue lets go at `at` (tests).
    fn release_at<'py>(&self, py: Python<'py>, at: f64) -> Bound<'py, PyList> {
        let mut out = Vec::new();
        self.queue.release_at(at, |h| out.push(h));
        packets(py, &out)
    }

    fn get_timer(&self) -> Option<f64> {
        self.queue.lock().get_timer()
    }

    /// Nothing to do: the thread lets packets go on the queue's timer.
    #[pyo3(signature = (*, now))]
    fn release(&self, now: f64) {
        let _ = now;
    }

    fn __len__(&self) -> usize {
        self.queue.lock().len().max(0) as usize
    }

    fn forget(&self, key: &[u8]) {
        self.queue.lock().forget(key)
    }

    #[pyo3(signature = (rate, *, now))]
    fn set_rate(&self, rate: Option<&Bound<'_, PyAny>>, now: f64) -> PyResult<()> {
        let _ = now; // Trio's clock: the queue keeps its own
        let at = self.queue.now();
        sb::set_rate(&mut self.queue.lock(), rate, at)
    }

    #[pyo3(signature = (key, rate, *, now))]
    fn set_cap(&self, key: &[u8], rate: Option<&Bound<'_, PyAny>>, now: f64) -> PyResult<()> {
        let _ = now;
        let at = self.queue.now();
        sb::set_cap(&mut self.queue.lock(), key, rate, at)
    }

    #[getter]
    fn rate(&self, py: Python<'_>) -> PyObject {
        sb::rate_of(py, &self.queue.lock())
    }

    #[getter(cap)]
    fn get_cap(&self, py: Python<'_>) -> PyObject {
        sb::cap_of(py, &self.queue.lock())
    }

    #[setter(cap)]
    fn set_cap_default(&self, cap: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        sb::set_cap_default(&mut self.queue.lock(), cap)
    }

    #[getter]
    fn drops(&self) -> i64 {
        self.queue.lock().drops
    }

    #[getter]
    fn backlog(&self) -> i64 {
        self.queue.lock().backlog
    }

    #[getter]
    fn clients<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        sb::clients(py, &self.queue.lock())
    }

    fn client_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        sb::client_stats(py, &self.queue.lock())
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        sb::stats(py, &self.queue.lock())
    }
}
