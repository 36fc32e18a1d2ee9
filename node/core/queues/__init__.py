"""Queues at the node's ingress, one module per algorithm behind one interface (base.py).

passthrough.PassThrough   no queue (the default)
shaper.Shaper             one FIFO paced to a rate (shaper.TokenBucket)
share.Share               the provider's: per-client DRR, FQ-CoDel per client, one pacer
fq_codel.FqCoDel          flow queueing with CoDel per flow (RFC 8290)
codel.CoDel               the CoDel control law of one queue (RFC 8289)

share_class() is the Share to use: the native one (dataplane/src/queue/, the same queue in
Rust) when tidewire._dataplane is built and has it, else share.Share, the reference.
"""

from importlib import import_module
from typing import Any

# Names from the submodules, loaded when first asked for (PEP 562): a node without
# [share] imports only base and passthrough, and a router's memory is not spent on the rest.
_WHERE = {
    "CoDel": ".codel",
    "FqCoDel": ".fq_codel",
    "flow_hash": ".fq_codel",
    "PassThrough": ".passthrough",
    "Queue": ".base",
    "QueueBase": ".base",
    "Shaper": ".shaper",
    "TokenBucket": ".shaper",
    "Share": ".share",
}


def share_class(*, hash: Any = None) -> Any:
    """tidewire._dataplane.Share if the native module is built and has it, else share.Share.
    Both take the same arguments but `hash`: a Share with a flow hash of its own (`hash`
    given) is the Python one. Called by a node that shapes: one without [share] imports
    neither."""
    if hash is not None:
        return import_module(".share", __name__).Share
    try:
        from tidewire import _dataplane  # type: ignore[attr-defined]
    except ImportError:
        _dataplane = None
    native = getattr(_dataplane, "Share", None)
    if native is not None:
        return native
    return import_module(".share", __name__).Share


def implementation(queue: object) -> str | None:
    """Which Share a queue slot holds, for status: "native", "python", "threads" (the
    native threads' own, ThreadShare), or None (another queue)."""
    kind = type(queue)
    if kind.__name__ == "ThreadShare":
        return "threads"
    if kind.__name__ != "Share":
        return None
    return "native" if kind.__module__ == "tidewire._dataplane" else "python"


def __getattr__(name: str) -> Any:
    if name == "mark_ce":
        from tidewire.node.core.ecn import mark_ce

        return mark_ce
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name], __name__), name)


__all__ = [*_WHERE, "implementation", "mark_ce", "share_class"]
