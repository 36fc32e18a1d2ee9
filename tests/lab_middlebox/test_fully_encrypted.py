"""The lab censor's TCP classifier (netns-lab/middlebox/fully_encrypted.py): the exemption
rules Ex1-Ex5 of Algorithm 1 in Wu et al., "How the Great Firewall of China Detects and
Blocks Fully Encrypted Traffic" (USENIX Security 2023), the frame parser over random
bytes, the RSTs it injects (checked by scapy's independent dissection and checksums),
and what it does about each segment of a connection."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from middlebox.fully_encrypted import (
    ACK,
    RST,
    SYN,
    Classifier,
    Segment,
    parse_frame,
    reset,
    verdict,
)
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

RANDOM = random.Random(12).randbytes(300)
CLIENT, SERVER = "198.51.100.2", "198.51.102.2"


def test_random_bytes_are_flagged_and_each_exemption_names_its_rule() -> None:
    assert verdict(RANDOM).block
    assert verdict(bytes(100)).rule == "Ex1"  # no bit set: popcount 0 per byte
    assert verdict(b"\xff" * 100).rule == "Ex1"  # popcount 8
    assert verdict(b"\x0f\xf0" * 50).block  # popcount 4 and nothing printable
    assert verdict(b"abcdef" + RANDOM).rule == "Ex2"  # six printable bytes first
    half = bytes(b if 0x20 <= b <= 0x7E else 0x41 + b % 26 for b in RANDOM[:160])
    assert verdict(b"\x80" + half + RANDOM[:120]).rule == "Ex3"  # over half printable
    run = b"\x80" + RANDOM[:100] + b"\x80" + b"x" * 21 + b"\x80" + RANDOM[100:250]
    assert verdict(run).rule == "Ex4"  # 21 contiguous printable bytes
    assert verdict(b"\x16\x03\x01" + RANDOM).rule == "Ex5"  # a TLS handshake record
    assert verdict(b"\x17\x03\x03" + RANDOM).rule == "Ex5"  # TLS application data
    assert verdict(b"POST \x80" + RANDOM).rule == "Ex5"  # an HTTP method, five printable


def test_the_thresholds_are_where_the_paper_puts_them() -> None:
    # none of these bytes is printable: 0x07 has 3 bits set, 0x0f 4, 0x1f 5
    assert verdict(b"\x07" * 12 + b"\x0f" * 8).rule == "Ex1"  # 3.4: exempt
    assert verdict(b"\x07" * 11 + b"\x0f" * 9).block  # 3.45
    assert verdict(b"\x1f" * 12 + b"\x0f" * 8).rule == "Ex1"  # 4.6: exempt
    assert verdict(b"\x1f" * 11 + b"\x0f" * 9).block  # 4.55
    assert verdict(b"abcde\x80" + RANDOM).block  # five printable bytes are not six
    run = b"\x80" + RANDOM[:100] + b"\x80" + b"x" * 20 + b"\x80" + RANDOM[100:250]
    assert verdict(run).block  # 20 contiguous printable bytes are not more than 20


@given(st.binary(max_size=200))
def test_the_frame_parser_returns_none_or_a_segment_for_any_bytes(data: bytes) -> None:
    result = parse_frame(data)
    assert result is None or isinstance(result, Segment)


@settings(deadline=None)  # scapy builds each frame: slow on a loaded machine
@given(st.binary(min_size=0, max_size=100), st.integers(0, 60))
def test_truncated_or_bent_tcp_frames_are_refused(payload: bytes, cut: int) -> None:
    frame = bytes(Ether() / IP(src=CLIENT, dst=SERVER) / TCP(sport=1, dport=2) / payload)
    assert parse_frame(frame) == Segment(CLIENT, SERVER, 1, 2, 0, 0, 0x02, payload)
    assert parse_frame(frame[: 14 + 20 + 20 - 1 - cut % 20]) is None  # short of TCP's header
    fragment = bytes(Ether() / IP(src=CLIENT, dst=SERVER, frag=10) / TCP() / payload)
    assert parse_frame(fragment) is None


def test_a_reset_is_a_valid_rst_with_correct_checksums() -> None:
    packet = reset(SERVER, CLIENT, 7000, 40000, seq=0x12345678, ack=0x9ABCDEF0)
    ip = IP(packet)
    assert (ip.src, ip.dst, ip[TCP].sport, ip[TCP].dport) == (SERVER, CLIENT, 7000, 40000)
    assert ip[TCP].flags == "RA" and ip[TCP].seq == 0x12345678 and ip[TCP].ack == 0x9ABCDEF0
    rebuilt = IP(packet)
    del rebuilt.chksum, rebuilt[TCP].chksum
    assert bytes(rebuilt) == packet  # scapy computes the same checksums
    assert IP(reset(SERVER, CLIENT, 1, 2, seq=5))[TCP].flags == "R"


def segment(
    src: str, dst: str, flags: int, payload: bytes = b"", seq: int = 0, ack: int = 0
) -> Segment:
    sport, dport = (40000, 7000) if src == CLIENT else (7000, 40000)
    return Segment(src, dst, sport, dport, seq, ack, flags, payload)


def test_a_flagged_connection_is_reset_both_ways_and_its_server_blocked() -> None:
    c = Classifier()
    assert c.segment(segment(CLIENT, SERVER, SYN, seq=99)).judgement is None
    assert c.segment(segment(SERVER, CLIENT, SYN | ACK, seq=500, ack=100)).judgement is None
    action = c.segment(segment(CLIENT, SERVER, ACK, RANDOM, seq=100, ack=501))
    assert action.judgement is not None and action.judgement["verdict"] == "block"
    assert action.residual == (SERVER, 7000)
    (to_client, a), (to_server, b) = action.resets
    assert (a, b) == (CLIENT, SERVER)
    assert IP(to_client)[TCP].seq == 501 and IP(to_client).src == SERVER
    assert IP(to_server)[TCP].seq == 100 + len(RANDOM) and IP(to_server).src == CLIENT
    # a reply that overtook the RST: its receiver is reset just past it
    late = c.segment(segment(SERVER, CLIENT, ACK, b"echo", seq=501, ack=400))
    assert [IP(p)[TCP].seq for p, _ in late.resets] == [505]
    # the connection's next data is not judged again
    assert c.segment(segment(CLIENT, SERVER, ACK, b"more", seq=400)).judgement is None


def test_a_printable_first_packet_is_exempt_and_only_the_first_is_judged() -> None:
    c = Classifier()
    c.segment(segment(CLIENT, SERVER, SYN))
    action = c.segment(segment(CLIENT, SERVER, ACK, b"abcdef" + RANDOM))
    assert action.judgement is not None and action.judgement["rule"] == "Ex2"
    assert action.resets == [] and action.residual is None
    assert c.segment(segment(CLIENT, SERVER, ACK, RANDOM)).judgement is None
    # no SYN seen (a connection older than the tap), or reset before data: nothing judged
    assert Classifier().segment(segment(CLIENT, SERVER, ACK, RANDOM)).judgement is None
    c.segment(segment(CLIENT, SERVER, SYN))
    c.segment(segment(CLIENT, SERVER, RST))
    assert c.segment(segment(CLIENT, SERVER, ACK, RANDOM)).judgement is None
