"""Suite-wide: the one root skip. Tests marked `lab` (namespaces, dockerd, sshd, QEMU) or `root`
(root, but nothing shared) are skipped without root, with the reason, never silently; no test
checks the user id itself.

`vm_lab`: the one VM lab of the session (booting QEMU guests under TCG costs a minute or two,
so every module that needs VM lab hosts shares it).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vlaninfra.lab import Inventory, lab_down, lab_up
from vlaninfra.lab._inventory import lab_root
from vlaninfra.lab._vm import pid_from_state, vm_unavailable_reason

VM_LAB = "iv"
"""Lab instance of the shared VM lab: site a with namespace host h1, VM host v1 and a VLAN 50
peer p1 (198.18.50.2/24)."""
VM_LAB_VLAN_PEER = (50, "198.18.50.2/24")


@dataclass(frozen=True)
class VmLabBoot:
    """How the session's VM lab came up: its inventory and the seconds the booting
    `lab_up` took."""

    inventory: Inventory
    seconds: float


ROOT_MARKERS = {
    "lab": "needs root: real network namespaces, dockerd, sshd, QEMU",
    "root": "needs root",
}
"""Markers whose tests need root, with the reason a skip gives."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    for item in items:
        for marker, reason in ROOT_MARKERS.items():
            if item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))
                break


def up_vm_lab() -> Inventory:
    """Brings the shared VM lab up (2-4 s when it already runs, a full boot after a
    `lab_down`) and returns its inventory."""
    return lab_up(hosts=1, vm_hosts=1, vlan_peers=[VM_LAB_VLAN_PEER], instance=VM_LAB)


@pytest.fixture(scope="session")
def vm_lab_boot() -> Iterator[VmLabBoot]:
    """Boots the shared VM lab once per session (a leftover instance is removed first) and
    removes it at the end, also on failure. `VLANINFRA_E2E_REUSE_LAB=1` (development reruns)
    reuses a running instance and leaves it up; `vlaninfra lab down --instance iv` removes it."""
    reason = vm_unavailable_reason()
    if reason is not None:
        pytest.skip(f"VM lab hosts unavailable: {reason}")
    reuse = bool(os.environ.get("VLANINFRA_E2E_REUSE_LAB"))
    if not reuse:
        lab_down(VM_LAB)
    try:
        t0 = time.monotonic()
        inventory = up_vm_lab()
        yield VmLabBoot(inventory, time.monotonic() - t0)
    finally:
        if not reuse:
            lab_down(VM_LAB)


@pytest.fixture(scope="module")
def vm_lab(vm_lab_boot: VmLabBoot) -> Inventory:
    """The shared VM lab, up (again, should a test before have taken it down). Contract: a
    test leaves its hosts, router and peers as it found them (stacks destroyed, its own
    links removed); a test that takes the lab down or changes it for good must come last in
    the session or bring it back (`up_vm_lab`)."""
    return up_vm_lab()


_KERNEL_TROUBLE = re.compile(
    r"(?i:soft lockup|rcu.*stall|hung_task|blocked for more than|panic)|BUG:|Oops|Call Trace")


def console_digest(console: Path, tail: int = 40) -> str:
    """What a VM guest's serial console says of trouble: every line naming a kernel lockup,
    stall, oops or panic (the first 40), then its last `tail` lines. Example:
    ``console_digest(Path(".lab/iv/vm/v1/console.log"))`` → ``"trouble:\n[  61.2] watchdog: …"``
    """
    try:
        lines = console.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"cannot read {console}: {exc.strerror}"
    trouble = [line for line in lines if _KERNEL_TROUBLE.search(line)][:40]
    return "\n".join(["trouble:", *(trouble or ["(none)"]), f"last {tail} lines:",
                      *lines[-tail:]])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test marked `vm` reports every VM guest's console (`console_digest`), and the
    one of its boot before (``console.log.1``, kept when `lab up` boots a guest again): a guest
    that stopped answering under QEMU TCG says why only there, and the lab's state, with the
    consoles, is gone once the session takes the lab down."""
    report = yield
    if report.failed and item.get_closest_marker("vm"):
        for guest in sorted(lab_root().glob("*/vm/*/")):
            pid = pid_from_state(guest)
            qemu = f"QEMU pid {pid} runs" if pid else "QEMU is not running"
            for console in sorted(guest.glob("console.log*")):
                report.sections.append((f"{console} ({qemu})", console_digest(console)))
    return report
