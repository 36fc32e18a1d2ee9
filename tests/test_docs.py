"""The man page and shell completions in cli/share are what the argument parser gives now:
regenerate them with `python -m tidewire.cli.docs write` after changing a command."""

from tidewire.cli import docs


def test_committed_docs_match_the_parser() -> None:
    for name, text in docs.render().items():
        committed = (docs.SHARE / name).read_text()
        assert committed == text, (
            f"cli/share/{name} is stale: run python -m tidewire.cli.docs write"
        )


def test_every_command_is_in_the_man_page_and_the_completions() -> None:
    files = docs.render()
    for command in ("client add", "client list", "client remove", "up", "peer add", "genkey"):
        assert f".B tidewire {command.replace('-', chr(92) + '-')}" in files["tidewire.1"]
        assert f'"{command}")' in files["tidewire.bash"] or f'"{command}"*)' in files["_tidewire"]
    assert "--allowed-ips" in files["tidewire.bash"] and "--png" in files["_tidewire"]
