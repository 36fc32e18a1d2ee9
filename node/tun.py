"""A Linux TUN device (Documentation/networking/tuntap.rst): IFF_TUN | IFF_NO_PI, non-blocking.

The interface lives as long as the file descriptor: closing it removes the
interface with its addresses and routes, which is also what happens if the
process is killed.
"""

import errno
import fcntl
import os
import struct

from .errors import NodeError

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04


def open_tun(name: str, *, vnet_hdr: bool = False) -> int:
    """Open (creating) the TUN interface `name`. With `vnet_hdr`, every read and write
    carries a virtio_net_hdr, which lets the node write coalesced TCP super-packets
    (node/core/gro.py); reads stay whole packets with finished checksums unless
    `enable_tso` is called too."""
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NodeError(
            "/dev/net/tun is missing: load the tun kernel module (modprobe tun)"
        ) from None
    except PermissionError:
        raise NodeError("opening /dev/net/tun needs root (or CAP_NET_ADMIN)") from None
    try:
        flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
    except OSError as exc:
        os.close(fd)
        if exc.errno == errno.EPERM:
            raise NodeError(f"creating interface {name} needs root (or CAP_NET_ADMIN)") from None
        if exc.errno == errno.EBUSY:
            raise NodeError(f"interface {name} already exists and is in use") from None
        if exc.errno == errno.EINVAL:
            raise NodeError(f"interface {name} exists and is not a TUN device") from None
        raise NodeError(f"cannot create TUN interface {name}: {exc.strerror}") from None
    return fd


def enable_tso(fd: int) -> bool:
    """Let the kernel hand over TCP super-packets (up to 64 KiB) and unfinished checksums
    on reads from a TUN opened with `vnet_hdr`; node/core/gso.py finishes the work.
    False if the kernel refuses, and reads stay as they were."""
    try:
        fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
    except OSError:
        return False
    return True
