"""tidewire.node.core: sans-IO node logic (cryptokey routing, exit policy, accounting rules)."""
