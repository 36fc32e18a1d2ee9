//! Cutting TCP super-packets read from a TUN with virtio-net headers into segments
//! (segmentation offload in user space), as node/core/gso.py does, byte for byte:
//! the 10-byte virtio_net_hdr (include/uapi/linux/virtio_net.h, native-endian), then
//! for GSO_TCPV4/GSO_TCPV6 the payload cut into `gso_size` pieces, each with a copy of
//! the headers with its own sequence number, IP length (IPv4: identification + i and a
//! fresh header checksum), FIN and PSH only on the last, CWR only on the first, and a
//! complete TCP checksum (Linux's tcp_gso_segment, wireguard-go's tun/offload_linux.go
//! gsoSplit); for NEEDS_CSUM without GSO the checksum at csum_start + csum_offset
//! finished. A frame that cannot be a packet is refused with the Python path's reason.
//! No I/O here; every index is checked before it is used (hostile lengths only refuse).

use crate::checksum::{complement, set_ipv4_header_checksum, words};

// the virtio_net_hdr's length and values, and TCP's flags (gro.rs uses them too)
pub const VNET_HDR_LEN: usize = 10;
pub const MAX_FRAME: usize = VNET_HDR_LEN + 65535;
pub const NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_TCPV6: u8 = 4;
const GSO_ECN: u8 = 0x80;
const FIN: u8 = 0x01;
pub const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

fn u16_ne(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u16_be(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

/// The IP packets carried by one TUN read (virtio_net_hdr first), checksums finished.
pub fn split(frame: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    let mut out = Vec::new();
    split_each(frame, |p| out.push(p.to_vec()))?;
    Ok(out)
}

/// `split` without a buffer per packet: `each` sees the packets one by one, in order,
/// built in one scratch buffer (the send thread seals each as it comes); a refusal
/// comes before any packet. The number of packets.
pub fn split_each(frame: &[u8], mut each: impl FnMut(&[u8])) -> Result<usize, &'static str> {
    if frame.len() < VNET_HDR_LEN + 20 {
        return Err("tun_short");
    }
    if frame.len() > MAX_FRAME {
        return Err("tun_oversized");
    }
    let flags = frame[0];
    let gso_type = frame[1] & !GSO_ECN;
    let gso_size = usize::from(u16_ne(frame, 4));
    let csum_start = usize::from(u16_ne(frame, 6));
    let csum_offset = usize::from(u16_ne(frame, 8));
    let pkt = &frame[VNET_HDR_LEN..];
    if gso_type == GSO_NONE {
        if flags & NEEDS_CSUM != 0 {
            each(&finish(pkt, csum_start, csum_offset)?);
        } else {
            each(pkt);
        }
        return Ok(1);
    }
    if (gso_type != GSO_TCPV4 && gso_type != GSO_TCPV6) || gso_size == 0 {
        return Err("tun_gso_unsupported");
    }
    segment(pkt, gso_type == GSO_TCPV6, gso_size, &mut each)
}

fn finish(pkt: &[u8], start: usize, offset: usize) -> Result<Vec<u8>, &'static str> {
    let at = start + offset;
    if start < 20 || at + 2 > pkt.len() {
        return Err("tun_bad_csum_offset");
    }
    let partial = u64::from(u16::from_be_bytes([pkt[at], pkt[at + 1]]));
    let mut out = pkt.to_vec();
    out[at] = 0;
    out[at + 1] = 0;
    let mut value = complement(words(&out[start..]) + partial);
    let proto = if pkt[0] >> 4 == 4 { pkt[9] } else { pkt[6] };
    if value == 0 && proto == 17 {
        value = 0xFFFF; // UDP: zero means "no checksum"
    }
    out[at..at + 2].copy_from_slice(&value.to_be_bytes());
    Ok(out)
}

fn segment(pkt: &[u8], v6: bool, mss: usize, each: &mut impl FnMut(&[u8])) -> Result<usize, &'static str> {
    let n = pkt.len();
    let (ip_len, pseudo) = if v6 {
        if pkt[0] >> 4 != 6 || n < 60 {
            return Err("tun_gso_bad_ip");
        }
        if pkt[6] != 6 {
            return Err("tun_gso_not_tcp"); // extension headers: not produced by Linux TSO
        }
        if 40 + u16_be(pkt, 4) != n {
            return Err("tun_gso_bad_length");
        }
        (40, words(&pkt[8..40]) + 6)
    } else {
        let ip_len = usize::from(pkt[0] & 0x0F) * 4;
        if pkt[0] >> 4 != 4 || ip_len < 20 || n < ip_len + 20 {
            return Err("tun_gso_bad_ip");
        }
        if pkt[9] != 6 {
            return Err("tun_gso_not_tcp");
        }
        if u16_be(pkt, 2) != n {
            return Err("tun_gso_bad_length");
        }
        (ip_len, words(&pkt[12..20]) + 6)
    };
    let tcp_len = usize::from(pkt[ip_len + 12] >> 4) * 4;
    let hdr_len = ip_len + tcp_len;
    if tcp_len < 20 || hdr_len > n {
        return Err("tun_gso_bad_tcp");
    }
    let payload = &pkt[hdr_len..];
    let seq0 = u32::from_be_bytes([
        pkt[ip_len + 4],
        pkt[ip_len + 5],
        pkt[ip_len + 6],
        pkt[ip_len + 7],
    ]);
    let flags0 = pkt[ip_len + 13];
    let ip_id0 = u16::from_be_bytes([pkt[4], pkt[5]]);
    let count = std::cmp::max(1, (payload.len() + mss - 1) / mss);
    let mut seg = Vec::with_capacity(hdr_len + mss);
    for i in 0..count {
        let chunk = &payload
            [std::cmp::min(i * mss, payload.len())..std::cmp::min((i + 1) * mss, payload.len())];
        let total = hdr_len + chunk.len();
        seg.clear();
        seg.extend_from_slice(&pkt[..hdr_len]);
        let seq = seq0.wrapping_add((i * mss) as u32);
        seg[ip_len + 4..ip_len + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = flags0;
        if i < count - 1 {
            flags &= !(FIN | PSH);
        }
        if i > 0 {
            flags &= !CWR;
        }
        seg[ip_len + 13] = flags;
        if v6 {
            seg[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
        } else {
            seg[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            seg[4..6].copy_from_slice(&ip_id0.wrapping_add(i as u16).to_be_bytes());
            set_ipv4_header_checksum(&mut seg, ip_len);
        }
        seg[ip_len + 16] = 0;
        seg[ip_len + 17] = 0;
        // the TCP header's length is a multiple of 4, so header and payload sums add up
        let sum =
            complement(words(&seg[ip_len..]) + words(chunk) + pseudo + (total - ip_len) as u64);
        seg[ip_len + 16..ip_len + 18].copy_from_slice(&sum.to_be_bytes());
        seg.extend_from_slice(chunk);
        each(&seg);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_headers_only_refuse() {
        // every length and offset a header can claim, on frames too short for them
        for gso in [0u8, 1, 4, 0x81, 3] {
            for size in [0u16, 1, 7, 1400, 65535] {
                for body in [20usize, 39, 40, 59, 60, 100] {
                    let mut f = vec![0u8; VNET_HDR_LEN + body];
                    f[0] = 1;
                    f[1] = gso;
                    f[4..6].copy_from_slice(&size.to_ne_bytes());
                    f[6..8].copy_from_slice(&size.to_ne_bytes());
                    f[8..10].copy_from_slice(&size.to_ne_bytes());
                    f[VNET_HDR_LEN] = if gso == 4 { 0x60 } else { 0x4f };
                    let _ = split(&f);
                }
            }
        }
    }
}
