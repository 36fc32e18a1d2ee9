"""A running node does not load modules it has no use for (issue 15's memory goal, 40 MB
with one peer): a provider's record no longer takes its version from importlib.metadata
(1.6 MiB), construct's debugger no longer runs pdb (0.6 MiB), and the TLS fallback page
loads the email package only when it answers, and rates and sizes of `[share]` are
parsed without the decimal module (0.4 MiB). Each case runs in a fresh interpreter."""

from importlib.metadata import version

from .test_lazy_modules import _python


def test_the_daemon_with_discovery_loads_no_metadata_pdb_or_email() -> None:
    out = _python(
        """
        import sys, types
        import tidewire.cli.main, tidewire.node.daemon, tidewire.node.discovery, tidewire.node.dht
        from tidewire.node.own_record import installed_version
        from tidewire.node.config.share import parse_rate, parse_size
        v = installed_version()
        assert parse_rate("40.5 Mbit/s") == 5_062_500 and parse_size("1.5 GiB") == 3 << 29
        def ran(name):
            m = sys.modules.get(name)
            return m is not None and type(m) is types.ModuleType
        print(v)
        unused = ("importlib.metadata", "pdb", "bdb", "email", "email.utils", "decimal")
        print([m for m in unused if ran(m)])
        """
    )
    assert out.splitlines() == [version("tidewire"), "[]"]


def test_a_deferred_pdb_still_works_when_used() -> None:
    out = _python(
        """
        import tidewire.cli, construct
        import pdb
        print(callable(pdb.post_mortem), type(pdb.Pdb).__name__)
        """
    )
    assert out == "True type"
