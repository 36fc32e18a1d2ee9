//! The Python class `tidewire._dataplane.Share` around queue/share.rs: the constructor,
//! verbs and counters of node/core/queues/share.py's Share (node/core/queues/__init__.py's
//! `share_class` picks one of the two).
//!
//! Items stay Python objects. `shape` says how to reach a packet without a call per packet:
//! "pair" for `(peer, packet)` tuples (the out queue's items), "packet" for the packet itself
//! (the in queue's); any other item, or no shape, goes through `packet_of` and `with_packet`.
//! `deliver` must not call back into the queue (as with the Python class, whose drain keeps
//! its totals in locals): here the call would fail with "Already borrowed".

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyInt, PyList, PyTuple};
use pyo3::PyTraverseError;

use crate::queue::flow_hash as hashing;
use crate::queue::fq_codel::FLOWS;
use crate::queue::shaper::RateError;
use crate::queue::share::{Config, Share as Core, LIMIT};
use crate::ecn;
use crate::queue::{codel, Host};

impl From<RateError> for PyErr {
    fn from(e: RateError) -> PyErr {
        PyValueError::new_err(format!(
            "a rate must be positive bytes per second or None, not {}",
            e.0
        ))
    }
}

/// A rate argument: its value, and whether Python gave an int (shown back as one).
fn rate_arg(rate: Option<&Bound<'_, PyAny>>) -> PyResult<(Option<f64>, bool)> {
    match rate {
        None => Ok((None, false)),
        Some(r) if r.is_none() => Ok((None, false)),
        Some(r) => Ok((Some(r.extract::<f64>()?), r.is_instance_of::<PyInt>())),
    }
}

/// A rate as Python holds it: the int it was given as, else the float.
fn rate_out(py: Python<'_>, rate: Option<f64>, int: bool) -> PyObject {
    match rate {
        None => py.None(),
        Some(r) if int => (r as i64).into_py(py),
        Some(r) => r.into_py(py),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Pair,
    Packet,
    Other,
}

struct PyHost<'a, 'py> {
    py: Python<'py>,
    deliver: &'a Py<PyAny>,
    packet_of: &'a Py<PyAny>,
    with_packet: Option<&'a Py<PyAny>>,
    shape: Shape,
}

/// Run `f` over the bytes of a packet object: bytes in place, anything else with the buffer
/// protocol copied.
fn with_bytes<R>(packet: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(b) = packet.downcast::<PyBytes>() {
        return Ok(f(b.as_bytes()));
    }
    if let Ok(b) = packet.downcast::<PyByteArray>() {
        return Ok(f(&b.to_vec()));
    }
    match pyo3::buffer::PyBuffer::<u8>::get_bound(packet) {
        Ok(buffer) => Ok(f(&buffer.to_vec(packet.py())?)),
        Err(_) => Err(PyTypeError::new_err("a packet must be bytes-like")),
    }
}

impl<'a, 'py> PyHost<'a, 'py> {
    /// The packet of an item: by its shape, else by `packet_of`.
    fn packet(&self, item: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        match self.shape {
            Shape::Packet => return Ok(item.clone()),
            Shape::Pair => {
                if let Ok(t) = item.downcast::<PyTuple>() {
                    if t.len() >= 2 {
                        return t.get_item(1);
                    }
                }
            }
            Shape::Other => {}
        }
        self.packet_of.bind(self.py).call1((item,))
    }

    fn classify(&self, item: &Py<PyAny>, seed: i64) -> PyResult<usize> {
        let packet = self.packet(item.bind(self.py))?;
        with_bytes(&packet, |p| hashing::classify(p, seed))
    }
}

impl<'a, 'py> Host<Py<PyAny>> for PyHost<'a, 'py> {
    type Error = PyErr;

    fn mark(&mut self, item: &Py<PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let with_packet = match self.with_packet {
            Some(w) => w,
            None => return Ok(None),
        };
        let py = self.py;
        let item = item.bind(py);
        let marked = match with_bytes(&self.packet(item)?, ecn::mark_ce)? {
            Some(m) => PyBytes::new_bound(py, &m),
            None => return Ok(None),
        };
        match self.shape {
            Shape::Packet => return Ok(Some(marked.into_any().unbind())),
            Shape::Pair => {
                if let Ok(t) = item.downcast::<PyTuple>() {
                    if t.len() >= 2 {
                        let pair = PyTuple::new_bound(py, [t.get_item(0)?, marked.into_any()]);
                        return Ok(Some(pair.into_any().unbind()));
                    }
                }
            }
            Shape::Other => {}
        }
        Ok(Some(with_packet.bind(py).call1((item, marked))?.unbind()))
    }

    fn deliver(&mut self, item: Py<PyAny>, now: f64) -> PyResult<()> {
        self.deliver.call1(self.py, (item, now))?;
        Ok(())
    }
}

/// The provider's queue in one direction (node/core/queues/share.py's Share, natively).
#[pyclass(module = "tidewire._dataplane", name = "Share")]
pub struct Share {
    core: Core<Py<PyAny>>,
    #[pyo3(get, set)]
    deliver: Py<PyAny>,
    #[pyo3(get)]
    packet_of: Py<PyAny>,
    #[pyo3(get)]
    with_packet: Option<Py<PyAny>>,
    #[pyo3(get)]
    seed: Py<PyAny>,
    seed_hash: i64,
    shape: Shape,
}

macro_rules! host {
    ($self:ident, $py:ident) => {
        PyHost {
            py: $py,
            deliver: &$self.deliver,
            packet_of: &$self.packet_of,
            with_packet: $self.with_packet.as_ref(),
            shape: $self.shape,
        }
    };
}

#[pymethods]
impl Share {
    #[new]
    #[pyo3(signature = (
        deliver, *, packet_of, with_packet, rate, seed, hash=None, per_packet_overhead=0,
        cap=None, limit=LIMIT, mtu=1500, quantum=1500, target=codel::TARGET,
        interval=codel::INTERVAL, shape=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        deliver: Py<PyAny>,
        packet_of: Py<PyAny>,
        with_packet: Option<Py<PyAny>>,
        rate: Option<&Bound<'_, PyAny>>,
        seed: &Bound<'_, PyAny>,
        hash: Option<&Bound<'_, PyAny>>,
        per_packet_overhead: i64,
        cap: Option<&Bound<'_, PyAny>>,
        limit: i64,
        mtu: i64,
        quantum: i64,
        target: f64,
        interval: f64,
        shape: Option<&str>,
    ) -> PyResult<Self> {
        if hash.is_some() {
            return Err(PyTypeError::new_err(
                "the native Share hashes flows itself: for another hash use node/core/queues/share.py's Share",
            ));
        }
        let shape = match shape {
            None => Shape::Other,
            Some("pair") => Shape::Pair,
            Some("packet") => Shape::Packet,
            Some(other) => {
                return Err(PyValueError::new_err(format!(
                    "shape must be \"pair\", \"packet\" or None, not {other:?}"
                )))
            }
        };
        let seed_hash = seed_hash(seed)?;
        let core = core(rate, per_packet_overhead, cap, limit, mtu, quantum, target, interval)?;
        Ok(Share {
            core,
            deliver,
            packet_of,
            with_packet,
            seed: seed.clone().unbind(),
            seed_hash,
            shape,
        })
    }

    #[pyo3(signature = (item, key, size, now, /))]
    fn enqueue(
        &mut self,
        py: Python<'_>,
        item: Py<PyAny>,
        key: &[u8],
        size: i64,
        now: f64,
    ) -> PyResult<()> {
        let mut host = host!(self, py);
        let seed = self.seed_hash;
        let classify = |item: &Py<PyAny>| {
            let host = PyHost {
                py,
                deliver: &self.deliver,
                packet_of: &self.packet_of,
                with_packet: None,
                shape: self.shape,
            };
            host.classify(item, seed)
        };
        self.core.enqueue(item, key, size, now, classify, &mut host)
    }

    #[pyo3(signature = (*, now))]
    fn release(&mut self, py: Python<'_>, now: f64) -> PyResult<()> {
        let mut host = host!(self, py);
        self.core.release(now, &mut host)
    }

    fn get_timer(&self) -> Option<f64> {
        self.core.get_timer()
    }

    #[pyo3(signature = (*, now))]
    fn handle_timer(&mut self, py: Python<'_>, now: f64) -> PyResult<()> {
        let mut host = host!(self, py);
        self.core.release(now, &mut host)
    }

    fn __len__(&self) -> usize {
        self.core.len().max(0) as usize
    }

    fn forget(&mut self, key: &[u8]) {
        self.core.forget(key)
    }

    #[pyo3(signature = (rate, *, now))]
    fn set_rate(&mut self, rate: Option<&Bound<'_, PyAny>>, now: f64) -> PyResult<()> {
        set_rate(&mut self.core, rate, now)
    }

    #[pyo3(signature = (key, rate, *, now))]
    fn set_cap(&mut self, key: &[u8], rate: Option<&Bound<'_, PyAny>>, now: f64) -> PyResult<()> {
        set_cap(&mut self.core, key, rate, now)
    }

    /// The pacer's rate in bytes per second (None: unlimited).
    #[getter]
    fn rate(&self, py: Python<'_>) -> PyObject {
        rate_of(py, &self.core)
    }

    /// The cap a client seen from now on gets (None: uncapped).
    #[getter(cap)]
    fn get_cap(&self, py: Python<'_>) -> PyObject {
        cap_of(py, &self.core)
    }

    #[setter(cap)]
    fn set_cap_default(&mut self, cap: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        set_cap_default(&mut self.core, cap)
    }

    #[getter]
    fn drops(&self) -> i64 {
        self.core.drops
    }

    #[getter]
    fn overlimit(&self) -> i64 {
        self.core.overlimit
    }

    #[getter]
    fn backlog(&self) -> i64 {
        self.core.backlog
    }

    #[getter]
    fn limit(&self) -> i64 {
        self.core.limit
    }

    #[getter]
    fn mtu(&self) -> i64 {
        self.core.mtu
    }

    #[getter]
    fn quantum(&self) -> i64 {
        self.core.quantum
    }

    #[getter]
    fn overhead(&self) -> i64 {
        self.core.overhead
    }

    #[getter]
    fn target(&self) -> f64 {
        self.core.params.target
    }

    #[getter]
    fn interval(&self) -> f64 {
        self.core.params.interval
    }

    /// The client keys, first seen first (the Python class's dict, iterated).
    #[getter]
    fn clients<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        clients(py, &self.core)
    }

    /// Per client key: delay, backlog, drops, marks, bytes sent, cap.
    fn client_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        client_stats(py, &self.core)
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats(py, &self.core)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.deliver)?;
        visit.call(&self.packet_of)?;
        if let Some(w) = &self.with_packet {
            visit.call(w)?;
        }
        for item in self.core.items() {
            visit.call(item)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.core.clear();
        self.with_packet = None;
    }
}

/// `client_stats()` of a queue, as node/core/queues/share.py's Share gives it.
pub fn client_stats<'py, T>(py: Python<'py>, core: &Core<T>) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new_bound(py);
    for c in core.clients() {
        let st = PyDict::new_bound(py);
        st.set_item("delay", c.fq.sojourn)?;
        st.set_item("backlog_bytes", c.fq.backlog)?;
        st.set_item("backlog_packets", c.fq.packets)?;
        st.set_item("drops", c.fq.drops)?;
        st.set_item("overlimit_drops", c.fq.overlimit)?;
        st.set_item("marks", c.fq.marks)?;
        st.set_item("sent_bytes", c.sent_bytes)?;
        st.set_item("sent_packets", c.sent_packets)?;
        match c.cap.as_ref() {
            Some(b) if b.rate.is_some() => st.set_item("cap", rate_out(py, b.rate, b.int_rate))?,
            _ => st.set_item("cap", -1)?,
        }
        out.set_item(PyBytes::new_bound(py, &c.key), st)?;
    }
    Ok(out)
}

/// `stats()` of a queue, as the Python Share gives it.
pub fn stats<'py, T>(py: Python<'py>, core: &Core<T>) -> PyResult<Bound<'py, PyDict>> {
    let st = PyDict::new_bound(py);
    let bucket = &core.bucket;
    match bucket.rate {
        Some(_) => st.set_item("rate", rate_out(py, bucket.rate, bucket.int_rate))?,
        None => st.set_item("rate", -1)?,
    }
    st.set_item("backlog_bytes", core.backlog)?;
    st.set_item("backlog_packets", core.len())?;
    st.set_item("drops", core.drops)?;
    st.set_item("overlimit_drops", core.overlimit)?;
    st.set_item("marks", core.marks())?;
    st.set_item("clients", core.clients().len())?;
    Ok(st)
}

/// `set_rate`, `set_cap` and the `cap` setter of a queue (Python's ints kept as ints).
pub fn set_rate<T>(core: &mut Core<T>, rate: Option<&Bound<'_, PyAny>>, now: f64) -> PyResult<()> {
    let (rate, int) = rate_arg(rate)?;
    core.set_rate(rate, now)?;
    core.bucket.int_rate = int;
    Ok(())
}

pub fn set_cap<T>(core: &mut Core<T>, key: &[u8], rate: Option<&Bound<'_, PyAny>>, now: f64) -> PyResult<()> {
    let (rate, int) = rate_arg(rate)?;
    core.set_cap(key, rate, now)?;
    if let Some(cap) = core.cap_of(key) {
        cap.int_rate = int;
    }
    Ok(())
}

pub fn set_cap_default<T>(core: &mut Core<T>, cap: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let (cap, int) = rate_arg(cap)?;
    core.cap = cap;
    core.cap_int = int;
    Ok(())
}

/// The pacer's rate and the new clients' cap, as Python holds them.
pub fn rate_of<T>(py: Python<'_>, core: &Core<T>) -> PyObject {
    rate_out(py, core.bucket.rate, core.bucket.int_rate)
}

pub fn cap_of<T>(py: Python<'_>, core: &Core<T>) -> PyObject {
    rate_out(py, core.cap, core.cap_int)
}

/// The client keys, first seen first (the Python class's dict, iterated).
pub fn clients<'py, T>(py: Python<'py>, core: &Core<T>) -> Bound<'py, PyList> {
    PyList::new_bound(py, core.clients().iter().map(|c| PyBytes::new_bound(py, &c.key)))
}

/// hash(seed): computed here for any int within 128 bits, else asked of Python.
pub fn seed_hash(seed: &Bound<'_, PyAny>) -> PyResult<i64> {
    match seed.extract::<i128>() {
        Ok(v) => Ok(hashing::hash_i128(v)),
        Err(_) => Ok(seed.hash()? as i64),
    }
}

/// A queue's settings from the Python Share's constructor arguments.
#[allow(clippy::too_many_arguments)]
pub fn core<T>(
    rate: Option<&Bound<'_, PyAny>>,
    per_packet_overhead: i64,
    cap: Option<&Bound<'_, PyAny>>,
    limit: i64,
    mtu: i64,
    quantum: i64,
    target: f64,
    interval: f64,
) -> PyResult<Core<T>> {
    let ((rate, rate_int), (cap, cap_int)) = (rate_arg(rate)?, rate_arg(cap)?);
    let mut core = Core::new(Config { rate, overhead: per_packet_overhead, cap, limit, mtu, quantum, target, interval })?;
    core.bucket.int_rate = rate_int;
    core.cap_int = cap_int;
    Ok(core)
}

/// hash((seed, int.from_bytes(addresses), proto_ports)) as flow_hash.rs computes it, for the
/// tests that hold it to CPython's.
#[pyfunction]
pub fn flow_hash(addresses: &[u8], proto_ports: u64, seed: &Bound<'_, PyAny>) -> PyResult<i64> {
    let seed = seed_hash(seed)?;
    let lane = hashing::hash_i128(i128::from(proto_ports));
    Ok(hashing::hash_tuple(&[
        seed,
        hashing::hash_be_bytes(addresses),
        lane,
    ]))
}

/// The flow index of a packet (fq_codel.py's FqCoDel(seed=seed).classify).
#[pyfunction]
pub fn classify(packet: &[u8], seed: &Bound<'_, PyAny>) -> PyResult<usize> {
    let seed = seed_hash(seed)?;
    let index = hashing::classify(packet, seed);
    Ok(index.min(FLOWS))
}
