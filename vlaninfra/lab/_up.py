"""`lab up`: build (or repair) a lab instance and write its inventory."""

from __future__ import annotations

import contextlib
import functools
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from vlaninfra.lab import _daemons as d
from vlaninfra.lab import _inventory as iv
from vlaninfra.lab import _labvm as vm
from vlaninfra.lab import _netns as n
from vlaninfra.lab import _ranges as rg
from vlaninfra.lab._down import teardown
from vlaninfra.lab._errors import LabError
from vlaninfra.lab._image import IMAGE, build_rootfs, ensure_image
from vlaninfra.lab._inventory import RUN_DIR, cache_dir, lab_root, state_dir
from vlaninfra.lab._lab import (
    ADDRESS_POOL,
    DOCKERD_PID,
    SSHD_PID,
    dockerd_pidfiles,
    existing_names,
    instance_locked,
    locked,
    mark_outside_files,
    require_root,
)
from vlaninfra.lab._procs import own_processes
from vlaninfra.lab._topology import (
    DEFAULT,
    MAX_SLOTS,
    LabPlan,
    NodePlan,
    SitePlan,
    VmPlan,
    plan,
    plan_vms,
)

__all__ = ["ensure_dockerd", "lab_up"]


def _slot(instance: str) -> int:
    """Address slot of an instance: 0 for default, else the lowest one no other instance has."""
    mine = state_dir(instance) / "slot"
    if instance == DEFAULT:
        mine.write_text("0\n")
        return 0
    if mine.exists():
        return int(mine.read_text())
    used = set()
    for other in lab_root().glob("*/slot"):
        with contextlib.suppress(ValueError):
            used.add(int(other.read_text()))
    free = [s for s in range(1, MAX_SLOTS) if s not in used]  # (0 is default's)
    if not free:
        raise LabError(
            f"all {MAX_SLOTS - 1} non-default lab instances are in use: "
            "run `vlaninfra lab down --instance NAME` for one of them"
        )
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text(f"{free[0]}\n")
    return free[0]


# --- up ---------------------------------------------------------------------------------------


def _check_ranges(p: LabPlan, vms: Sequence[VmPlan]) -> None:
    """Refuse ranges that overlap an address or route of this machine's root namespace."""
    table = rg.read_root_table()
    own = rg.own_links(p.instance, {e.dev for e in table})
    rg.check_ranges(p.instance, rg.lab_ranges(p, vms, ADDRESS_POOL), table, own)


def _build_site(site: SitePlan) -> None:
    for ns in site.namespaces:
        n.ensure_netns(ns)
    n.ensure_bridge(site.switch_netns, "br0")
    for node in (site.router, site.peer, *site.hosts):
        n.add_veth(site.switch_netns, node.name, node.netns, "eth0")
        n.set_up(site.switch_netns, node.name, master="br0")
        n.addr_replace(node.netns, "eth0", node.lan_address)
        n.addr_replace(node.netns, "eth0", node.lan_address6, "nodad")
        n.set_up(node.netns, "eth0")
        if node.gateway:
            n.route_replace(node.netns, "default", node.gateway)
        if node.gateway6:
            n.route_replace(node.netns, "default", node.gateway6, "-6")
        if node.mgmt_address and node.mgmt_root_address:
            n.add_veth(None, node.netns, node.netns, "mgmt0")
            n.addr_replace(None, node.netns, f"{node.mgmt_root_address}/31")
            n.set_up(None, node.netns)
            n.addr_replace(node.netns, "mgmt0", f"{node.mgmt_address}/31")
            n.set_up(node.netns, "mgmt0")
    n.sysctl(site.router.netns, "net.ipv4.ip_forward", "1")
    n.sysctl(site.router.netns, "net.ipv6.conf.all.forwarding", "1")


def _build_wan(p: LabPlan) -> None:
    if len(p.sites) < 2:
        return
    a, b = p.sites[0].router.netns, p.sites[1].router.netns
    n.add_veth(a, "wan0", b, "wan0")
    for site in p.sites:
        assert site.wan is not None
        n.addr_replace(site.router.netns, "wan0", site.wan.address)
        n.set_up(site.router.netns, "wan0")
        n.route_replace(site.router.netns, site.wan.remote_lan, site.wan.remote)


def _storage_driver(state: Path) -> str:
    """overlay2 if this filesystem can hold an overlay upper dir, else vfs."""
    probe = state / ".overlay-probe"
    dirs = [probe / x for x in ("lower", "upper", "work", "merged")]
    for x in dirs:
        x.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={dirs[0]},upperdir={dirs[1]},workdir={dirs[2]}"
    n.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(dirs[3])], check=False)
    mounted = bool(d.lab_mounts([str(dirs[3])]))
    d.unmount([str(probe)])
    shutil.rmtree(probe)
    return "overlay2" if mounted else "vfs"


def _host_key(state: Path, ns: str) -> str:
    (state / ns).mkdir(exist_ok=True)
    return d.ensure_keypair(state / ns / "ssh_host_ed25519_key", f"root@{ns}")


def _waiter(what: str, ready: Callable[[], bool], nsd: Path, daemon: str) -> d.Waiter:
    """How to wait for ``daemon`` (``sshd`` or ``dockerd``) of the namespace with state ``nsd``:
    its pidfile and log are named after it there."""
    pidfile, log = nsd / (SSHD_PID if daemon == "sshd" else DOCKERD_PID), nsd / f"{daemon}.log"
    return d.Waiter(what, ready, pidfile, log, 15.0 if daemon == "sshd" else 60.0)


def _ensure_sshd(state: Path, node: NodePlan, authorized: Path, *, docker: bool) -> d.Waiter:
    """Start the namespace's sshd unless it answers; return how to wait for it."""
    nsd = state / node.netns
    assert node.mgmt_address is not None
    sock = str(RUN_DIR / node.netns / "docker.sock") if docker else None
    cfg, changed = d.write_sshd_config(nsd, node.mgmt_address, authorized, sock)
    addr = node.mgmt_address
    if not d.ssh_answers(addr):
        mark_outside_files()
        d.start_sshd(node.netns, cfg, nsd / "sshd.log", nsd / SSHD_PID)
    elif changed:  # up since an older vlaninfra wrote another config
        d.reload_sshd(nsd / SSHD_PID, cfg)
    return _waiter(f"sshd in {node.netns} at {addr}:22", lambda: d.ssh_answers(addr), nsd, "sshd")


def _ensure_dockerd(state: Path, netns: str) -> d.Waiter | None:
    """Start the host's dockerd unless it answers; return how to wait for it."""
    run_dir = RUN_DIR / netns
    sock = str(run_dir / "docker.sock")
    if d.docker_ping(sock):
        return None
    # A dead or half-started daemon of this host: end it and its leftovers first.
    nsd = state / netns
    own = [f"{run_dir}/", f"{nsd / 'docker'}/"]
    inodes = [ino for ino in (n.netns_inode(netns),) if ino is not None]
    d.kill_processes(lambda: own_processes(dockerd_pidfiles(nsd, run_dir), inodes))
    d.unmount(own)
    # A stale exec root misleads dockerd: a containerd.pid naming a not yet reaped zombie
    # makes it wait for that containerd instead of starting its own.
    shutil.rmtree(run_dir / "exec", ignore_errors=True)
    mark_outside_files()
    d.start_dockerd(
        netns,
        state=nsd,
        run_dir=run_dir,
        storage_driver=_storage_driver(state),
        address_pool=ADDRESS_POOL,
        pidfile=nsd / DOCKERD_PID,
    )
    return _waiter(f"dockerd in {netns} at {sock}", lambda: d.docker_ping(sock), nsd, "dockerd")


def ensure_dockerd(host: iv.Host, instance: str = DEFAULT) -> None:
    """Bring a namespace host's dockerd back as `lab_up` starts it, when it does not answer
    (killed, crashed or half started): its leftover processes end, its pid is recorded (so
    `lab_down` ends it), and this returns once it answers.

    Example: ``ensure_dockerd(inv.sites[0].hosts[0])`` after a test killed that daemon.
    """
    require_root()
    if host.kind != "netns":
        raise LabError(f"{host.name} is a {host.kind} host: only namespace hosts run a lab dockerd")
    with instance_locked(instance), locked():
        waiter = _ensure_dockerd(state_dir(instance), host.netns)
        if waiter is not None:
            d.wait_for(waiter)


def _parse_vlan_peers(vlan_peers: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    try:
        return [(vid, str(addr)) for vid, addr in vlan_peers]
    except (TypeError, ValueError):
        raise LabError(
            f"vlan_peers must be (vlan id, 'ADDR/PREFIX') pairs, not {vlan_peers!r}"
        ) from None


# Every lab host: root SSH on port 22, eth0 the macvlan parent, the lab image imported.
_lab_host = functools.partial(iv.Host, ssh_port=22, user="root", parent="eth0", image=IMAGE)


def _vm_inventory(
    members: Sequence[vm.VmMember],
) -> tuple[list[iv.Host], list[iv.VlanPeer]]:
    hosts, peers = [], []
    for m in members:
        v = m.plan
        if v.kind == "host":
            hosts.append(
                _lab_host(
                    name=v.name,
                    netns="",
                    mgmt_address=v.mgmt_address,
                    host_key=m.host_key,
                    docker_socket=vm.GUEST_DOCKER_SOCKET,
                    lan_address=v.lan_address,
                    lan_address6=v.lan_address6,
                    sshd_log="",
                    docker_version=m.docker_version,
                    kind="vm",
                    sshd_log_remote=vm.GUEST_SSHD_LOG,
                    vm_name=v.vm_name,
                    console_log=str(m.console_log),
                )
            )
        else:
            assert v.vlan is not None and v.vlan_address is not None
            peers.append(
                iv.VlanPeer(
                    name=v.name,
                    vlan=v.vlan,
                    address=v.vlan_address,
                    mgmt_address=v.mgmt_address,
                    ssh_port=22,
                    user="root",
                    host_key=m.host_key,
                    lan_address=v.lan_address,
                    vm_name=v.vm_name,
                    console_log=str(m.console_log),
                )
            )
    return hosts, peers


def lab_up(
    hosts: int = 2,
    sites: int = 1,
    instance: str = DEFAULT,
    vm_hosts: int = 0,
    vlan_peers: Sequence[tuple[int, str]] = (),
) -> iv.Inventory:
    """Build (or repair) a lab instance and write its inventory; harmless when already up.

    ``vm_hosts``: QEMU Docker hosts ``v1`` … on site a (after the namespace hosts in
    ``site.hosts``, ``kind == "vm"``); ``vlan_peers``: ``(vlan id, "ADDR/PREFIX")`` pairs, one
    QEMU guest each on site a terminating that VLAN (``site.vlan_peers``). Raises `LabError`
    with the reason when QEMU cannot run here. Running guests that still answer are kept.

    Example: ``inv = lab_up(hosts=2); inv.sites[0].hosts[0].mgmt_address``
    Example: ``lab_up(hosts=1, vm_hosts=1, vlan_peers=[(50, "198.18.50.2/24")], instance="v1")``
    """
    require_root()
    peers_wanted = _parse_vlan_peers(vlan_peers)
    draft = plan(instance, 0 if instance == DEFAULT else 1, sites, hosts)  # refuse bad args early
    plan_vms(draft, vm_hosts, peers_wanted)
    if vm_hosts or peers_wanted:
        vm.check_available()
    lab_root().mkdir(parents=True, exist_ok=True)
    with instance_locked(instance), contextlib.ExitStack() as machine_lock:
        machine_lock.enter_context(locked())
        state = state_dir(instance)
        fresh = not state.exists()
        state.mkdir(parents=True, exist_ok=True)
        state.chmod(0o700)  # the lab's private key, pidfiles, sshd configs
        p = plan(instance, _slot(instance), sites, hosts)
        vms = plan_vms(p, vm_hosts, peers_wanted)
        try:
            _check_ranges(p, vms)
        except LabError:
            if fresh:  # nothing was built: leave no trace (not even the slot)
                shutil.rmtree(state, ignore_errors=True)
            raise
        extra = existing_names(instance) - set(p.namespaces)
        if extra:  # fewer hosts or sites than last time
            teardown(instance, extra, whole=False)
        vm.stop_vms_except(instance, state, [v.name for v in vms])
        for site in p.sites:
            _build_site(site)
        _build_wan(p)

        client_key = state / "id_lab"
        authorized = state / "authorized_keys"
        pubkey = d.ensure_keypair(client_key, f"vlaninfra-lab-{instance}")
        authorized.write_text(pubkey + "\n")
        boot = None
        if vms:  # the guests boot while the namespace daemons start
            try:
                image = vm.base_image()
            except LabError as exc:
                raise LabError(f"VM base image: {exc}") from exc
            boot = vm.VmBoot(vms, image, state, p.sites[0].switch_netns, client_key, pubkey)
        try:
            host_keys: dict[str, str] = {}
            waits: list[d.Waiter] = []
            for site in p.sites:
                for node in (site.router, *site.hosts):
                    host_keys[node.netns] = _host_key(state, node.netns)
                    is_host = node is not site.router
                    waits.append(_ensure_sshd(state, node, authorized, docker=is_host))
                    if is_host and (w := _ensure_dockerd(state, node.netns)) is not None:
                        waits.append(w)
            for waiter in waits:  # the daemons start in parallel
                d.wait_for(waiter)
            tarball, digest = build_rootfs(cache_dir())
            for site in p.sites:
                for h in site.hosts:
                    ensure_image(str(RUN_DIR / h.netns / "docker.sock"), tarball, digest)
        except BaseException:
            if boot is not None:
                boot.wait_quietly()
            raise
        machine_lock.close()  # the guests finish booting without blocking other instances
        members = boot.result() if boot is not None else ()
        vm_hosts_inv, vlan_peers_inv = _vm_inventory(members)

        inv_sites = []
        for i, site in enumerate(p.sites):
            inv_hosts = []
            for h in site.hosts:
                sock = str(RUN_DIR / h.netns / "docker.sock")
                assert h.mgmt_address is not None
                inv_hosts.append(
                    _lab_host(
                        name=h.name,
                        netns=h.netns,
                        mgmt_address=h.mgmt_address,
                        host_key=host_keys[h.netns],
                        docker_socket=sock,
                        lan_address=h.lan_address,
                        lan_address6=h.lan_address6,
                        sshd_log=str(state / h.netns / "sshd.log"),
                        docker_version=d.docker_version(sock),
                        kind="netns",
                    )
                )
            r = site.router
            assert r.mgmt_address is not None
            inv_sites.append(
                iv.Site(
                    name=site.name,
                    lan=site.lan,
                    gateway=site.gateway,
                    router=iv.Router(
                        name=r.name,
                        netns=r.netns,
                        mgmt_address=r.mgmt_address,
                        ssh_port=22,
                        user="root",
                        host_key=host_keys[r.netns],
                        lan_address=r.lan_address,
                        lan_address6=r.lan_address6,
                    ),
                    peer=iv.Peer(netns=site.peer.netns, address=site.peer.lan_address,
                              address6=site.peer.lan_address6),
                    lan6=site.lan6,
                    gateway6=site.gateway6,
                    hosts=tuple(inv_hosts + (vm_hosts_inv if i == 0 else [])),
                    vlan_peers=tuple(vlan_peers_inv if i == 0 else []),
                )
            )
        known_hosts = state / "known_hosts"
        known_hosts.write_text(
            "".join(f"{node.mgmt_address} {host_keys[node.netns]}\n" for node in p.mgmt_nodes)
            + "".join(f"{m.plan.mgmt_address} {m.host_key}\n" for m in members)
        )
        inv = iv.Inventory(
            version=1,
            instance=instance,
            key_path=str(client_key),
            known_hosts=str(known_hosts),
            sites=tuple(inv_sites),
        )
        iv.write_inventory(inv)
        return inv
