"""Skins: how the link's datagrams look on the wire (DESIGN.md "Sessions, paths and skins").

A skin sits between a transport (node/transports/) and the link: `wrap` turns a link
datagram into wire bytes, `unwrap` turns wire bytes back into a link datagram or None.
`masked` hides WireGuard's framing on UDP; `stream` carries masked datagrams on a byte
stream (TCP). Both are sans-IO: randomness is an argument, nothing here touches a socket.
"""
