"""What keeps a running node's memory down (issue 15's goal: 40 MB with one peer): the
command line builds only `up`'s parser for the daemon, freed heap goes back to the
system once the node is up (node/memory.py), and resolving a DHT bootstrap address
does not load Python's idna codec. Each case runs in a fresh interpreter."""

from .test_lazy_modules import _python


def test_up_imports_no_other_command_and_help_still_lists_them_all() -> None:
    out = _python(
        """
        import io, sys
        from tidewire.cli.env import Environment
        from tidewire.cli.main import COMMANDS, build_parser, main
        env = Environment(stdout=io.StringIO(), stderr=io.StringIO())
        status = main(["up", "/nonexistent/tw0.toml"], env)
        others = [c for c in COMMANDS if f"tidewire.cli.{c}" in sys.modules]
        print(status != 0, others)
        names = build_parser()._subparsers._group_actions[0].choices
        print(len(names) >= len(COMMANDS), "client" in names and "discover" in names)
        """
    )
    assert out.splitlines() == ["True ['cmd_up']", "True True"]


def test_freed_heap_goes_back_to_the_system() -> None:
    out = _python(
        """
        from tidewire.node.memory import release_free_memory
        def rss():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        # 40 MB in malloc's heap, below one block still in use: free() cannot give it back
        blocks = [bytearray(20_000) for _ in range(2_000)]
        keep = bytearray(20_000)
        del blocks
        before = rss()
        print(release_free_memory(), (before - rss()) > 20_000_000)
        """
    )
    assert out.splitlines() == ["True True"]


def test_a_numeric_bootstrap_address_resolves_without_the_idna_codec() -> None:
    out = _python(
        """
        import sys, trio
        from tidewire.node.discovery import Discovery
        print(trio.run(Discovery._resolve, [("127.0.0.1", 6881), ("localhost", 6882)]))
        print([m for m in ("encodings.idna", "stringprep") if m in sys.modules])
        """
    )
    assert out.splitlines() == ["[('127.0.0.1', 6881), ('127.0.0.1', 6882)]", "[]"]
