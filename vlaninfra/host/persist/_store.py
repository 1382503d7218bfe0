"""Where the boot files are (:class:`Store`) and how they are written: atomically, root-only,
one writer per host at a time."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vlaninfra.host.errors import OpError

__all__ = ["ROOT_ENV", "UNIT_NAME", "Store", "failed", "locked", "write"]

ROOT_ENV = "VLANINFRA_HOST_ROOT"
"""A prefix for every file this package keeps (default ``/``): the lab's namespace hosts
share one filesystem, so each gets its own."""
UNIT_NAME = "vlaninfra-restore.service"
_lock = threading.Lock()
_LAYOUT = {
    "base": "etc/vlaninfra",
    "persist_dir": "etc/vlaninfra/persist",
    "archive": "usr/local/lib/vlaninfra/agent.pyz",
    "hook": "usr/local/sbin/vlaninfra-restore",
    "unit": f"etc/systemd/system/{UNIT_NAME}",
    "unit_link": f"etc/systemd/system/multi-user.target.wants/{UNIT_NAME}",
}
"""Each :class:`Store` path, below its root."""


@dataclass(frozen=True)
class Store:
    """Where the files are: everything under ``root`` (``/`` on a real host).

    Example: ``Store(Path("/")).file("shim", "infra/prod", "shim0")`` →
    ``/etc/vlaninfra/persist/infra--prod/shim--shim0.json``
    """

    root: Path
    base: Path = field(init=False, repr=False)
    """``/etc/vlaninfra``: the lock is taken on this directory."""
    persist_dir: Path = field(init=False, repr=False)
    archive: Path = field(init=False, repr=False)
    hook: Path = field(init=False, repr=False)
    unit: Path = field(init=False, repr=False)
    unit_link: Path = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name, relative in _LAYOUT.items():
            object.__setattr__(self, name, self.root / relative)

    @classmethod
    def from_env(cls) -> Store:
        """The store of this host (``$VLANINFRA_HOST_ROOT`` or ``/``)."""
        return cls(Path(os.environ.get(ROOT_ENV) or "/"))

    def systemd(self) -> bool:
        """Whether the host runs systemd (sd_booted(3): ``/run/systemd/system`` exists)."""
        return (self.root / "run/systemd/system").is_dir()

    def owner_dir(self, owner: str) -> Path:
        return self.persist_dir / _safe(owner.replace("/", "--"))

    def file(self, kind: str, owner: str, name: str) -> Path:
        return self.owner_dir(owner) / f"{kind}--{_safe(name.replace('/', '_'))}.json"


def _safe(text: str) -> str:
    """``text`` as one file name: characters other than ``[A-Za-z0-9._-]`` (and a leading
    dot) as ``%XX``."""
    out = re.sub(r"[^A-Za-z0-9._-]", lambda m: "".join(f"%{b:02x}" for b in m[0].encode()),
                 text)
    return "%2e" + out[1:] if out.startswith(".") else out or "%00"


def write(path: Path, data: bytes, mode: int) -> bool:
    """Write ``path`` atomically with ``mode`` (directories made 0700); False if unchanged."""
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except OSError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".vlaninfra-", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return True


@contextlib.contextmanager
def locked(store: Store) -> Iterator[None]:
    """One writer per host at a time (threads of this agent and other stacks' agents): an
    exclusive flock on ``/etc/vlaninfra``, retaken if the directory was replaced meanwhile."""
    with _lock:
        while True:
            store.base.mkdir(mode=0o755, parents=True, exist_ok=True)
            fd = os.open(store.base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.stat(store.base).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    yield
                    return
            finally:
                os.close(fd)


def failed(path: Path, exc: OSError) -> OpError:
    return OpError(exc.errno or errno.EIO,
                   f"cannot keep {path} (what brings this object back after a reboot): "
                   f"{exc.strerror or exc}; the live change was made: free the disk or fix the "
                   "directory's permissions, then run `pulumi up` again")


