"""Queues at the node's ingress, one module per algorithm behind one interface (base.py)."""
