//! The receive thread: it waits on the UDP sockets (poll, 100 ms so a stop is seen, less
//! while a `[share]` queue holds packets for later),
//! drains up to READS reads per socket, hands each read's datagrams to rx.rs, writes
//! what opened to the TUN (coalesced when the TUN takes virtio-net headers) and signals
//! Python's eventfd when it handed anything back. No Python object is touched here.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::gro;
use crate::rx::{self, Batch, Shared, TUN_BATCH};
use crate::sys;
use crate::tun;

const READS: usize = 64; // reads per socket per wake-up before the TUN batch is written
const POLL_MS: i32 = 100;

pub struct Io {
    pub sockets: Vec<i32>,
    pub masked: Vec<bool>, // per socket: the masked transport's (mask.rs)
    pub tun_fd: i32,
    pub tun_gro: bool,
    pub event_fd: i32,
}

fn write_tun(io: &Io, batch: &mut Batch) {
    if batch.tun.is_empty() {
        return;
    }
    let packets = batch.packets();
    let (_, full, failed) = if io.tun_gro {
        tun::write_frames(io.tun_fd, &gro::coalesce(&packets))
    } else {
        tun::write_frames(io.tun_fd, &packets)
    };
    batch.clear_tun();
    for _ in 0..full {
        batch.drop("tun_write_full");
    }
    for _ in 0..failed {
        batch.drop("tun_write_failed");
    }
}

pub fn run(shared: Arc<Shared>, io: Io) {
    let mut buf = vec![0u8; 65536];
    let mut batch = Batch::default();
    while !shared.stop.load(Ordering::Relaxed) {
        let ready = sys::poll_readable(&io.sockets, shared.wait_ms(POLL_MS));
        for ((&fd, &masked), _) in io.sockets.iter().zip(&io.masked).zip(ready).filter(|(_, r)| *r) {
            for _ in 0..READS {
                let got = match sys::receive(fd, &mut buf) {
                    Ok(Some(got)) => got,
                    Ok(None) => break,
                    Err(_) => {
                        batch.drop("recv_error"); // e.g. ICMP errors reported on the socket
                        continue;
                    }
                };
                let size = if got.segment == 0 { got.length.max(1) } else { got.segment };
                {
                    let tables = shared.tables.read().unwrap_or_else(|e| e.into_inner());
                    let datagrams = rx::cut(&tables, &mut buf[..got.length], size, masked, got.from);
                    shared.handle(&tables, &datagrams, got.from, got.ecn, Instant::now(), &mut batch);
                }
                if batch.tun.len() >= TUN_BATCH {
                    write_tun(&io, &mut batch);
                }
            }
        }
        shared.release(&mut batch); // what a [share] queue lets go now
        write_tun(&io, &mut batch);
        if shared.publish(&mut batch) {
            sys::signal(io.event_fd);
        }
    }
}
