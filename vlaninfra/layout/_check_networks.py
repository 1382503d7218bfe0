"""Rules for networks and tenants: network names and hosts, each subnet (gateway, ip_range,
aux addresses), shims by mode, and tenant subnets; resolves every subnet into a pool
(`_facts.add_pool`)."""

from __future__ import annotations

from ._docker import ipvlan_docker
from ._facts import Check, add_pool, pool_range, routes_tenants
from ._model import Host, IPAddress, IpvlanNetwork, MacvlanNetwork, Network, Site, Subnet
from ._names import OBJECT_NAME, iface_problem, shim_name

__all__ = ["check_network", "check_tenants"]


def _subnet(check: Check, path: str, subnet: Subnet, net: Network) -> IPAddress:
    """Checks one IPAM pool; returns its effective gateway."""
    sub = subnet.subnet
    too_small = sub.prefixlen > (30 if sub.version == 4 else 126)
    if too_small:
        check.error(f"{path}.subnet", sub,
                    "too small for a gateway and a container: use a /30 (IPv6 /126) or larger")
    specials = {sub.network_address, sub.broadcast_address} if sub.version == 4 \
        else {sub.network_address}
    gateway: IPAddress = subnet.gateway if subnet.gateway is not None \
        else sub.network_address + 1
    if subnet.gateway is not None:
        if subnet.gateway.version != sub.version or subnet.gateway not in sub:
            check.error(f"{path}.gateway", subnet.gateway,
                        f"the gateway is outside the subnet {sub}: use an address in it")
        elif subnet.gateway in specials:
            check.error(f"{path}.gateway", subnet.gateway,
                        f"the network or broadcast address of {sub} cannot be the gateway")
        if isinstance(net, IpvlanNetwork) and net.mode in ("l3", "l3s"):
            check.warn(f"{path}.gateway", subnet.gateway, (
                f"ipvlan {net.mode} ignores the gateway: containers route through the "
                "parent; drop it"))
    rng = subnet.ip_range
    if rng is not None and (rng.version != sub.version or not rng.subnet_of(sub)):  # type: ignore[arg-type]
        check.error(f"{path}.ip_range", rng,
                    f"the ip_range is outside the subnet {sub}: use a range inside it")
    elif rng is not None and not too_small:
        lo, hi = pool_range(subnet)
        if hi < lo:
            check.error(f"{path}.ip_range", rng,
                        "the ip_range holds no usable address: make it larger")
    for name, aux in subnet.aux_addresses.items():
        if aux.version != sub.version or aux not in sub:
            check.error(f"{path}.aux_addresses.{name}", aux,
                        f"the aux address is outside the subnet {sub}: use an address in it")
        elif aux in specials:
            check.error(f"{path}.aux_addresses.{name}", aux,
                        f"the network or broadcast address of {sub} cannot be an aux address")
    return gateway


def check_network(check: Check, site: Site, i: int, net: Network, hosts: dict[str, Host]) -> None:
    base = f"sites.{site.name}.networks[{i}]"
    if not OBJECT_NAME.fullmatch(net.name):
        check.error(f"{base}.name", net.name,
                    "expected a name of letters, digits, '_', '.', '-' (not first)")
    for j, host in enumerate(net.hosts):
        if host not in hosts:
            check.error(f"{base}.hosts[{j}]", host,
                        f"unknown host; site {site.name} has: {', '.join(hosts)}")
    check.duplicates(((f"{base}.hosts[{j}]", h) for j, h in enumerate(net.hosts)), "host")
    for host, parent in net.parent_per_host.items():
        if host not in net.hosts:
            check.error(f"{base}.parent_per_host.{host}", parent,
                        "the host is not in this network's hosts: add it there or drop this")
    layer3 = isinstance(net, IpvlanNetwork) and net.mode in ("l3", "l3s")
    if layer3 and net.subnets and len(net.hosts) > 1:
        check.error(f"{base}.subnets", [str(s.subnet) for s in net.subnets], (
            "an ipvlan l3 subnet is routed to one host: on a network spanning hosts, give "
            "each host its own subnet through a tenant (tenants[].subnets[].host)"))
    for j, subnet in enumerate(net.subnets):
        path = f"{base}.subnets[{j}]"
        gateway = _subnet(check, path, subnet, net)
        add_pool(check, site, net, subnet, path, net.hosts, None, gateway)
    if isinstance(net, IpvlanNetwork):
        ipvlan_docker(check, site, base, net, hosts)
    if isinstance(net, MacvlanNetwork) and net.mode == "passthru" and net.shim is not None:
        check.error(f"{base}.shim", net.name, (
            "macvlan passthru gives the whole parent to one container: drop the shim "
            "or use mode bridge"))
    if net.shim is not None:
        _shim(check, site, base, net)


def _shim(check: Check, site: Site, base: str, net: Network) -> None:
    shim = net.shim
    assert shim is not None
    problem = iface_problem(shim_name(net))
    if problem:
        path = f"{base}.shim.name" if shim.name else f"{base}.name"
        check.error(path, shim_name(net), problem + (
            "" if shim.name else " (the shim is named shim-<network>; set shim.name)"))
    if isinstance(net, IpvlanNetwork) and net.mode != "l2":
        check.error(f"{base}.shim", net.name, (
            f"ipvlan {net.mode} needs no shim: the host reaches the containers by routing "
            "(through the upstream route to its own subnet); drop the shim"))
    if isinstance(net, IpvlanNetwork) and net.flag == "private":
        check.error(f"{base}.flag", net.flag, (
            "ipvlan private blocks traffic between the shim and the containers: use flag "
            "bridge, or drop the shim"))
    if isinstance(net, MacvlanNetwork) and net.mode == "private":
        check.error(f"{base}.mode", net.mode, (
            "macvlan private blocks traffic between the shim and the containers: use mode "
            "bridge, or drop the shim"))
    if isinstance(net, MacvlanNetwork) and net.mode == "vepa":
        check.warn(f"{base}.mode", net.mode, (
            "with macvlan vepa the shim reaches containers only through a switch port in "
            "hairpin (reflective relay) mode"))
    for key, version, addresses in (("address_per_host", 4, shim.address_per_host),
                                    ("address6_per_host", 6, shim.address6_per_host)):
        subs = [s for s in net.subnets if s.subnet.version == version]
        for host, address in addresses.items():
            path = f"{base}.shim.{key}.{host}"
            specials = [s.subnet.network_address for s in subs] + [
                s.subnet.broadcast_address for s in subs if version == 4]
            if host not in net.hosts:
                check.error(path, address, "the host is not in this network's hosts: add it there")
            elif not any(address in s.subnet for s in subs):
                nets = ", ".join(str(s.subnet) for s in subs) or "none"
                check.error(path, address, f"the shim address is outside the network's "
                                           f"IPv{version} subnets ({nets})")
            elif address in specials:
                check.error(path, address,
                            "the network or broadcast address cannot be a shim address")
    if shim.routes == "ip-range" and not any(s.ip_range is not None for s in net.subnets):
        check.error(f"{base}.shim.routes", shim.routes,
                    "routes: ip-range needs an ip_range on a subnet: add one or use "
                    "per-container")


def check_tenants(check: Check, site: Site, nets: dict[str, Network],
                  net_index: dict[str, int]) -> None:
    for t, tenant in enumerate(site.tenants):
        if not OBJECT_NAME.fullmatch(tenant.name):
            check.error(f"sites.{site.name}.tenants[{t}].name", tenant.name,
                        "expected a name of letters, digits, '_', '.', '-' (not first)")
        for k, ts in enumerate(tenant.subnets):
            path = f"sites.{site.name}.tenants[{t}].subnets[{k}]"
            net = nets.get(ts.network)
            if net is None:
                check.error(f"{path}.network", ts.network,
                            f"unknown network; site {site.name} has: {', '.join(nets) or 'none'}")
                continue
            if not routes_tenants(net):
                mode = f"{net.driver} {net.mode}"
                check.error(f"{path}.network", ts.network, (
                    f"tenant subnets are routed to an ipvlan l3 or l3s network, or to a "
                    f"macvlan bridge network with a shim; {ts.network} is {mode}"
                    + ("" if net.shim is not None or not isinstance(net, MacvlanNetwork)
                       else " without a shim")))
                continue
            host = ts.host
            if host is None and len(net.hosts) != 1:
                check.error(f"{path}.host", None, (
                    f"required: network {net.name} spans {len(net.hosts)} hosts and the router "
                    "sends this subnet to one of them"))
                continue
            host = host if host is not None else net.hosts[0]
            if host not in net.hosts:
                check.error(f"{path}.host", host,
                            f"network {net.name} is not on this host: add it to its hosts")
                continue
            if isinstance(net, MacvlanNetwork) and net.shim is not None and host not in (
                    net.shim.address_per_host):
                check.error(f"{path}.host", host, (
                    f"network {net.name} has no shim on host {host}, and on macvlan the "
                    f"shim is the tenant subnet's gateway: add {host} to "
                    f"sites.{site.name}.networks[{net_index[net.name]}].shim.address_per_host"))
                continue
            subnet = Subnet(subnet=ts.subnet)
            gateway = _subnet(check, path, subnet, net)
            add_pool(check, site, net, subnet, path, (host,), tenant.name, gateway)
    for net in site.networks:
        for host in net.hosts:
            families = {p.subnet.subnet.version
                        for p in check.facts.by_net_host.get((site.name, net.name, host), [])}
            if families == {6}:
                # Measured on Docker 20.10.24: the daemon then adds an IPv4 pool of its own and
                # gives every container an address from it, on the LAN.
                check.error(f"sites.{site.name}.networks[{net_index[net.name]}].subnets", [], (
                    f"network {net.name} has IPv6 but no IPv4 subnet on host {host}: Docker "
                    "adds an IPv4 pool of its own and gives containers addresses from it; add "
                    "an IPv4 subnet (or a tenant's)"))
                break
    for net in site.networks:
        for host in net.hosts:
            if (site.name, net.name, host) not in check.facts.by_net_host:
                check.error(f"sites.{site.name}.networks[{net_index[net.name]}].subnets", [], (
                    f"no subnet on host {host}: add subnets (or a tenant subnet), else Docker "
                    "picks a random one"))
                break
    for net in site.networks:
        tenants = sorted({p.tenant for h in net.hosts
                          for p in check.facts.by_net_host.get((site.name, net.name, h), [])
                          if p.tenant is not None})
        if len(tenants) > 1:
            versions = {h.name: h.docker_version or "20.10 (assumed)" for h in site.hosts}
            for h in net.hosts:
                check.facts.notes.setdefault((site.name, h, net.name), []).append(
                    f"carries tenants {', '.join(tenants)} in one ipvlan network: Docker "
                    f"{versions.get(h, '20.10 (assumed)')} allows one ipvlan network per parent "
                    f"({net.parent_on(h)}); the tenants reach each other inside the host (ipvlan "
                    "flag bridge; Docker 20.10 ignores ipvlan_flag, 23.0+ honours private)")
