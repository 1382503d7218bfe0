"""Scratch hosts of the agent tests: how they are named, and sweeping a killed run's leftovers.

The agent tests (``tests/lab/_agent_fixtures.py``) build throw-away hosts outside any lab
instance: a namespace, an sshd and a dockerd. Every name carries the pid of the test run that
made it, so a run killed before its cleanup leaves nothing that cannot be told apart from a
live run's:

- namespaces ``vxa-<label>-<pid>`` and the management link ``vxa<pid>m``;
- dockerd's exec root ``/run/vxa-<pid>`` (socket, ``docker.pid``);
- temp dirs ``/tmp/vxa-sshd-<pid>-…`` (sshd's keys, config, ``sshd.pid``) and
  ``/var/tmp/vxa-docker-<pid>-…`` (dockerd's data root, and its ``.log`` beside it).

`sweep_scratch` (run by `lab down`) removes those whose pid no longer runs: it ends the
processes in their namespaces (sshd and dockerd run there) with all descendants, unmounts what
dockerd left mounted, then deletes namespaces, links and directories. What belongs to a live
run is never touched. Only namespaces and links (which only root can make) name processes to
end; a temp path is taken only when it is this user's own, not a symlink and writable by no
one else, and pidfiles in it are never read: anyone can write to /tmp.

Example::

    name = scratch_name("dk")          # "vxa-dk-4242" in test run 4242
    sweep_scratch()                    # → ["namespace vxa-dk-977", "directory /run/vxa-977"]
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vlaninfra.lab import _netns as n
from vlaninfra.lab._daemons import kill_processes, unmount
from vlaninfra.lab._errors import LabError
from vlaninfra.lab._procs import LabProcess, alive, processes_in, with_descendants

__all__ = [
    "PREFIX",
    "Scratch",
    "dead_scratch",
    "exec_root",
    "mgmt_link_name",
    "scratch_name",
    "sweep_scratch",
    "temp_prefix",
]

PREFIX = "vxa"
Kind = Literal["netns", "link", "path"]
_TEMP_DIRS = {"sshd": Path("/tmp"), "docker": Path("/var/tmp")}
_OWNER = {
    "netns": re.compile(rf"{PREFIX}-.+-(\d+)"),
    "link": re.compile(rf"{PREFIX}(\d+)m"),
    # /run/vxa-<pid>, or a temp dir (or its log) vxa-sshd-<pid>-<random>
    "path": re.compile(rf"{PREFIX}-(?:(?:{'|'.join(_TEMP_DIRS)})-(\d+)-.+|(\d+))"),
}


def scratch_name(label: str) -> str:
    """The namespace name of this test run for ``label``. Example: ``"vxa-dk-4242"``"""
    return f"{PREFIX}-{label}-{os.getpid()}"


def mgmt_link_name() -> str:
    """The root end of this run's management veth. Example: ``"vxa4242m"``"""
    return f"{PREFIX}{os.getpid()}m"


def exec_root() -> Path:
    """This run's dockerd exec root. Example: ``Path("/run/vxa-4242")``"""
    return Path(f"/run/{PREFIX}-{os.getpid()}")


def temp_prefix(kind: str) -> tuple[str, Path]:
    """``mkdtemp`` prefix and dir of this run's ``sshd`` or ``docker`` temp dirs.

    Example: ``temp_prefix("sshd")`` → ``("vxa-sshd-4242-", Path("/tmp"))``
    """
    return f"{PREFIX}-{kind}-{os.getpid()}-", _TEMP_DIRS[kind]


@dataclass(frozen=True)
class Scratch:
    """One leftover of a scratch host: a namespace, a root link or a path."""

    kind: Kind
    name: str  # the namespace or link name, or the path
    pid: int  # the test run that made it

    def __str__(self) -> str:
        return f"{'namespace' if self.kind == 'netns' else self.kind} {self.name}"


def dead_scratch(
    netns: Iterable[str],
    links: Iterable[str],
    paths: Iterable[Path],
    running: Callable[[int], bool],
) -> list[Scratch]:
    """The scratch leftovers among these names whose test run no longer runs.

    Names of other shapes (a lab instance's ``vl-…``, anyone else's) are never chosen.
    Example: ``dead_scratch(["vxa-dk-7", "vl-a-h1"], [], [], lambda pid: False)``
    → ``[Scratch("netns", "vxa-dk-7", 7)]``
    """
    found: list[tuple[Kind, str, str]] = [("netns", x, x) for x in netns]
    found += [("link", x, x) for x in links]
    found += [("path", str(p), p.name) for p in paths]
    out = []
    for kind, name, base in found:
        m = _OWNER[kind].fullmatch(base)
        pid = int(next(g for g in m.groups() if g)) if m is not None else 0
        if pid > 1 and not running(pid):
            out.append(Scratch(kind, name, pid))
    return sorted(out, key=lambda s: (s.kind, s.name))


def _scratch_paths() -> list[Path]:
    found = list(Path("/run").glob(f"{PREFIX}-*"))
    for kind, parent in _TEMP_DIRS.items():
        found += parent.glob(f"{PREFIX}-{kind}-*")
    return [p for p in found if _own(p)]


def _own(path: Path) -> bool:
    """A real directory or file of this user that no one else may write to."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    kind_ok = stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)
    return kind_ok and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def sweep_scratch() -> list[str]:
    """Remove every scratch leftover whose test run no longer runs; return what went."""
    dead = dead_scratch(n.list_netns(), n.link_names(None), _scratch_paths(), alive)
    if not dead:
        return []
    inodes = [i for s in dead if s.kind == "netns" and (i := n.netns_inode(s.name)) is not None]
    paths = [Path(s.name) for s in dead if s.kind == "path"]

    def find() -> list[LabProcess]:
        return with_descendants([p.pid for ino in inodes for p in processes_in(ino)])

    kill_processes(find)
    unmount(str(p) for p in paths)
    for s in dead:
        with contextlib.suppress(OSError, LabError):
            if s.kind == "netns":
                n.delete_netns(s.name)
            elif s.kind == "link":
                n.delete_link(None, s.name)
            elif Path(s.name).is_dir():
                shutil.rmtree(s.name)
            else:
                Path(s.name).unlink(missing_ok=True)
    return [str(s) for s in dead]
