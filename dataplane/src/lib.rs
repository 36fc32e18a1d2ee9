//! `tidewire._dataplane`: the native data plane's pieces (issue 17): sealing and
//! opening WireGuard transport data messages for a batch of packets of one keypair,
//! with the replay window, cutting TUN super-packets (`split_tso`, offload.rs) and
//! coalescing TUN writes (`coalesce`, gro.rs) and writing them (`write_tun`, tun.rs),
//! while the GIL is released; and the provider's queue, `Share` (queue/, share_bindings.rs),
//! node/core/queues/share.py's in Rust, with the GIL held (it calls `deliver` per packet).
//!
//! Python stays the control plane: it derives the keys in the handshake, installs
//! them here as a `Session` per keypair, owns the send counter (it passes the first
//! counter of a batch and advances its own by the batch's length) and does all the
//! bookkeeping after authentication. `unsafe` only at the system-call boundary
//! (tun.rs: write(2)), each block with its reasons.
// pyo3 0.22's #[pymethods] expands each PyResult return into a conversion clippy 1.95
// calls useless (its own code, not ours)
#![allow(clippy::useless_conversion)]

mod aead;
mod checksum;
mod cipher;
mod credit;
mod ecn;
mod gro;
mod inner;
mod keys;
mod mask;
mod offload;
mod policy;
mod prefix;
mod queue;
mod replay;
mod rx;
mod rx_bindings;
mod rx_thread;
mod share_bindings;
mod share_thread_bindings;
mod tx;
mod tx_bindings;
mod tx_thread;
mod worker;
mod sys;
mod transport;
mod tun;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use replay::ReplayWindow;

/// One keypair's state in the native plane: both ciphers, both indices, the window
/// (keys.rs), shared with the receive thread once Python installs it there.
#[pyclass(module = "tidewire._dataplane")]
pub(crate) struct Session {
    pub(crate) keys: Arc<keys::Keys>,
}

fn key(name: &str, value: &[u8]) -> PyResult<cipher::Cipher> {
    let key: &[u8; 32] = value
        .try_into()
        .map_err(|_| PyValueError::new_err(format!("{name}: a key is 32 bytes")))?;
    Ok(cipher::Cipher::new(key))
}

/// One item of a batch: a `bytes` object, read in place without the GIL (bytes are
/// immutable), or any other buffer-like sequence of ints, copied.
enum Item<'py> {
    Borrowed(Bound<'py, PyBytes>),
    Owned(Vec<u8>),
}

impl Item<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Item::Borrowed(b) => b.as_bytes(),
            Item::Owned(v) => v,
        }
    }
}

fn items<'py>(list: &Bound<'py, PyList>) -> PyResult<Vec<Item<'py>>> {
    list.iter()
        .map(|item| match item.downcast_into::<PyBytes>() {
            Ok(b) => Ok(Item::Borrowed(b)),
            Err(e) => e
                .into_inner()
                .extract::<Vec<u8>>()
                .map(Item::Owned)
                .map_err(|_| PyTypeError::new_err("every item must be bytes-like")),
        })
        .collect()
}

#[pymethods]
impl Session {
    #[new]
    #[pyo3(signature = (*, send_key, recv_key, local_index, remote_index))]
    fn new(
        send_key: &[u8],
        recv_key: &[u8],
        local_index: u32,
        remote_index: u32,
    ) -> PyResult<Self> {
        Ok(Session {
            keys: Arc::new(keys::Keys {
                send: key("send_key", send_key)?,
                recv: key("recv_key", recv_key)?,
                local_index,
                remote_index,
                window: Mutex::new(ReplayWindow::new()),
                send_counter: AtomicU64::new(0),
            }),
        })
    }

    /// Seal `packets` with the counters `counter`, `counter + 1`, ...: one datagram each.
    #[pyo3(signature = (packets, *, counter, mtu=None))]
    fn seal_batch<'py>(
        &self,
        py: Python<'py>,
        packets: &Bound<'py, PyList>,
        counter: u64,
        mtu: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let items = items(packets)?;
        if counter.checked_add(items.len() as u64).is_none() {
            return Err(PyValueError::new_err("counter: the batch would pass 2^64"));
        }
        let slices: Vec<&[u8]> = items.iter().map(Item::as_slice).collect();
        let (aead, remote) = (&self.keys.send, self.keys.remote_index);
        let sealed: Vec<Vec<u8>> = py.allow_threads(|| {
            slices
                .iter()
                .enumerate()
                .map(|(i, p)| transport::seal(aead, remote, counter + i as u64, p, mtu))
                .collect()
        });
        Ok(PyList::new_bound(
            py,
            sealed.iter().map(|d| PyBytes::new_bound(py, d)),
        ))
    }

    /// Open `datagrams` (addressed to this keypair) in order: for each, the plaintext
    /// (`bytes`) or the reason it was dropped (`str`, the Python path's drop name).
    /// Counters at or past `limit` are refused as an expired keypair.
    #[pyo3(signature = (datagrams, *, limit))]
    fn open_batch<'py>(
        &self,
        py: Python<'py>,
        datagrams: &Bound<'py, PyList>,
        limit: u64,
    ) -> PyResult<Bound<'py, PyList>> {
        let items = items(datagrams)?;
        let slices: Vec<&[u8]> = items.iter().map(Item::as_slice).collect();
        let keys = &self.keys;
        let opened: Vec<Result<Vec<u8>, transport::Refusal>> =
            py.allow_threads(|| slices.iter().map(|d| keys.open(limit, d)).collect());
        let out = PyList::empty_bound(py);
        for result in opened {
            match result {
                Ok(plain) => out.append(PyBytes::new_bound(py, &plain))?,
                Err(refusal) => out.append(PyString::intern_bound(py, refusal.reason()))?,
            }
        }
        Ok(out)
    }

    /// Would the window accept `counter`? (The differential tests compare windows.)
    fn replay_check(&self, counter: u64, limit: u64) -> bool {
        let window = self.keys.window.lock().unwrap_or_else(|e| e.into_inner());
        window.check(counter, limit)
    }

    /// (datagrams lost, datagrams accepted) by the window: what the peer sent on this
    /// keypair that never arrived, whichever path opened the rest (replay.rs).
    #[getter]
    fn rx_counts(&self) -> (u64, u64) {
        let window = self.keys.window.lock().unwrap_or_else(|e| e.into_inner());
        window.counts()
    }

    /// Take `n` send counters (the send thread takes its own from the same counter): the
    /// first; Python seals its datagrams of this keypair with these.
    fn take_counters(&self, n: u64) -> u64 {
        self.keys.take_counters(n)
    }

    /// The next send counter.
    #[getter]
    fn send_counter(&self) -> u64 {
        self.keys.send_counter.load(Ordering::Relaxed)
    }

    #[getter]
    fn local_index(&self) -> u32 {
        self.keys.local_index
    }

    #[getter]
    fn remote_index(&self) -> u32 {
        self.keys.remote_index
    }
}

/// The padded plaintext length (as protocol/link/messages.py's `padded_length`).
#[pyfunction]
#[pyo3(signature = (length, mtu=None))]
fn padded_length(length: usize, mtu: Option<usize>) -> usize {
    transport::padded_length(length, mtu)
}

/// The IP packets of one TUN read with its virtio-net header (any buffer: a memoryview
/// of the reader's buffer is copied once), TSO super-packets cut and checksums finished
/// as node/core/gso.py's `split`; or the reason it cannot be a packet (`str`).
#[pyfunction]
fn split_tso<'py>(py: Python<'py>, frame: PyBuffer<u8>) -> PyResult<Bound<'py, PyAny>> {
    let bytes = frame.to_vec(py)?;
    let result = py.allow_threads(|| offload::split(&bytes));
    Ok(match result {
        Ok(packets) => {
            PyList::new_bound(py, packets.iter().map(|p| PyBytes::new_bound(py, p))).into_any()
        }
        Err(reason) => PyString::intern_bound(py, reason).into_any(),
    })
}

/// The TUN writes (virtio-net header first) for a batch of inner packets, TCP runs
/// coalesced into super-packets, as node/core/gro.py's `coalesce`.
#[pyfunction]
fn coalesce<'py>(py: Python<'py>, packets: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyList>> {
    let items = items(packets)?;
    let slices: Vec<&[u8]> = items.iter().map(Item::as_slice).collect();
    let frames = py.allow_threads(|| gro::coalesce(&slices));
    Ok(PyList::new_bound(
        py,
        frames.iter().map(|f| PyBytes::new_bound(py, f)),
    ))
}

/// Coalesce `packets` (as `coalesce`) and write the frames to the TUN descriptor `fd`,
/// all without the GIL: (frames written, dropped as the device was full, failed).
#[pyfunction]
fn write_tun<'py>(
    py: Python<'py>,
    fd: i32,
    packets: &Bound<'py, PyList>,
) -> PyResult<(usize, usize, usize)> {
    let items = items(packets)?;
    let slices: Vec<&[u8]> = items.iter().map(Item::as_slice).collect();
    Ok(py.allow_threads(|| tun::write_frames(fd, &gro::coalesce(&slices))))
}

#[pymodule]
fn _dataplane(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Session>()?;
    m.add_class::<credit::Credit>()?;
    aead::register(m)?;
    m.add_class::<rx_bindings::Inbound>()?;
    m.add_class::<tx_bindings::Outbound>()?;
    m.add_class::<share_bindings::Share>()?;
    m.add_class::<share_thread_bindings::ThreadShare>()?;
    m.add_function(wrap_pyfunction!(share_bindings::flow_hash, m)?)?;
    m.add_function(wrap_pyfunction!(share_bindings::classify, m)?)?;
    m.add_function(wrap_pyfunction!(padded_length, m)?)?;
    m.add_function(wrap_pyfunction!(split_tso, m)?)?;
    m.add_function(wrap_pyfunction!(coalesce, m)?)?;
    m.add_function(wrap_pyfunction!(write_tun, m)?)?;
    m.add("REPLAY_WINDOW", replay::WINDOW)?;
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
