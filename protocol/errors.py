"""Errors have a direction (h11's habit).

`LocalProtocolError`: the caller misused the API or gave bad configuration (a
bad key, an illegal state transition). `RemoteProtocolError`: the peer sent
something we refuse; the receive path catches these and turns them into a
counted drop, so none ever escapes the core.
"""


class ProtocolError(Exception):
    """Base of the errors this package raises."""


class LocalProtocolError(ProtocolError):
    """We (the caller) did something wrong: bad configuration or an illegal move."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something we refuse. `reason` is the drop counter's key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
