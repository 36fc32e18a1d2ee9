"""`tidewire genkey`, `pubkey`, `genpsk`: keys in the base64 format of `wg`.

`genkey` and `genpsk` print to stdout, or write to a file with mode 0600 when
given `-o FILE` (cli/private_file.py: never through a symbolic link, only into a
regular file); `pubkey` reads a private key on stdin.
"""

import argparse
import os
from typing import Any

from tidewire.protocol.errors import LocalProtocolError
from tidewire.protocol.keys import decode_key, derive_public, encode_key, private_from_seed

from .env import Environment
from .exit_status import ExitStatus
from .private_file import write_private


def add_parser(sub: Any) -> None:
    for name, help_text, fn in (
        ("genkey", "print a new private key", _genkey),
        ("genpsk", "print a new preshared key", _genpsk),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("-o", "--output", metavar="FILE", help="write the key to FILE (mode 0600)")
        p.set_defaults(run=fn)
    p = sub.add_parser("pubkey", help="read a private key on stdin, print its public key")
    p.set_defaults(run=_pubkey)


def _emit(name: str, key: str, args: argparse.Namespace, env: Environment, **more: str) -> int:
    """The key on stdout (under --json: {name: key}), or into -o FILE ({"file": FILE})."""
    if args.output:
        problem = write_private(args.output, (key + "\n").encode())
        if problem:
            env.error(problem.replace("a secret", "a key"))
            return ExitStatus.ERROR
        env.emit({"file": args.output, **more})
    else:
        env.emit({name: key, **more}, key)
    return ExitStatus.OK


def _genkey(args: argparse.Namespace, env: Environment) -> int:
    private = private_from_seed(os.urandom(32))
    public = encode_key(derive_public(private))
    return _emit("private_key", encode_key(private), args, env, public_key=public)


def _genpsk(args: argparse.Namespace, env: Environment) -> int:
    return _emit("preshared_key", encode_key(os.urandom(32)), args, env)


def _pubkey(args: argparse.Namespace, env: Environment) -> int:
    try:
        private = decode_key(env.stdin.read(), field="private key on stdin")
    except LocalProtocolError as exc:
        env.error(str(exc))
        return ExitStatus.ERROR
    public = encode_key(derive_public(private))
    env.emit({"public_key": public}, public)
    return ExitStatus.OK
