//! What the receive thread does with an opened inner packet: deliver it to the TUN when
//! it is a plain IPv4 or IPv6 packet (node/core/packet.py's `inspect` reads it the same
//! way), or hand it to Python with a reason when the Python path has more to do with it:
//! a control packet to our overlay address (and relay frames), a TCP SYN whose MSS the
//! path clamps (node/core/mtu.py), fragments, extension headers, anything malformed
//! (Python counts the drop with its own reason).

pub const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMPV6: u8 = 58;
const TCP_SYN: u8 = 0x02;

#[derive(Debug, PartialEq, Eq)]
pub enum Inner {
    /// to the TUN: the IP version, the source and destination addresses, the protocol,
    /// the destination port of TCP and UDP (-1 if none, as packet.py's `dport`) and the
    /// packet's own length
    Deliver { version: u8, src: u128, dst: u128, proto: u8, dport: i32, length: usize },
    /// to Python, with why
    Python(&'static str),
}

fn be(bytes: &[u8]) -> u128 {
    bytes.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
}

/// The destination port of a TCP or UDP header at `at`, or -1.
fn port(packet: &[u8], proto: u8, at: usize, total: usize) -> i32 {
    if (proto == TCP || proto == UDP) && total >= at + 4 {
        i32::from(packet[at + 2]) << 8 | i32::from(packet[at + 3])
    } else {
        -1
    }
}

pub fn classify(packet: &[u8], overlay: &[u8; 16]) -> Inner {
    let n = packet.len();
    if n < 20 {
        return Inner::Python("inner");
    }
    match packet[0] >> 4 {
        4 => {
            let ihl = usize::from(packet[0] & 0x0F) * 4;
            let total = usize::from(packet[2]) << 8 | usize::from(packet[3]);
            if ihl < 20 || total < ihl || total > n {
                return Inner::Python("inner");
            }
            if packet[6] & 0x3F != 0 || packet[7] != 0 {
                return Inner::Python("fragment");
            }
            if packet[9] == TCP && (total < ihl + 20 || packet[ihl + 13] & TCP_SYN != 0) {
                return Inner::Python("syn");
            }
            let proto = packet[9];
            let dport = port(packet, proto, ihl, total);
            Inner::Deliver { version: 4, src: be(&packet[12..16]), dst: be(&packet[16..20]), proto, dport, length: total }
        }
        6 => {
            if n < 40 {
                return Inner::Python("inner");
            }
            let total = 40 + (usize::from(packet[4]) << 8 | usize::from(packet[5]));
            if total > n {
                return Inner::Python("inner");
            }
            if packet[24..40] == overlay[..] {
                return Inner::Python("control");
            }
            let proto = packet[6];
            if proto != TCP && proto != UDP && proto != ICMPV6 {
                return Inner::Python("extension");
            }
            if proto == TCP && (total < 60 || packet[53] & TCP_SYN != 0) {
                return Inner::Python("syn");
            }
            let dport = port(packet, proto, 40, total);
            Inner::Deliver { version: 6, src: be(&packet[8..24]), dst: be(&packet[24..40]), proto, dport, length: total }
        }
        _ => Inner::Python("inner"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_packets_go_to_the_tun_and_the_rest_to_python() {
        let overlay = [0xfd; 16];
        let mut v4 = vec![0u8; 40];
        v4[0] = 0x45;
        v4[3] = 40;
        v4[9] = TCP;
        v4[12..16].copy_from_slice(&[10, 0, 0, 2]);
        v4[33] = 0x10; // ACK
        assert_eq!(
            classify(&v4, &overlay),
            Inner::Deliver { version: 4, src: 0x0a00_0002, dst: 0, proto: TCP, dport: 0, length: 40 }
        );
        v4[33] = 0x12; // SYN-ACK
        assert_eq!(classify(&v4, &overlay), Inner::Python("syn"));
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[5] = 8;
        v6[6] = UDP;
        v6[24..40].copy_from_slice(&overlay);
        assert_eq!(classify(&v6, &overlay), Inner::Python("control"));
        assert_eq!(classify(&v6[..30], &overlay), Inner::Python("inner"));
    }
}
