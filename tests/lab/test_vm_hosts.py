"""VM lab hosts (QEMU TCG, Debian cloud kernel): ssh with a pinned key, dockerd, ipvlan, 802.1Q.

Self-contained: a throw-away switch namespace ``vmt-sw`` (bridge ``br0``) with a LAN peer
namespace ``vmt-peer`` (198.18.1.2/24), VM ``vmt1`` (198.18.1.21/24, management
203.0.113.242/30) and, for the tagged-traffic test, VLAN peer ``vmt2``. At most two VMs run at a
time. Everything (VMs, taps, namespaces, state dirs) is removed at the end, even on failure;
the teardown fails the run if anything of ours is left over.

The base image is built into the machine-wide cache (`vm_cache_dir`) on first use (about a
minute, needs the mirror; a complete ``<repo>/.cache/vm`` of the same key is adopted instead)
and reused afterwards.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vlaninfra.lab._vm import (
    LAB_IMAGE,
    VmError,
    VmHost,
    VmImage,
    build_base_image,
    cache_key,
    qemu_rss_bytes,
    run_ssh,
    ssh_argv,
    start_vm,
    stop_vm,
    vm_cache_dir,
    vm_unavailable_reason,
)

REPO = Path(__file__).resolve().parents[2]
CACHE = vm_cache_dir()  # machine-wide: shared with `lab up --vm-hosts` and other clones
PREFIX = "vmt"
SW, PEER = "vmt-sw", "vmt-peer"
PEER_IP = "198.18.1.2"


def _sh(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _in_ns(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _sh("nsenter", f"--net=/run/netns/{ns}", "--", *argv, check=check)


def _del_netns(*names: str) -> None:
    for ns in names:
        if Path(f"/run/netns/{ns}").exists():
            _sh("ip", "netns", "del", ns, check=False)


def _leftovers() -> list[str]:
    found = [f"netns {ns}" for ns in (SW, PEER) if Path(f"/run/netns/{ns}").exists()]
    links = _sh("ip", "-o", "link", "show").stdout
    # only ours: lab instances' VMs (vt-vl…) of other test runs may be up meanwhile
    found += [f"link {m}" for m in re.findall(rf"^\d+: (vt-{PREFIX}[^:@\s]*)", links, re.M)]
    for pid in _sh("pgrep", "-f", "--", f"-name vt-{PREFIX}", check=False).stdout.split():
        found.append(f"qemu pid {pid}")
    return found


# --------------------------------------------------------------------------------------------
# fixtures of the VM tests


@pytest.fixture(scope="module")
def image() -> VmImage:
    reason = vm_unavailable_reason()
    if reason is not None:
        pytest.skip(f"VM lab hosts unavailable: {reason}")
    try:
        return build_base_image(CACHE, adopt_from=[REPO / ".cache" / "vm"])
    except VmError as exc:
        pytest.fail(f"VM base image build failed: {exc}")


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("vmkey")
    key = d / "id_ed25519"
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vmt-lab", "-f", str(key))
    return key, (d / "id_ed25519.pub").read_text().strip()


@pytest.fixture(scope="module")
def lan(image: VmImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Switch namespace with br0 and a LAN peer on it; yields the VMs' state root."""
    _del_netns(SW, PEER)
    state_root = tmp_path_factory.mktemp("vmstate")
    try:
        _sh("ip", "netns", "add", SW)
        _sh("ip", "netns", "add", PEER)
        _sh("ip", "-n", SW, "link", "set", "lo", "up")
        _sh("ip", "-n", SW, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", SW, "link", "set", "br0", "up")
        _sh("ip", "-n", SW, "link", "add", "peer", "type", "veth", "peer", "eth0", "netns", PEER)
        _sh("ip", "-n", SW, "link", "set", "peer", "master", "br0", "up")
        _sh("ip", "-n", PEER, "addr", "add", f"{PEER_IP}/24", "dev", "eth0")
        _sh("ip", "-n", PEER, "link", "set", "eth0", "up")
        _sh("ip", "-n", PEER, "link", "set", "lo", "up")
        yield state_root
    finally:
        for state_dir in state_root.iterdir():  # through the pidfiles: never by QEMU's name
            stop_vm(state_dir)
        _del_netns(SW, PEER)
        shutil.rmtree(state_root, ignore_errors=True)
        deadline = time.monotonic() + 10
        while _leftovers() and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _leftovers()
        assert not left, f"VM test leftovers: {left}"


@pytest.fixture(scope="module")
def vm1(image: VmImage, lan: Path, keypair: tuple[Path, str]) -> Iterator[VmHost]:
    identity, pub = keypair
    host = start_vm(
        image,
        name="vmt1",
        state_dir=lan / "vmt1",
        lan_netns=SW,
        lan_bridge="br0",
        lan_address="198.18.1.21/24",
        lan_gateway=None,
        mgmt_address="203.0.113.242/30",
        mgmt_peer="203.0.113.241/30",
        authorized_key=pub,
        mac_seed=21,
        identity_file=identity,
    )
    print(
        f"\nvmt1: kernel {host.kernel_release}, docker {host.docker_version}, "
        f"start->ssh {host.boot_to_ssh_seconds} s, ssh->docker {host.ssh_to_docker_seconds} s, "
        f"qemu RSS {qemu_rss_bytes(host.pid) // 2**20} MiB"
    )
    try:
        yield host
    finally:
        stop_vm(host.state_dir)


def _guest(host: VmHost, script: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_ssh(host, ["sh", "-c", script], check=check)


# --------------------------------------------------------------------------------------------
# VM tests


@pytest.mark.vm
@pytest.mark.lab
def test_base_image_cache_hit_does_not_rebuild(image: VmImage) -> None:
    t0 = time.monotonic()
    again = build_base_image(CACHE)
    assert time.monotonic() - t0 < 2.0
    assert not again.built and again.key == image.key == cache_key()
    assert again.rootfs.stat().st_size == 2 * 2**30


@pytest.mark.vm
@pytest.mark.lab
def test_ssh_with_pinned_host_key_and_wrong_key_refused(
    vm1: VmHost, tmp_path: Path, keypair: tuple[Path, str]
) -> None:
    assert run_ssh(vm1, ["hostname"]).stdout.strip() == "vmt1"
    assert vm1.known_hosts.read_text().split()[1:] == vm1.host_key.split()
    # The guest serves exactly the key start_vm generated and pinned.
    served = run_ssh(vm1, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.split()[:2]
    assert " ".join(served) == vm1.host_key
    # Nothing secret on the kernel command line.
    assert "PRIVATE" not in run_ssh(vm1, ["cat", "/proc/cmdline"]).stdout

    other = tmp_path / "other"
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other))
    wrong = tmp_path / "known_hosts"
    pub = " ".join(Path(f"{other}.pub").read_text().split()[:2])
    wrong.write_text(f"{vm1.mgmt_address} {pub}\n")
    argv = ssh_argv(vm1, ["true"])
    argv = [a.replace(f"UserKnownHostsFile={vm1.known_hosts}", f"UserKnownHostsFile={wrong}")
            for a in argv]  # fmt: skip
    assert f"UserKnownHostsFile={wrong}" in argv and "StrictHostKeyChecking=yes" in argv
    proc = _sh(*argv, check=False)
    assert proc.returncode == 255, proc
    assert "host key" in proc.stderr.lower(), proc.stderr

    # Password or unknown-key logins are refused too (key-only).
    stranger = ssh_argv(vm1, ["true"])
    stranger[stranger.index("-i") + 1] = str(other)
    assert _sh(*stranger, check=False).returncode == 255
    assert keypair[0] == vm1.identity_file


@pytest.mark.vm
@pytest.mark.lab
def test_docker_answers_and_lab_image_runs(vm1: VmHost) -> None:
    info = _guest(vm1, "docker info --format '{{.ServerVersion}} {{.Driver}}'").stdout.split()
    assert info == [vm1.docker_version, "overlay2"]
    assert _guest(vm1, "test -S /var/run/docker.sock && echo ok").stdout.strip() == "ok"
    _guest(vm1, f"docker image inspect {LAB_IMAGE} >/dev/null")
    out = _guest(vm1, f"docker run --rm --network none {LAB_IMAGE} echo hello-from-lab")
    assert out.stdout.strip() == "hello-from-lab"


@pytest.mark.vm
@pytest.mark.lab
def test_ipvlan_l2_in_guest_answers_peer_with_guest_mac(vm1: VmHost) -> None:
    _guest(
        vm1,
        "ip link add ipv0 link eth0 type ipvlan mode l2 && "
        "ip addr add 198.18.1.31/24 dev ipv0 && ip link set ipv0 up",
    )
    try:
        ping = _in_ns(PEER, "ping", "-c", "3", "-W", "3", "198.18.1.31", check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        neigh = _in_ns(PEER, "ip", "neigh", "show", "198.18.1.31", "dev", "eth0").stdout
        assert f"lladdr {vm1.lan_mac}" in neigh, neigh  # ipvlan: children share the parent MAC
        eth0 = _guest(vm1, "cat /sys/class/net/eth0/address").stdout.strip()
        assert eth0 == vm1.lan_mac
    finally:
        _guest(vm1, "ip link del ipv0", check=False)


@pytest.mark.vm
@pytest.mark.lab
def test_8021q_subinterface_in_guest(vm1: VmHost) -> None:
    _guest(vm1, "modprobe 8021q && ip link add link eth0 name eth0.77 type vlan id 77")
    try:
        detail = _guest(vm1, "ip -d link show eth0.77").stdout
        assert "vlan protocol 802.1Q id 77" in detail, detail
    finally:
        _guest(vm1, "ip link del eth0.77", check=False)


@pytest.mark.vm
@pytest.mark.lab
def test_tagged_traffic_crosses_the_lab_bridge_to_a_vlan_peer(
    image: VmImage, lan: Path, vm1: VmHost, keypair: tuple[Path, str]
) -> None:
    identity, pub = keypair
    peer = start_vm(
        image,
        name="vmt2",
        state_dir=lan / "vmt2",
        lan_netns=SW,
        lan_bridge="br0",
        lan_address="198.18.1.22/24",
        lan_gateway=None,
        mgmt_address="203.0.113.246/30",
        mgmt_peer="203.0.113.245/30",
        authorized_key=pub,
        mac_seed=22,
        identity_file=identity,
        vlans=[(50, "198.18.50.2/24")],
    )
    print(
        f"\nvmt2: start->ssh {peer.boot_to_ssh_seconds} s, "
        f"ssh->docker {peer.ssh_to_docker_seconds} s, "
        f"qemu RSS {qemu_rss_bytes(peer.pid) // 2**20} MiB"
    )
    try:
        detail = run_ssh(peer, ["ip", "-d", "addr", "show", "eth0.50"]).stdout
        assert "id 50" in detail and "198.18.50.2/24" in detail, detail
        _guest(vm1, "ip link add link eth0 name eth0.50 type vlan id 50 && "
               "ip addr add 198.18.50.1/24 dev eth0.50 && ip link set eth0.50 up")  # fmt: skip
        ping = _guest(vm1, "ping -c 3 -W 3 198.18.50.2", check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        # The untagged LAN peer cannot see VLAN 50 at all.
        assert _in_ns(PEER, "ping", "-c", "1", "-W", "1", "198.18.50.2", check=False).returncode
        neigh = _guest(vm1, "ip neigh show 198.18.50.2 dev eth0.50").stdout
        assert f"lladdr {peer.lan_mac}" in neigh, neigh
    finally:
        _guest(vm1, "ip link del eth0.50", check=False)
        # Through its state directory's pidfile only: no QEMU is ever found by its name.
        stop_vm(peer.state_dir)
        stop_vm(peer.state_dir)  # idempotent
    assert (
        not Path(f"/proc/{peer.pid}").exists()
        or "Z" in _sh("ps", "-o", "stat=", "-p", str(peer.pid), check=False).stdout
    )
    links = _sh("ip", "-o", "link", "show").stdout + _in_ns(SW, "ip", "-o", "link").stdout
    assert "vt-vmt2" not in links
    assert not (peer.state_dir / "overlay.qcow2").exists()
