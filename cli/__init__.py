"""tidewire.cli: the thin command line.

It reaches a running daemon only through its control socket. Importing it defers
the standard-library modules the node never uses (cli/lazy_modules.py), before
anything imports trio.
"""

from .lazy_modules import DEFERRED, defer

defer(*DEFERRED)
