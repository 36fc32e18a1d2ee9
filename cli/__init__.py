"""tidewire.cli: the thin command line. It talks to a running daemon only through its control socket."""
