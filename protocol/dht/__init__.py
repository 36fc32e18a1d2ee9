"""The BitTorrent Mainline DHT, sans-IO: bencoding (BEP 3), KRPC messages and the
routing table and lookups of BEP 5, node ids tied to addresses (BEP 42), and signed
mutable items (BEP 44). The shell in node/ owns the socket and the clock."""
