"""The lab's locks: files in a root-only directory, opened safely, taken with a timeout.

``/run/vlaninfra-lab-locks`` (0700, owned by root, no symlink) holds ``machine.lock`` (one
`lab up`/`lab down` at a time on this machine) and ``instance-<name>.lock`` (one operation at
a time on one instance). No other user can create, replace or hold these files, so no other
user can make the lab wait or redirect its writes. A wait longer than the timeout
(``$VLANINFRA_LAB_LOCK_TIMEOUT`` seconds, default 600) fails and names the holder's pid.

Example::

    with lab_lock("machine"):
        ...
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from vlaninfra.lab._errors import LabError
from vlaninfra.lab._procs import process_info

__all__ = ["LOCK_DIR", "lab_lock", "lock_holders", "lock_timeout"]

LOCK_DIR = Path("/run/vlaninfra-lab-locks")
_DEFAULT_TIMEOUT = 600.0


def lock_timeout() -> float:
    """Seconds to wait for a lab lock: ``$VLANINFRA_LAB_LOCK_TIMEOUT`` or 600."""
    text = os.environ.get("VLANINFRA_LAB_LOCK_TIMEOUT", "")
    if not text:
        return _DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86400:
        raise LabError(
            f"VLANINFRA_LAB_LOCK_TIMEOUT={text!r} must be a number of seconds (0..86400)"
        )
    return value


def _checked_dir() -> Path:
    """LOCK_DIR, created 0700; refused unless a real directory of ours, closed to others."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(LOCK_DIR, 0o700)
    st = os.lstat(LOCK_DIR)
    why = None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        why = "is not a directory (a symlink or a file)"
    elif st.st_uid != os.geteuid():
        why = f"is owned by uid {st.st_uid}, not {os.geteuid()}"
    elif st.st_mode & 0o077:
        why = f"has mode {stat.S_IMODE(st.st_mode):04o}, others may change it"
    if why:
        raise LabError(
            f"lab lock directory {LOCK_DIR} {why}: it holds only the lab's lock files; "
            f"remove it (`rm -r {LOCK_DIR}`) after checking who made it, then retry"
        )
    return LOCK_DIR


def lock_holders(path: Path) -> list[int]:
    """Pids holding a flock on `path` (from /proc/locks), [] if none or unknown."""
    try:
        st = os.stat(path)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in lines:
        f = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:19:5678 0 EOF" (blocked waiters have "->")
        if len(f) >= 6 and f[1] == "FLOCK" and f[5] == want and f[4].isdigit():
            pids.append(int(f[4]))
    return sorted(set(pids))


def _describe(pid: int) -> str:
    info = process_info(pid)
    cmd = info.cmdline if info is not None else ""
    return f"pid {pid}" + (f" ({cmd[:120]})" if cmd else "")


@contextlib.contextmanager
def lab_lock(name: str, timeout: float | None = None) -> Iterator[None]:
    """Hold lock ``<LOCK_DIR>/<name>.lock`` (exclusive), waiting at most `timeout` seconds."""
    wait = lock_timeout() if timeout is None else timeout
    path = _checked_dir() / f"{name}.lock"
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise LabError(
            f"cannot open lab lock {path}: {exc.strerror} (a symlink?); remove it and retry"
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise LabError(f"lab lock {path} is not a regular file of ours: remove it and retry")
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holders = [_describe(p) for p in lock_holders(path) if p != os.getpid()]
                    who = ", ".join(holders) if holders else "a process that cannot be named"
                    raise LabError(
                        f"lab lock {path} is still held by {who} after {wait:.0f} s: another "
                        "`lab up`/`lab down` runs (wait for it), or that process hangs (end "
                        "it); $VLANINFRA_LAB_LOCK_TIMEOUT sets the wait"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # releases the flock
