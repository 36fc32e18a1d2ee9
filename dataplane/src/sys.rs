//! The threads' system calls (rx_thread.rs, tx_thread.rs): poll(2) on the UDP sockets,
//! recvmsg(2) with the UDP_GRO segment size and the outer TOS as control messages, and
//! an eventfd(2) that tells Python's event loop the hand-back queue has items; the TUN
//! read(2) and sendmsg(2) with UDP_SEGMENT (GSO) of the send thread. Every
//! `unsafe` block of the crate outside tun.rs is here, each with its reasons.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

const SOL_UDP: i32 = 17;
const UDP_GRO: i32 = 104;
const UDP_SEGMENT: i32 = 103;

pub struct Received {
    pub length: usize,
    pub segment: usize, // the GRO segment size, 0 when the read is one datagram
    pub ecn: u8,
    pub from: SocketAddr,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Which of `fds` are readable within `timeout_ms` (all false on a timeout or EINTR).
pub fn poll_readable(fds: &[i32], timeout_ms: i32) -> Vec<bool> {
    let mut polled: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `polled` is a live array of `polled.len()` pollfd structs that poll(2)
    // writes only the `revents` fields of; its length fits nfds_t.
    let n = unsafe { libc::poll(polled.as_mut_ptr(), polled.len() as libc::nfds_t, timeout_ms) };
    if n <= 0 {
        return vec![false; fds.len()];
    }
    polled.iter().map(|p| p.revents & (libc::POLLIN | libc::POLLERR) != 0).collect()
}

fn address(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote an AF_INET address, so the storage holds a
            // sockaddr_in; sockaddr_storage is large and aligned enough for it.
            let sin = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for an AF_INET6 address and sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id)))
        }
        _ => None,
    }
}

/// One recvmsg(2) on the non-blocking `fd` into `buf`: Ok(None) when nothing is
/// waiting (EAGAIN), Err(errno) on another failure.
pub fn receive(fd: i32, buf: &mut [u8]) -> Result<Option<Received>, i32> {
    let mut control = [0u64; 16]; // 128 bytes, aligned for cmsghdr: GRO and TOS fit
    // SAFETY: an all-zero sockaddr_storage is a valid value of that plain C struct.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: an all-zero msghdr is valid; every pointer is set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut storage as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at live buffers (`buf`, `storage`, `control`, `iov`) whose
    // sizes it states; recvmsg(2) writes within them and nothing outlives the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        let e = errno();
        return if e == libc::EAGAIN || e == libc::EWOULDBLOCK { Ok(None) } else { Err(e) };
    }
    let (mut segment, mut ecn) = (0usize, 0u8);
    // SAFETY: the CMSG_* walk reads only within `control`, which recvmsg filled and
    // whose length it reported in msg_controllen; each value is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
            let data = libc::CMSG_DATA(cmsg);
            if level == SOL_UDP && kind == UDP_GRO {
                segment = std::ptr::read_unaligned(data.cast::<i32>()).max(0) as usize;
            } else if level == libc::IPPROTO_IP && kind == libc::IP_TOS {
                ecn = *data & 3;
            } else if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_TCLASS {
                ecn = (std::ptr::read_unaligned(data.cast::<i32>()) & 3) as u8;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    match address(&storage) {
        Some(from) => Ok(Some(Received { length: n as usize, segment, ecn, from })),
        None => Err(libc::EAFNOSUPPORT),
    }
}

/// A non-blocking eventfd, or -1.
pub fn eventfd() -> i32 {
    // SAFETY: eventfd(2) takes no pointers; a failure returns -1.
    unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) }
}

/// Make the eventfd readable (a full counter already is, so a failure is harmless).
pub fn signal(fd: i32) {
    let one: u64 = 1;
    // SAFETY: writes the 8 bytes of `one`, a live local, as eventfd(2) requires.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

pub fn close(fd: i32) {
    // SAFETY: `fd` is the eventfd this module made and nothing uses after this call.
    unsafe { libc::close(fd) };
}

/// One read(2) of the non-blocking `fd` (the TUN) into `buf`: Ok(None) on EAGAIN.
pub fn read(fd: i32, buf: &mut [u8]) -> Result<Option<usize>, i32> {
    // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes; read(2) writes
    // at most that many into it.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = errno();
        return if e == libc::EAGAIN || e == libc::EWOULDBLOCK { Ok(None) } else { Err(e) };
    }
    Ok(Some(n as usize))
}

/// sendmsg(2) of `data` to `to` on `fd`, with a UDP_SEGMENT control message when
/// `segment` is given (the kernel cuts `data` into datagrams of that size, UDP GSO) and
/// an IP_TOS or IPV6_TCLASS one (an int, the family's) when `tos` is not 0.
pub fn send(fd: i32, to: SocketAddr, data: &[u8], segment: Option<u16>, tos: u8) -> Result<(), i32> {
    // SAFETY: an all-zero sockaddr_storage is valid; it is filled below as the family's
    // own struct, which it is large and aligned enough to hold.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match to {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
                sin_zero: [0; 8],
            };
            // SAFETY: see above: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: see above: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    let mut control = [0u64; 8]; // room for two cmsghdrs (a u16 and an int), aligned
    // SAFETY: an all-zero msghdr is valid; every pointer is set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut storage as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = len as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: CMSG_SPACE only computes a size.
    let (seg_space, tos_space) = unsafe { (libc::CMSG_SPACE(2) as usize, libc::CMSG_SPACE(4) as usize) };
    let space = if segment.is_some() { seg_space } else { 0 } + if tos != 0 { tos_space } else { 0 };
    if space > 0 {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: `control` is 64 bytes, more than the two CMSG_SPACEs (48) that
        // msg_controllen states; CMSG_FIRSTHDR and CMSG_NXTHDR stay within it, so each
        // header and its value (written unaligned) lie inside `control`.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            if let Some(size) = segment {
                (*cmsg).cmsg_level = SOL_UDP;
                (*cmsg).cmsg_type = UDP_SEGMENT;
                (*cmsg).cmsg_len = libc::CMSG_LEN(2) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), size);
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
            if tos != 0 {
                let (level, kind) = match to {
                    SocketAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_TOS),
                    SocketAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
                };
                (*cmsg).cmsg_level = level;
                (*cmsg).cmsg_type = kind;
                (*cmsg).cmsg_len = libc::CMSG_LEN(4) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), i32::from(tos)); // a C int
            }
        }
    }
    // SAFETY: `msg` points at live buffers (`storage`, `iov` over `data`, `control`)
    // whose sizes it states; sendmsg(2) only reads them during the call.
    let n = unsafe { libc::sendmsg(fd, &msg, 0) };
    if n < 0 {
        return Err(errno());
    }
    Ok(())
}

/// `buf` filled from the kernel's CSPRNG (getrandom(2)); false if it failed.
pub fn getrandom(buf: &mut [u8]) -> bool {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes at most `buf.len() - done` bytes into the live tail of `buf`.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return false;
        }
        done += n as usize;
    }
    true
}
