"""tidewire.cli: the thin command line.

It reaches a running daemon only through its control socket.
"""
