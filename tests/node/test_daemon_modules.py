"""A running node does not load modules it has no use for (issue 15's memory goal, 40 MB
with one peer): a provider's record no longer takes its version from importlib.metadata
(1.6 MiB), construct's debugger no longer runs pdb (0.6 MiB), nor construct pickle, shutil
bz2 and lzma, ctypes tempfile, linecache tokenize (0.5 MB), nor idna, traceback, shlex and
sqlite3 (only a node with receipts opens SQLite), and the TLS fallback page
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
        unused += ("pickle", "_pickle", "bz2", "_bz2", "lzma", "_lzma", "tempfile", "tokenize")
        unused += ("idna", "idna.core", "traceback", "shlex", "sqlite3", "_sqlite3")
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


def test_every_module_deferred_for_the_daemon_works_when_used() -> None:
    # construct imports pickle (its Pickled field), shutil bz2 and lzma (archives),
    # ctypes.util tempfile, linecache tokenize: a node uses none of them (0.5 MB)
    out = _python(
        """
        import io, tidewire.cli, construct, shutil, linecache
        import bz2, lzma, pickle, tempfile, tokenize
        print(pickle.loads(pickle.dumps({"a": (1, 2)})), construct.Pickled.parse(pickle.dumps(3)))
        print(bz2.decompress(bz2.compress(b"x" * 9)), lzma.decompress(lzma.compress(b"y")))
        with tempfile.TemporaryDirectory() as d:
            print(type(d).__name__)
        print([t.string for t in tokenize.generate_tokens(io.StringIO("a+1").readline)][:3])
        import idna, shlex, sqlite3, traceback
        print(idna.encode("bücher.example"), shlex.split("a 'b c'"), traceback.format_exc())
        print(sqlite3.connect(":memory:").execute("select 6 * 7").fetchone())
        """
    )
    assert out.splitlines() == [
        "{'a': (1, 2)} 3",
        "b'xxxxxxxxx' b'y'",
        "str",
        "['a', '+', '1']",
        "b'xn--bcher-kva.example' ['a', 'b c'] NoneType: None",
        "",
        "(42,)",
    ]
