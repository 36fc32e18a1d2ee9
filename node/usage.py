"""What the accounting has to show: `tidewire usage` and signed epoch reports.

Usage merges the ledger (every session, its last receipt) with the live counters
of the sessions in memory. A report takes, per session, the latest receipt in the
epoch and the one before it from the ledger, lists what no receipt covers as
unverified, and has the provider's key sign it (protocol/accounting/report.py).
"""

from typing import Any

import trio

from tidewire.node.accounting import Accountant
from tidewire.protocol.accounting.report import build as build_report
from tidewire.protocol.keys import encode_key


def usage(acct: Accountant, ledger_rows: list[dict[str, Any]]) -> dict[str, Any]:
    sessions = []
    for row in ledger_rows:
        if "session_id" not in row:
            continue
        live = acct.served.get(row["peer_key"])
        if live is not None and live.session_id != row["session_id"]:
            live = None
        served_up = live.served_up if live else row["served_up"]
        served_down = live.served_down if live else row["served_down"]
        last = live.last.receipt if live and live.last else None
        v_up = last.bytes_up if last else row["verified_up"]
        v_down = last.bytes_down if last else row["verified_down"]
        last_ms = last.time_ms if last else row["last_receipt_ms"]
        sessions.append(
            {
                "client": encode_key(row["peer_key"]),
                "session_id": row["session_id"].hex(),
                "verified_up": v_up,
                "verified_down": v_down,
                "unverified": max(0, served_up + served_down - v_up - v_down),
                "last_receipt": None if last_ms is None else last_ms / 1000,
                "state": "closed" if live is None else ("cut off" if live.cut_off else "active"),
            }
        )
    stock = [
        {
            "peer": encode_key(r["peer_key"]),
            "kind": r["kind"],
            "unverified_up": r["unverified_up"],
            "unverified_down": r["unverified_down"],
        }
        for r in ledger_rows
        if "kind" in r
    ]
    using = [
        {
            "provider": encode_key(k),
            "session_id": u.session_id.hex(),
            "sent": u.own_up,
            "received": u.own_down,
            "lost_down": u.lost_down,  # the loss its counters showed, at the last invoice
            "signed_up": u.last.receipt.bytes_up if u.last else 0,
            "signed_down": u.last.receipt.bytes_down if u.last else 0,
            "receipts": u.last.receipt.seq if u.last else 0,
            "refused": u.refusal_reason or None,
        }
        for k, u in acct.used.items()
    ]
    return {
        "sessions": sessions,
        "unverified_peers": stock,
        "providers_used": using,
        "epoch_seconds": acct.epoch_seconds,
    }


async def epoch_report(acct: Accountant, epoch: int) -> dict[str, Any]:
    if acct.ledger is None:
        raise ValueError("this node keeps no ledger: it is not a provider (exit)")
    await acct.flush()
    ledger = acct.ledger
    start_ms, end_ms = (
        epoch * acct.epoch_seconds * 1000,
        (epoch + 1) * acct.epoch_seconds * 1000,
    )
    data = await trio.to_thread.run_sync(ledger.epoch_data, start_ms, end_ms, epoch)
    sessions = [(row["baseline"], row["latest"]) for row in data["sessions"]]
    unverified = [
        {"peer": encode_key(k), "kind": kind, "bytes_up": up, "bytes_down": down}
        for k, kind, up, down in data["unverified"]
    ]
    for row in data["sessions"]:
        latest = row["latest"].receipt
        beyond_up = max(0, row["served_up"] - latest.bytes_up)
        beyond_down = max(0, row["served_down"] - latest.bytes_down)
        if beyond_up or beyond_down:
            unverified.append(
                {  # keys in base64 as everywhere; a session is named by its id
                    "client_key": encode_key(latest.client_key),
                    "session_id": latest.session_id.hex(),
                    "kind": "beyond_receipts",
                    "bytes_up": beyond_up,
                    "bytes_down": beyond_down,
                }
            )
    return build_report(
        key=acct.sign_key,
        epoch=epoch,
        epoch_seconds=acct.epoch_seconds,
        sessions=sessions,
        unverified=unverified,
    )
