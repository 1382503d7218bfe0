"""The lab's own processes, found from pidfiles, never from command lines.

A pid in a pidfile counts only while that process started no later than the file was written
(a pid reused by a younger process is not ours). From the recorded processes the lab's own
are: their descendants, and the members of the sessions they lead that run in one of the
lab's network namespaces (containerd's shims: reparented to init, they stay in containerd's
session). A process of anyone else, whatever its command line names, is never one of them.

Example: ``own_processes([state / "vl-a-h1" / "dockerd.lab.pid"], [netns_inode("vl-a-h1")])``
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LabProcess",
    "alive",
    "own_processes",
    "process_info",
    "processes",
    "processes_in",
    "recorded_pid",
    "with_descendants",
]

_SLACK = 2.0  # seconds: start time (1/100 s ticks) against a file mtime


@dataclass(frozen=True)
class LabProcess:
    """A live process, as the lab names it in messages. Example: ``LabProcess(42, 1, "sshd -D")``"""

    pid: int
    ppid: int
    cmdline: str


@dataclass(frozen=True)
class _Info:
    ppid: int
    sid: int
    state: str
    start: float
    """Seconds since the epoch."""
    netns: str
    comm: str
    argv: tuple[str, ...]

    @property
    def cmdline(self) -> str:
        return " ".join(self.argv)


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


_BOOT = _boot_time()
_HZ = os.sysconf("SC_CLK_TCK")


def process_info(pid: int) -> _Info | None:
    """What the lab needs to know of a live process, None if it is gone (or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        try:
            netns = os.readlink(f"/proc/{pid}/ns/net")
        except PermissionError:
            netns = ""
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    if fields[0] == "Z":
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
    start = _BOOT + int(fields[19]) / _HZ
    return _Info(int(fields[1]), int(fields[3]), fields[0], start, netns, comm, argv)


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie does not)."""
    return process_info(pid) is not None


def processes() -> dict[int, _Info]:
    """Every live process: pid → what `process_info` knows of it."""
    found: dict[int, _Info] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := process_info(int(entry))) is not None:
            found[int(entry)] = info
    return found


def recorded_pid(pidfile: Path) -> int | None:
    """The pid in `pidfile` if that process is alive and not younger than the file."""
    try:
        pid = int(pidfile.read_text().split()[0])
        written = pidfile.stat().st_mtime
    except (OSError, ValueError, IndexError):
        return None
    info = process_info(pid) if pid > 1 else None
    if info is None or info.start > written + _SLACK:
        return None
    return pid


def _ancestors(pid: int) -> set[int]:
    seen: set[int] = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        info = process_info(pid)
        if info is None:
            break
        pid = info.ppid
    return seen


def own_processes(pidfiles: Iterable[Path], netns_inodes: Iterable[int]) -> list[LabProcess]:
    """The processes the pidfiles record, their descendants and their sessions' members in
    the given namespaces. This process and its ancestors are never included."""
    procs = processes()
    roots: set[int] = set()
    sessions: set[int] = set()
    for pidfile in pidfiles:
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if recorded_pid(pidfile) == pid and pid in procs:
            roots.add(pid)
            sessions.add(pid)
        elif pid > 1 and pid not in procs:
            # Dead: its number cannot be reused while its session has members, so members
            # (in the lab's namespaces) of session `pid` are what it left behind.
            sessions.add(pid)
    ns_links = {f"net:[{ino}]" for ino in netns_inodes}
    chosen = roots | {
        pid
        for pid, info in procs.items()
        if info.sid in sessions and info.sid != 0 and info.netns in ns_links
    }
    return _with_descendants(chosen, procs)


def _with_descendants(pids: Iterable[int], procs: dict[int, _Info]) -> list[LabProcess]:
    """`pids` and all their descendants among `procs`, this process and its ancestors
    excepted."""
    chosen = {pid for pid in pids if pid in procs}
    children: dict[int, list[int]] = {}
    for pid, info in procs.items():
        children.setdefault(info.ppid, []).append(pid)
    todo = list(chosen)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in chosen:
                chosen.add(child)
                todo.append(child)
    chosen -= _ancestors(os.getpid())
    return [LabProcess(pid, procs[pid].ppid, procs[pid].cmdline) for pid in sorted(chosen)]


def with_descendants(pids: Iterable[int]) -> list[LabProcess]:
    """The live processes among `pids` and all their descendants (this process and its
    ancestors excepted).

    Example: ``with_descendants([dockerd_pid])`` → dockerd, containerd, the shims, containers
    """
    return _with_descendants(pids, processes())


def processes_in(netns_inode: int) -> list[LabProcess]:
    """Every live process in the network namespace `netns_inode` (this process and its
    ancestors excepted), whoever started it: what keeps that namespace alive."""
    link = f"net:[{netns_inode}]"
    mine = _ancestors(os.getpid())
    return [
        LabProcess(pid, info.ppid, info.cmdline)
        for pid, info in sorted(processes().items())
        if info.netns == link and pid not in mine
    ]
