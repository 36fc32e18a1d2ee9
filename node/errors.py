"""Errors of the node shell that end `tidewire up` with one clear sentence."""


class NodeError(Exception):
    """A local condition the operator must fix (privileges, a missing device, a busy name)."""
