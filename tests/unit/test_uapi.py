"""WireGuard's userspace API, sans-IO: framing, parsing with wireguard-go's errno values,
planning a `set` over the current peers, and formatting a `get` answer."""

import errno
from ipaddress import ip_network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidewire.node.core import uapi
from tidewire.node.core.uapi import Get, PeerState, Plan, Snapshot, UapiError

A, B, C, OWN = (bytes([n]) * 32 for n in (1, 2, 3, 9))
NET = ip_network


def parse(text: str) -> uapi.Get | uapi.SetRequest:
    return uapi.parse_request(text.encode())


def refused(text: str) -> int:
    with pytest.raises(UapiError) as info:
        parse(text)
    return info.value.errno


def state(key: bytes, *nets: str, **kw: object) -> PeerState:
    return PeerState(public_key=key, allowed_ips=[NET(n) for n in nets], **kw)  # type: ignore[arg-type]


# -- framing and parsing ------------------------------------------------------


def test_frame_end_finds_the_empty_line() -> None:
    assert uapi.frame_end(b"get=1\n") is None
    assert uapi.frame_end(b"get=1\n\nget=1\n\n") == 7
    assert uapi.frame_end(b"set=1\npublic_key=x\n\nrest") == 20
    assert uapi.frame_end(b"\n") == 1


def test_get_and_a_get_with_trailing_lines() -> None:
    assert parse("get=1\n\n") == Get()
    assert refused("get=1\nx=1\n\n") == errno.EINVAL


def test_a_set_as_wg_set_sends_it() -> None:
    req = parse(
        f"set=1\nlisten_port=51820\nfwmark=0\nreplace_peers=true\npublic_key={A.hex()}\n"
        f"preshared_key={C.hex()}\nendpoint=[fd00::1]:51820\npersistent_keepalive_interval=25\n"
        "replace_allowed_ips=true\nallowed_ip=10.0.0.2/32\nallowed_ip=-10.1.0.0/16\n"
        f"public_key={B.hex()}\nremove=true\n\n"
    )
    assert isinstance(req, uapi.SetRequest)
    assert (req.listen_port, req.fwmark, req.replace_peers) == (51820, 0, True)
    a, b = req.peers
    assert a.public_key == A and a.preshared_key == C and a.endpoint == ("fd00::1", 51820)
    assert a.persistent_keepalive == 25 and a.replace_allowed_ips
    assert a.allowed_ips == [(True, NET("10.0.0.2/32")), (False, NET("10.1.0.0/16"))]
    assert b.public_key == B and b.remove


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("set=1\nnot a key value line\n\n", errno.EPROTO),
        ("put=1\n\n", errno.EPROTO),
        ("set=1\nfrobnicate=1\n\n", errno.EINVAL),  # unknown device key
        (f"set=1\npublic_key={A.hex()}\nfrobnicate=1\n\n", errno.EINVAL),  # unknown peer key
        ("set=1\npublic_key=abc\n\n", errno.EINVAL),
        ("set=1\nlisten_port=65536\n\n", errno.EINVAL),
        ("set=1\nlisten_port=-1\n\n", errno.EINVAL),
        ("set=1\nreplace_peers=false\n\n", errno.EINVAL),
        (f"set=1\npublic_key={A.hex()}\nendpoint=example.com:1\n\n", errno.EINVAL),
        (f"set=1\npublic_key={A.hex()}\nendpoint=fd00::1:1\n\n", errno.EINVAL),
        (f"set=1\npublic_key={A.hex()}\nendpoint=10.0.0.1:0\n\n", errno.EINVAL),
        (f"set=1\npublic_key={A.hex()}\nallowed_ip=10.0.0.0/33\n\n", errno.EINVAL),
        (f"set=1\npublic_key={A.hex()}\nallowed_ip=10.0.0.0\n\n", errno.EINVAL),
        (f"set=1\npublic_key={A.hex()}\nprotocol_version=2\n\n", errno.EINVAL),
        (f"set=1\npublic_key={A.hex()}\npersistent_keepalive_interval=65536\n\n", errno.EINVAL),
    ],
)
def test_bad_requests_get_wireguard_gos_errno(text: str, code: int) -> None:
    assert refused(text) == code


def test_an_oversized_request_is_refused() -> None:
    line = f"public_key={A.hex()}\n"
    big = "set=1\n" + line * (uapi.MAX_REQUEST // len(line) + 1) + "\n"
    assert refused(big) == errno.EMSGSIZE


# -- planning -----------------------------------------------------------------


def plan(text: str, current: list[PeerState]) -> Plan:
    req = parse(text)
    assert isinstance(req, uapi.SetRequest)
    return uapi.plan(req, current, own_public=OWN)


def test_an_allowed_ip_another_peer_holds_moves() -> None:
    p = plan(
        f"set=1\npublic_key={B.hex()}\nallowed_ip=10.0.0.0/24\n\n",
        [state(A, "10.0.0.0/24", "10.9.0.0/16")],
    )
    assert [s.public_key for s in p.add] == [B] and p.add[0].allowed_ips == [NET("10.0.0.0/24")]
    assert [(s.public_key, s.allowed_ips) for s in p.update] == [(A, [NET("10.9.0.0/16")])]


def test_replace_allowed_ips_and_removal_of_one() -> None:
    cur = [state(A, "10.0.0.0/24", "10.9.0.0/16")]
    text = f"set=1\npublic_key={A.hex()}\nreplace_allowed_ips=true\nallowed_ip=10.5.0.0/16\n\n"
    p = plan(text, cur)
    assert p.update[0].allowed_ips == [NET("10.5.0.0/16")] and not p.add and not p.remove
    p = plan(f"set=1\npublic_key={A.hex()}\nallowed_ip=-10.9.0.0/16\n\n", cur)
    assert p.update[0].allowed_ips == [NET("10.0.0.0/24")]
    # a replace drops what came before it in its own block too, as wireguard-go applies lines
    req = parse(
        f"set=1\npublic_key={B.hex()}\nallowed_ip=10.1.0.0/16\nreplace_allowed_ips=true\n\n"
    )
    assert isinstance(req, uapi.SetRequest) and req.peers[0].allowed_ips == []


def test_remove_update_only_own_key_and_replace_peers() -> None:
    cur = [state(A, "10.0.0.0/24"), state(B)]
    assert plan(f"set=1\npublic_key={A.hex()}\nremove=true\n\n", cur).remove == [A]
    assert not plan(f"set=1\npublic_key={C.hex()}\nupdate_only=true\nallowed_ip=1.0.0.0/8\n\n", cur)
    assert not plan(f"set=1\npublic_key={OWN.hex()}\nallowed_ip=1.0.0.0/8\n\n", cur)
    p = plan(f"set=1\nreplace_peers=true\npublic_key={A.hex()}\nallowed_ip=10.0.0.0/24\n\n", cur)
    assert p.remove == [B] and not p.update and not p.add  # A stays as it was


def test_unchanged_settings_plan_nothing() -> None:
    cur = [state(A, "10.0.0.0/24", endpoint=("192.0.2.1", 51820), persistent_keepalive=25)]
    text = (
        f"set=1\npublic_key={A.hex()}\nendpoint=192.0.2.1:51820\n"
        "persistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.0.0.0/24\n\n"
    )
    assert not plan(text, cur)


def test_a_zero_preshared_key_is_none() -> None:
    cur = [state(A, preshared_key=C)]
    p = plan(f"set=1\npublic_key={A.hex()}\npreshared_key={bytes(32).hex()}\n\n", cur)
    assert p.update[0].preshared_key is None


# -- formatting ---------------------------------------------------------------


def test_format_get_as_wireguard_go_writes_it() -> None:
    snap = Snapshot(
        private_key=OWN,
        listen_port=51820,
        fwmark=51820,
        peers=[
            state(
                A,
                "10.0.0.2/32",
                "fd00::2/128",
                endpoint=("fd00::1", 51821),
                last_handshake=1700000000.25,
                rx_bytes=7,
                tx_bytes=8,
                persistent_keepalive=25,
            ),
            state(B),
        ],
    )
    assert uapi.format_get(snap).decode() == (
        f"private_key={OWN.hex()}\nlisten_port=51820\nfwmark=51820\n"
        f"public_key={A.hex()}\npreshared_key={bytes(32).hex()}\nprotocol_version=1\n"
        "endpoint=[fd00::1]:51821\nlast_handshake_time_sec=1700000000\n"
        "last_handshake_time_nsec=250000000\ntx_bytes=8\nrx_bytes=7\n"
        "persistent_keepalive_interval=25\nallowed_ip=10.0.0.2/32\nallowed_ip=fd00::2/128\n"
        f"public_key={B.hex()}\npreshared_key={bytes(32).hex()}\nprotocol_version=1\n"
        "last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\n"
        "persistent_keepalive_interval=0\nerrno=0\n\n"
    )


def test_errno_goes_on_the_wire_negated() -> None:
    assert uapi.format_errno(errno.EINVAL) == b"errno=-22\n\n"
    assert uapi.format_errno(0) == b"errno=0\n\n"


# -- hostile requests -----------------------------------------------------------

LINES = st.sampled_from(
    [
        f"public_key={A.hex()}",
        f"public_key={B.hex()}",
        "remove=true",
        "update_only=true",
        "replace_peers=true",
        "replace_allowed_ips=true",
        "allowed_ip=10.0.0.0/24",
        "allowed_ip=-10.0.0.0/24",
        "allowed_ip=10.0.0.0/99",
        "endpoint=192.0.2.1:51820",
        "endpoint=nope",
        "persistent_keepalive_interval=25",
        "listen_port=1",
        "bogus=1",
        "no equals sign",
        "",
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.lists(st.one_of(LINES, st.text(max_size=30)), max_size=12).map(
            lambda ls: ("set=1\n" + "\n".join(ls) + "\n\n").encode()
        ),
    )
)
def test_random_requests_never_raise_and_a_refusal_changes_nothing(raw: bytes) -> None:
    cur = [state(A, "10.0.0.0/24"), state(B, "10.9.0.0/16")]
    before = repr(cur)
    end = uapi.frame_end(raw)
    try:
        req = uapi.parse_request(raw[:end] if end else raw)
    except UapiError as exc:
        assert exc.errno in (errno.EPROTO, errno.EINVAL, errno.EMSGSIZE)
        return
    if isinstance(req, uapi.SetRequest):
        p = uapi.plan(req, cur, own_public=OWN)
        changed = {s.public_key for s in [*p.add, *p.update]} | set(p.remove)
        final = [*p.add, *p.update, *(s for s in cur if s.public_key not in changed)]
        owners = [n for s in final for n in s.allowed_ips]
        assert len(owners) == len(set(owners))  # a prefix still belongs to one peer
    assert repr(cur) == before  # planning never touches the current peers
