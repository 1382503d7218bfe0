"""``/run/vlaninfra`` on a host: the private directories the agent keeps state in (the guard's
snapshots, the change locks), and lock files that are removed while held (`try_lock`)."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from vlaninfra.host.errors import OpError

__all__ = ["RUN_DIR", "private_dir", "try_lock"]

RUN_DIR = Path("/run/vlaninfra")


def private_dir(d: Path, who: str) -> None:
    """Make ``d`` (a directory of `RUN_DIR`) 0700: ours, no symlink, in a directory only we
    may write, so nobody else may plant or read what ``who`` (e.g. "the guard") keeps there.
    ``EACCES`` when this user may not make it, ``EPERM`` when either is not so, the error's
    own errno for any other fault (a read-only ``/run``)."""
    for p in (d.parent, d):
        try:
            p.mkdir(mode=0o700, exist_ok=True)
            st = p.lstat()
        except PermissionError:
            if os.geteuid() == 0:
                raise OpError(errno.EACCES, f"cannot create {p} for {who}: permission denied "
                                            "to root (a security module?)") from None
            raise OpError(errno.EACCES, f"cannot create {p}: {who} needs root on the host "
                                        "(give the host `sudo: true` in its ssh settings)"
                          ) from None
        except OSError as exc:
            raise OpError(exc.errno or errno.EIO, f"cannot create {p} for {who}: "
                                                  f"{exc.strerror or exc}") from None
        # /run/vlaninfra may be shared with other tools (readable); ours is 0700.
        mask = 0o077 if p == d else 0o022
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & mask:
            raise OpError(errno.EPERM, f"{p} is not a directory of this user closed to others "
                                       "(a symlink, or writable by others): remove it and retry")


def try_lock(path: Path) -> int | None:
    """The descriptor of ``path`` (created 0600) under an exclusive ``flock``, or None while
    another holds it. Its holder may remove the file while holding it (so that none is left
    behind): a file removed or replaced meanwhile is not the lock any more, and is opened
    anew, so two processes never hold two files of one name."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        os.close(fd)
