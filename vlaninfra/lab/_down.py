"""`lab down`: remove every namespace, link, process, mount and file of a lab instance."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from vlaninfra.host import guard, oplock
from vlaninfra.lab import _daemons as d
from vlaninfra.lab import _labvm as vm
from vlaninfra.lab import _netns as n
from vlaninfra.lab._errors import LabError
from vlaninfra.lab._inventory import RUN_DIR, lab_root, load_inventory, state_dir
from vlaninfra.lab._lab import (
    OUTSIDE,
    existing_names,
    instance_locked,
    locked,
    pidfiles,
    require_root,
)
from vlaninfra.lab._procs import own_processes, processes_in
from vlaninfra.lab._scratch import sweep_scratch
from vlaninfra.lab._topology import DEFAULT, instance_of, validate_instance

__all__ = ["lab_down", "teardown"]


def _guard_pidfiles(instance: str, inodes: list[int], whole: bool) -> list[Path]:
    from vlaninfra.confirm import watcher_pidfiles

    return [*guard.pidfiles(inodes), *(watcher_pidfiles(instance) if whole else [])]


def teardown(instance: str, names: set[str], *, whole: bool) -> list[str]:
    """End processes, mounts, namespaces, links and files of `names` (or the whole instance).
    Return the processes the lab did not start that still run in one of its namespaces (not
    ended: the namespace lives on, unnamed, until they exit)."""
    state = state_dir(instance)
    inode_of = {x: ino for x in names if (ino := n.netns_inode(x)) is not None}
    inodes = list(inode_of.values())
    owners = set(names)
    if whole:
        # Also what belongs to names nobody remembers any more (their state dirs).
        with contextlib.suppress(OSError):
            owners |= {x.name for x in state.iterdir() if instance_of(x.name) == instance}
        mount_dirs = [str(state), *(str(RUN_DIR / x) for x in names)]
    else:
        mount_dirs = [str(state / x) for x in names] + [str(RUN_DIR / x) for x in names]
    # Only processes the lab recorded (and theirs): never one that merely names a lab path.
    # Also commit-confirmed guards' restorers in its namespaces and, with the whole
    # instance, the controller's watchers of its stacks (vlaninfra.host.guard, .confirm).
    leftovers = _guard_pidfiles(instance, inodes, whole)
    d.kill_processes(lambda: own_processes([*pidfiles(state, owners), *leftovers], inodes))
    guard.forget(inodes)
    oplock.sweep()  # change locks of agents killed above (namespace hosts share /run)
    for p in leftovers:
        for stale in (p, p.with_suffix(".json")):
            stale.unlink(missing_ok=True)
    survivors = [
        f"process {p.pid} ({p.cmdline[:120]}) still runs in namespace {x}: the lab did not "
        "start it, so it was left running and keeps that namespace alive; end it if it is stale"
        for x, ino in sorted(inode_of.items())
        for p in processes_in(ino)
    ]
    d.unmount(mount_dirs)
    for x in sorted(names):
        n.delete_netns(x)
    root_links = n.link_names(None)
    for x in sorted(names & root_links):
        n.delete_link(None, x)
    for x in names:
        shutil.rmtree(RUN_DIR / x, ignore_errors=True)
    if whole:
        shutil.rmtree(state, ignore_errors=True)
    else:
        for x in names:
            shutil.rmtree(state / x, ignore_errors=True)
    left = [f"mount {m}" for m in d.lab_mounts(mount_dirs)]
    left += [f"namespace {x}" for x in sorted(names & set(n.list_netns()))]
    left += [
        f"directory {p}" for p in (state, *(RUN_DIR / x for x in names)) if whole and p.exists()
    ]
    if left:
        raise LabError(f"`lab down` of {instance} left behind:\n  " + "\n  ".join(left))
    return survivors


def _cleanup_outside_files() -> None:
    """Remove what lab daemons made outside the lab dirs, once no such daemon runs any more."""
    for o in OUTSIDE:
        if not o.marker.exists() or any(d.processes_named(u) for u in o.users):
            continue
        with contextlib.suppress(OSError):
            for leaf in o.leaves:
                (o.path / leaf).rmdir()
            if o.path.is_dir():
                o.path.rmdir()
            else:
                o.path.unlink(missing_ok=True)
        o.marker.unlink()
    with contextlib.suppress(OSError):
        RUN_DIR.rmdir()  # only when no other instance is left


def lab_down(instance: str = DEFAULT) -> list[str]:
    """Remove every namespace, link, process, mount and file of a lab instance.

    Safe when nothing exists and after a crashed `lab_up`: namespaces, links and mounts are
    found by the lab's naming conventions, not only from its state; processes only from the
    pids the lab recorded before starting them (and their descendants), so no process of
    anyone else ends, whatever its command line names. Also removes the scratch hosts of agent
    test runs that were killed (`vlaninfra.lab._scratch`). Keeps the image cache. Returns one line
    per process the lab did not start that still runs in one of its namespaces (left running),
    and one per scratch leftover removed (or the reason it could not be).

    Example: ``lab_down("t1")`` → ``[]``
    """
    require_root()
    validate_instance(instance)
    notes = _sweep()
    if not lab_root().exists() and not existing_names(instance) and not vm.vm_leftovers(instance):
        return notes
    lab_root().mkdir(parents=True, exist_ok=True)
    with instance_locked(instance), locked():
        names = existing_names(instance)
        with contextlib.suppress(LabError, OSError, KeyError, ValueError):
            inv = load_inventory(instance)
            for site in inv.sites:
                names |= {site.router.netns, site.peer.netns}
                names |= {h.netns for h in site.hosts if h.netns}
        # VMs first (QEMU through its pidfile, taps by name, so also a crashed run's): their
        # taps sit in the switch namespace.
        vm.stop_instance_vms(instance, state_dir(instance))
        survivors = teardown(instance, names, whole=True)
        _cleanup_outside_files()
        left = vm.vm_leftovers(instance)
        if left:
            raise LabError(f"`lab down` of {instance} left behind:\n  " + "\n  ".join(left))
    with contextlib.suppress(OSError):
        lab_root().rmdir()  # only if no other instance is left
    return notes + survivors


def _sweep() -> list[str]:
    """A killed agent-test run's scratch hosts (never a live run's): what went, or why not.
    A failure here never stops the lab instance's own teardown."""
    try:
        return [f"removed {s} of a killed test run" for s in sweep_scratch()]
    except (LabError, OSError) as exc:
        return [f"could not remove a killed test run's scratch hosts ({exc}); "
                "run `vlaninfra lab down` again"]
