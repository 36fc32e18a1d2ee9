//! Coalescing inbound TCP segments into TUN writes with a virtio-net header (generic
//! receive offload in user space), as node/core/gro.py does, byte for byte.
//!
//! Consecutive segments of one flow merge when Linux GRO and wireguard-go's
//! tun/offload_linux.go would merge them: IPv4 without options or fragments, or IPv6
//! without extension headers; the same addresses, ports, TTL/hop limit, traffic class
//! (and flow label), ack number, window and TCP options; only ACK set (PSH allowed on
//! the last); sequence numbers that follow; every payload but the last as long as the
//! first. A merged run is the first segment's headers, the payloads back to back, the
//! IP length (IPv4: header checksum) rewritten and the TCP checksum field holding the
//! pseudo-header sum, under a header asking the kernel to cut it again (GSO_TCPV4/6,
//! NEEDS_CSUM). Everything else is written as it came, after an empty header.

use crate::checksum::{fold, set_ipv4_header_checksum, words};
use crate::offload::{GSO_TCPV4, GSO_TCPV6, NEEDS_CSUM, PSH, VNET_HDR_LEN};

const MAX_SUPER: usize = 65535;
const ACK: u8 = 0x10;

/// What a segment must share with its run, and where its parts are.
struct Flow<'a> {
    key: [&'a [u8]; 6], // the IP fields, ports, ack, data offset, window, options
    ip_len: usize,
    tcp_len: usize,
    seq: u32,
    plen: usize,
}

fn be16(p: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([p[at], p[at + 1]]))
}

fn flow(pkt: &[u8]) -> Option<Flow<'_>> {
    let n = pkt.len();
    if n < 40 {
        return None;
    }
    // (the IP fields of the key, ip_len, total length)
    let (ip_key, ip_len, total): ([&[u8]; 1], usize, usize) = match pkt[0] >> 4 {
        4 => {
            let frag = be16(pkt, 6);
            if pkt[0] != 0x45 || pkt[9] != 6 || frag & 0x3FFF != 0 {
                return None; // options, MF, a fragment offset, not TCP
            }
            // version/ihl, tos (byte 1), ttl (byte 8), addresses (12-20): gathered below
            ([&pkt[0..2]], 20, be16(pkt, 2))
        }
        6 => {
            if n < 60 || pkt[6] != 6 {
                return None;
            }
            ([&pkt[0..4]], 40, 40 + be16(pkt, 4))
        }
        _ => return None,
    };
    if total != n {
        return None;
    }
    let tcp_len = usize::from(pkt[ip_len + 12] >> 4) * 4;
    if tcp_len < 20 || ip_len + tcp_len > n {
        return None;
    }
    let flags = pkt[ip_len + 13];
    if flags & !(ACK | PSH) != 0 || flags & ACK == 0 {
        return None;
    }
    let t = ip_len;
    let (hop, addrs) = if ip_len == 20 {
        (&pkt[8..9], &pkt[12..20])
    } else {
        (&pkt[7..8], &pkt[8..40])
    };
    Some(Flow {
        key: [
            ip_key[0],
            hop,
            addrs,
            &pkt[t..t + 4],            // ports
            &pkt[t + 8..t + 13],       // ack and data offset
            &pkt[t + 14..t + tcp_len], // window, (checksum, urgent skipped below) options
        ],
        ip_len,
        tcp_len,
        seq: u32::from_be_bytes([pkt[t + 4], pkt[t + 5], pkt[t + 6], pkt[t + 7]]),
        plen: n - ip_len - tcp_len,
    })
}

/// Flow keys equal: the window (2 bytes) and the options, not the checksum or urgent
/// pointer between them.
fn same_key(a: &Flow<'_>, b: &Flow<'_>) -> bool {
    a.key[..5] == b.key[..5]
        && a.key[5].len() == b.key[5].len()
        && a.key[5][..2] == b.key[5][..2]
        && a.key[5][6..] == b.key[5][6..]
}

/// The TUN writes for a batch of inner packets, in order within every flow.
pub fn coalesce(packets: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut run: Vec<&[u8]> = Vec::new();
    let mut first: Option<Flow<'_>> = None;
    let mut next_seq: u32 = 0;
    let mut run_bytes = 0usize;
    for &pkt in packets {
        let info = match flow(pkt) {
            Some(f) if f.plen > 0 => f,
            _ => {
                flush(&mut out, &mut run, &mut first);
                out.push(plain(pkt));
                continue;
            }
        };
        if let Some(head) = &first {
            let last = run[run.len() - 1];
            let same = same_key(&info, head)
                && info.seq == next_seq
                && info.plen <= head.plen
                && last[info.ip_len + 13] & PSH == 0
                && last.len() - info.ip_len - info.tcp_len == head.plen
                && run_bytes + info.plen <= MAX_SUPER;
            if same {
                run.push(pkt);
                next_seq = info.seq.wrapping_add(info.plen as u32);
                run_bytes += info.plen;
                continue;
            }
            flush(&mut out, &mut run, &mut first);
        }
        next_seq = info.seq.wrapping_add(info.plen as u32);
        run_bytes = pkt.len();
        run.push(pkt);
        first = Some(info);
    }
    flush(&mut out, &mut run, &mut first);
    out
}

fn plain(pkt: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(VNET_HDR_LEN + pkt.len());
    v.extend_from_slice(&[0u8; VNET_HDR_LEN]);
    v.extend_from_slice(pkt);
    v
}

fn flush<'a>(out: &mut Vec<Vec<u8>>, run: &mut Vec<&'a [u8]>, first: &mut Option<Flow<'a>>) {
    if let Some(info) = first.take() {
        if run.len() > 1 {
            out.push(merge(run, &info));
        } else {
            out.push(plain(run[0]));
        }
    }
    run.clear();
}

fn merge(run: &[&[u8]], info: &Flow<'_>) -> Vec<u8> {
    let (ip_len, hdr_len) = (info.ip_len, info.ip_len + info.tcp_len);
    let total = hdr_len + run.iter().map(|p| p.len() - hdr_len).sum::<usize>();
    let mut v = Vec::with_capacity(VNET_HDR_LEN + total);
    let gso_type = if ip_len == 20 { GSO_TCPV4 } else { GSO_TCPV6 };
    v.push(NEEDS_CSUM);
    v.push(gso_type);
    for field in [hdr_len, info.plen, ip_len, 16] {
        v.extend_from_slice(&(field as u16).to_ne_bytes());
    }
    v.extend_from_slice(&run[0][..hdr_len]);
    for p in run {
        v.extend_from_slice(&p[hdr_len..]);
    }
    let h = VNET_HDR_LEN;
    if run[run.len() - 1][ip_len + 13] & PSH != 0 {
        v[h + ip_len + 13] |= PSH;
    }
    let tcp_total = (total - ip_len) as u64;
    let pseudo = if ip_len == 20 {
        v[h + 2..h + 4].copy_from_slice(&(total as u16).to_be_bytes());
        set_ipv4_header_checksum(&mut v[h..h + 20], 20);
        words(&v[h + 12..h + 20]) + 6 + tcp_total
    } else {
        v[h + 4..h + 6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
        words(&v[h + 8..h + 40]) + 6 + tcp_total
    };
    v[h + ip_len + 16..h + ip_len + 18].copy_from_slice(&fold(pseudo).to_be_bytes());
    v
}
