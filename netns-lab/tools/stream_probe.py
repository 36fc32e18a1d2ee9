"""An active prober of stream ports: what a censor's scanner would see.

    stream_probe.py tls HOST PORT     TLS 1.3 (no verification), GET /, print JSON
    stream_probe.py tcp HOST PORT     plain TCP, an HTTP GET, print JSON

The JSON: `reply` (bytes received before the server closed or 10 s passed), `head`
(the reply's first line), and for tls the protocol version and certificate subject.
"""

import json
import socket
import ssl
import sys

from cryptography import x509

REQUEST = b"GET / HTTP/1.1\r\nHost: provider.example\r\nUser-Agent: probe\r\n\r\n"


def read_all(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError, ssl.SSLError):
        pass
    return out


def main() -> int:
    kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    raw = socket.create_connection((host, port), timeout=10)
    result: dict[str, object] = {}
    if kind == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        tls = ctx.wrap_socket(raw, server_hostname="provider.example")
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        result["version"] = tls.version()
        result["subject"] = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        sock: socket.socket = tls
    else:
        sock = raw
    sock.sendall(REQUEST)
    reply = read_all(sock)
    result["reply"] = len(reply)
    result["head"] = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    result["html"] = b"<html" in reply
    sock.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
