"""Giving freed memory back to the system once the node is up.

Starting a node allocates much that it frees again: the code of every module's top
level (run once, then dropped), the config's parse, the command line's parser.
glibc's malloc keeps those free chunks in its heap, resident, until it is told to
trim; `malloc_trim(0)` returns every free page it can (the top of the heap and the
whole free pages inside it). On this machine kind that is about 1 MB of a node's
resident memory (BENCHMARKS.md, "Memory"). Other C libraries (musl on OpenWrt) have
no `malloc_trim`: nothing to do there.
"""

import ctypes
import logging

log = logging.getLogger("tidewire.node")


def release_free_memory() -> bool:
    """Trim the C heap; False where the C library has no `malloc_trim`."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True
