"""Events the core hands to its caller through `Device.next_event()`."""

from dataclasses import dataclass

from ..types import Path


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """A session is confirmed: the initiator got a response, or the responder got data on it."""

    public_key: bytes
    initiator: bool


@dataclass(frozen=True, slots=True)
class HandshakeGaveUp:
    """No response after 90 s of retries; staged packets were dropped."""

    public_key: bytes


@dataclass(frozen=True, slots=True)
class KeysZeroed:
    """Nothing authenticated for 540 s: every keypair and the handshake state were erased."""

    public_key: bytes


@dataclass(frozen=True, slots=True)
class PathChanged:
    """The device now sends to this peer over another path: an authenticated packet came
    from a new address (roaming), or the path policy chose another candidate."""

    public_key: bytes
    path: Path


@dataclass(frozen=True, slots=True)
class TimestampSent:
    """A new TAI64N timestamp went out: persist it, so a restart never sends an older one."""

    public_key: bytes
    timestamp: bytes


Event = HandshakeCompleted | HandshakeGaveUp | KeysZeroed | PathChanged | TimestampSent
