"""`tidewire genkey`, `pubkey`, `genpsk`: keys in the base64 format of `wg`.

`genkey` and `genpsk` print to stdout, or write to a file with mode 0600 when
given `-o FILE`; `pubkey` reads a private key on stdin. `-o` never writes through
a symbolic link (O_NOFOLLOW: someone who can plant one must not get the key
written where they choose) and only into a regular file.
"""

import argparse
import errno
import os
import stat
from typing import Any

from tidewire.protocol.errors import LocalProtocolError
from tidewire.protocol.keys import decode_key, derive_public, encode_key, private_from_seed

from .env import Environment
from .exit_status import ExitStatus


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


def _emit(key: str, args: argparse.Namespace, env: Environment) -> int:
    if args.output:
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(args.output, flags, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                env.error(f"{args.output} is a symbolic link; refusing to write a key through it")
            else:
                env.error(f"cannot write {args.output}: {exc.strerror}")
            return ExitStatus.ERROR
        except ValueError:  # a NUL in the name
            env.error(f"cannot write {args.output!r}: not a file name")
            return ExitStatus.ERROR
        with os.fdopen(fd, "w") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                env.error(f"cannot write {args.output}: not a regular file")
                return ExitStatus.ERROR
            os.fchmod(fd, 0o600)  # before the key is in it, if the file existed
            os.ftruncate(fd, 0)
            f.write(key + "\n")
    else:
        print(key, file=env.stdout)
    return ExitStatus.OK


def _genkey(args: argparse.Namespace, env: Environment) -> int:
    return _emit(encode_key(private_from_seed(os.urandom(32))), args, env)


def _genpsk(args: argparse.Namespace, env: Environment) -> int:
    return _emit(encode_key(os.urandom(32)), args, env)


def _pubkey(args: argparse.Namespace, env: Environment) -> int:
    try:
        private = decode_key(env.stdin.read(), field="private key on stdin")
    except LocalProtocolError as exc:
        env.error(str(exc))
        return ExitStatus.ERROR
    print(encode_key(derive_public(private)), file=env.stdout)
    return ExitStatus.OK
