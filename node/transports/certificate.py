"""The `tls` listener's certificate: a configured pair of files, or a self-signed one
made on first start in the state directory and kept for later starts.

The provider is authenticated by the Noise session inside, not by this certificate;
it exists so the listener is a real TLS 1.3 server to anyone who connects. The made one
is ECDSA P-256 (what most web servers present), for a random-looking host name, valid
for a year from yesterday. Its key file is created with mode 0600 and never rewritten;
this runs in a worker thread (it writes files).
"""

import datetime
import os
import secrets
from pathlib import Path

CERT_FILE = "tls-cert.pem"
KEY_FILE = "tls-key.pem"
VALIDITY = datetime.timedelta(days=365)


def ensure_self_signed(state_dir: Path) -> tuple[Path, Path]:
    """(certificate, key) in `state_dir`, made now if either is missing."""
    cert_path, key_path = state_dir / CERT_FILE, state_dir / KEY_FILE
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    # imported here: only a tls listener making its certificate loads `cryptography`
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    state_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    host = f"{secrets.token_hex(4)}.example.net"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path.unlink(missing_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem_key)
    tmp = cert_path.with_suffix(".tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, cert_path)
    return cert_path, key_path
