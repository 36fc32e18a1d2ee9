"""Queues at the node's ingress, one module per algorithm behind one interface (base.py).

passthrough.PassThrough   no queue (the default)
shaper.Shaper             one FIFO paced to a rate (shaper.TokenBucket)
share.Share               the provider's: per-client DRR, FQ-CoDel per client, one pacer
fq_codel.FqCoDel          flow queueing with CoDel per flow (RFC 8290)
codel.CoDel               the CoDel control law of one queue (RFC 8289)
"""

from tidewire.node.core.ecn import mark_ce

from .base import Queue, QueueBase
from .codel import CoDel
from .fq_codel import FqCoDel, flow_hash
from .passthrough import PassThrough
from .shaper import Shaper, TokenBucket
from .share import Share

__all__ = [
    "CoDel",
    "FqCoDel",
    "PassThrough",
    "Queue",
    "QueueBase",
    "Shaper",
    "Share",
    "TokenBucket",
    "flow_hash",
    "mark_ce",
]
