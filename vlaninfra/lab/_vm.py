"""VM lab hosts: QEMU (TCG) guests with Debian's cloud kernel, sshd and dockerd.

This machine's kernel has no ipvlan and no 802.1Q, so namespace hosts cannot prove them; a VM
host can. From the outside a VM host looks exactly like a namespace host: root SSH (key-only,
pinned per-VM host key) at a management address reachable from the root namespace, dockerd on
``/var/run/docker.sock`` in the guest, ``eth0`` on the lab's LAN switch, the local image
``vlaninfra/busybox:lab`` imported.

Build (`build_base_image`, once, cached): ``vm_image/build-base.sh`` unpacks a bookworm
``linux-image-*-cloud-amd64`` package, debootstraps a minbase rootfs (openssh-server, python3,
iproute2, iputils-ping, kmod, curl, docker.io) into a 2G ext4 image and builds a tiny boot
initramfs. ``vm_image/lab-init`` is the guest's PID 1.

A guest's ``reboot`` resets the machine inside the same QEMU (same overlay disk, taps and
fw_cfg keys); `reboot_vm` does that and waits until the guest is back.

Run (`start_vm`): a qcow2 overlay on the base image in the VM's state directory; QEMU daemonized
with two NICs whose taps QEMU creates in the root namespace (non-persistent: they vanish with
the QEMU process):

- ``vt-<name>-l`` → guest ``eth0``: moved into the LAN switch namespace and enslaved to its
  bridge;
- ``vt-<name>-m`` → guest ``eth1``: stays in the root namespace with the management peer
  address (a point-to-point /30); the guest's sshd listens on the guest side only.

Nothing secret is on the kernel command line: the per-VM ssh host key (generated here, so the
caller pins it without ever trusting the network) and the authorized public key reach the guest
through QEMU fw_cfg files.

Naming convention: VM names match ``[a-z0-9][a-z0-9-]{0,9}``; QEMU runs with ``-name vt-<name>``
and ``-pidfile <state>/qemu.pid``; taps are ``vt-<name>-l`` and ``vt-<name>-m``. A QEMU is only
ever stopped through its state directory's pidfile (`stop_vm`), never found by its name.

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
import dataclasses
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vlaninfra.lab._daemons import ensure_keypair, kill_processes
from vlaninfra.lab._errors import LabError
from vlaninfra.lab._netns import list_netns, run_process
from vlaninfra.lab._procs import LabProcess, alive, process_info, processes, recorded_pid

__all__ = [
    "DEFAULT_KERNEL_PACKAGE",
    "DEFAULT_SUITE",
    "LAB_IMAGE",
    "TAP_PREFIX",
    "VmError",
    "VmHost",
    "VmImage",
    "apt_mirror",
    "build_base_image",
    "cache_key",
    "lan_mac",
    "mgmt_mac",
    "qemu_rss_bytes",
    "reboot_vm",
    "run_ssh",
    "ssh_argv",
    "start_vm",
    "stop_vm",
    "vm_cache_dir",
    "vm_unavailable_reason",
]

DEFAULT_KERNEL_PACKAGE = "linux-image-6.1.0-56-cloud-amd64"
DEFAULT_SUITE = "bookworm"
LAB_IMAGE = "vlaninfra/busybox:lab"
TAP_PREFIX = "vt-"
QEMU = "qemu-system-x86_64"

# Bump when the Python side of the build changes the artifacts (the scripts are hashed anyway).
_BUILD_FORMAT = "vlaninfra-vm-base/1"
_TOOLS_DIR = Path(__file__).resolve().parent / "vm_image"
_BUILD_INPUTS = ("build-base.sh", "lab-init", "initramfs-init")
_ARTIFACTS = ("vmlinuz", "initrd.gz", "base.ext4", "kernel-release")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,9}")
_BUILD_TOOLS = (
    "debootstrap", "dpkg-deb", "apt-get", "depmod", "cpio", "gzip", "mkfs.ext4", "e2fsck",
)  # fmt: skip
_RUN_TOOLS = (QEMU, "qemu-img", "ssh", "ssh-keygen", "ip")


class VmError(LabError):
    """A VM lab host could not be built, started or stopped; the message says why.

    Example: ``VmError("vm h1: ssh 203.0.113.250 did not answer within 60 s; console: ...")``
    """


@dataclass(frozen=True)
class VmImage:
    """A complete, cached base image: boot kernel + initramfs + raw ext4 root (read-only base).

    Example: ``VmImage(directory=Path(".cache/vm/base-3f2a…"), key="3f2a…", ...)``
    """

    directory: Path
    key: str
    kernel: Path
    initrd: Path
    rootfs: Path
    kernel_release: str
    built: bool  # True when this call built it, False on a cache hit
    build_seconds: float  # of the build that produced it (from the manifest on a cache hit)


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


def vm_unavailable_reason(*, build: bool = False) -> str | None:
    """Why VM hosts cannot run here (None when they can): not root, missing tools, no TCG.

    With ``build=True`` also checks the tools the base image build needs.
    Example: ``vm_unavailable_reason()`` → ``"qemu-system-x86_64 not found (apt-get install …)"``
    """
    if os.geteuid() != 0:
        return "VM lab hosts need root (taps, namespaces, debootstrap)"
    tools = _RUN_TOOLS + (_BUILD_TOOLS if build else ())
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        return (
            f"missing {', '.join(missing)} (apt-get install qemu-system-x86 qemu-utils "
            "openssh-client iproute2 debootstrap cpio kmod busybox-static)"
        )
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing (no tap devices)"
    try:
        proc = subprocess.run(
            [QEMU, "-accel", "help"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{QEMU} cannot run: {exc}"
    if proc.returncode != 0 or "tcg" not in proc.stdout:
        return f"{QEMU} cannot run with TCG: {(proc.stderr or proc.stdout).strip()[:300]}"
    return None


# --------------------------------------------------------------------------------------------
# build


def apt_mirror(suite: str = DEFAULT_SUITE) -> str:
    """The Debian mirror apt is configured with for ``suite`` (deb822 or one-line sources).

    Example: ``apt_mirror()`` → ``"http://deb.debian.org/debian"``
    """
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.is_file():
        for stanza in re.split(r"\n\s*\n", deb822.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
            if (
                "deb" in fields.get("types", "").split()
                and suite in fields.get("suites", "").split()
                and fields.get("uris")
                and fields.get("enabled", "yes").lower() != "no"
            ):
                return fields["uris"].split()[0].rstrip("/")
    one_line = [
        Path("/etc/apt/sources.list"),
        *sorted(Path("/etc/apt/sources.list.d").glob("*.list")),
    ]
    for path in one_line:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1].rstrip("/")
    return "http://deb.debian.org/debian"


def cache_key(kernel_package: str = DEFAULT_KERNEL_PACKAGE, suite: str = DEFAULT_SUITE) -> str:
    """Hash of everything the base image is built from: the scripts in vm_image, the kernel
    package and the suite (not the mirror: any mirror yields the same image).

    Example: ``cache_key()`` → ``"9c1e0b6f2d4a7e31"``
    """
    h = hashlib.sha256()
    h.update(f"{_BUILD_FORMAT}\0{kernel_package}\0{suite}\0".encode())
    for name in _BUILD_INPUTS:
        path = _TOOLS_DIR / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise VmError(f"build input {path} is missing: {exc}") from exc
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


def _load_image(directory: Path, key: str, *, built: bool) -> VmImage | None:
    manifest = directory / "manifest.json"
    try:
        meta = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("key") != key:
        return None
    sizes = meta.get("sizes", {})
    for name in _ARTIFACTS:
        p = directory / name
        if not p.is_file() or p.stat().st_size != sizes.get(name):
            return None
    return VmImage(
        directory=directory,
        key=key,
        kernel=directory / "vmlinuz",
        initrd=directory / "initrd.gz",
        rootfs=directory / "base.ext4",
        kernel_release=(directory / "kernel-release").read_text().strip(),
        built=built,
        build_seconds=float(meta.get("build_seconds", 0.0)),
    )


def _umount_under(path: Path) -> None:
    """Unmount anything a killed build left mounted below ``path`` (deepest first)."""
    prefix = str(path.resolve()) + "/"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    targets = [ln.split()[1] for ln in lines if len(ln.split()) > 1]
    for target in sorted((t for t in targets if t.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)


def _remove_tree(path: Path) -> None:
    if path.exists():
        _umount_under(path)
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def vm_cache_dir() -> Path:
    """The machine-wide base image cache, shared by every clone on this machine:
    ``$VLANINFRA_VM_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/vlaninfra/vm``.

    Example: ``vm_cache_dir()`` → ``/root/.cache/vlaninfra/vm``
    """
    env = os.environ.get("VLANINFRA_VM_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "vlaninfra" / "vm").resolve()


def _adopt(final: Path, key: str, sources: Sequence[Path]) -> VmImage | None:
    """Hard-link (or copy) a complete image of ``key`` from another cache dir into ``final``.
    The caller holds the cache lock."""
    for src_dir in sources:
        src = src_dir.resolve() / final.name
        if src == final or _load_image(src, key, built=False) is None:
            continue
        staging = final.parent / f".adopt-{key}-{os.getpid()}"
        _remove_tree(staging)
        staging.mkdir(parents=True)
        try:
            for name in (*_ARTIFACTS, "manifest.json"):
                try:
                    os.link(src / name, staging / name)
                except OSError:
                    shutil.copy2(src / name, staging / name)
            staging.rename(final)
        except OSError:
            _remove_tree(staging)
            continue
        return _load_image(final, key, built=False)
    return None


def build_base_image(
    cache_dir: Path,
    *,
    kernel_package: str = DEFAULT_KERNEL_PACKAGE,
    suite: str = DEFAULT_SUITE,
    mirror: str | None = None,
    timeout: float = 1800.0,
    adopt_from: Sequence[Path] = (),
) -> VmImage:
    """Build the VM base image once into ``cache_dir/base-<key>/``; a complete cache is reused.

    A successful build removes the ``base-*`` images of other keys.
    Complete means ``manifest.json`` (written last) names the same key and every artifact has
    the recorded size. ``adopt_from``: other cache dirs whose complete image of the same key is
    hard-linked (or copied) in instead of building. Concurrent callers serialize on
    ``cache_dir/.lock``. Needs root, network
    access to the mirror and the build tools (see `vm_unavailable_reason`).
    Example: ``build_base_image(Path(".cache/vm")).rootfs`` → ``.cache/vm/base-…/base.ext4``
    """
    key = cache_key(kernel_package, suite)
    cache_dir = cache_dir.resolve()
    final = cache_dir / f"base-{key}"
    image = _load_image(final, key, built=False)
    if image is not None:
        return image
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / ".lock"):
        image = _load_image(final, key, built=False)  # another process may have finished it
        if image is None and adopt_from:
            _remove_tree(final)
            image = _adopt(final, key, adopt_from)
        if image is not None:
            return image
        reason = vm_unavailable_reason(build=True)
        if reason is not None:
            raise VmError(f"cannot build the VM base image: {reason}")
        work = cache_dir / f".build-{key}-{os.getpid()}"
        for stale in cache_dir.glob(f".build-{key}-*"):
            _remove_tree(stale)  # we hold the lock: nobody else is building this key
        _remove_tree(final)
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                [
                    "bash",
                    str(_TOOLS_DIR / "build-base.sh"),
                    str(work),
                    kernel_package,
                    mirror or apt_mirror(suite),
                    suite,
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            (cache_dir / "last-build.log").write_text(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                raise VmError(
                    f"VM base image build failed (exit {proc.returncode}); "
                    f"log {cache_dir / 'last-build.log'}:\n{(proc.stdout + proc.stderr)[-3000:]}"
                )
            seconds = time.monotonic() - t0
            staging = cache_dir / f".staging-{key}"
            _remove_tree(staging)
            staging.mkdir()
            sizes = {}
            for name in _ARTIFACTS:
                (work / name).rename(staging / name)
                sizes[name] = (staging / name).stat().st_size
            (staging / "base.ext4").chmod(0o444)  # the read-only backing file of every overlay
            meta = {
                "key": key,
                "kernel_package": kernel_package,
                "suite": suite,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_seconds": round(seconds, 1),
                "sizes": sizes,
            }
            tmp = staging / "manifest.json.tmp"
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
            tmp.rename(staging / "manifest.json")
            staging.rename(final)
            for old in cache_dir.glob("base-*"):
                # Superseded images (other keys). A running VM keeps its backing file open,
                # so removing it under a running VM is safe.
                if old != final:
                    _remove_tree(old)
        except subprocess.TimeoutExpired as exc:
            raise VmError(f"VM base image build timed out after {timeout:.0f} s") from exc
        finally:
            _remove_tree(work)
    image = _load_image(final, key, built=True)
    if image is None:
        raise VmError(f"VM base image in {final} is incomplete right after the build")
    return image


# --------------------------------------------------------------------------------------------
# run


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


def _tap_names(name: str) -> tuple[str, str]:
    return f"{TAP_PREFIX}{name}-l", f"{TAP_PREFIX}{name}-m"


def _check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name):
        raise VmError(
            f"VM name {name!r} must match [a-z0-9][a-z0-9-]{{0,9}} (tap names are vt-<name>-l)"
        )


def _iface(value: str, what: str) -> ipaddress.IPv4Interface:
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError as exc:
        raise VmError(f"{what} {value!r} is not an address/prefix: {exc}") from exc
    if not isinstance(iface, ipaddress.IPv4Interface) or "/" not in value:
        raise VmError(
            f"{what} {value!r} must be an IPv4 address with prefix, e.g. 198.51.100.21/24"
        )
    return iface


_LAB_V6 = ipaddress.IPv6Network("2001:db8::/32")


def _iface6(value: str, what: str) -> ipaddress.IPv6Interface:
    """An IPv6 address with prefix inside the documentation prefix (the lab's only IPv6)."""
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError as exc:
        raise VmError(f"{what} {value!r} is not an address/prefix: {exc}") from exc
    if not isinstance(iface, ipaddress.IPv6Interface) or "/" not in value:
        raise VmError(
            f"{what} {value!r} must be an IPv6 address with prefix, e.g. 2001:db8:1::15/64"
        )
    if not iface.network.subnet_of(_LAB_V6):
        raise VmError(f"{what} {value!r} must lie in {_LAB_V6} (the lab uses no other IPv6)")
    return iface


def _kernel_cmdline(
    *,
    name: str,
    lan_address: str,
    lan_gateway: str | None,
    mgmt_address: str,
    lan_address6: str = "",
    lan_gateway6: str | None = None,
    vlans: Sequence[tuple[int, str | None]],
) -> str:
    # A throwaway test guest under TCG: CPU-bug mitigations only slow its syscalls (lab up
    # 28 s -> 20 s, `docker ps` 3.7 s -> 1.8 s, measured); it runs nothing but the lab.
    args = ["console=ttyS0", "panic=-1", "quiet", "mitigations=off", f"vl.name={name}"]
    args.append(f"vl.lan={_iface(lan_address, 'lan_address').with_prefixlen}")
    if lan_gateway is not None:
        try:
            gw = ipaddress.IPv4Address(lan_gateway)
        except ValueError as exc:
            raise VmError(f"lan_gateway {lan_gateway!r} is not an IPv4 address") from exc
        args.append(f"vl.gw={gw}")
    if lan_address6:
        lan6 = _iface6(lan_address6, "lan_address6")
        args.append(f"vl.lan6={lan6.with_prefixlen}")
        if lan_gateway6 is not None:
            try:
                gw6 = ipaddress.IPv6Address(lan_gateway6)
            except ValueError as exc:
                raise VmError(f"lan_gateway6 {lan_gateway6!r} is not an IPv6 address") from exc
            if gw6 not in lan6.network:
                raise VmError(f"lan_gateway6 {gw6} is not on lan_address6's subnet {lan6.network}")
            args.append(f"vl.gw6={gw6}")
    elif lan_gateway6 is not None:
        raise VmError("lan_gateway6 needs lan_address6")
    args.append(f"vl.mgmt={_iface(mgmt_address, 'mgmt_address').with_prefixlen}")
    items = []
    for vid, addr in vlans:
        if not isinstance(vid, int) or not 1 <= vid <= 4094:
            raise VmError(f"VLAN id {vid!r} out of range 1..4094")
        items.append(
            f"{vid}:{_iface(addr, f'VLAN {vid} address').with_prefixlen}" if addr else str(vid)
        )
    if len({v for v, _ in vlans}) != len(vlans):
        raise VmError(f"duplicate VLAN ids in {list(vlans)}")
    if items:
        args.append("vl.vlans=" + ",".join(items))
    return " ".join(args)


def _qemu_pids() -> dict[int, tuple[str, ...]]:
    """Every running QEMU started by this module: pid → argv (matched by ``-name vt-…``)."""
    return {
        pid: info.argv
        for pid, info in processes().items()
        if info.argv
        and os.path.basename(info.argv[0]).startswith("qemu-system")
        and (_arg_after(info.argv, "-name") or "").startswith(TAP_PREFIX)
    }


def _arg_after(argv: Sequence[str], flag: str) -> str | None:
    if flag in argv:
        i = list(argv).index(flag)
        if i + 1 < len(argv):
            return argv[i + 1]
    return None


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
    return _ssh_argv(
        host.mgmt_address, host.known_hosts, host.identity_file, command, connect_timeout
    )


def _ssh_argv(
    address: str,
    known_hosts: Path,
    identity: Path,
    command: Sequence[str],
    connect_timeout: int = 5,
) -> list[str]:
    argv = [
        "ssh",
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"ConnectTimeout={connect_timeout}",
        "-o",
        "LogLevel=ERROR",
        "-i",
        str(identity),
        f"root@{address}",
    ]
    if command:
        argv += ["--", shlex.join(command)]
    return argv


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
    """Start a VM lab host and wait until ssh (pinned key) and docker answer.

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
    _check_name(name)
    if memory_mb < 512:
        raise VmError(f"vm {name}: memory_mb {memory_mb} is too small for dockerd (>= 512)")
    cmdline = _kernel_cmdline(
        name=name,
        lan_address=lan_address,
        lan_gateway=lan_gateway,
        mgmt_address=mgmt_address,
        lan_address6=lan_address6,
        lan_gateway6=lan_gateway6,
        vlans=vlans,
    )
    mgmt_guest = _iface(mgmt_address, "mgmt_address")
    mgmt_host = _iface(mgmt_peer, "mgmt_peer")
    if mgmt_guest.network != mgmt_host.network or mgmt_guest.ip == mgmt_host.ip:
        raise VmError(
            f"vm {name}: mgmt_address {mgmt_address} and mgmt_peer {mgmt_peer} must "
            "be two different addresses of one subnet"
        )
    key_words = authorized_key.strip().split()
    if len(key_words) < 2 or "\n" in authorized_key.strip():
        raise VmError(f"vm {name}: authorized_key must be one OpenSSH public key line")
    for ns in (lan_netns,):
        if not Path(f"/run/netns/{ns}").exists():
            raise VmError(f"vm {name}: LAN namespace {ns} does not exist")
    if not _link_exists(lan_bridge, lan_netns):
        raise VmError(f"vm {name}: bridge {lan_bridge} does not exist in namespace {lan_netns}")

    lan_tap, mgmt_tap = _tap_names(name)
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    pidfile = state_dir / "qemu.pid"
    running = _pid_from_state(state_dir)
    if running is not None:
        raise VmError(f"vm {name}: already running (pid {running}); stop_vm({state_dir}) first")
    for other, other_argv in _qemu_pids().items():
        if _arg_after(other_argv, "-name") == f"{TAP_PREFIX}{name}":
            raise VmError(
                f"vm {name}: a QEMU with this name runs already (pid {other}); stop it with "
                "stop_vm(<its state directory>), or end that process yourself if it is not a lab's"
            )
    _cleanup_links([lan_tap, mgmt_tap])  # leftovers (persistent taps are never created here)

    console = state_dir / "console.log"
    overlay = state_dir / "overlay.qcow2"
    host_key_file = state_dir / "ssh_host_ed25519_key"
    known_hosts = state_dir / "known_hosts"
    auth_file = state_dir / "authorized_keys"
    qemu_log = state_dir / "qemu.log"
    for p in (console, qemu_log, overlay, host_key_file, Path(f"{host_key_file}.pub"), pidfile):
        p.unlink(missing_ok=True)

    # per-VM host key, generated here and pinned before the guest ever boots
    host_key = ensure_keypair(host_key_file, f"vlaninfra-vm-{name}")
    known_hosts.write_text(f"{mgmt_guest.ip} {host_key}\n")
    authorized = [" ".join(key_words)]
    if identity_file is None:
        identity_file = state_dir / "probe_ed25519"
        authorized.append(ensure_keypair(identity_file, "vlaninfra-vm-probe"))
    auth_file.write_text("\n".join(authorized) + "\n")
    os.chmod(auth_file, 0o600)

    _run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            str(image.rootfs),
            str(overlay),
        ],
        what=f"vm {name}: qemu-img create",
    )

    lmac, mmac = lan_mac(mac_seed), mgmt_mac(mac_seed)
    opts: list[tuple[str, ...]] = [
        ("-name", f"{TAP_PREFIX}{name}"),
        ("-nodefaults",),
        ("-no-user-config",),
        ("-machine", "pc"),
        ("-accel", "tcg,tb-size=256"),
        ("-cpu", "max"),
        # Two vCPUs (multi-threaded TCG): Docker's per-container work (runc, the shim, dockerd's
        # re-execs) is CPU-bound under emulation; 2 GiB so 50 containers run without reclaim.
        ("-smp", "2"),
        ("-m", str(memory_mb)),
        ("-display", "none"),
        ("-monitor", "none"),
        ("-serial", f"file:{console}"),
        ("-D", str(qemu_log)),
        ("-d", "guest_errors,cpu_reset"),
        ("-pidfile", str(pidfile)),
        ("-daemonize",),
        ("-kernel", str(image.kernel)),
        ("-initrd", str(image.initrd)),
        ("-append", cmdline),
        ("-drive", f"file={overlay},if=none,id=root,format=qcow2,cache=unsafe,discard=unmap"),
        ("-device", "virtio-blk-pci,drive=root,addr=0x5"),
        ("-netdev", f"tap,id=lan,ifname={lan_tap},script=no,downscript=no"),
        ("-device", f"virtio-net-pci,netdev=lan,mac={lmac},addr=0x3"),
        ("-netdev", f"tap,id=mgmt,ifname={mgmt_tap},script=no,downscript=no"),
        ("-device", f"virtio-net-pci,netdev=mgmt,mac={mmac},addr=0x4"),
        ("-fw_cfg", f"name=opt/vlaninfra/host_key,file={host_key_file}"),
        ("-fw_cfg", f"name=opt/vlaninfra/authorized_keys,file={auth_file}"),
    ]
    argv = [QEMU, *(word for opt in opts for word in opt)]
    (state_dir / "vm.json").write_text(
        json.dumps(
            {
                "name": name,
                "lan_netns": lan_netns,
                "lan_tap": lan_tap,
                "mgmt_tap": mgmt_tap,
                "qemu_argv": argv,
            },
            indent=2,
        )
        + "\n"
    )
    t_start = time.monotonic()
    try:
        _run(argv, timeout=60, what=f"vm {name}: {QEMU}")
        pid = _pid_from_state(state_dir)
        if pid is None:
            raise VmError(f"vm {name}: QEMU exited right after start; console:\n{_tail(console)}")
        # QEMU created both taps in the root namespace; wire them up.
        _run(["ip", "link", "set", "dev", lan_tap, "netns", lan_netns], what=f"vm {name}: tap")
        _run(
            ["ip", "-n", lan_netns, "link", "set", "dev", lan_tap, "master", lan_bridge, "up"],
            what=f"vm {name}: tap",
        )
        _run(
            ["ip", "addr", "add", mgmt_host.with_prefixlen, "dev", mgmt_tap],
            what=f"vm {name}: mgmt tap",
        )
        _run(["ip", "link", "set", "dev", mgmt_tap, "up"], what=f"vm {name}: mgmt tap")

        # 1. ssh with the pinned key
        address = str(mgmt_guest.ip)
        deadline = time.monotonic() + ssh_timeout
        last = ""
        while True:
            if not alive(pid):
                raise VmError(
                    f"vm {name}: QEMU (pid {pid}) died while booting; qemu log:\n"
                    f"{_tail(qemu_log, 10)}\nconsole:\n{_tail(console)}"
                )
            if not _port_open(address, 22):
                if time.monotonic() > deadline:
                    raise VmError(
                        f"vm {name}: ssh port {address}:22 not open within {ssh_timeout:.0f} s; "
                        f"console:\n{_tail(console)}"
                    )
                time.sleep(0.2)
                continue
            proc = subprocess.run(
                _ssh_argv(address, known_hosts, identity_file, ["true"], 10),
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if proc.returncode == 0:
                break
            last = proc.stderr.strip()
            if time.monotonic() > deadline:
                raise VmError(
                    f"vm {name}: ssh root@{address} did not answer within "
                    f"{ssh_timeout:.0f} s (last: {last}); console:\n{_tail(console)}"
                )
            time.sleep(0.5)
        t_ssh = time.monotonic()

        host = VmHost(
            name=name,
            pid=pid,
            mgmt_address=address,
            host_key=host_key,
            lan_tap=lan_tap,
            mgmt_tap=mgmt_tap,
            console_path=console,
            docker_version="",
            state_dir=state_dir,
            known_hosts=known_hosts,
            identity_file=identity_file,
            lan_mac=lmac,
            mgmt_mac=mmac,
            lan_address=lan_address,
            lan_netns=lan_netns,
            kernel_release=image.kernel_release,
            boot_to_ssh_seconds=round(t_ssh - t_start, 2),
            ssh_to_docker_seconds=0.0,
            vlans=tuple(vlans),
        )

        # 2. dockerd answering and the lab image imported (lab-init touches the marker)
        if not docker:
            return host
        polls = max(1, int(docker_timeout / 0.25))
        script = (
            f"i=0; while [ $i -lt {polls} ]; do "
            "if [ -e /run/vlaninfra/docker-ready ]; then "
            "exec docker info --format '{{.ServerVersion}}'; fi; "
            "i=$((i+1)); sleep 0.25; done; "
            "echo 'docker not ready; dockerd log:' >&2; tail -20 /var/log/dockerd.log >&2; exit 1"
        )
        proc = subprocess.run(
            _ssh_argv(address, known_hosts, identity_file, ["sh", "-c", script]),
            capture_output=True,
            text=True,
            timeout=docker_timeout + 30,
            check=False,
        )
        if proc.returncode != 0 or not proc.stdout.strip():
            raise VmError(
                f"vm {name}: docker did not answer within {docker_timeout:.0f} s: "
                f"{proc.stderr.strip()[-1500:]}; console:\n{_tail(console)}"
            )
        return dataclasses.replace(
            host,
            docker_version=proc.stdout.strip().splitlines()[-1],
            ssh_to_docker_seconds=round(time.monotonic() - t_ssh, 2),
        )
    except BaseException:
        stop_vm(state_dir)
        raise


def _wait_ssh(address: str, known_hosts: Path, identity: Path, deadline: float) -> bool:
    while time.monotonic() < deadline:
        proc = subprocess.run(_ssh_argv(address, known_hosts, identity, ["true"], 10),
                              capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode == 0:
            return True
        time.sleep(0.5)
    return False


def reboot_vm(state_dir: Path, address: str, identity: Path, *, timeout: float = 240.0,
              ) -> float:
    """Reboot the VM of ``state_dir`` from inside (the guest's ``reboot`` over ssh to its
    management ``address`` with key ``identity``: lab-init stops dockerd, syncs and resets the
    machine; QEMU keeps running on the same overlay disk) and wait until it is back: "=== LAB
    DOCKER READY" on the console again and ssh answering. Returns the seconds taken.

    Example: ``reboot_vm(Path(".lab/iv/vm/v1"), "203.0.113.130", key)`` → ``41.3``
    """
    state_dir = state_dir.resolve()
    pid = _pid_from_state(state_dir)
    console, known_hosts = state_dir / "console.log", state_dir / "known_hosts"
    if pid is None:
        raise VmError(f"vm {state_dir.name}: not running (no QEMU pid in {state_dir})")
    offset = console.stat().st_size
    t0 = time.monotonic()
    deadline = t0 + timeout
    # the session may drop before it answers: the console says whether the guest rebooted
    _run(_ssh_argv(address, known_hosts, identity, ["reboot"]), timeout=30, check=False)
    while True:
        if _pid_from_state(state_dir) != pid:
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
    if not _wait_ssh(address, known_hosts, identity, deadline):
        raise VmError(f"vm {state_dir.name}: ssh did not answer within {timeout:.0f} s of "
                      "`reboot`")
    return round(time.monotonic() - t0, 2)


# --------------------------------------------------------------------------------------------
# stop


def _pid_from_state(state_dir: Path) -> int | None:
    """The pid in ``state_dir/qemu.pid`` if that process is alive, not younger than the file
    (a reused pid is not ours) and is our QEMU."""
    pidfile = state_dir / "qemu.pid"
    pid = recorded_pid(pidfile)
    if pid is None:
        return None
    info = process_info(pid)
    if info is not None and _arg_after(info.argv, "-pidfile") == str(pidfile):
        return pid
    return None


def _kill(pid: int, timeout: float) -> None:
    """SIGTERM, SIGKILL after `timeout`; returns once the process is gone (not even a zombie:
    a daemonized QEMU is init's child, which reaps it)."""
    kill_processes(lambda: [LabProcess(pid, 0, QEMU)] if alive(pid) else [], grace=timeout)


def _cleanup_links(names: Sequence[str], netns: Sequence[str] | None = None) -> None:
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
    state_dir = state_dir.resolve()
    meta: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads((state_dir / "vm.json").read_text())
    pid = _pid_from_state(state_dir)
    if pid is not None:
        _kill(pid, timeout)
    name = str(meta.get("name", ""))
    taps = [str(meta[k]) for k in ("lan_tap", "mgmt_tap") if k in meta]
    if name and not taps:
        taps = list(_tap_names(name))
    lan_netns = meta.get("lan_netns")
    if taps:
        _cleanup_links(taps, [str(lan_netns)] if isinstance(lan_netns, str) else None)
    for leftover in ("overlay.qcow2", "qemu.pid", "ssh_host_ed25519_key", "vm.json"):
        (state_dir / leftover).unlink(missing_ok=True)
