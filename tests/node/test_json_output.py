"""`--json` on every command (cli/env.py, cli/main.py): each leaf command of the parser
takes it; given bad input, each answers one JSON object {"error": ...} on stdout, with
the exit status it has without --json and no traceback; bad arguments too. A command
added later without a case here fails `test_every_command_has_a_bad_input_case`."""

import io
import json
from pathlib import Path
from typing import Any

import pytest

from tidewire.cli.env import Environment
from tidewire.cli.main import _leaf_parsers, build_parser, main


def run(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    env = Environment(stdin=io.StringIO(stdin), stdout=io.StringIO(), stderr=io.StringIO())
    code = main(argv, env)
    return code, env.stdout.getvalue(), env.stderr.getvalue()  # type: ignore[attr-defined]


def leaf_commands() -> list[str]:
    parser = build_parser()
    return [leaf.prog.removeprefix("tidewire ") for leaf in _leaf_parsers(parser)]


# command -> (arguments after it that are bad input, stdin); {tmp} is a fresh folder
NOWHERE = ["--socket", "{tmp}/no-daemon.sock"]
BAD_INPUT: dict[str, tuple[list[str], str]] = {
    "genkey": (["-o", "{tmp}"], ""),  # a folder, not a file
    "genpsk": (["-o", "{tmp}"], ""),
    "pubkey": ([], "not a key\n"),
    "up": (["{tmp}/bad.toml"], ""),
    "down": (NOWHERE, ""),
    "status": (NOWHERE, ""),
    "metrics": (NOWHERE, ""),
    "usage": (NOWHERE, ""),
    "discover": (NOWHERE, ""),
    "routes": (NOWHERE, ""),
    "exits": (NOWHERE, ""),
    "reload": (NOWHERE, ""),
    "dashboard": (["--listen", "nowhere"], ""),
    "peer add": (["tw0", "not-a-key", *NOWHERE], ""),
    "peer remove": (["tw0", "not-a-key", *NOWHERE], ""),
    "client add": (["tw0", "phone", "--config", "{tmp}/missing.toml"], ""),
    "client list": (["tw0", "--config", "{tmp}/missing.toml"], ""),
    "client remove": (["tw0", "phone", "--config", "{tmp}/missing.toml"], ""),
    "report": (["--epoch", "yesterday", "-o", "{tmp}/r.json"], ""),
    "verify": (["{tmp}/bad.toml"], ""),
    "rewards": (["{tmp}/bad.toml"], ""),
    "service install": (["--systemd", "--prefix", "{tmp}/bad.toml"], ""),  # a file, not a folder
}


def test_every_command_takes_json() -> None:
    for leaf in _leaf_parsers(build_parser()):
        assert any("--json" in a.option_strings for a in leaf._actions), leaf.prog


def test_every_command_has_a_bad_input_case() -> None:
    assert sorted(leaf_commands()) == sorted(BAD_INPUT)


def _argv(command: str, tmp_path: Path) -> tuple[list[str], str]:
    (tmp_path / "bad.toml").write_text('[interface]\nprivate_key = "short"\n')
    args, stdin = BAD_INPUT[command]
    return [*command.split(), *(a.format(tmp=tmp_path) for a in args)], stdin


def _error_document(out: str, err: str) -> dict[str, Any]:
    assert "Traceback" not in out + err
    doc = json.loads(out)  # one document: json.loads refuses anything after it
    assert isinstance(doc, dict) and isinstance(doc["error"], str) and doc["error"]
    return doc


@pytest.mark.parametrize("command", sorted(BAD_INPUT))
def test_bad_input_under_json_is_one_error_object_with_the_same_status(
    command: str, tmp_path: Path
) -> None:
    argv, stdin = _argv(command, tmp_path)
    plain_code, _, plain_err = run(argv, stdin)
    assert plain_code != 0 and "Traceback" not in plain_err
    code, out, err = run([*argv, "--json"], stdin)
    assert code == plain_code
    doc = _error_document(out, err)
    if "exit_status" in doc:
        assert doc["exit_status"] == code
    if plain_err.startswith("tidewire: "):  # the sentence is the one a person reads
        assert doc["error"] in plain_err


@pytest.mark.parametrize("command", sorted(BAD_INPUT))
def test_bad_arguments_under_json_are_one_error_object(command: str) -> None:
    code, out, err = run([*command.split(), "--json", "--no-such-option"])
    assert code == 2
    doc = _error_document(out, err)
    assert doc["exit_status"] == 2  # an unknown option, or the arguments it lacks
    assert doc["error"].endswith("--help`)")  # argparse's sentence, as without --json


def test_without_json_bad_arguments_stay_one_sentence_on_stderr() -> None:
    code, out, err = run(["status", "--no-such-option"])
    assert code == 2 and out == ""
    assert err == ("tidewire: unrecognized arguments: --no-such-option (see `tidewire --help`)\n")


def test_json_after_a_double_dash_is_an_argument_not_the_flag() -> None:
    code, out, _ = run(["verify", "--", "--json"])
    assert code == 1 and out.startswith("FAIL --json: cannot be read")


def test_keys_answer_in_json() -> None:
    code, out, _ = run(["genkey", "--json"])
    key = json.loads(out)
    assert code == 0 and set(key) == {"private_key", "public_key"}
    code, out, _ = run(["pubkey", "--json"], stdin=key["private_key"])
    assert code == 0 and json.loads(out) == {"public_key": key["public_key"]}
    code, out, _ = run(["genpsk", "--json"])
    assert code == 0 and len(json.loads(out)["preshared_key"]) == 44


def test_a_note_of_a_command_that_succeeded_is_a_warning_on_stderr(tmp_path: Path) -> None:
    argv = ["service", "install", "--systemd", "--prefix", str(tmp_path), "--command", "/root/tw"]
    code, out, err = run([*argv, "--json"])
    assert code == 0 and json.loads(out)["manager"] == "systemd"
    [line] = err.splitlines()
    assert "ProtectHome=yes hides" in json.loads(line)["warning"]


def test_metrics_text_becomes_samples() -> None:
    from tidewire.cli.cmd_metrics import samples

    text = (
        "# HELP tidewire_rx_bytes Bytes received.\n"
        "# TYPE tidewire_rx_bytes counter\n"
        'tidewire_rx_bytes{peer="AbC+/=",kind="a\\"b\\\\c\\nd"} 1234\n'
        "tidewire_up 1\n"
        "tidewire_rtt_seconds 0.25\n"
        "tidewire_odd NaN\n"
    )
    assert samples(text) == [
        {
            "name": "tidewire_rx_bytes",
            "labels": {"peer": "AbC+/=", "kind": 'a"b\\c\nd'},
            "value": 1234,
        },
        {"name": "tidewire_up", "labels": {}, "value": 1},
        {"name": "tidewire_rtt_seconds", "labels": {}, "value": 0.25},
        {"name": "tidewire_odd", "labels": {}, "value": "NaN"},  # JSON has no NaN
    ]
    json.dumps(samples(text), allow_nan=False)


# -- against a daemon's control socket (a stand-in handler behind the real server) --------


async def fake_daemon(req: dict[str, Any]) -> dict[str, Any]:
    from tidewire.node.control import RequestError

    if req["cmd"] == "status":
        return {"status": {"interface": "tw0", "peers": []}}
    if req["cmd"] == "metrics":
        return {"metrics": "# TYPE tidewire_peers gauge\ntidewire_peers 2\n"}
    if req["cmd"] == "peer_remove":
        raise RequestError("no peer with that public key")
    return {}  # peer_add, down


async def test_answers_and_refusals_of_a_daemon_in_json(tmp_path: Path) -> None:
    import trio

    from tidewire.node import control

    sock = str(tmp_path / "tw0.sock")

    async def cli(*argv: str) -> tuple[int, Any]:
        code, out, err = await trio.to_thread.run_sync(run, [*argv, "--socket", sock, "--json"])
        assert "Traceback" not in err
        return code, json.loads(out)

    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve, tmp_path / "tw0.sock", fake_daemon)
        assert await cli("status") == (0, {"interface": "tw0", "peers": []})
        assert await cli("metrics") == (
            0,
            [{"name": "tidewire_peers", "labels": {}, "value": 2}],
        )
        code, doc = await cli("peer", "add", "tw0", "KEY", "--allowed-ips", "10.0.0.2/32")
        assert code == 0 and doc["ok"] is True and doc["allowed_ips"] == ["10.0.0.2/32"]
        assert await cli("peer", "remove", "tw0", "KEY") == (
            1,
            {"error": "no peer with that public key", "exit_status": 1},
        )
        assert await cli("down") == (0, {"ok": True, "cmd": "down"})
        nursery.cancel_scope.cancel()
