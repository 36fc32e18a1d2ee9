"""An active prober, as censors run against suspected tunnel servers: it connects to every
port it is given with probes and records every byte that comes back.

    prober.py HOST [--tcp PORT ...] [--udp PORT ...] [--replay HEX ...] [--payload HEX ...]
              [--wait SECONDS] [--sni NAME] [--probes random,http,tls]

Probes, each from a fresh socket or connection (UDP all at once; on TCP one
connection after another per port, the ports at once):
- random: random bytes of several sizes (1 to 1,200), on every port;
- replay: each --replay (hex, e.g. a datagram captured from a client), on every port;
- payload: each --payload (hex), on every port (a test's own first packet);
- http: an HTTP/1.1 GET of /, on TCP ports;
- tls: a TLS ClientHello (the standard library's, any certificate accepted); if the
  handshake completes, an HTTP GET inside it, on TCP ports.

Prints one JSON list: per probe {"proto", "port", "probe", "sent" (bytes), "received"
(bytes), "answer" (hex, the first 4 KiB of what came back), "end"}, where "end" is
"silent" (nothing within SECONDS), "closed", "reset", "refused", "unreachable" (no
connection within SECONDS), or "answered" (UDP, TCP still open). A completed TLS
handshake adds "tls" (version) and "page" (what the GET inside it returned, as text).
"""

import argparse
import json
import os
import select
import socket
import ssl
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

RANDOM_SIZES = (1, 16, 64, 148, 600, 1200)
KINDS = ("random", "http", "tls")  # replay and payload are sent when given
KEEP = 4096


def http_get(host: str) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def record(proto: str, port: int, probe: str, sent: int, answer: bytes, end: str) -> dict[str, Any]:
    return {
        "proto": proto,
        "port": port,
        "probe": probe,
        "sent": sent,
        "received": len(answer),
        "answer": answer[:KEEP].hex(),
        "end": end,
    }


def udp_probe(host: str, port: int, probe: str, data: bytes, wait: float) -> dict[str, Any]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(data, (host, port))
        answer = bytearray()
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([s], [], [], left)[0]:
                break
            try:
                answer += s.recv(65536)
            except OSError:  # an ICMP error: the port is closed
                return record("udp", port, probe, len(data), bytes(answer), "refused")
    return record("udp", port, probe, len(data), bytes(answer), "answered" if answer else "silent")


def read_until_end(s: socket.socket, deadline: float) -> tuple[bytes, str]:
    answer = bytearray()
    while (left := deadline - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return bytes(answer), "reset"
        if not chunk:
            return bytes(answer), "closed"
        answer += chunk
    return bytes(answer), "answered" if answer else "silent"


def connect(host: str, port: int, wait: float) -> socket.socket | str:
    try:
        return socket.create_connection((host, port), timeout=wait)
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "unreachable"


def tcp_probe(host: str, port: int, probe: str, data: bytes, wait: float) -> dict[str, Any]:
    s = connect(host, port, wait)
    if isinstance(s, str):
        return record("tcp", port, probe, 0, b"", s)
    with s:
        try:
            s.sendall(data)
        except OSError:
            return record("tcp", port, probe, 0, b"", "reset")
        answer, end = read_until_end(s, time.monotonic() + wait)
    return record("tcp", port, probe, len(data), answer, end)


def tls_probe(host: str, port: int, sni: str, wait: float) -> dict[str, Any]:
    """A real ClientHello; what comes back is recorded raw, and decrypted if TLS completes."""
    s = connect(host, port, wait)
    if isinstance(s, str):
        return record("tcp", port, "tls", 0, b"", s)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    deadline = time.monotonic() + wait
    raw, sent, end = bytearray(), 0, "silent"
    with s:

        def flush() -> None:
            nonlocal sent
            data = outgoing.read()
            sent += len(data)
            s.sendall(data)

        def pump() -> bool:
            nonlocal end
            flush()
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                end = "answered" if raw else "silent"
                return False
            except ConnectionResetError:
                end = "reset"
                return False
            if not chunk:
                end = "closed"
                incoming.write_eof()
                return False
            raw.extend(chunk)
            incoming.write(chunk)
            return True

        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if not pump():
                        return record("tcp", port, "tls", sent, bytes(raw), end)
            tls.write(http_get(sni))
            page = bytearray()
            while True:
                try:
                    chunk = tls.read(65536)
                    if not chunk:  # the stream ended without close_notify
                        end = "closed"
                        break
                    page += chunk
                except ssl.SSLWantReadError:
                    if not pump():
                        break
                except ssl.SSLZeroReturnError:
                    end = "closed"
                    break
        except (ssl.SSLError, OSError):
            return record("tcp", port, "tls", sent, bytes(raw), "tls-error")
        result = record("tcp", port, "tls", sent, bytes(raw), end)
        result["tls"] = tls.version()
        result["page"] = page.decode(errors="replace")
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description="probe a suspected tunnel server")
    parser.add_argument("host")
    parser.add_argument("--tcp", type=int, nargs="*", default=[])
    parser.add_argument("--udp", type=int, nargs="*", default=[])
    parser.add_argument("--replay", nargs="*", default=[])
    parser.add_argument("--payload", nargs="*", default=[])
    parser.add_argument("--wait", type=float, default=2.0)
    parser.add_argument("--sni", default="")
    parser.add_argument("--probes", default=",".join(KINDS), help="which kinds to send")
    args = parser.parse_args()
    host, wait, sni = args.host, args.wait, args.sni or args.host
    kinds = {kind for kind in args.probes.split(",") if kind}
    if kinds - set(KINDS):
        parser.error(f"--probes: the kinds are {', '.join(KINDS)}")
    probes = [(f"random-{n}", os.urandom(n)) for n in RANDOM_SIZES if "random" in kinds]
    probes += [(f"replay-{i}", bytes.fromhex(h)) for i, h in enumerate(args.replay)]
    probes += [(f"payload-{i}", bytes.fromhex(h)) for i, h in enumerate(args.payload)]

    def tcp_port(port: int) -> list[dict[str, Any]]:
        """One connection after another, as a server that serves one at a time needs."""
        results = [tcp_probe(host, port, name, data, wait) for name, data in probes]
        if "http" in kinds:
            results.append(tcp_probe(host, port, "http", http_get(sni), wait))
        if "tls" in kinds:
            results.append(tls_probe(host, port, sni, wait))
        return results

    with ThreadPoolExecutor(max_workers=32) as pool:
        udp = [pool.submit(udp_probe, host, p, n, d, wait) for p in args.udp for n, d in probes]
        tcp = [pool.submit(tcp_port, port) for port in args.tcp]
        results = [job.result() for job in udp] + [r for job in tcp for r in job.result()]
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
