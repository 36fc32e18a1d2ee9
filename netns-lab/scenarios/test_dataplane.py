"""The native data plane in a real tunnel: two tidewire nodes on it (the default when
`tidewire._dataplane` is built), its receive thread reading UDP, and the same pair on
`--dataplane python`.

[a] 192.168.243.1 ---- veth ---- 192.168.243.2 [b]
    tunnel 10.79.0.1              tunnel 10.79.0.2
"""

import pytest
from common import handshaken, ping, transfer
from lab import Lab

from tidewire.node.dataplane import load

BUILT = load() is not None


@pytest.mark.parametrize("plane", ["native", "python"])
def test_a_pair_moves_data_intact_on_either_plane_and_says_which(plane: str) -> None:
    if plane == "native" and not BUILT:
        pytest.skip("tidewire._dataplane is not built (scripts/setup builds it with cargo)")
    with Lab("plane") as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.link(a, b, "192.168.243.1/24", "192.168.243.2/24")
        na, nb = lab.tidewire_pair(
            a,
            b,
            endpoint="192.168.243.2:51821",
            tunnel_a=["10.79.0.1/24"],
            tunnel_b=["10.79.0.2/24"],
            args=("--dataplane", plane),
        )
        ping(a, "10.79.0.2")
        ping(b, "10.79.0.1")
        assert handshaken(na) and handshaken(nb)
        for node in (na, nb):
            st = node.status()
            assert st["dataplane"] == plane, st["dataplane_why"]
        transfer(lab, a, b, "10.79.0.2", 20 * 1024 * 1024)
        transfer(lab, b, a, "10.79.0.1", 20 * 1024 * 1024, port=5002)
        for node in (na, nb):
            st = node.status()
            assert not {k: v for k, v in st["drops"].items() if k.startswith("transport_")}
            if plane == "native":  # the receive thread wrote the transfer's bulk (TCP data or ACKs)
                assert "native send and receive threads" in st["dataplane_why"], st["dataplane_why"]
                assert st["counters"].get("native_rx_datagrams", 0) > 5000, st["counters"]
        assert na.proc.alive() and nb.proc.alive()
