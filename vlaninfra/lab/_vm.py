"""VM lab hosts: QEMU (TCG) guests with Debian's cloud kernel, sshd and dockerd: start, reboot,
stop, ssh.

This machine's kernel has no ipvlan and no 802.1Q, so namespace hosts cannot prove them; a VM
host can. From the outside a VM host looks exactly like a namespace host: root SSH (key-only,
pinned per-VM host key) at a management address reachable from the root namespace, dockerd on
``/var/run/docker.sock`` in the guest, ``eth0`` on the lab's LAN switch, the local image
``vlaninfra/busybox:lab`` imported.

The base image is built and cached by `vlaninfra.lab._vm_image`; what QEMU and ssh are run
with (names, MACs, kernel command line, argv) is computed by `vlaninfra.lab._qemu`, without
side effects. This module runs them. Its old names stay importable from here.

Run (`start_vm`): a qcow2 overlay on the base image in the VM's state directory; QEMU daemonized
with two NICs whose taps QEMU creates in the root namespace (non-persistent: they vanish with
the QEMU process):

- ``vt-<name>-l`` → guest ``eth0``: moved into the LAN switch namespace and enslaved to its
  bridge;
- ``vt-<name>-m`` → guest ``eth1``: stays in the root namespace with the management peer
  address (a point-to-point /30); the guest's sshd listens on the guest side only.

The per-VM ssh host key is generated here, so the caller pins it without ever trusting the
network. A guest's ``reboot`` resets the machine inside the same QEMU (same overlay disk, taps
and fw_cfg keys); `reboot_vm` does that and waits until the guest is back. A QEMU is only ever
stopped through its state directory's pidfile (`stop_vm`), never found by its name.

Example::

    image = build_base_image(Path(".cache/vm"))
    host = start_vm(image, name="h1", state_dir=Path(".lab/vm/h1"), lan_netns="vl-a-sw",
                    lan_bridge="br0", lan_address="198.51.100.21/24", lan_gateway="198.51.100.1",
                    mgmt_address="203.0.113.250/30", mgmt_peer="203.0.113.249/30",
                    authorized_key=pubkey, mac_seed=21)
    run_ssh(host, ["docker", "info"])
    stop_vm(host.state_dir)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vlaninfra.lab._daemons import ensure_keypair, kill_processes
from vlaninfra.lab._errors import VmError
from vlaninfra.lab._image import IMAGE as LAB_IMAGE
from vlaninfra.lab._netns import list_netns, run_process
from vlaninfra.lab._procs import LabProcess, alive, process_info, processes, recorded_pid
from vlaninfra.lab._qemu import (
    QEMU,
    TAP_PREFIX,
    VmFiles,
    arg_after,
    check_name,
    iface,
    kernel_cmdline,
    lan_mac,
    mgmt_mac,
    qemu_argv,
    ssh_command,
    tap_names,
)
from vlaninfra.lab._vm_image import (
    DEFAULT_KERNEL_PACKAGE,
    DEFAULT_SUITE,
    VmImage,
    apt_mirror,
    build_base_image,
    cache_key,
    vm_cache_dir,
    vm_unavailable_reason,
)

__all__ = [
    "DEFAULT_KERNEL_PACKAGE",
    "DEFAULT_SUITE",
    "LAB_IMAGE",
    "QEMU",
    "TAP_PREFIX",
    "VmError",
    "VmHost",
    "VmImage",
    "apt_mirror",
    "arg_after",
    "build_base_image",
    "cache_key",
    "cleanup_links",
    "kernel_cmdline",
    "lan_mac",
    "mgmt_mac",
    "pid_from_state",
    "qemu_pids",
    "qemu_rss_bytes",
    "reboot_vm",
    "run_ssh",
    "ssh_argv",
    "ssh_command",
    "start_vm",
    "stop_vm",
    "tap_names",
    "vm_cache_dir",
    "vm_unavailable_reason",
]


@dataclass(frozen=True)
class VmHost:
    """A running VM lab host, as `start_vm` left it (ssh and docker answering).

    Example: ``VmHost(name="h1", pid=4242, mgmt_address="203.0.113.250", ...)``
    """

    name: str
    pid: int
    mgmt_address: str  # guest management address, without prefix: the ssh target
    host_key: str  # "ssh-ed25519 AAAA…", pinned in known_hosts
    lan_tap: str
    mgmt_tap: str
    console_path: Path
    docker_version: str
    state_dir: Path
    known_hosts: Path
    identity_file: Path  # private key start_vm logged in with
    lan_mac: str  # guest eth0
    mgmt_mac: str  # guest eth1
    lan_address: str  # cidr
    lan_netns: str
    kernel_release: str
    boot_to_ssh_seconds: float
    ssh_to_docker_seconds: float
    vlans: tuple[tuple[int, str | None], ...] = field(default=())


# --------------------------------------------------------------------------------------------
# helpers


def _run(
    argv: Sequence[str], *, timeout: float = 60.0, check: bool = True, what: str = ""
) -> subprocess.CompletedProcess[str]:
    return run_process(argv, timeout=timeout, check=check, what=what, error=VmError)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no console output)"
    return "\n".join(text.splitlines()[-lines:])


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _link_exists(ifname: str, netns: str | None = None) -> bool:
    argv = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", "dev", ifname]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def ssh_argv(host: VmHost, command: Sequence[str] = (), *, connect_timeout: int = 5) -> list[str]:
    """The ssh command line for a login to ``host`` with its pinned host key.

    Example: ``ssh_argv(h, ["docker", "info"])`` → ``["ssh", "-F", "/dev/null", …, "root@…"]``
    """
    return ssh_command(
        host.mgmt_address, host.known_hosts, host.identity_file, command, connect_timeout
    )


def run_ssh(
    host: VmHost, command: Sequence[str], *, timeout: float = 60.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (argv, quoted for the remote shell) on ``host`` as root over ssh.

    Example: ``run_ssh(h, ["ip", "-br", "link"]).stdout``
    """
    return _run(ssh_argv(host, command), timeout=timeout, check=check, what=f"vm {host.name}: ssh")


def qemu_rss_bytes(pid: int) -> int:
    """Resident memory of a QEMU process. Example: ``qemu_rss_bytes(h.pid) // 2**20`` → 1390"""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# --------------------------------------------------------------------------------------------
# the boot sequence of `start_vm`


def _mgmt_pair(name: str, mgmt_address: str, mgmt_peer: str) -> tuple[str, str]:
    """The guest's management address (the ssh target) and the root tap's address/prefix."""
    guest, host = iface(mgmt_address, "mgmt_address"), iface(mgmt_peer, "mgmt_peer")
    if guest.network != host.network or guest.ip == host.ip:
        raise VmError(
            f"vm {name}: mgmt_address {mgmt_address} and mgmt_peer {mgmt_peer} must "
            "be two different addresses of one subnet"
        )
    return str(guest.ip), host.with_prefixlen


def _check_free(name: str, files: VmFiles, lan_netns: str, lan_bridge: str) -> None:
    """The switch is there and no QEMU of this state dir or name runs."""
    if not Path(f"/run/netns/{lan_netns}").exists():
        raise VmError(f"vm {name}: LAN namespace {lan_netns} does not exist")
    if not _link_exists(lan_bridge, lan_netns):
        raise VmError(f"vm {name}: bridge {lan_bridge} does not exist in namespace {lan_netns}")
    running = pid_from_state(files.state_dir)
    if running is not None:
        raise VmError(
            f"vm {name}: already running (pid {running}); stop_vm({files.state_dir}) first"
        )
    for other, other_argv in qemu_pids().items():
        if arg_after(other_argv, "-name") == f"{TAP_PREFIX}{name}":
            raise VmError(
                f"vm {name}: a QEMU with this name runs already (pid {other}); stop it with "
                "stop_vm(<its state directory>), or end that process yourself if it is not a lab's"
            )


def _prepare(
    name: str, files: VmFiles, image: VmImage, address: str, key_line: str, identity: Path | None
) -> tuple[str, Path]:
    """A fresh overlay, a new host key pinned for ``address``, the authorized keys; return the
    host key and the identity the readiness login uses (a probe key of its own without one)."""
    cleanup_links(list(tap_names(name)))  # leftovers (persistent taps are never created here)
    if files.console.exists():  # the last boot's console, for a post-mortem of its end
        files.console.replace(files.console.with_name(f"{files.console.name}.1"))
    stale = (files.qemu_log, files.overlay, files.host_key, files.pidfile)
    for p in (*stale, Path(f"{files.host_key}.pub")):
        p.unlink(missing_ok=True)
    host_key = ensure_keypair(files.host_key, f"vlaninfra-vm-{name}")
    files.known_hosts.write_text(f"{address} {host_key}\n")
    authorized = [key_line]
    if identity is None:
        identity = files.state_dir / "probe_ed25519"
        authorized.append(ensure_keypair(identity, "vlaninfra-vm-probe"))
    files.authorized_keys.write_text("\n".join(authorized) + "\n")
    os.chmod(files.authorized_keys, 0o600)
    _run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image.rootfs),
         str(files.overlay)],
        what=f"vm {name}: qemu-img create",
    )  # fmt: skip
    return host_key, identity


def _launch(name: str, argv: list[str], files: VmFiles, lan: tuple[str, str], mgmt: str) -> int:
    """Run QEMU (it daemonizes), move the LAN tap onto the switch ``lan`` (namespace, bridge)
    and give the management tap the root side's address ``mgmt``; return QEMU's pid."""
    lan_netns, lan_bridge = lan
    lan_tap, mgmt_tap = tap_names(name)
    meta = {"name": name, "lan_netns": lan_netns, "lan_tap": lan_tap, "mgmt_tap": mgmt_tap,
            "qemu_argv": argv}  # fmt: skip
    files.meta.write_text(json.dumps(meta, indent=2) + "\n")
    _run(argv, timeout=60, what=f"vm {name}: {QEMU}")
    pid = pid_from_state(files.state_dir)
    if pid is None:
        raise VmError(f"vm {name}: QEMU exited right after start; console:\n{_tail(files.console)}")
    # QEMU created both taps in the root namespace; wire them up.
    for ip_argv in (
        ["link", "set", "dev", lan_tap, "netns", lan_netns],
        ["-n", lan_netns, "link", "set", "dev", lan_tap, "master", lan_bridge, "up"],
        ["addr", "add", mgmt, "dev", mgmt_tap],
        ["link", "set", "dev", mgmt_tap, "up"],
    ):
        _run(["ip", *ip_argv], what=f"vm {name}: tap")
    return pid


def _await_ssh(
    name: str, address: str, files: VmFiles, identity: Path, deadline: float, within: str,
    pid: int,
) -> None:  # fmt: skip
    """Wait until a login to ``address`` with the pinned host key works; raise `VmError` when
    QEMU ``pid`` dies or the deadline passes (``within`` says how long that was)."""
    last = "port 22 not open"
    while True:
        if not alive(pid):
            raise VmError(
                f"vm {name}: QEMU (pid {pid}) died while booting; qemu log:\n"
                f"{_tail(files.qemu_log, 10)}\nconsole:\n{_tail(files.console)}"
            )
        if _port_open(address, 22):
            argv = ssh_command(address, files.known_hosts, identity, ["true"], 10)
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            if proc.returncode == 0:
                return
            last = proc.stderr.strip()
        if time.monotonic() > deadline:
            raise VmError(
                f"vm {name}: ssh root@{address} did not answer within {within} "
                f"(last: {last}); console:\n{_tail(files.console)}"
            )
        time.sleep(0.25)


def _await_docker(
    name: str, address: str, files: VmFiles, identity: Path, timeout: float
) -> str:
    """Wait until dockerd answers and the lab image is imported (lab-init touches the
    marker); return the docker version."""
    polls = max(1, int(timeout / 0.25))
    script = (
        f"i=0; while [ $i -lt {polls} ]; do "
        "if [ -e /run/vlaninfra/docker-ready ]; then "
        "exec docker info --format '{{.ServerVersion}}'; fi; "
        "i=$((i+1)); sleep 0.25; done; "
        "echo 'docker not ready; dockerd log:' >&2; tail -20 /var/log/dockerd.log >&2; exit 1"
    )
    proc = subprocess.run(
        ssh_command(address, files.known_hosts, identity, ["sh", "-c", script]),
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise VmError(
            f"vm {name}: docker did not answer within {timeout:.0f} s: "
            f"{proc.stderr.strip()[-1500:]}; console:\n{_tail(files.console)}"
        )
    return proc.stdout.strip().splitlines()[-1]


def start_vm(
    image: VmImage,
    *,
    name: str,
    state_dir: Path,
    lan_netns: str,
    lan_bridge: str,
    lan_address: str,
    lan_gateway: str | None,
    mgmt_address: str,
    mgmt_peer: str,
    lan_address6: str = "",
    lan_gateway6: str | None = None,
    authorized_key: str,
    mac_seed: int,
    memory_mb: int = 2048,
    vlans: Sequence[tuple[int, str | None]] = (),
    identity_file: Path | None = None,
    ssh_timeout: float = 60.0,
    docker_timeout: float = 60.0,
    docker: bool = True,
) -> VmHost:
    """Start a VM lab host and wait until ssh (pinned key) and docker answer: check the
    request, prepare the state dir (overlay, pinned host key), run `qemu_argv`, wire the taps,
    wait for ssh, then for docker.

    ``lan_netns``/``lan_bridge``: the switch namespace and its bridge (must exist); the LAN tap
    is enslaved there. ``mgmt_peer`` goes on the root-namespace tap, ``mgmt_address`` on guest
    eth1 (same subnet, e.g. a /30). ``vlans``: 802.1Q sub-interfaces ``eth0.<id>`` init
    creates, each with an optional address, e.g. ``[(50, "198.18.50.2/24")]`` (a VLAN peer).
    ``identity_file``: the private key matching ``authorized_key``, used for the readiness
    login; without it start_vm also authorizes a probe key of its own, kept in ``state_dir``.
    ``docker=False`` (a VLAN peer) returns once ssh answers, without waiting for dockerd
    (``docker_version`` is then ``""``).
    On any failure the VM is stopped again and VmError (with the console tail) is raised.
    """
    check_name(name)
    if memory_mb < 512:
        raise VmError(f"vm {name}: memory_mb {memory_mb} is too small for dockerd (>= 512)")
    cmdline = kernel_cmdline(name=name, lan_address=lan_address, lan_gateway=lan_gateway,
                             mgmt_address=mgmt_address, lan_address6=lan_address6,
                             lan_gateway6=lan_gateway6, vlans=vlans)  # fmt: skip
    address, mgmt_root = _mgmt_pair(name, mgmt_address, mgmt_peer)
    key_words = authorized_key.strip().split()
    if len(key_words) < 2 or "\n" in authorized_key.strip():
        raise VmError(f"vm {name}: authorized_key must be one OpenSSH public key line")
    files = VmFiles.of(state_dir.resolve())
    files.state_dir.mkdir(parents=True, exist_ok=True)
    _check_free(name, files, lan_netns, lan_bridge)
    host_key, identity = _prepare(name, files, image, address, " ".join(key_words), identity_file)
    argv = qemu_argv(name=name, kernel=image.kernel, initrd=image.initrd, cmdline=cmdline,
                     files=files, memory_mb=memory_mb, mac_seed=mac_seed)  # fmt: skip
    t_start = time.monotonic()
    try:
        pid = _launch(name, argv, files, (lan_netns, lan_bridge), mgmt_root)
        deadline = t_start + ssh_timeout
        _await_ssh(name, address, files, identity, deadline, f"{ssh_timeout:.0f} s", pid)
        t_ssh = time.monotonic()
        version = _await_docker(name, address, files, identity, docker_timeout) if docker else ""
        lan_tap, mgmt_tap = tap_names(name)
        return VmHost(
            name=name,
            pid=pid,
            mgmt_address=address,
            host_key=host_key,
            lan_tap=lan_tap,
            mgmt_tap=mgmt_tap,
            console_path=files.console,
            docker_version=version,
            state_dir=files.state_dir,
            known_hosts=files.known_hosts,
            identity_file=identity,
            lan_mac=lan_mac(mac_seed),
            mgmt_mac=mgmt_mac(mac_seed),
            lan_address=lan_address,
            lan_netns=lan_netns,
            kernel_release=image.kernel_release,
            boot_to_ssh_seconds=round(t_ssh - t_start, 2),
            ssh_to_docker_seconds=round(time.monotonic() - t_ssh, 2) if docker else 0.0,
            vlans=tuple(vlans),
        )
    except BaseException:
        stop_vm(files.state_dir)
        raise


def reboot_vm(state_dir: Path, address: str, identity: Path, *, timeout: float = 240.0,
              ) -> float:
    """Reboot the VM of ``state_dir`` from inside (the guest's ``reboot`` over ssh to its
    management ``address`` with key ``identity``: lab-init stops dockerd, syncs and resets the
    machine; QEMU keeps running on the same overlay disk) and wait until it is back: "=== LAB
    DOCKER READY" on the console again and ssh answering. Returns the seconds taken.

    Example: ``reboot_vm(Path(".lab/iv/vm/v1"), "203.0.113.130", key)`` → ``41.3``
    """
    files = VmFiles.of(state_dir.resolve())
    state_dir, console = files.state_dir, files.console
    pid = pid_from_state(state_dir)
    if pid is None:
        raise VmError(f"vm {state_dir.name}: not running (no QEMU pid in {state_dir})")
    offset = console.stat().st_size
    t0 = time.monotonic()
    deadline = t0 + timeout
    # the session may drop before it answers: the console says whether the guest rebooted
    _run(ssh_command(address, files.known_hosts, identity, ["reboot"]), timeout=30, check=False)
    while True:
        if pid_from_state(state_dir) != pid:
            raise VmError(f"vm {state_dir.name}: QEMU (pid {pid}) exited on reboot; "
                          f"console:\n{_tail(console)}")
        with open(console, "rb") as f:
            f.seek(offset)
            since = f.read().decode(errors="replace")
        if "=== LAB FAILED" in since:
            raise VmError(f"vm {state_dir.name}: failed while rebooting; console:\n"
                          f"{_tail(console)}")
        if "=== LAB DOCKER READY" in since:
            break
        if time.monotonic() > deadline:
            raise VmError(f"vm {state_dir.name}: not back within {timeout:.0f} s of `reboot`; "
                          f"console:\n{_tail(console)}")
        time.sleep(0.5)
    within = f"{timeout:.0f} s of `reboot`"
    _await_ssh(state_dir.name, address, files, identity, deadline, within, pid)
    return round(time.monotonic() - t0, 2)


# --------------------------------------------------------------------------------------------
# stop


def pid_from_state(state_dir: Path) -> int | None:
    """The pid in ``state_dir/qemu.pid`` if that process is alive, not younger than the file
    (a reused pid is not ours) and is our QEMU. Example: ``pid_from_state(h.state_dir)``"""
    pidfile = VmFiles.of(state_dir).pidfile
    pid = recorded_pid(pidfile)
    if pid is None:
        return None
    info = process_info(pid)
    if info is not None and arg_after(info.argv, "-pidfile") == str(pidfile):
        return pid
    return None


def qemu_pids() -> dict[int, tuple[str, ...]]:
    """Every running QEMU started by this module: pid → argv (matched by ``-name vt-…``)."""
    return {
        pid: info.argv
        for pid, info in processes().items()
        if info.argv
        and os.path.basename(info.argv[0]).startswith("qemu-system")
        and (arg_after(info.argv, "-name") or "").startswith(TAP_PREFIX)
    }


def cleanup_links(names: Sequence[str], netns: Sequence[str] | None = None) -> None:
    """Delete these links in the root namespace and in every named namespace (or ``netns``)."""
    spaces: list[str | None] = [None, *(netns if netns is not None else list_netns())]
    for ns in spaces:
        for ifname in names:
            if _link_exists(ifname, ns):
                argv = ["ip"] + (["-n", ns] if ns else []) + ["link", "del", "dev", ifname]
                subprocess.run(argv, capture_output=True, check=False)


def stop_vm(state_dir: Path, *, timeout: float = 10.0) -> None:
    """Power the VM of ``state_dir`` off (SIGTERM, SIGKILL after ``timeout``), delete its taps
    and its overlay. Idempotent; the console log stays for post-mortems.

    Example: ``stop_vm(Path(".lab/vm/h1"))``
    """
    files = VmFiles.of(state_dir.resolve())
    meta: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads(files.meta.read_text())
    pid = pid_from_state(files.state_dir)
    if pid is not None:
        # SIGTERM, SIGKILL after `timeout`; returns once the process is gone (not even a
        # zombie: a daemonized QEMU is init's child, which reaps it).
        kill_processes(lambda: [LabProcess(pid, 0, QEMU)] if alive(pid) else [], grace=timeout)
    name = str(meta.get("name", ""))
    taps = [str(meta[k]) for k in ("lan_tap", "mgmt_tap") if k in meta]
    if name and not taps:
        taps = list(tap_names(name))
    lan_netns = meta.get("lan_netns")
    if taps:
        cleanup_links(taps, [str(lan_netns)] if isinstance(lan_netns, str) else None)
    for leftover in (files.overlay, files.pidfile, files.host_key, files.meta):
        leftover.unlink(missing_ok=True)
