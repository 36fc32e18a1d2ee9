"""Reports and rewards under bad input: malformed reports are failures, never exceptions;
rewards do not depend on file order, pay one pool per window, and survive far epochs."""

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_receipts import CLIENT, PROVIDER, make_report, receipt
from tidewire.node.core.rewards import Schedule, rewards
from tidewire.protocol.accounting.receipts import sign
from tidewire.protocol.accounting.report import build, verify_report

DAY = 86400


def resign(doc: dict[str, Any]) -> dict[str, Any]:
    """The document signed again by the provider, as a provider would sign a lie."""
    from tidewire.protocol.accounting.report import canonical

    doc = dict(doc)
    doc["signature"] = PROVIDER.sign(canonical(doc)).signature.hex()
    return doc


def report_with_bytes(
    epoch: int, up: int, length: int = DAY, session: bytes = bytes(16)
) -> dict[str, Any]:
    start_ms = epoch * length * 1000
    latest = sign(replace(receipt(1, up, 0, t=start_ms + 5000), session_id=session), CLIENT)
    return build(
        key=PROVIDER, epoch=epoch, epoch_seconds=length, sessions=[(None, latest)], unverified=[]
    )


def cli(argv: list[str]) -> tuple[int, str, str]:
    import io

    from tidewire.cli.env import Environment
    from tidewire.cli.main import main

    env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())
    code = main(argv, env)
    return code, env.stdout.getvalue(), env.stderr.getvalue()  # type: ignore[attr-defined]


def write(tmp_path: Path, name: str, doc: Any) -> str:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(p)


# -- 1. malformed reports are FAIL lines --------------------------------------------


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"epoch": float("inf")}, "malformed report (epoch and epoch_seconds must be whole"),
        ({"epoch": 2.5}, "malformed report (epoch and epoch_seconds"),
        ({"epoch_seconds": 0}, "malformed report (epoch and epoch_seconds"),
        ({"epoch": 10**12}, "ends after the last time a receipt can hold"),
        (
            {"unverified": [{"bytes_up": float("inf"), "bytes_down": 0}]},
            "malformed unverified entries",
        ),
        ({"unverified": [{"bytes_up": 10**30, "bytes_down": 0}]}, "malformed unverified"),
        ({"unverified": [[[[[[[[[[1]]]]]]]]]]}, "nested deeper than"),
    ],
)
def test_malformed_reports_are_failures_not_exceptions(change: dict[str, Any], says: str) -> None:
    doc = resign({**make_report(), **change})
    problems, _ = verify_report(doc)
    assert any(says in p for p in problems), problems


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(make_report()).replace('"epoch": 20000', '"epoch": 1e999'),
        json.dumps(make_report()).replace('"bytes_up": 5', '"bytes_up": Infinity'),
        json.dumps(make_report()).replace('"bytes_up": 5', '"bytes_up": ' + "9" * 400),
        '{"a": ' * 100_000 + "1" + "}" * 100_000,
        "[" * 100_000 + "]" * 100_000,
        json.dumps(make_report()).replace('"bytes_up": 5', '"bytes_up": ' + "9" * 5000),
        b"\xff\xfe".decode("latin-1"),
    ],
)
def test_verify_prints_one_fail_line_per_bad_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "r.json", text)
    code, out, err = cli(["verify", path])
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert lines and all(line.startswith(f"FAIL {path}: ") for line in lines)


def test_rewards_of_a_far_epoch_is_a_result(tmp_path: Path) -> None:
    path = write(tmp_path, "r.json", report_with_bytes(10**6, 1000))
    code, out, err = cli(["rewards", "--json", path])
    assert (code, err) == (0, "")
    [epoch] = json.loads(out)["epochs"]
    assert epoch["epoch"] == 10**6 and epoch["pool"] == 0.0  # 2739 halvings after genesis


def test_emission_after_many_halvings_is_zero_not_an_overflow() -> None:
    sched = Schedule(genesis=0)
    assert sched.emitted(10**6 * DAY, (10**6 + 1) * DAY) == 0.0
    assert sched.emitted(0, 10**6 * DAY) == pytest.approx(6e9)


# -- 2. one report per provider and epoch -------------------------------------------


def test_two_different_reports_of_one_epoch_are_refused_in_any_order(tmp_path: Path) -> None:
    small = write(tmp_path, "small.json", report_with_bytes(20000, 10))
    big = write(tmp_path, "big.json", report_with_bytes(20000, 10**9))
    for first, second in ((small, big), (big, small)):
        code, _, err = cli(["rewards", first, second])
        assert code == 1
        assert f"not counted: {second}: provider " in err
        assert f"already reported epoch 20000 differently in {first}" in err


def test_the_same_report_twice_counts_once(tmp_path: Path) -> None:
    doc = report_with_bytes(20000, 10)
    a, b = write(tmp_path, "a.json", doc), write(tmp_path, "b.json", doc)
    once = cli(["rewards", "--json", a])
    twice = cli(["rewards", "--json", a, b])
    assert once[0] == twice[0] == 0 and once[1] == twice[1]


def test_the_rewards_core_refuses_two_reports_of_a_provider_in_one_epoch() -> None:
    _, s1 = verify_report(report_with_bytes(20000, 10))
    _, s2 = verify_report(report_with_bytes(20000, 20))
    with pytest.raises(ValueError, match="two reports for epoch 20000"):
        rewards([s1, s2], Schedule(genesis=0))


# -- 3. one pool per window, whatever the reports' epoch lengths ----------------------


def test_a_report_of_another_epoch_length_is_refused(tmp_path: Path) -> None:
    daily = write(tmp_path, "daily.json", report_with_bytes(20000, 10**9))
    odd = write(tmp_path, "odd.json", report_with_bytes(19999, 10, DAY + 1, b"s" * 16))
    code, _, err = cli(["rewards", daily, odd])
    assert code == 1
    assert err == (
        f"tidewire: not counted: {odd}: its epochs are 86401 seconds long; the network's"
        " are 86400 (--epoch-seconds)\n"
    )
    code, out, _ = cli(
        ["rewards", "--json", "--genesis", "0", "--epoch-seconds", str(DAY + 1), odd]
    )
    assert code == 0 and json.loads(out)["epochs"][0]["pool"] > 0


def test_the_rewards_core_pays_one_pool_per_epoch_length() -> None:
    _, odd = verify_report(report_with_bytes(20000, 1000, length=DAY + 1))
    with pytest.raises(ValueError, match="86401-second epochs"):
        rewards([odd], Schedule(genesis=0))


# -- keys: base64 in reports and in what verify says ----------------------------------


def test_a_report_writes_keys_in_base64() -> None:
    from tidewire.protocol.keys import encode_key

    doc = report_with_bytes(3, 1000)
    assert doc["version"] == 2
    assert doc["provider_key"] == encode_key(bytes(PROVIDER.verify_key))
    assert doc["sessions"][0]["client_key"] == encode_key(bytes(CLIENT.verify_key))
    problems, summary = verify_report(doc)
    assert problems == []
    assert summary["provider_key"] == doc["provider_key"]
    assert summary["sessions"][0]["client_key"] == doc["sessions"][0]["client_key"]


def _as_version_1(doc: dict[str, Any]) -> dict[str, Any]:
    """The same report as version 1 wrote it: keys in hex, signed again."""
    from tidewire.protocol.keys import decode_key

    old = {**doc, "version": 1, "provider_key": decode_key(doc["provider_key"], field="p").hex()}
    old["sessions"] = [
        {**s, "client_key": decode_key(s["client_key"], field="c").hex()} for s in doc["sessions"]
    ]
    return resign(old)


def test_a_version_1_report_with_hex_keys_still_verifies_and_is_shown_in_base64() -> None:
    doc = report_with_bytes(3, 1000)
    problems, summary = verify_report(_as_version_1(doc))
    assert problems == []
    assert summary["provider_key"] == doc["provider_key"]  # base64 whatever the file wrote
    assert summary["sessions"][0]["client_key"] == doc["sessions"][0]["client_key"]


def test_hex_keys_in_a_version_2_report_are_refused() -> None:
    doc = _as_version_1(report_with_bytes(3, 1000))
    problems, _ = verify_report(resign({**doc, "version": 2}))
    assert problems and "malformed report" in problems[0]


def test_verify_json_shows_the_keys_in_base64_and_a_failure_as_an_error(tmp_path: Path) -> None:
    from tidewire.protocol.keys import encode_key

    good = write(tmp_path, "good.json", make_report())
    code, out, _ = cli(["verify", good, "--json"])
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True and doc["failures"] == []
    [summary] = doc["reports"]
    assert summary["provider_key"] == encode_key(bytes(PROVIDER.verify_key))
    assert summary["sessions"][0]["client_key"] == encode_key(bytes(CLIENT.verify_key))
    bad = write(tmp_path, "bad.json", "{")
    code, out, _ = cli(["verify", good, bad, "--json"])
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["error"].startswith(f"{bad}: is not JSON")
