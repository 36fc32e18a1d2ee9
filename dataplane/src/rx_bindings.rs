//! `Inbound`, the receive thread as Python drives it (node/dataplane_loop.py): made
//! over the UDP sockets and the TUN, started and stopped, sessions and the prefix table
//! installed and removed, the hand-back queue taken through an eventfd Trio waits on,
//! and the counters polled. `handle` runs the thread's per-read work on given
//! datagrams without any I/O, for the differential tests and the fuzzing harness.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::credit::Credit;
use crate::policy::{intern, Family as PolicyFamily, Policy, Rule as PolicyRule};
use crate::mask::Mask;
use crate::rx::{self, Batch, Entry, Handback, PeerStats, Shared, Via};
use crate::rx_thread::{self, Io};
use crate::share_thread_bindings::ThreadShare;
use crate::worker::{self, Worker};
use crate::Session;

#[pyclass(module = "tidewire._dataplane")]
pub struct Inbound {
    shared: Arc<Shared>,
    io: Option<Io>, // until started
    worker: Worker,
}

/// The policy's tables for IP `version`, or a clear error.
fn family(policy: &mut Policy, version: u8) -> PyResult<&mut PolicyFamily> {
    policy.family_mut(version).ok_or_else(|| PyValueError::new_err("IP version 4 or 6"))
}

/// An address as 16 big-endian bytes (IPv4 in the low 4).
fn address(bytes: &[u8]) -> PyResult<u128> {
    let b: [u8; 16] = bytes.try_into().map_err(|_| PyValueError::new_err("an address is 16 bytes"))?;
    Ok(u128::from_be_bytes(b))
}

fn endpoint(host: &str, port: u16) -> PyResult<SocketAddr> {
    let ip: IpAddr = host
        .parse()
        .map_err(|_| PyValueError::new_err(format!("host: {host:?} is not an IP address")))?;
    Ok(SocketAddr::new(ip, port))
}

/// A listener key's header protection (16 bytes, the skin's `hp_key`).
pub fn mask(key: &[u8]) -> PyResult<Mask> {
    let key: &[u8; 16] = key.try_into().map_err(|_| PyValueError::new_err("a mask key is 16 bytes"))?;
    Ok(Mask::new(key))
}

fn handback_tuple<'py>(py: Python<'py>, item: &Handback) -> Bound<'py, PyTuple> {
    let (kind, index, data, plain, from, via, ecn, reason) = match item {
        Handback::Raw { data, from, via: Via::Wire, ecn, reason } => ("wire", 0, data, None, from, Via::Wire, ecn, reason),
        Handback::Raw { data, from, via, ecn, reason } => ("raw", 0, data, None, from, *via, ecn, reason),
        Handback::Opened { index, data, plain, from, via, ecn, reason } => {
            ("opened", *index, data, Some(plain), from, *via, ecn, reason)
        }
    };
    let plain = plain.map(|p| PyBytes::new_bound(py, p).into_any());
    PyTuple::new_bound(
        py,
        [
            kind.into_py(py),
            reason.into_py(py),
            index.into_py(py),
            PyBytes::new_bound(py, data).into_py(py),
            plain.map_or_else(|| py.None(), |p| p.unbind()),
            from.ip().to_string().into_py(py),
            from.port().into_py(py),
            ecn.into_py(py),
            via.transport().into_py(py),
        ],
    )
}

#[pymethods]
impl Inbound {
    #[new]
    #[pyo3(signature = (*, sockets, tun_fd, tun_gro, overlay, limit, masked=Vec::new()))]
    fn new(sockets: Vec<i32>, tun_fd: i32, tun_gro: bool, overlay: &[u8], limit: u64, masked: Vec<i32>) -> PyResult<Self> {
        let overlay: [u8; 16] = overlay
            .try_into()
            .map_err(|_| PyValueError::new_err("overlay: an IPv6 address is 16 bytes"))?;
        let worker = Worker::new()?;
        let shared = Arc::new(Shared::new(overlay, limit, Arc::clone(&worker.stop)));
        let flags = sockets.iter().map(|_| false).chain(masked.iter().map(|_| true)).collect();
        let sockets = sockets.into_iter().chain(masked).collect();
        let io = Some(Io { sockets, masked: flags, tun_fd, tun_gro, event_fd: worker.event_fd });
        Ok(Inbound { shared, io, worker })
    }

    /// The eventfd that is readable while hand-backs wait (read 8 bytes to reset it).
    #[getter]
    fn event_fd(&self) -> i32 {
        self.worker.event_fd
    }

    /// Start the receive thread (once).
    fn start(&mut self) -> PyResult<()> {
        let io = self.io.take().ok_or_else(|| PyRuntimeError::new_err("already started"))?;
        let shared = Arc::clone(&self.shared);
        self.worker.start("tidewire-rx", move || rx_thread::run(shared, io))
    }

    /// Stop the thread and wait for it (at most one poll interval).
    fn stop(&mut self, py: Python<'_>) {
        self.worker.stop(py);
    }

    /// Open datagrams to `session`'s index from `host`:`port` (on the masked transport
    /// with `masked`) for `ttl` more seconds; with `credit`, a provider's client's
    /// window gates each packet (credit.rs).
    /// `key` (the peer's public key) is its client in the `[share]` queue.
    #[pyo3(signature = (session, *, peer, host, port, ttl, credit=None, masked=false, key=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn install(&self, py: Python<'_>, session: PyRef<'_, Session>, peer: u32, host: &str, port: u16, ttl: f64, credit: Option<PyRef<'_, Credit>>, masked: bool, key: Vec<u8>) -> PyResult<()> {
        let credit = credit.map(|c| Arc::clone(&c.gate));
        let endpoint = endpoint(host, port)?;
        let ttl = Duration::from_secs_f64(ttl.clamp(0.0, 1e6));
        let keys = Arc::clone(&session.keys);
        let shared = &self.shared;
        py.allow_threads(|| {
            let mut tables = shared.tables.write().unwrap_or_else(|e| e.into_inner());
            tables.stats.entry(peer).or_insert_with(|| Arc::new(PeerStats::default()));
            let index = keys.local_index;
            let deadline = Instant::now() + ttl;
            tables.entries.insert(index, Entry { keys, peer, endpoint, deadline, credit, masked, key });
        });
        Ok(())
    }

    /// Forget the session of receiver index `index` (its datagrams go to Python again).
    fn remove(&self, py: Python<'_>, index: u32) {
        let shared = &self.shared;
        py.allow_threads(|| {
            let mut tables = shared.tables.write().unwrap_or_else(|e| e.into_inner());
            tables.entries.remove(&index);
        });
    }

    /// Gate every packet the thread writes to the TUN by `quota` (the Credit that
    /// node/quota_gate.py keeps at a provider's `[share]` quota's `limit - used - 1`),
    /// or by nothing (None).
    #[pyo3(signature = (quota))]
    fn set_quota(&self, py: Python<'_>, quota: Option<PyRef<'_, Credit>>) {
        let gate = quota.map(|q| Arc::clone(&q.gate));
        worker::write(py, &self.shared.tables, |t| t.quota = gate);
    }

    /// Queue what opened in `share` (a ThreadShare: `[share]` shaping) before the TUN,
    /// or in nothing (None).
    #[pyo3(signature = (share))]
    fn set_share(&self, py: Python<'_>, share: Option<PyRef<'_, ThreadShare>>) {
        let queue = share.map(|s| Arc::clone(&s.queue));
        worker::write(py, &self.shared.tables, |t| t.share = queue);
    }

    /// The inner packets the queue lets go now (tests: the thread does it after each
    /// wake-up).
    fn release<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        let mut batch = Batch::default();
        py.allow_threads(|| self.shared.release(&mut batch));
        PyList::new_bound(py, batch.packets().into_iter().map(|p| PyBytes::new_bound(py, p)))
    }

    /// The masked transport's keys (mask.rs): `listeners` as (host, port, hp_key) for
    /// the addresses we dial, `own` our own hp_key if we listen on masked://.
    #[pyo3(signature = (listeners, own=None))]
    fn set_masks(&self, py: Python<'_>, listeners: Vec<(String, u16, Vec<u8>)>, own: Option<Vec<u8>>) -> PyResult<()> {
        let mut masks = std::collections::HashMap::new();
        for (host, port, key) in listeners {
            masks.insert(endpoint(&host, port)?, Arc::new(mask(&key)?));
        }
        let own = own.map(|k| mask(&k).map(Arc::new)).transpose()?;
        let shared = &self.shared;
        py.allow_threads(|| {
            let mut tables = shared.tables.write().unwrap_or_else(|e| e.into_inner());
            tables.masks = masks;
            tables.own_mask = own;
        });
        Ok(())
    }

    /// Replace the prefix table: (IP version, network as 16 big-endian bytes, prefix
    /// length, peer id) per allowed IP.
    fn set_routes(&self, py: Python<'_>, routes: Vec<(u8, Vec<u8>, u32, u32)>) -> PyResult<()> {
        let table = crate::tx_bindings::prefixes(routes)?;
        worker::write(py, &self.shared.tables, |t| t.routes = table);
        Ok(())
    }

    /// Install an exit policy (node/core/exit_policy.py's `native_tables`): `rules` as
    /// ("allow" or "deny", IP version, shift, value as 16 big-endian bytes, protocol or
    /// -1, port or -1, reason) in order, the router's `own` addresses as (version,
    /// address, reason), the `resolver` addresses as (version, address). Refused packets
    /// are counted as `exit_<reason>`.
    #[allow(clippy::type_complexity)]
    fn set_policy(
        &self,
        py: Python<'_>,
        rules: Vec<(String, u8, u32, Vec<u8>, i32, i32, String)>,
        own: Vec<(u8, Vec<u8>, String)>,
        resolver: Vec<(u8, Vec<u8>)>,
    ) -> PyResult<()> {
        let mut policy = Policy::default();
        for (kind, version, shift, value, proto, port, reason) in rules {
            let rule = PolicyRule {
                shift,
                value: address(&value)?,
                proto: u8::try_from(proto).ok(),
                port: u16::try_from(port).ok(),
                reason: intern(&format!("exit_{reason}")),
            };
            let f = family(&mut policy, version)?;
            match kind.as_str() {
                "allow" => f.allow.push(rule),
                "deny" => f.deny.push(rule),
                _ => return Err(PyValueError::new_err("a rule is \"allow\" or \"deny\"")),
            }
        }
        for (version, addr, reason) in own {
            family(&mut policy, version)?.own.insert(address(&addr)?, intern(&format!("exit_{reason}")));
        }
        for (version, addr) in resolver {
            family(&mut policy, version)?.resolver.insert(address(&addr)?);
        }
        let shared = &self.shared;
        py.allow_threads(|| {
            shared.tables.write().unwrap_or_else(|e| e.into_inner()).policy = Some(policy);
        });
        Ok(())
    }

    /// No exit policy: every allowed packet goes to the TUN.
    fn clear_policy(&self, py: Python<'_>) {
        let shared = &self.shared;
        py.allow_threads(|| {
            shared.tables.write().unwrap_or_else(|e| e.into_inner()).policy = None;
        });
    }

    /// Up to `limit` hand-backs, oldest first: (kind, reason, receiver index, the
    /// datagram, the plaintext or None, host, port, outer ECN field, transport "udp" or
    /// "masked"). Kinds: "raw" (a link datagram, not opened), "opened", "wire" (a masked
    /// socket's datagram as it came, for the skin's opener).
    fn take<'py>(&self, py: Python<'py>, limit: usize) -> Bound<'py, PyList> {
        let items: Vec<Handback> = {
            let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            let n = limit.min(queue.len());
            queue.drain(..n).collect()
        };
        PyList::new_bound(py, items.iter().map(|item| handback_tuple(py, item)))
    }

    /// Per peer id, what its sessions received since the last call: (peer, datagrams,
    /// with data, wire bytes, inner bytes); peers with nothing new are left out.
    fn stats(&self) -> Vec<(u32, u64, u64, u64, u64)> {
        let tables = self.shared.tables.read().unwrap_or_else(|e| e.into_inner());
        tables
            .stats
            .iter()
            .filter_map(|(peer, s)| {
                let packets = s.packets.swap(0, Ordering::Relaxed);
                if packets == 0 {
                    return None;
                }
                let data = s.data.swap(0, Ordering::Relaxed);
                let wire = s.wire_bytes.swap(0, Ordering::Relaxed);
                Some((*peer, packets, data, wire, s.inner_bytes.swap(0, Ordering::Relaxed)))
            })
            .collect()
    }

    /// The drops counted since the last call, by the Python path's reason names.
    fn drops(&self) -> Vec<(&'static str, u64)> {
        worker::swap(&self.shared.drops)
    }

    /// Events counted since the last call (not drops: `ecn_outer_applied`).
    fn events(&self) -> Vec<(&'static str, u64)> {
        worker::swap(&self.shared.events)
    }

    /// The hand-backs queued since the last call, by reason ("full": dropped, the queue
    /// was full).
    fn handed_back(&self) -> Vec<(&'static str, u64)> {
        worker::swap(&self.shared.handed_back)
    }

    /// The thread's work on one read's `datagrams` from `host`:`port` (a masked
    /// socket's with `masked`), without I/O: the inner packets for the TUN; hand-backs
    /// are queued for `take` and drops counted, as the thread does.
    #[pyo3(signature = (datagrams, host, port, ecn, masked=false))]
    fn handle<'py>(&self, py: Python<'py>, mut datagrams: Vec<Vec<u8>>, host: &str, port: u16, ecn: u8, masked: bool) -> PyResult<Bound<'py, PyList>> {
        let from = endpoint(host, port)?;
        let shared = &self.shared;
        let mut batch = Batch::default();
        py.allow_threads(|| {
            let tables = shared.tables.read().unwrap_or_else(|e| e.into_inner());
            let slices: Vec<(&[u8], Via)> = datagrams
                .iter_mut()
                .flat_map(|d| {
                    let size = d.len().max(1);
                    rx::cut(&tables, d, size, masked, from)
                })
                .collect();
            shared.handle(&tables, &slices, from, ecn, Instant::now(), &mut batch);
            drop(tables);
            shared.publish(&mut batch); // into the queue, as the thread does
        });
        Ok(PyList::new_bound(py, batch.packets().into_iter().map(|p| PyBytes::new_bound(py, p))))
    }
}
