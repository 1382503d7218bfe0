"""What a VM lab host is started with, computed without touching anything: names, MACs, the
kernel command line, QEMU's and ssh's argument lists (`vlaninfra.lab._vm` runs them).

Naming convention: VM names match ``[a-z0-9][a-z0-9-]{0,9}``; QEMU runs with ``-name vt-<name>``
and ``-pidfile <state>/qemu.pid``; taps are ``vt-<name>-l`` (guest ``eth0``, on the LAN switch)
and ``vt-<name>-m`` (guest ``eth1``, management). Nothing secret is on the kernel command line:
the host key and the authorized keys reach the guest as fw_cfg files.

Example::

    files = VmFiles.of(Path(".lab/vm/h1"))
    argv = qemu_argv(name="h1", kernel=k, initrd=i, cmdline=line, files=files,
                     memory_mb=2048, mac_seed=21)
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vlaninfra.lab._errors import VmError

__all__ = [
    "QEMU",
    "TAP_PREFIX",
    "VmFiles",
    "arg_after",
    "check_name",
    "iface",
    "kernel_cmdline",
    "lan_mac",
    "mgmt_mac",
    "qemu_argv",
    "ssh_command",
    "tap_names",
]

QEMU = "qemu-system-x86_64"
TAP_PREFIX = "vt-"
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,9}")
_LAB_V6 = ipaddress.IPv6Network("2001:db8::/32")


@dataclass(frozen=True)
class VmFiles:
    """The files of one VM in its state directory."""

    state_dir: Path
    console: Path
    qemu_log: Path
    pidfile: Path
    overlay: Path
    host_key: Path
    known_hosts: Path
    authorized_keys: Path
    meta: Path
    """``vm.json``: name, taps and QEMU's argv, for `stop_vm`."""

    @classmethod
    def of(cls, state_dir: Path) -> VmFiles:
        """Example: ``VmFiles.of(Path("/x")).pidfile`` → ``Path("/x/qemu.pid")``"""
        d = state_dir
        return cls(d, d / "console.log", d / "qemu.log", d / "qemu.pid", d / "overlay.qcow2",
                   d / "ssh_host_ed25519_key", d / "known_hosts", d / "authorized_keys",
                   d / "vm.json")  # fmt: skip


def _mac(seed: int, nic: int) -> str:
    if not 0 <= seed <= 0xFFFF:
        raise VmError(f"mac_seed {seed} out of range 0..65535")
    # 0a = locally administered unicast; 76:6c = "vl"
    return f"0a:76:6c:{seed >> 8:02x}:{seed & 0xFF:02x}:{nic:02x}"


def lan_mac(mac_seed: int) -> str:
    """The guest eth0 MAC for ``mac_seed``. Example: ``lan_mac(21)`` → ``"0a:76:6c:00:15:01"``"""
    return _mac(mac_seed, 1)


def mgmt_mac(mac_seed: int) -> str:
    """The guest eth1 MAC for ``mac_seed``. Example: ``mgmt_mac(21)`` → ``"0a:76:6c:00:15:02"``"""
    return _mac(mac_seed, 2)


def tap_names(name: str) -> tuple[str, str]:
    """LAN and management tap of VM ``name``. Example: ``("vt-h1-l", "vt-h1-m")``"""
    return f"{TAP_PREFIX}{name}-l", f"{TAP_PREFIX}{name}-m"


def check_name(name: str) -> None:
    """Raise `VmError` unless ``name`` is a valid VM name. Example: ``check_name("h1")``"""
    if not _NAME_RE.fullmatch(name):
        raise VmError(
            f"VM name {name!r} must match [a-z0-9][a-z0-9-]{{0,9}} (tap names are vt-<name>-l)"
        )


def _parse(
    value: str, what: str, version: int
) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    example = "198.51.100.21/24" if version == 4 else "2001:db8:1::15/64"
    try:
        found = ipaddress.ip_interface(value)
    except ValueError as exc:
        raise VmError(f"{what} {value!r} is not an address/prefix: {exc}") from exc
    if found.version != version or "/" not in value:
        raise VmError(
            f"{what} {value!r} must be an IPv{version} address with prefix, e.g. {example}"
        )
    return found


def iface(value: str, what: str) -> ipaddress.IPv4Interface:
    """An IPv4 address with prefix. Example: ``iface("198.51.100.21/24", "lan_address")``"""
    found = _parse(value, what, 4)
    assert isinstance(found, ipaddress.IPv4Interface)
    return found


def _iface6(value: str, what: str) -> ipaddress.IPv6Interface:
    """An IPv6 address with prefix inside the documentation prefix (the lab's only IPv6)."""
    found = _parse(value, what, 6)
    assert isinstance(found, ipaddress.IPv6Interface)
    if not found.network.subnet_of(_LAB_V6):
        raise VmError(f"{what} {value!r} must lie in {_LAB_V6} (the lab uses no other IPv6)")
    return found


def _gateway(value: str, what: str, version: int) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is None or address.version != version:
        raise VmError(f"{what} {value!r} is not an IPv{version} address")
    return str(address)


def kernel_cmdline(
    *,
    name: str,
    lan_address: str,
    lan_gateway: str | None,
    mgmt_address: str,
    lan_address6: str = "",
    lan_gateway6: str | None = None,
    vlans: Sequence[tuple[int, str | None]],
) -> str:
    """The guest kernel's command line: name, addresses, gateways and VLANs for lab-init.

    Example: ``kernel_cmdline(name="h1", lan_address="198.51.100.21/24", lan_gateway=None,
    mgmt_address="203.0.113.250/30", vlans=[(50, None)])`` → ``"console=ttyS0 … vl.vlans=50"``
    """
    # A throwaway test guest under TCG: CPU-bug mitigations only slow its syscalls (lab up
    # 28 s -> 20 s, `docker ps` 3.7 s -> 1.8 s, measured); it runs nothing but the lab.
    # loglevel=5: errors and warnings on the console (what `quiet` printed, and a soft lockup's
    # trace, which the kernel prints at the default level), no boot chatter.
    args = ["console=ttyS0", "panic=-1", "loglevel=5", "mitigations=off", f"vl.name={name}"]
    args.append(f"vl.lan={iface(lan_address, 'lan_address').with_prefixlen}")
    if lan_gateway is not None:
        args.append(f"vl.gw={_gateway(lan_gateway, 'lan_gateway', 4)}")
    if lan_address6:
        lan6 = _iface6(lan_address6, "lan_address6")
        args.append(f"vl.lan6={lan6.with_prefixlen}")
        if lan_gateway6 is not None:
            gw6 = _gateway(lan_gateway6, "lan_gateway6", 6)
            if ipaddress.IPv6Address(gw6) not in lan6.network:
                raise VmError(f"lan_gateway6 {gw6} is not on lan_address6's subnet {lan6.network}")
            args.append(f"vl.gw6={gw6}")
    elif lan_gateway6 is not None:
        raise VmError("lan_gateway6 needs lan_address6")
    args.append(f"vl.mgmt={iface(mgmt_address, 'mgmt_address').with_prefixlen}")
    items = []
    for vid, addr in vlans:
        if not isinstance(vid, int) or not 1 <= vid <= 4094:
            raise VmError(f"VLAN id {vid!r} out of range 1..4094")
        items.append(
            f"{vid}:{iface(addr, f'VLAN {vid} address').with_prefixlen}" if addr else str(vid)
        )
    if len({v for v, _ in vlans}) != len(vlans):
        raise VmError(f"duplicate VLAN ids in {list(vlans)}")
    if items:
        args.append("vl.vlans=" + ",".join(items))
    return " ".join(args)


def qemu_argv(
    *,
    name: str,
    kernel: Path,
    initrd: Path,
    cmdline: str,
    files: VmFiles,
    memory_mb: int,
    mac_seed: int,
) -> list[str]:
    """QEMU's command line for VM ``name``: TCG, daemonized, two tap NICs QEMU creates itself
    (LAN ``vt-<name>-l``, management ``vt-<name>-m``), the overlay disk, and the host key and
    authorized keys as fw_cfg files.

    Example: ``qemu_argv(name="h1", …)[:3]`` → ``["qemu-system-x86_64", "-name", "vt-h1"]``
    """
    lan_tap, mgmt_tap = tap_names(name)
    opts: list[tuple[str, ...]] = [
        ("-name", f"{TAP_PREFIX}{name}"),
        ("-nodefaults",),
        ("-no-user-config",),
        ("-machine", "pc"),
        ("-accel", "tcg,tb-size=256"),
        ("-cpu", "max"),
        # One vCPU. With two (multi-threaded TCG) Docker's per-container work ran about twice
        # as fast (the 50-container ipvlan test 188 s, 345 s with one), but guests stalled with
        # both vCPUs stuck in the kernel (soft lockups in runc, minutes long, once for good),
        # in about one suite run in five (README, "The lab").
        ("-smp", "1"),
        ("-m", str(memory_mb)),  # 2 GiB by default, so 50 containers run without reclaim
        ("-display", "none"),
        ("-monitor", "none"),
        ("-serial", f"file:{files.console}"),
        ("-D", str(files.qemu_log)),
        ("-d", "guest_errors,cpu_reset"),
        ("-pidfile", str(files.pidfile)),
        ("-daemonize",),
        ("-kernel", str(kernel)),
        ("-initrd", str(initrd)),
        ("-append", cmdline),
        ("-drive", f"file={files.overlay},if=none,id=root,format=qcow2,cache=unsafe,discard=unmap"),
        ("-device", "virtio-blk-pci,drive=root,addr=0x5"),
        ("-netdev", f"tap,id=lan,ifname={lan_tap},script=no,downscript=no"),
        ("-device", f"virtio-net-pci,netdev=lan,mac={lan_mac(mac_seed)},addr=0x3"),
        ("-netdev", f"tap,id=mgmt,ifname={mgmt_tap},script=no,downscript=no"),
        ("-device", f"virtio-net-pci,netdev=mgmt,mac={mgmt_mac(mac_seed)},addr=0x4"),
        ("-fw_cfg", f"name=opt/vlaninfra/host_key,file={files.host_key}"),
        ("-fw_cfg", f"name=opt/vlaninfra/authorized_keys,file={files.authorized_keys}"),
    ]
    return [QEMU, *(word for opt in opts for word in opt)]


def arg_after(argv: Sequence[str], flag: str) -> str | None:
    """The word after ``flag`` in ``argv``. Example: ``arg_after(["-name", "vt-h1"], "-name")``"""
    if flag in argv:
        i = list(argv).index(flag)
        if i + 1 < len(argv):
            return argv[i + 1]
    return None


def ssh_command(
    address: str,
    known_hosts: Path,
    identity: Path,
    command: Sequence[str],
    connect_timeout: int = 5,
) -> list[str]:
    """ssh as root to ``address`` with key ``identity``, the host key pinned in ``known_hosts``
    and no config; ``command`` (argv) quoted for the remote shell.

    Example: ``ssh_command("203.0.113.250", kh, key, ["true"])`` → ``["ssh", "-F", …]``
    """
    options = {
        "BatchMode": "yes",
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": str(known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "IdentitiesOnly": "yes",
        "ConnectTimeout": str(connect_timeout),
        "LogLevel": "ERROR",
    }
    argv = ["ssh", "-F", "/dev/null"]
    for key, value in options.items():
        argv += ["-o", f"{key}={value}"]
    argv += ["-i", str(identity), f"root@{address}"]
    if command:
        argv += ["--", shlex.join(command)]
    return argv
