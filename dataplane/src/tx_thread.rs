//! The send thread: it waits on the TUN (poll, 100 ms so a stop is seen, less while a
//! `[share]` queue holds packets for later), drains up to
//! READS reads, hands each to tx.rs and sends what was sealed (sooner once SEND_AT
//! bytes wait, as TSO reads are up to 64 KB each): per endpoint, runs of
//! equal-sized datagrams (the last may be shorter) with one outer ECN field in one
//! sendmsg with UDP_SEGMENT and, for ECT or CE, an IP_TOS or IPV6_TCLASS control
//! message, as node/transports/udp_send.py's BatchSender does, falling back to one
//! datagram per call for good if the kernel refuses GSO (and to Not-ECT for good if it
//! refuses a TOS per send). A run is one slice of the batch's sealed buffer, sent
//! without a copy. After the reads, the queue lets go what its pacer allows. No Python
//! object is touched here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::sys;
use crate::tx::{TxBatch, TxShared, VNET_HDR_LEN};

const READS: usize = 64;
const POLL_MS: i32 = 100;
const MAX_SEGMENTS: usize = 64;
const MAX_BYTES: usize = 65000;
// sealed bytes that are sent before the next read: 64 TSO reads would hold 4 MB (the
// buffer keeps its capacity, and the node's resident memory with it)
const SEND_AT: usize = 256 * 1024;

pub struct TxIo {
    pub tun_fd: i32,
    pub vnet: bool,
    pub tso: bool,
    pub v4: i32, // the UDP sockets by family (-1: none)
    pub v6: i32,
    pub masked_v4: i32, // the masked transport's (-1: none)
    pub masked_v6: i32,
    pub event_fd: i32,
    pub gso: AtomicBool,
    pub ecn: AtomicBool, // a TOS control message per send where the field is not 0
}

fn refused(e: i32) -> bool {
    e == libc::EINVAL || e == libc::EIO || e == libc::EOPNOTSUPP || e == libc::ENOPROTOOPT
}

/// The TOS byte to send with: the ECN field, or none once the kernel refused one.
fn tos(io: &TxIo, ecn: u8) -> u8 {
    if io.ecn.load(Ordering::Relaxed) { ecn } else { 0 }
}

fn send_one(io: &TxIo, fd: i32, to: SocketAddr, d: &[u8], ecn: u8, batch: &mut TxBatch) {
    let tos = tos(io, ecn);
    match sys::send(fd, to, d, None, tos) {
        Ok(()) => {}
        Err(e) if e == libc::EAGAIN || e == libc::EWOULDBLOCK || e == libc::ENOBUFS => {
            batch.drop("send_buffer_full", 1)
        }
        Err(e) if tos != 0 && refused(e) => {
            io.ecn.store(false, Ordering::Relaxed); // Not-ECT from now on
            batch.drop("udp_ecn_refused", 1);
            send_one(io, fd, to, d, 0, batch);
        }
        Err(_) => batch.drop("send_failed", 1),
    }
}

/// A run of `count` datagrams of `size` bytes (the last may be shorter), one after
/// another in `data`: one sendmsg with UDP_SEGMENT, or one per datagram without GSO.
#[allow(clippy::too_many_arguments)]
fn send_run(io: &TxIo, fd: i32, to: SocketAddr, data: &[u8], size: usize, count: usize, ecn: u8, batch: &mut TxBatch) {
    if count == 1 || !io.gso.load(Ordering::Relaxed) {
        for d in data.chunks(size) {
            send_one(io, fd, to, d, ecn, batch);
        }
        return;
    }
    match sys::send(fd, to, data, Some(size as u16), tos(io, ecn)) {
        Ok(()) => {}
        Err(e) if e == libc::EAGAIN || e == libc::EWOULDBLOCK || e == libc::ENOBUFS => {
            batch.drop("send_buffer_full", count as u64)
        }
        Err(e) if refused(e) => {
            io.gso.store(false, Ordering::Relaxed);
            batch.drop("udp_gso_refused", 1);
            for d in data.chunks(size) {
                send_one(io, fd, to, d, ecn, batch);
            }
        }
        Err(_) => batch.drop("send_failed", count as u64),
    }
}

/// Send the batch's datagrams in order, GSO runs per endpoint and ECN field.
pub fn send_all(io: &TxIo, batch: &mut TxBatch) {
    let out = std::mem::take(&mut batch.out);
    let sealed = std::mem::take(&mut batch.sealed);
    let mut i = 0;
    while i < out.len() {
        let (to, first, ecn, masked) = (out[i].to, &out[i].range, out[i].ecn, out[i].masked);
        let size = first.len();
        let mut j = i + 1;
        let mut bytes = size;
        while j < out.len()
            && out[j].to == to
            && out[j].ecn == ecn
            && out[j].masked == masked
            && j - i < MAX_SEGMENTS
            && bytes + out[j].range.len() <= MAX_BYTES
            && out[j].range.len() <= size
        {
            bytes += out[j].range.len();
            j += 1;
            if out[j - 1].range.len() < size {
                break; // a shorter datagram ends the run
            }
        }
        let fd = match (masked, to.is_ipv4()) {
            (false, true) => io.v4,
            (false, false) => io.v6,
            (true, true) => io.masked_v4,
            (true, false) => io.masked_v6,
        };
        if fd < 0 {
            batch.drop("send_no_socket", (j - i) as u64);
        } else {
            // sealed one after another: the run is one contiguous slice
            let data = &sealed[first.start..out[j - 1].range.end];
            send_run(io, fd, to, data, size, j - i, ecn, batch);
        }
        i = j;
    }
    batch.out = out;
    batch.out.clear();
    batch.sealed = sealed;
    batch.sealed.clear(); // both keep their capacity for the next wake-up
}

pub fn run(shared: Arc<TxShared>, io: TxIo) {
    let mut buf = vec![0u8; VNET_HDR_LEN + 65536];
    let mut batch = TxBatch::default();
    while !shared.stop.load(Ordering::Relaxed) {
        // a [share] queue holding packets for later shortens the wait to its timer
        if sys::poll_readable(&[io.tun_fd], shared.wait_ms(POLL_MS))[0] {
            for _ in 0..READS {
                let n = match sys::read(io.tun_fd, &mut buf) {
                    Ok(Some(n)) => n,
                    Ok(None) => break,
                    Err(_) => {
                        batch.drop("tun_read_failed", 1);
                        break;
                    }
                };
                let tables = shared.tables.read().unwrap_or_else(|e| e.into_inner());
                shared.handle_frame(&tables, &buf[..n], io.vnet, io.tso, Instant::now(), &mut batch);
                drop(tables);
                if batch.sealed.len() >= SEND_AT {
                    send_all(&io, &mut batch);
                }
            }
        }
        {
            let tables = shared.tables.read().unwrap_or_else(|e| e.into_inner());
            shared.release(&tables, Instant::now(), &mut batch);
        }
        send_all(&io, &mut batch);
        if shared.publish(&mut batch) {
            sys::signal(io.event_fd);
        }
    }
}
