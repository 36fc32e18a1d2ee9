"""The command line defers `ssl`, `hmac` and `hashlib` (cli/lazy_modules.py).

Each case runs in a fresh interpreter: the test process has long since imported them.
"""

import subprocess
import sys
import textwrap


def _python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_daemon_loads_no_openssl_module_from_the_standard_library() -> None:
    loaded = _python(
        """
        import sys
        import tidewire.cli.main, tidewire.node.daemon
        import trio
        async def main():
            await trio.sleep(0)
        trio.run(main)
        print(sorted(m for m in ("_ssl", "_hashlib") if m in sys.modules))
        print("libssl" in open("/proc/self/maps").read())
        """
    )
    assert loaded == "[]\nFalse"


def test_a_deferred_module_runs_on_first_use_and_is_the_module_everyone_holds() -> None:
    out = _python(
        """
        import sys
        import tidewire.cli
        import hashlib, hmac, ssl
        import trio._ssl
        before = "_ssl" in sys.modules
        from ssl import PROTOCOL_TLS_CLIENT
        print(before, "_ssl" in sys.modules, sys.modules["ssl"] is ssl is trio._ssl._stdlib_ssl)
        print(type(ssl.create_default_context()).__name__, type(ssl).__name__)
        print(hashlib.sha256(b"abc").hexdigest())
        print(hmac.new(b"key", b"The quick brown fox jumps over the lazy dog", "md5").hexdigest())
        try:
            ssl.no_such_name
        except AttributeError:
            print("AttributeError")
        """
    )
    assert out.splitlines() == [
        "False True True",
        "SSLContext module",
        # FIPS 180-2 appendix B.1
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        # RFC 2104's example in Wikipedia's HMAC article: HMAC_MD5("key", "The quick ...")
        "80070713463e7749b90c2dc24911e275",
        "AttributeError",
    ]
