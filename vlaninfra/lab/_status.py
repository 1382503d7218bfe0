"""`lab status`: the hosts of a lab instance, whether their daemons answer, what runs on them."""

from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vlaninfra.lab import _daemons as d
from vlaninfra.lab import _labvm as vm
from vlaninfra.lab import _netns as n
from vlaninfra.lab._inventory import Host, Inventory, VlanPeer, inventory_path, load_inventory
from vlaninfra.lab._lab import existing_names
from vlaninfra.lab._topology import DEFAULT, validate_instance

__all__ = ["lab_status"]


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
        left = sorted(existing_names(instance))
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
