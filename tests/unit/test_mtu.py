"""node/core/mtu.py on whatever bytes the network sends: for any packet that passes the
data path's header check, MSS clamping and the "too big" answer never raise, and what
they return is the packet itself, a packet of the same length, or an ICMP answer."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.node.core.mtu import PathMtu, is_syn
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


@pytest.mark.parametrize("flags", ["S", "SA", "A", "PA", "F"])
@pytest.mark.parametrize("kind", ["ipv4", "ipv4-options", "ipv6", "ipv6-ext"])
def test_is_syn_finds_the_syn_bit(flags: str, kind: str) -> None:
    from scapy.layers.inet import IP, TCP, IPOption_NOP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop

    ip = {
        "ipv4": IP(),
        "ipv4-options": IP(options=[IPOption_NOP()] * 4),
        "ipv6": IPv6(),
        "ipv6-ext": IPv6() / IPv6ExtHdrHopByHop(),
    }[kind]
    packet = bytes(ip / TCP(flags=flags))
    # an extended IPv6 header is always handed to mss.py's walk
    assert is_syn(packet) == ("S" in flags or kind == "ipv6-ext")
