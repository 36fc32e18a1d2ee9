//! What the two threads (rx_bindings.rs, tx_bindings.rs) share as Python drives them: the
//! eventfd Python waits on, the stop flag, the join at stop or drop; and the merge of a
//! wake-up's counts and hand-backs into the bounded queue Python takes from.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::sys;

pub type Counts = Mutex<HashMap<&'static str, u64>>;

pub struct Worker {
    pub event_fd: i32,
    pub stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    pub fn new() -> PyResult<Self> {
        let event_fd = sys::eventfd();
        if event_fd < 0 {
            return Err(PyRuntimeError::new_err("eventfd failed"));
        }
        Ok(Worker { event_fd, stop: Arc::new(AtomicBool::new(false)), thread: None })
    }

    pub fn start(&mut self, name: &str, run: impl FnOnce() + Send + 'static) -> PyResult<()> {
        if self.thread.is_some() {
            return Err(PyRuntimeError::new_err("already started"));
        }
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(run)
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the thread: {e}")))?;
        self.thread = Some(thread);
        Ok(())
    }

    /// Stop the thread and wait for it (at most one poll interval), without the GIL.
    pub fn stop(&mut self, py: Python<'_>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            py.allow_threads(|| {
                let _ = thread.join();
            });
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        sys::close(self.event_fd);
    }
}

/// Change a thread's tables under their write lock, without the GIL (Python's setters).
pub fn write<T: Send + Sync>(py: Python<'_>, tables: &RwLock<T>, change: impl FnOnce(&mut T) + Send) {
    py.allow_threads(|| change(&mut tables.write().unwrap_or_else(|e| e.into_inner())));
}

/// Add `from` into `into` (emptying `from`).
pub fn merge(into: &Counts, from: &mut HashMap<&'static str, u64>) {
    if from.is_empty() {
        return;
    }
    let mut into = into.lock().unwrap_or_else(|e| e.into_inner());
    for (reason, n) in from.drain() {
        *into.entry(reason).or_insert(0) += n;
    }
}

/// Take the counts, leaving zero.
pub fn swap(counts: &Counts) -> Vec<(&'static str, u64)> {
    counts.lock().unwrap_or_else(|e| e.into_inner()).drain().collect()
}

/// Queue `items` for Python, each counted by its reason; past `limit` waiting, an item
/// is dropped and counted as "full". True if there were items.
pub fn enqueue<T>(
    queue: &Mutex<VecDeque<T>>,
    counted: &Counts,
    items: &mut Vec<T>,
    reason: impl Fn(&T) -> &'static str,
    limit: usize,
) -> bool {
    if items.is_empty() {
        return false;
    }
    let mut counted = counted.lock().unwrap_or_else(|e| e.into_inner());
    let mut queue = queue.lock().unwrap_or_else(|e| e.into_inner());
    for item in items.drain(..) {
        if queue.len() >= limit {
            *counted.entry("full").or_insert(0) += 1;
            continue;
        }
        *counted.entry(reason(&item)).or_insert(0) += 1;
        queue.push_back(item);
    }
    true
}
