"""`lab up`, `lab down`, `lab status`: build, remove and show one lab instance."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vlaninfra.host import guard
from vlaninfra.lab import _daemons as d
from vlaninfra.lab import _labvm as vm
from vlaninfra.lab import _netns as n
from vlaninfra.lab import _ranges as rg
from vlaninfra.lab._errors import LabError
from vlaninfra.lab._image import IMAGE, build_rootfs, ensure_image
from vlaninfra.lab._inventory import (
    RUN_DIR,
    Host,
    Inventory,
    Peer,
    Router,
    Site,
    VlanPeer,
    cache_dir,
    inventory_path,
    lab_root,
    load_inventory,
    state_dir,
    write_inventory,
)
from vlaninfra.lab._lock import lab_lock
from vlaninfra.lab._procs import own_processes, processes_in
from vlaninfra.lab._scratch import sweep_scratch
from vlaninfra.lab._topology import (
    DEFAULT,
    MAX_SLOTS,
    LabPlan,
    NodePlan,
    SitePlan,
    VmPlan,
    instance_of,
    plan,
    plan_vms,
    validate_instance,
)

__all__ = ["lab_down", "lab_instances", "lab_status", "lab_up"]

# Networks docker creates without a subnet get one from here, never from 172.16/12.
_ADDRESS_POOL = "198.19.128.0/17"


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


_OUTSIDE = (
    _Outside(Path("/etc/docker/key.json"), ("dockerd",)),  # dockerd 20.10's engine ID
    _Outside(Path("/run/docker"), ("dockerd",), ("plugins",)),
    _Outside(Path("/run/containerd"), ("containerd", "containerd-shim"), ("s",)),
    _Outside(Path("/run/sshd"), ("sshd",)),  # sshd's privilege separation dir
)


def _locked() -> contextlib.AbstractContextManager[None]:
    """One lab operation at a time on this machine (up/down of any instance)."""
    return lab_lock("machine")


def _instance_locked(instance: str) -> contextlib.AbstractContextManager[None]:
    """One operation at a time on one instance. `lab up` holds it (without `_locked`) while
    its VM guests finish booting, so other instances need not wait for QEMU."""
    return lab_lock(f"instance-{instance}")


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, dockerd, sshd): run as root")


# --- what exists ------------------------------------------------------------------------------


def _existing_names(instance: str) -> set[str]:
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
    rg.check_ranges(p.instance, rg.lab_ranges(p, vms, _ADDRESS_POOL), table, own)


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


def _mark_outside_files() -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    for o in _OUTSIDE:
        if not o.path.exists():
            o.marker.touch()


# Pids of the daemons a namespace runs, recorded before they start (see `d.start_detached`).
_SSHD_PID = "sshd.lab.pid"
_DOCKERD_PID = "dockerd.lab.pid"


def _dockerd_pidfiles(nsd: Path, run_dir: Path) -> list[Path]:
    """Pidfiles of a host's dockerd, its containerd and its containers' init processes."""
    ctd = run_dir / "exec" / "containerd"
    inits = sorted(ctd.glob("daemon/io.containerd.runtime.v2.task/*/*/init.pid"))
    return [nsd / _DOCKERD_PID, run_dir / "docker.pid", ctd / "containerd.pid", *inits]


def _pidfiles(state: Path, names: set[str]) -> list[Path]:
    """Every pidfile of the namespaces `names` of the instance with state dir `state`."""
    out: list[Path] = []
    for x in sorted(names):
        nsd = state / x
        out += [nsd / _SSHD_PID, nsd / "sshd.pid", *_dockerd_pidfiles(nsd, RUN_DIR / x)]
    return out


def _host_key(state: Path, ns: str) -> str:
    (state / ns).mkdir(exist_ok=True)
    return d.ensure_keypair(state / ns / "ssh_host_ed25519_key", f"root@{ns}")


def _ensure_sshd(state: Path, node: NodePlan, authorized: Path, *, docker: bool) -> d.Waiter:
    """Start the namespace's sshd unless it answers; return how to wait for it."""
    nsd = state / node.netns
    assert node.mgmt_address is not None
    sock = str(RUN_DIR / node.netns / "docker.sock") if docker else None
    cfg = d.write_sshd_config(nsd, node.mgmt_address, authorized, sock)
    addr = node.mgmt_address
    if not d.ssh_answers(addr):
        _mark_outside_files()
        d.start_sshd(node.netns, cfg, nsd / "sshd.log", nsd / _SSHD_PID)
    return d.Waiter(
        what=f"sshd in {node.netns} at {addr}:22",
        ready=lambda: d.ssh_answers(addr),
        pidfile=nsd / _SSHD_PID,
        log=nsd / "sshd.log",
        timeout=15.0,
    )


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
    d.kill_processes(lambda: own_processes(_dockerd_pidfiles(nsd, run_dir), inodes))
    d.unmount(own)
    # A stale exec root misleads dockerd: a containerd.pid naming a not yet reaped zombie
    # makes it wait for that containerd instead of starting its own.
    shutil.rmtree(run_dir / "exec", ignore_errors=True)
    _mark_outside_files()
    d.start_dockerd(
        netns,
        state=nsd,
        run_dir=run_dir,
        storage_driver=_storage_driver(state),
        address_pool=_ADDRESS_POOL,
        pidfile=nsd / _DOCKERD_PID,
    )
    return d.Waiter(
        what=f"dockerd in {netns} at {sock}",
        ready=lambda: d.docker_ping(sock),
        pidfile=nsd / _DOCKERD_PID,
        log=nsd / "dockerd.log",
        timeout=60.0,
    )


def ensure_dockerd(host: Host, instance: str = DEFAULT) -> None:
    """Bring a namespace host's dockerd back as `lab_up` starts it, when it does not answer
    (killed, crashed or half started): its leftover processes end, its pid is recorded (so
    `lab_down` ends it), and this returns once it answers.

    Example: ``ensure_dockerd(inv.sites[0].hosts[0])`` after a test killed that daemon.
    """
    _require_root()
    if host.kind != "netns":
        raise LabError(f"{host.name} is a {host.kind} host: only namespace hosts run a lab dockerd")
    with _instance_locked(instance), _locked():
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


def _vm_inventory(
    members: Sequence[vm.VmMember],
) -> tuple[list[Host], list[VlanPeer]]:
    hosts, peers = [], []
    for m in members:
        v = m.plan
        if v.kind == "host":
            hosts.append(
                Host(
                    name=v.name,
                    netns="",
                    mgmt_address=v.mgmt_address,
                    ssh_port=22,
                    user="root",
                    host_key=m.host_key,
                    docker_socket=vm.GUEST_DOCKER_SOCKET,
                    parent="eth0",
                    lan_address=v.lan_address,
                    lan_address6=v.lan_address6,
                    sshd_log="",
                    docker_version=m.docker_version,
                    image=IMAGE,
                    kind="vm",
                    sshd_log_remote=vm.GUEST_SSHD_LOG,
                    vm_name=v.vm_name,
                    console_log=str(m.console_log),
                )
            )
        else:
            assert v.vlan is not None and v.vlan_address is not None
            peers.append(
                VlanPeer(
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
) -> Inventory:
    """Build (or repair) a lab instance and write its inventory; harmless when already up.

    ``vm_hosts``: QEMU Docker hosts ``v1`` … on site a (after the namespace hosts in
    ``site.hosts``, ``kind == "vm"``); ``vlan_peers``: ``(vlan id, "ADDR/PREFIX")`` pairs, one
    QEMU guest each on site a terminating that VLAN (``site.vlan_peers``). Raises `LabError`
    with the reason when QEMU cannot run here. Running guests that still answer are kept.

    Example: ``inv = lab_up(hosts=2); inv.sites[0].hosts[0].mgmt_address``
    Example: ``lab_up(hosts=1, vm_hosts=1, vlan_peers=[(50, "198.18.50.2/24")], instance="v1")``
    """
    _require_root()
    peers_wanted = _parse_vlan_peers(vlan_peers)
    draft = plan(instance, 0 if instance == DEFAULT else 1, sites, hosts)  # refuse bad args early
    plan_vms(draft, vm_hosts, peers_wanted)
    if vm_hosts or peers_wanted:
        vm.check_available()
    lab_root().mkdir(parents=True, exist_ok=True)
    with _instance_locked(instance), contextlib.ExitStack() as machine_lock:
        machine_lock.enter_context(_locked())
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
        extra = _existing_names(instance) - set(p.namespaces)
        if extra:  # fewer hosts or sites than last time
            _teardown(instance, extra, whole=False)
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
                    Host(
                        name=h.name,
                        netns=h.netns,
                        mgmt_address=h.mgmt_address,
                        ssh_port=22,
                        user="root",
                        host_key=host_keys[h.netns],
                        docker_socket=sock,
                        parent="eth0",
                        lan_address=h.lan_address,
                        lan_address6=h.lan_address6,
                        sshd_log=str(state / h.netns / "sshd.log"),
                        docker_version=d.docker_version(sock),
                        image=IMAGE,
                        kind="netns",
                    )
                )
            r = site.router
            assert r.mgmt_address is not None
            inv_sites.append(
                Site(
                    name=site.name,
                    lan=site.lan,
                    gateway=site.gateway,
                    router=Router(
                        name=r.name,
                        netns=r.netns,
                        mgmt_address=r.mgmt_address,
                        ssh_port=22,
                        user="root",
                        host_key=host_keys[r.netns],
                        lan_address=r.lan_address,
                        lan_address6=r.lan_address6,
                    ),
                    peer=Peer(netns=site.peer.netns, address=site.peer.lan_address,
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
        inv = Inventory(
            version=1,
            instance=instance,
            key_path=str(client_key),
            known_hosts=str(known_hosts),
            sites=tuple(inv_sites),
        )
        write_inventory(inv)
        return inv


# --- down -------------------------------------------------------------------------------------


def _guard_pidfiles(instance: str, inodes: list[int], whole: bool) -> list[Path]:
    from vlaninfra.confirm import watcher_pidfiles

    return [*guard.pidfiles(inodes), *(watcher_pidfiles(instance) if whole else [])]


def _teardown(instance: str, names: set[str], *, whole: bool) -> list[str]:
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
    d.kill_processes(lambda: own_processes([*_pidfiles(state, owners), *leftovers], inodes))
    guard.forget(inodes)
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
    for o in _OUTSIDE:
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
    per process the lab did not start that still runs in one of its namespaces (left running).

    Example: ``lab_down("t1")`` → ``[]``
    """
    _require_root()
    validate_instance(instance)
    sweep_scratch()  # a killed agent-test run's scratch hosts (never a live run's)
    if not lab_root().exists() and not _existing_names(instance) and not vm.vm_leftovers(instance):
        return []
    lab_root().mkdir(parents=True, exist_ok=True)
    with _instance_locked(instance), _locked():
        names = _existing_names(instance)
        with contextlib.suppress(LabError, OSError, KeyError, ValueError):
            inv = load_inventory(instance)
            for site in inv.sites:
                names |= {site.router.netns, site.peer.netns}
                names |= {h.netns for h in site.hosts if h.netns}
        # VMs first (QEMU through its pidfile, taps by name, so also a crashed run's): their
        # taps sit in the switch namespace.
        vm.stop_instance_vms(instance, state_dir(instance))
        survivors = _teardown(instance, names, whole=True)
        _cleanup_outside_files()
        left = vm.vm_leftovers(instance)
        if left:
            raise LabError(f"`lab down` of {instance} left behind:\n  " + "\n  ".join(left))
    with contextlib.suppress(OSError):
        lab_root().rmdir()  # only if no other instance is left
    return survivors


# --- status -----------------------------------------------------------------------------------


_PS_FORMAT = (
    "{{.Name}}|{{.Config.Image}}|{{.State.Status}}|"
    "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}"
)
_NET_FORMAT = (
    '{{.Name}}|{{.Driver}}|{{range .IPAM.Config}}{{.Subnet}} {{end}}|{{index .Options "parent"}}'
)


def _format_docker(containers: str, networks: str) -> list[str]:
    """Status lines from ``docker inspect --format _PS_FORMAT`` and
    ``docker network inspect --format _NET_FORMAT`` output."""
    lines = []
    for line in containers.splitlines():
        if line.count("|") >= 3:
            name, image, state, addrs = line.split("|", 3)
            lines.append(f"      container {name.lstrip('/')}: {image} {state} {addrs.strip()}")
    for line in networks.splitlines():
        if line.count("|") >= 3:
            name, driver, subnets, parent = line.split("|", 3)
            if driver not in ("host", "null"):
                on = f" on {parent}" if parent else ""
                lines.append(f"      network {name}: {driver} {subnets.strip()}{on}")
    return lines or ["      no containers, no networks"]


def _docker_lines(sock: str) -> list[str]:
    """Containers (state, addresses) and networks (driver, subnets, parent) of one host."""
    docker = ["docker", "-H", f"unix://{sock}"]
    ids = n.run([*docker, "ps", "-aq"], check=False).split()
    nets = n.run([*docker, "network", "ls", "-q"], check=False).split()
    ps = n.run([*docker, "inspect", "--format", _PS_FORMAT, *ids], check=False) if ids else ""
    net = (
        n.run([*docker, "network", "inspect", "--format", _NET_FORMAT, *nets], check=False)
        if nets
        else ""
    )
    return _format_docker(ps, net)


# One ssh round trip per VM host (each costs about a second under TCG): version, then the
# containers (C|…) and networks (N|…) in the formats of _docker_lines.
_VM_STATUS = (
    "v=$(docker version --format '{{.Server.Version}}') || exit 3; echo \"$v\"; "
    f'ids=$(docker ps -aq); [ -z "$ids" ] || docker inspect --format {shlex.quote(_PS_FORMAT)} '
    "$ids | sed 's/^/C|/'; "
    f'nets=$(docker network ls -q); [ -z "$nets" ] || docker network inspect --format '
    f"{shlex.quote(_NET_FORMAT)} $nets | sed 's/^/N|/'"
)


def _vm_host_lines(inv: Inventory, h: Host) -> list[str]:
    """Status of a VM host, asked over ssh (pinned key): docker version, containers."""
    proc = vm.guest_command(
        h.mgmt_address, Path(inv.known_hosts), Path(inv.key_path), ["sh", "-c", _VM_STATUS]
    )
    out = proc.stdout.splitlines()
    ssh_ok = proc.returncode != 255
    docker_ok = proc.returncode == 0 and bool(out) and bool(out[0].strip())
    lines = [
        f"  host   {h.name} vm {h.vm_name}: {h.parent} {h.lan_address}, "
        f"ssh root@{h.mgmt_address} sshd {'up' if ssh_ok else 'DOWN'}, "
        f"dockerd {'up' if docker_ok else 'DOWN'} {out[0].strip() if docker_ok else '-'}"
    ]
    if docker_ok:
        ps = "\n".join(x[2:] for x in out if x.startswith("C|"))
        nets = "\n".join(x[2:] for x in out if x.startswith("N|"))
        lines += _format_docker(ps, nets)
    return lines


def _vlan_peer_line(inv: Inventory, vp: VlanPeer) -> str:
    proc = vm.guest_command(
        vp.mgmt_address,
        Path(inv.known_hosts),
        Path(inv.key_path),
        ["ip", "-br", "addr", "show", "dev", f"eth0.{vp.vlan}"],
        timeout=30,
    )
    state = "up" if proc.returncode == 0 and vp.address in proc.stdout else "DOWN"
    return (
        f"  vlan-peer {vp.name} vm {vp.vm_name}: eth0.{vp.vlan} {vp.address} "
        f"(eth0 {vp.lan_address}), ssh root@{vp.mgmt_address} {state}"
    )


def lab_status(instance: str = DEFAULT) -> str:
    """Hosts of a lab instance, whether their daemons answer, and what runs on them.

    Example: ``print(lab_status())``
    """
    validate_instance(instance)
    if not inventory_path(instance).exists():
        left = sorted(_existing_names(instance))
        msg = f"lab {instance}: not up"
        return msg + (f" (leftovers: {', '.join(left)}; run `lab down`)" if left else "")
    inv = load_inventory(instance)
    present = set(n.list_netns())

    def up(ok: bool) -> str:
        return "up" if ok else "DOWN"

    out = [
        f"lab {instance}: {len(inv.sites)} site(s), {len(inv.hosts)} host(s), "
        f"key {inv.key_path}, known_hosts {inv.known_hosts}"
    ]
    # The VM members are asked over ssh, all at once.
    with ThreadPoolExecutor(max_workers=8) as pool:
        vm_lines = {
            h.mgmt_address: pool.submit(_vm_host_lines, inv, h) for h in inv.hosts if h.is_vm
        }
        peer_lines = {
            vp.mgmt_address: pool.submit(_vlan_peer_line, inv, vp)
            for site in inv.sites
            for vp in site.vlan_peers
        }
    for site in inv.sites:
        r = site.router
        out.append(f"site {site.name}: LAN {site.lan} via {site.gateway}")
        out.append(
            f"  router {r.netns}: {r.lan_address}, ssh root@{r.mgmt_address} "
            f"sshd {up(d.ssh_answers(r.mgmt_address))}"
        )
        out.append(
            f"  peer   {site.peer.netns}: {site.peer.address} "
            f"{'present' if site.peer.netns in present else 'MISSING'}"
        )
        for h in site.hosts:
            if h.is_vm:
                out += vm_lines[h.mgmt_address].result()
                continue
            ping = d.docker_ping(h.docker_socket)
            ver = d.docker_version(h.docker_socket) if ping else "-"
            out.append(
                f"  host   {h.name} {h.netns}: {h.parent} {h.lan_address}, "
                f"ssh root@{h.mgmt_address} sshd {up(d.ssh_answers(h.mgmt_address))}, "
                f"dockerd {up(ping)} {ver}"
            )
            if ping:
                out += _docker_lines(h.docker_socket)
        out += [peer_lines[vp.mgmt_address].result() for vp in site.vlan_peers]
    return "\n".join(out)
