"""A tiny authoritative DNS responder for the lab's internet host (UDP and TCP).

dnsstub.py ADDR PORT LOG   answer every A query with 203.0.113.80 (TTL 60), AAAA with
                           2001:db8:113::80, anything else with no records; append each
                           question's name to LOG, one a line
"""

import socket
import struct
import sys
import threading

A, AAAA = 1, 28
ANSWERS = {A: bytes([203, 0, 113, 80]), AAAA: socket.inet_pton(socket.AF_INET6, "2001:db8:113::80")}


def answer(query: bytes, log: str) -> bytes | None:
    if len(query) < 17:
        return None
    qid, flags = struct.unpack_from("!HH", query)
    at, labels = 12, []
    while at < len(query) and query[at]:
        labels.append(query[at + 1 : at + 1 + query[at]].decode(errors="replace"))
        at += 1 + query[at]
    at += 1
    if at + 4 > len(query):
        return None
    qtype = struct.unpack_from("!H", query, at)[0]
    with open(log, "a") as f:
        f.write(".".join(labels) + "\n")
    question = query[12 : at + 4]
    rdata = ANSWERS.get(qtype)
    rr = b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 60, len(rdata)) + rdata if rdata else b""
    header = struct.pack("!HHHHHH", qid, 0x8400 | (flags & 0x0100), 1, 1 if rdata else 0, 0, 0)
    return header + question + rr


def serve_udp(addr: str, port: int, log: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((addr, port))
        while True:
            data, peer = s.recvfrom(4096)
            reply = answer(data, log)
            if reply:
                s.sendto(reply, peer)


def serve_tcp(addr: str, port: int, log: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(8)
        while True:
            conn, _ = s.accept()
            with conn:
                head = conn.recv(2, socket.MSG_WAITALL)
                if len(head) == 2:
                    data = conn.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)
                    reply = answer(data, log)
                    if reply:
                        conn.sendall(struct.pack("!H", len(reply)) + reply)


if __name__ == "__main__":
    addr, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    threading.Thread(target=serve_tcp, args=(addr, port, log), daemon=True).start()
    print("listening", flush=True)
    serve_udp(addr, port, log)
