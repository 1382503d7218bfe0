"""What every lab operation shares: locks, the files lab daemons make outside the lab's dirs,
the pidfiles of a namespace's daemons, and which instances exist (`lab_instances`).

`lab up` is `vlaninfra.lab._up`, `lab down` `vlaninfra.lab._down`, `lab status`
`vlaninfra.lab._status` (`vlaninfra.lab` exports their public names).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from vlaninfra.lab import _labvm as vm
from vlaninfra.lab import _netns as n
from vlaninfra.lab._errors import LabError
from vlaninfra.lab._inventory import RUN_DIR, lab_root
from vlaninfra.lab._lock import lab_lock
from vlaninfra.lab._topology import instance_of, validate_instance

__all__ = [
    "ADDRESS_POOL",
    "DOCKERD_PID",
    "OUTSIDE",
    "SSHD_PID",
    "dockerd_pidfiles",
    "existing_names",
    "instance_locked",
    "lab_instances",
    "locked",
    "mark_outside_files",
    "pidfiles",
    "require_root",
]

# Networks docker creates without a subnet get one from here, never from 172.16/12.
ADDRESS_POOL = "198.19.128.0/17"


@dataclass(frozen=True)
class _Outside:
    """A file or directory a lab daemon creates outside the lab's dirs (removed by
    `lab down` only if it did not exist before the lab, once no such daemon runs at all)."""

    path: Path
    users: tuple[str, ...]
    """Process names that may still need it."""
    leaves: tuple[str, ...] = ()
    """Empty subdirectories to remove first."""

    @property
    def marker(self) -> Path:
        return RUN_DIR / ("created" + str(self.path).replace("/", "-"))


OUTSIDE = (
    _Outside(Path("/etc/docker/key.json"), ("dockerd",)),  # dockerd 20.10's engine ID
    _Outside(Path("/run/docker"), ("dockerd",), ("plugins",)),
    _Outside(Path("/run/containerd"), ("containerd", "containerd-shim"), ("s",)),
    _Outside(Path("/run/sshd"), ("sshd",)),  # sshd's privilege separation dir
)


def locked() -> contextlib.AbstractContextManager[None]:
    """One lab operation at a time on this machine (up/down of any instance)."""
    return lab_lock("machine")


def instance_locked(instance: str) -> contextlib.AbstractContextManager[None]:
    """One operation at a time on one instance. `lab up` holds it (without `locked`) while
    its VM guests finish booting, so other instances need not wait for QEMU."""
    return lab_lock(f"instance-{instance}")


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, dockerd, sshd): run as root")


# --- what exists ------------------------------------------------------------------------------


def existing_names(instance: str) -> set[str]:
    """Namespaces, root links and run dirs of `instance`, found by name alone."""
    names = set(n.list_netns()) | n.link_names(None)
    with contextlib.suppress(FileNotFoundError):
        names |= set(os.listdir(RUN_DIR))
    return {x for x in names if instance_of(x) == instance}


def lab_instances() -> list[str]:
    """Instances that have state or any namespace, link or run dir on this machine."""
    found = {instance_of(x) for x in n.list_netns()} | {instance_of(x) for x in n.link_names(None)}
    with contextlib.suppress(FileNotFoundError):
        found |= {instance_of(x) for x in os.listdir(RUN_DIR)}
    # Only directories this module made (they hold a slot file): .lab also holds others' state.
    for slot in lab_root().glob("*/slot"):
        with contextlib.suppress(LabError):
            found.add(validate_instance(slot.parent.name))
    found |= vm.vm_instances()  # QEMU guests and taps, found by name
    return sorted(i for i in found if i is not None)


def mark_outside_files() -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    for o in OUTSIDE:
        if not o.path.exists():
            o.marker.touch()


# Pids of the daemons a namespace runs, recorded before they start (see `d.start_detached`).
SSHD_PID = "sshd.lab.pid"
DOCKERD_PID = "dockerd.lab.pid"


def dockerd_pidfiles(nsd: Path, run_dir: Path) -> list[Path]:
    """Pidfiles of a host's dockerd, its containerd and its containers' init processes."""
    ctd = run_dir / "exec" / "containerd"
    inits = sorted(ctd.glob("daemon/io.containerd.runtime.v2.task/*/*/init.pid"))
    return [nsd / DOCKERD_PID, run_dir / "docker.pid", ctd / "containerd.pid", *inits]


def pidfiles(state: Path, names: set[str]) -> list[Path]:
    """Every pidfile of the namespaces `names` of the instance with state dir `state`."""
    out: list[Path] = []
    for x in sorted(names):
        nsd = state / x
        out += [nsd / SSHD_PID, nsd / "sshd.pid", *dockerd_pidfiles(nsd, RUN_DIR / x)]
    return out
