"""Writing a secret (a private key, a client's config or its QR code) to a file the
operator names: mode 0600, never through a symbolic link (O_NOFOLLOW: someone who can
plant one must not get the secret written where they choose), only a regular file."""

import errno
import os
import stat


def write_private(path: str, data: bytes) -> str | None:
    """Write `data` to `path`; None, or one sentence saying why it could not."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{path} is a symbolic link; refusing to write a secret through it"
        return f"cannot write {path}: {exc.strerror}"
    except ValueError:  # a NUL in the name
        return f"cannot write {path!r}: not a file name"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return f"cannot write {path}: not a regular file"
        os.fchmod(fd, 0o600)  # before the secret is in it, if the file existed
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror}"
    finally:
        os.close(fd)
    return None
