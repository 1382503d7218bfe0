"""VM members of a lab instance: VM Docker hosts and VLAN peers on site a's switch.

Built on `vlaninfra.lab._vm` (one QEMU guest per member). Names and addresses come from
`vlaninfra.lab._topology.plan_vms`; everything else of a VM lives in
``<state>/vm/<name>/`` (overlay, console, host key, ``lab-vm.json``), so `lab down` throws it
away. The base image is machine-wide (`vm_cache_dir`), so a fresh clone does not rebuild it.

A running member is kept by a second `lab up` when its QEMU still runs with the same
configuration (``lab-vm.json``), its taps are in place and it answers ssh (and docker, for a
VM host); anything else is stopped and started again. Members boot in parallel threads.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from vlaninfra.lab import _netns as n
from vlaninfra.lab import _vm
from vlaninfra.lab._errors import LabError
from vlaninfra.lab._topology import VM_RE, VmPlan, ns_prefix, vm_instance_of

__all__ = [
    "GUEST_DOCKER_SOCKET",
    "GUEST_SSHD_LOG",
    "VmBoot",
    "VmMember",
    "base_image",
    "check_available",
    "guest_command",
    "member_dir",
    "stop_instance_vms",
    "stop_vms_except",
    "vm_instances",
    "vm_leftovers",
]

GUEST_DOCKER_SOCKET = "/var/run/docker.sock"
GUEST_SSHD_LOG = "/run/sshd.log"
_CONFIG = "lab-vm.json"
_DOCKER_READY = "test -e /run/vlaninfra/docker-ready && docker info --format '{{.ServerVersion}}'"


@dataclass(frozen=True)
class VmMember:
    """A running VM member as `lab up` leaves it."""

    plan: VmPlan
    state_dir: Path
    pid: int
    host_key: str
    docker_version: str
    """``""`` for a VLAN peer."""
    console_log: Path
    kept: bool
    """True when an already running guest was kept."""
    seconds: float
    """Wall time of this member's start (or check, when kept)."""


def check_available() -> None:
    """Raise `LabError` with the reason when QEMU guests cannot run on this machine."""
    reason = _vm.vm_unavailable_reason()
    if reason is not None:
        raise LabError(f"VM lab members (--vm-hosts, --vlan-peer) cannot run here: {reason}")


def base_image() -> _vm.VmImage:
    """The VM base image from the machine-wide cache, adopting a clone's old ``.cache/vm``
    or building it (about a minute, needs the Debian mirror) when missing."""
    adopt: list[Path] = []
    with contextlib.suppress(LabError):
        from vlaninfra.lab._inventory import project_root

        adopt.append(project_root() / ".cache" / "vm")
    return _vm.build_base_image(_vm.vm_cache_dir(), adopt_from=adopt)


def member_dir(state: Path, name: str) -> Path:
    """State dir of VM member ``name`` (``v1``, ``p1``) of the instance with state ``state``."""
    return state / "vm" / name


def guest_command(
    address: str, known_hosts: Path, identity: Path, command: Sequence[str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (argv) on a VM member as root over ssh with the pinned host key."""
    argv = _vm.ssh_command(address, known_hosts, identity, command, 5)
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 255, "", f"ssh timed out after {timeout:.0f} s")


# --- start --------------------------------------------------------------------------------------


def _config(plan: VmPlan, image: _vm.VmImage, switch_netns: str, pubkey: str) -> dict[str, object]:
    return {
        "plan": asdict(plan),
        "image": image.key,
        "switch": switch_netns,
        "authorized_key": pubkey,
    }


def _read_host_key(directory: Path) -> str:
    try:
        words = (directory / "ssh_host_ed25519_key.pub").read_text().split()
    except OSError:
        return ""
    return " ".join(words[:2])


def _tap_in_place(plan: VmPlan, switch_netns: str) -> bool:
    lan_tap, mgmt_tap = _vm.tap_names(plan.vm_name)
    lan = n.run(["ip", "-n", switch_netns, "-o", "link", "show", "dev", lan_tap], check=False)
    mgmt = n.run(["ip", "-o", "-4", "addr", "show", "dev", mgmt_tap], check=False)
    return "master br0" in lan and f" {plan.mgmt_root_address}/31 " in mgmt


def _try_keep(
    plan: VmPlan, directory: Path, config: dict[str, object], switch_netns: str, identity: Path
) -> VmMember | None:
    t0 = time.monotonic()
    pid = _vm.pid_from_state(directory)
    if pid is None:
        return None
    try:
        old = json.loads((directory / _CONFIG).read_text())
    except (OSError, ValueError):
        return None
    host_key = _read_host_key(directory)
    if old != config or not host_key or not _tap_in_place(plan, switch_netns):
        return None
    script = _DOCKER_READY if plan.kind == "host" else "true"
    proc = guest_command(
        plan.mgmt_address, directory / "known_hosts", identity, ["sh", "-c", script], timeout=30
    )
    if proc.returncode != 0:
        return None
    version = proc.stdout.strip().splitlines()[-1] if plan.kind == "host" else ""
    if plan.kind == "host" and not version:
        return None
    return VmMember(
        plan=plan,
        state_dir=directory,
        pid=pid,
        host_key=host_key,
        docker_version=version,
        console_log=directory / "console.log",
        kept=True,
        seconds=round(time.monotonic() - t0, 2),
    )


def _stop_named(vm_name: str, state: Path) -> None:
    """Stop the QEMU running as ``vt-<vm_name>`` from a member dir of ``state`` (through its
    pidfile: no other QEMU is ever signalled) and delete its taps."""
    for argv in _vm.qemu_pids().values():
        if _vm.arg_after(argv, "-name") != f"{_vm.TAP_PREFIX}{vm_name}":
            continue
        pidfile = Path(_vm.arg_after(argv, "-pidfile") or "/")
        if pidfile.name == "qemu.pid" and pidfile.parent.parent == state / "vm":
            _vm.stop_vm(pidfile.parent)
    _vm.cleanup_links(list(_vm.tap_names(vm_name)))


def _start_or_keep(
    plan: VmPlan,
    image: _vm.VmImage,
    state: Path,
    switch_netns: str,
    identity: Path,
    pubkey: str,
) -> VmMember:
    directory = member_dir(state, plan.name)
    config = _config(plan, image, switch_netns, pubkey)
    kept = _try_keep(plan, directory, config, switch_netns, identity)
    if kept is not None:
        return kept
    t0 = time.monotonic()
    _vm.stop_vm(directory)
    _stop_named(plan.vm_name, state)
    (directory / _CONFIG).unlink(missing_ok=True)
    is_host = plan.kind == "host"
    try:
        host = _vm.start_vm(
            image,
            name=plan.vm_name,
            state_dir=directory,
            lan_netns=switch_netns,
            lan_bridge="br0",
            lan_address=plan.lan_address,
            lan_gateway=plan.gateway,
            lan_address6=plan.lan_address6,
            lan_gateway6=plan.gateway6 or None,
            mgmt_address=f"{plan.mgmt_address}/31",
            mgmt_peer=f"{plan.mgmt_root_address}/31",
            authorized_key=pubkey,
            mac_seed=plan.mac_seed,
            vlans=[(plan.vlan, plan.vlan_address)] if plan.vlan is not None else [],
            identity_file=identity,
            docker=is_host,
            ssh_timeout=120.0,  # parallel boots under TCG share two cores
            docker_timeout=120.0,
        )
    except _vm.VmError as exc:
        raise LabError(f"{plan.kind} {plan.name} ({plan.vm_name}): {exc}") from exc
    (directory / _CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return VmMember(
        plan=plan,
        state_dir=directory,
        pid=host.pid,
        host_key=host.host_key,
        docker_version=host.docker_version,
        console_log=host.console_path,
        kept=False,
        seconds=round(time.monotonic() - t0, 2),
    )


class VmBoot:
    """The VM members of one `lab up`, starting (or being checked) in parallel threads.

    Example::

        boot = VmBoot(plans, image, state, "vl-a-sw", state / "id_lab", pubkey)
        ...  # namespace daemons start meanwhile
        members = boot.result()
    """

    def __init__(
        self,
        plans: Sequence[VmPlan],
        image: _vm.VmImage,
        state: Path,
        switch_netns: str,
        identity: Path,
        pubkey: str,
    ) -> None:
        self._plans = tuple(plans)
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self._plans)))
        self._futures: list[Future[VmMember]] = [
            self._pool.submit(_start_or_keep, p, image, state, switch_netns, identity, pubkey)
            for p in self._plans
        ]

    def result(self) -> tuple[VmMember, ...]:
        """Wait for every member; raise one `LabError` naming every failure."""
        try:
            members: list[VmMember] = []
            errors: list[str] = []
            for fut in self._futures:
                try:
                    members.append(fut.result())
                except LabError as exc:
                    errors.append(str(exc))
                except Exception as exc:  # reported with the others
                    errors.append(f"{type(exc).__name__}: {exc}")
            if errors:
                raise LabError("VM members did not start:\n" + "\n".join(errors))
            return tuple(members)
        finally:
            self._pool.shutdown(wait=True)

    def wait_quietly(self) -> None:
        """Let the boots finish (their errors are not raised): used when `lab up` failed
        elsewhere, so no thread outlives it."""
        self._pool.shutdown(wait=True)


# --- stop ---------------------------------------------------------------------------------------


def _running_names() -> list[str]:
    return [
        (_vm.arg_after(argv, "-name") or "")[len(_vm.TAP_PREFIX) :]
        for argv in _vm.qemu_pids().values()
    ]


def _vt_links() -> list[tuple[str | None, str]]:
    """(namespace or None, link) of every ``vt-…`` link in the root and named namespaces."""
    found: list[tuple[str | None, str]] = []
    for ns in [None, *n.list_netns()]:
        with contextlib.suppress(LabError):  # a namespace may vanish meanwhile
            names = n.link_names(ns)
            found += [(ns, x) for x in sorted(names) if x.startswith(_vm.TAP_PREFIX)]
    return found


def _link_vm_name(link: str) -> str:
    return re.sub(r"-[lm]$", "", link[len(_vm.TAP_PREFIX) :])


def vm_instances() -> set[str]:
    """Instances with a lab VM running or a lab VM's tap left on this machine."""
    names = set(_running_names()) | {_link_vm_name(link) for _, link in _vt_links()}
    return {i for x in names if (i := vm_instance_of(x)) is not None}


def stop_vms_except(instance: str, state: Path, keep: Sequence[str]) -> None:
    """Stop the VM members of ``instance`` whose site names (``v1``, ``p1``) are not in
    ``keep`` and remove their state (fewer members than last time, or none)."""
    wanted = set(keep)
    for vm_name in _running_names():
        m = VM_RE.match(vm_name)
        if m and vm_instance_of(vm_name) == instance and m.group(3) not in wanted:
            _stop_named(vm_name, state)
    root = state / "vm"
    if root.is_dir():
        for directory in root.iterdir():
            if directory.name not in wanted:
                _vm.stop_vm(directory)
                shutil.rmtree(directory, ignore_errors=True)
    prefix = _vm.TAP_PREFIX + ns_prefix(instance)
    for ns, link in _vt_links():
        m = VM_RE.match(_link_vm_name(link))
        if link.startswith(prefix) and m and m.group(3) not in wanted:
            n.run(["ip", *(["-n", ns] if ns else []), "link", "del", "dev", link], check=False)


def stop_instance_vms(instance: str, state: Path) -> None:
    """Stop every VM of ``instance`` through the pidfiles in its state ``state`` (QEMU
    writes its pidfile before a guest runs) and delete every tap named like one of its VMs.
    A QEMU of the same name but not from this state is left alone (`vm_leftovers` names it)."""
    root = state / "vm"
    if root.is_dir():
        for directory in sorted(root.iterdir()):
            _vm.stop_vm(directory)
    prefix = _vm.TAP_PREFIX + ns_prefix(instance)
    for ns, link in _vt_links():
        if link.startswith(prefix) and vm_instance_of(_link_vm_name(link)) == instance:
            n.run(["ip", *(["-n", ns] if ns else []), "link", "del", "dev", link], check=False)


def vm_leftovers(instance: str) -> list[str]:
    """QEMU processes and ``vt-`` links of ``instance`` still on this machine."""
    left = [
        f"qemu vt-{x} (not started from this lab's state: end it yourself if it is a lab's)"
        for x in _running_names()
        if vm_instance_of(x) == instance
    ]
    left += [
        f"link {link}" + (f" in {ns}" if ns else "")
        for ns, link in _vt_links()
        if vm_instance_of(_link_vm_name(link)) == instance
    ]
    return left
