"""tidewire.node: the Trio shell (TUN, sockets, timers, SQLite, netlink, nftables)."""
