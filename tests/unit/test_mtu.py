"""node/core/mtu.py on whatever bytes the network sends: for any packet that passes the
data path's header check, MSS clamping and the "too big" answer never raise, and what
they return is the packet itself, a packet of the same length, or an ICMP answer."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.node.core.mtu import PathMtu
from tidewire.node.core.packet import TCP, inspect

PLAUSIBLE = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda b, rest: bytes([0x45]) + b + rest,
        st.binary(min_size=19, max_size=19),
        st.binary(max_size=120),
    ),
    st.builds(
        lambda b, rest: bytes([0x60]) + b + rest,
        st.binary(min_size=39, max_size=39),
        st.binary(max_size=120),
    ),
)


@settings(max_examples=500)
@given(PLAUSIBLE)
def test_random_packets_never_raise(data: bytes) -> None:
    inner = inspect(data)
    if inner is None:
        return
    mtu = PathMtu(mtu=1420, overheads={}, router4=bytes(4), router6=bytes(16))
    if inner.proto == TCP:
        out = mtu.clamp(data, inner.version, 100)
        assert out is data or len(out) == len(data)
    answer = mtu.too_big(data, 100, now=0.0)
    assert answer is None or answer[0] >> 4 == inner.version
