"""Epoch reports: a provider's signed account of the bandwidth it served in one epoch.

An epoch is a fixed UTC window: epoch N covers [N * L, (N + 1) * L) Unix seconds
(L = 86400 by default). For each client session with a receipt in the epoch,
the report carries the latest receipt in the epoch and the latest one before it
(the baseline, or none): the epoch's verified bytes for the session are the
difference, and both are signed by the client. Bytes no receipt covers (stock
WireGuard peers, service beyond the last receipt) are listed as unverified. A
Merkle root over the latest receipts lets a single receipt be proven part of the
report. The provider signs the canonical JSON of everything else with its
Ed25519 key. Keys (the provider's and each client's Ed25519 key) are standard base64,
as `wg` writes keys and as every other tidewire output does (version 2; version 1
wrote them in hex and still verifies); session ids, receipts, the root and the
signature stay hex.

`verify_report` needs nothing but the document: it checks every signature,
that every receipt names this provider, that baseline and latest form a
monotonic sequence of the same session inside the right windows, the totals
and the Merkle root, and returns each failure as one sentence. Whatever the
document holds (floats where integers belong, 1e999, nesting thousands deep), it
returns failures and never raises: numbers must be JSON integers, an epoch's
window must fit the receipts' 64-bit millisecond times, counts must fit 64 bits.
"""

import json
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from ..errors import LocalProtocolError, RemoteProtocolError
from ..keys import decode_key, encode_key
from . import merkle
from .receipts import SignedReceipt, check_successor, verify


def epoch_at(unix_seconds: float, epoch_seconds: int) -> int:
    """The epoch that holds a moment: N with N * L <= t < (N + 1) * L."""
    return int(unix_seconds) // epoch_seconds


FORMAT = "tidewire-epoch-report"
VERSION = 2  # 2: keys in base64, as everywhere else; 1 (hex keys) still verifies
VERSIONS = (1, 2)
MAX_DEPTH = 8  # a report nests 3 deep (document, list, entry); anything deeper is not one
MAX_U64 = (1 << 64) - 1


def canonical(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _receipt_json(s: SignedReceipt | None) -> str | None:
    return None if s is None else s.wire().hex()


def build(
    *,
    key: SigningKey,
    epoch: int,
    epoch_seconds: int,
    sessions: list[tuple[SignedReceipt | None, SignedReceipt]],
    unverified: list[dict[str, Any]],
) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    verified_up = verified_down = 0
    for baseline, latest in sessions:
        b = baseline.receipt if baseline else None
        r = latest.receipt
        verified_up += r.bytes_up - (b.bytes_up if b else 0)
        verified_down += r.bytes_down - (b.bytes_down if b else 0)
        entries.append(
            {
                "session_id": r.session_id.hex(),
                "client_key": encode_key(r.client_key),
                "baseline": _receipt_json(baseline),
                "latest": _receipt_json(latest),
                "bytes_up": r.bytes_up - (b.bytes_up if b else 0),
                "bytes_down": r.bytes_down - (b.bytes_down if b else 0),
            }
        )
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "provider_key": encode_key(bytes(key.verify_key)),
        "epoch": epoch,
        "epoch_seconds": epoch_seconds,
        "start": epoch * epoch_seconds,
        "end": (epoch + 1) * epoch_seconds,
        "sessions": entries,
        "unverified": unverified,
        "totals": {
            "verified_up": verified_up,
            "verified_down": verified_down,
            "unverified_up": sum(int(u["bytes_up"]) for u in unverified),
            "unverified_down": sum(int(u["bytes_down"]) for u in unverified),
        },
        "merkle_root": merkle.root([latest.wire() for _, latest in sessions]).hex(),
    }
    doc["signature"] = key.sign(canonical(doc)).signature.hex()
    return doc


def _hex(value: Any, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not a hex string")
    raw = bytes.fromhex(value)
    if size is not None and len(raw) != size:
        raise ValueError(f"{len(raw)} bytes, expected {size}")
    return raw


def _key(value: Any, version: int) -> bytes:
    """A 32-byte key as the report's version writes it: hex in version 1, base64 after."""
    if version == 1:
        return _hex(value, 32)
    if not isinstance(value, str):
        raise ValueError("a key is not a string")
    try:
        return decode_key(value, field="key")
    except LocalProtocolError as exc:
        raise ValueError(str(exc)) from None


def _key_text(raw: bytes, version: int) -> str:
    return raw.hex() if version == 1 else encode_key(raw)


def _u64(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_U64


def _too_deep(doc: Any) -> bool:
    """Whether `doc` nests deeper than MAX_DEPTH (walked without recursion)."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return True
            stack.extend((c, depth + 1) for c in children)
    return False


def _window(doc: dict[str, Any]) -> tuple[int, int]:
    epoch, length = doc["epoch"], doc["epoch_seconds"]
    if not _u64(epoch) or not _u64(length) or length == 0:
        raise ValueError("epoch and epoch_seconds must be whole numbers, epoch_seconds above 0")
    if (epoch + 1) * length * 1000 > MAX_U64:
        raise ValueError(f"epoch {epoch} ends after the last time a receipt can hold")
    return epoch, length


def verify_report(doc: Any) -> tuple[list[str], dict[str, Any]]:
    """(failures, summary). No failures means the report is valid."""
    problems: list[str] = []
    if _too_deep(doc):
        return [f"malformed report (nested deeper than {MAX_DEPTH} levels)"], {}
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return [f"not a {FORMAT} document"], {}
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in VERSIONS:
        return [f"unsupported version {str(version)[:40]!r}"], {}
    try:
        provider = _key(doc["provider_key"], version)
        signature = _hex(doc["signature"], 64)
        epoch, length = _window(doc)
        sessions, unverified, totals = doc["sessions"], doc["unverified"], doc["totals"]
        if (
            not isinstance(sessions, list)
            or not isinstance(unverified, list)
            or not isinstance(totals, dict)
        ):
            raise TypeError("sessions, unverified and totals have the wrong types")
    except (KeyError, ValueError, TypeError) as exc:
        return [f"malformed report ({exc})"], {}
    try:
        VerifyKey(provider).verify(canonical(doc), signature)
    except (BadSignatureError, ValueError):
        problems.append("the provider's signature does not match the report")
    if doc.get("start") != epoch * length or doc.get("end") != (epoch + 1) * length:
        problems.append("start and end are not the epoch's window")
    start_ms, end_ms = epoch * length * 1000, (epoch + 1) * length * 1000
    leaves: list[bytes] = []
    up_total = down_total = 0
    summary_sessions = []
    for i, entry in enumerate(sessions):
        where = f"session {i + 1}"
        try:
            latest = verify(_hex(entry["latest"]))
            baseline = verify(_hex(entry["baseline"])) if entry.get("baseline") else None
        except (KeyError, ValueError, TypeError):
            problems.append(f"{where}: receipt is not hex")
            continue
        except RemoteProtocolError as exc:
            problems.append(f"{where}: receipt refused ({exc.reason})")
            continue
        leaves.append(latest.wire())
        r = latest.receipt
        for s in (latest, baseline):
            if s is not None and s.receipt.provider_key != provider:
                problems.append(f"{where}: a receipt names another provider")
        if (
            entry.get("session_id") != r.session_id.hex()
            or entry.get("client_key") != _key_text(r.client_key, version)
        ):
            problems.append(f"{where}: session or client does not match its receipt")
        if not start_ms <= r.time_ms < end_ms:
            problems.append(f"{where}: the latest receipt is not inside the epoch")
        if baseline is not None:
            if baseline.receipt.time_ms >= start_ms:
                problems.append(f"{where}: the baseline receipt is not before the epoch")
            try:
                check_successor(baseline, latest, allow_gap=True)
            except RemoteProtocolError as exc:
                problems.append(
                    f"{where}: baseline and latest are not one monotonic sequence ({exc.reason})"
                )
        b = baseline.receipt if baseline else None
        up = r.bytes_up - (b.bytes_up if b else 0)
        down = r.bytes_down - (b.bytes_down if b else 0)
        if entry.get("bytes_up") != up or entry.get("bytes_down") != down:
            problems.append(f"{where}: listed bytes are not latest minus baseline")
        up_total += up
        down_total += down
        summary_sessions.append(
            {
                "session_id": r.session_id.hex(),
                "client_key": encode_key(r.client_key),  # base64 whatever the version
                "seq": r.seq,
                "bytes_up": up,
                "bytes_down": down,
            }
        )
    if totals.get("verified_up") != up_total or totals.get("verified_down") != down_total:
        problems.append("totals do not add up to the sessions")
    if all(
        isinstance(u, dict) and _u64(u.get("bytes_up")) and _u64(u.get("bytes_down"))
        for u in unverified
    ):
        u_up = sum(u["bytes_up"] for u in unverified)
        u_down = sum(u["bytes_down"] for u in unverified)
        if totals.get("unverified_up") != u_up or totals.get("unverified_down") != u_down:
            problems.append("unverified totals do not add up")
    else:
        problems.append("malformed unverified entries (bytes must be whole numbers below 2**64)")
    if len(leaves) == len(sessions) and doc.get("merkle_root") != merkle.root(leaves).hex():
        problems.append("the Merkle root does not match the receipts")
    summary = {
        "provider_key": encode_key(provider),
        "epoch": epoch,
        "epoch_seconds": length,
        "sessions": summary_sessions,
        "verified_bytes": up_total + down_total,
        "signature": signature.hex(),  # one per signed content: tells a copy from a rival
    }
    return problems, summary


def verify_sequence(summaries: list[dict[str, Any]]) -> list[str]:
    """Across several reports: each session's sequence numbers grow with the epoch."""
    problems = []
    seen: dict[tuple[str, str], tuple[int, int]] = {}
    for s in sorted(summaries, key=lambda s: s["epoch"]):
        for sess in s["sessions"]:
            k = (s["provider_key"], sess["session_id"])
            if k in seen and seen[k][0] == s["epoch"]:
                problems.append(
                    f"epoch {s['epoch']}: session {sess['session_id'][:8]} reported twice"
                )
            elif k in seen and sess["seq"] <= seen[k][1]:
                problems.append(
                    f"epoch {s['epoch']}: session {sess['session_id'][:8]} went back in sequence"
                )
            seen[k] = (s["epoch"], sess["seq"])
    return problems
