"""tidewire.protocol: the sans-IO wire protocol (WireGuard-compatible and native).

Nothing in this package does I/O, reads a clock or draws randomness: bytes, the
current time (`now`, monotonic seconds) and a random source go in; bytes and
events come out. tests/unit/test_import_rule.py enforces it.
"""
