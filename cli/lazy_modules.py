"""Standard-library modules that run on first use instead of at import.

trio imports `ssl` for its TLS streams and `hmac` for DTLS cookies, and construct
imports `hashlib` for its compiler. The node uses none of them, but importing them
maps OpenSSL's libssl and libcrypto: 4.9 MiB of a router's memory (issue 5). The
command line defers them before anything imports trio.

A deferred module is the real module object, placed in `sys.modules` with its code
not yet run. Reading a name from it runs the code into that same object (as
`importlib.util.LazyLoader` does), so every holder sees the real module. LazyLoader
itself cannot be used: on Python 3.11 the import system reads `__spec__` on every
`import ssl`, and that read alone makes it load.
"""

import importlib.util
import sys
import threading
import types

# pdb: construct's debugger imports it (0.6 MiB); pickle: construct's Pickled field;
# bz2, lzma: shutil's archives; tempfile: ctypes.util; tokenize: linecache (0.5 MB);
# idna: trio, for non-ASCII host names; traceback: construct; shlex: hooks; sqlite3:
# the ledger, which only a node with receipts opens (SQLite maps 1.2 MB)
DEFERRED = (
    *("ssl", "hmac", "hashlib", "pdb", "pickle", "bz2", "lzma", "tempfile", "tokenize"),
    *("idna", "traceback", "shlex", "sqlite3"),
)

_lock = threading.RLock()


class _Deferred(types.ModuleType):
    def __getattr__(self, name: str) -> object:
        # only called for names the module lacks, which before it runs is all but the
        # import system's own (__name__, __spec__, __loader__, __file__, ...)
        with _lock:
            if type(self) is _Deferred:
                module: types.ModuleType = self
                module.__class__ = types.ModuleType  # a plain module from now on
                spec = self.__spec__
                assert spec is not None and spec.loader is not None
                try:
                    spec.loader.exec_module(self)
                except BaseException:
                    self.__class__ = _Deferred
                    raise
        return types.ModuleType.__getattribute__(self, name)


def defer(*names: str) -> None:
    """Defer each named module that nothing has imported yet."""
    for name in names:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)  # finds the source; runs nothing
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        module.__class__ = _Deferred
        sys.modules[name] = module
