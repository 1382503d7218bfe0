"""IPv6 beside IPv4: shims, allocation, the ledger's checks and macvlan tenant subnets."""

from __future__ import annotations

from ipaddress import ip_address, ip_interface, ip_network
from typing import Any

from tests.unit.layout.layout_helpers import Config, config, errors_of, plan_of, site

S = "sites.paris"
NET0 = f"{S}.networks[0]"


def _dual(**over: Any) -> Config:
    """The base site with an IPv6 LAN prefix, a dual-stack pub_net and a dual-stack shim."""
    s = site()
    s["lan"]["subnet6"] = "2001:db8:1::/64"
    s["hosts"][0]["lan_address6"] = "2001:db8:1::11"
    s["hosts"][1]["lan_address6"] = "2001:db8:1::12"
    s["networks"][0]["subnets"].append(
        {"subnet": "2001:db8:1::/64", "gateway": "2001:db8:1::1",
         "ip_range": "2001:db8:1::100/120"})
    s["networks"][0]["shim"] = {"address_per_host": {"h1": "192.0.2.250"},
                                "address6_per_host": {"h1": "2001:db8:1::fa"}}
    s["containers"].append({"name": "web2", "host": "h1", "network": "pub_net",
                            "image": "i", "ipv6": "2001:db8:1::105"})
    s.update(over)
    return s


def test_dual_stack_plan() -> None:
    p = plan_of(config(paris=_dual()))
    h1 = p.sites[0].hosts[0]
    net = h1.networks[0]
    assert net.enable_ipv6
    v4, v6 = net.subnets
    # Each pool reserves only the shim address of its own family.
    assert dict(v4.aux_addresses)["shim-h1"] == ip_address("192.0.2.250")
    assert dict(v6.aux_addresses) == {"host-h1": ip_address("2001:db8:1::11"),
                                      "host-h2": ip_address("2001:db8:1::12"),
                                      "shim-h1": ip_address("2001:db8:1::fa")}
    web1, web2 = h1.containers
    assert web1.ipv4 == ip_address("192.0.2.130") and web1.ipv6 is not None
    assert web1.ipv6 in ip_network("2001:db8:1::100/120")
    assert web2.ipv6 == ip_address("2001:db8:1::105") and web2.ipv4 is not None
    shim = h1.shims[0]
    assert shim.address6 == ip_interface("2001:db8:1::fa/64")
    assert shim.addresses == (ip_interface("192.0.2.250/24"), ip_interface("2001:db8:1::fa/64"))
    assert set(shim.routes) == {ip_network(a) for c in (web1, web2)
                                for a in (c.ipv4, c.ipv6) if a is not None}
    assert all(r.device == shim.name for r in h1.routes) and len(h1.routes) == 4


def test_shim_without_ipv6_routes_only_ipv4() -> None:
    s = _dual()
    del s["networks"][0]["shim"]["address6_per_host"]
    shim = plan_of(config(paris=s)).sites[0].hosts[0].shims[0]
    assert shim.address6 is None and all(r.version == 4 for r in shim.routes)


def test_allocation_is_stable_and_pinned() -> None:
    first = plan_of(config(paris=_dual()))
    again = plan_of(config(paris=_dual()))
    assert first.allocations == again.allocations
    key = "paris/h1/pub_net/web1"
    assert [a.version for a in first.allocations[key]] == [6]


def test_ipv6_pool_exhaustion_names_the_key() -> None:
    s = _dual()
    s["networks"][0]["subnets"][1]["ip_range"] = "2001:db8:1::100/127"
    s["containers"] += [{"name": f"x{i}", "host": "h1", "network": "pub_net", "image": "i"}
                        for i in range(3)]
    errors = errors_of(config(paris=s))
    assert any(path.endswith(".ipv6") and "no free address left in 2001:db8:1::100/127" in msg
               for path, msg in errors), errors


def test_duplicate_fixed_ipv6_names_the_key() -> None:
    s = _dual()
    s["containers"].append({"name": "web3", "host": "h2", "network": "pub_net", "image": "i",
                            "ipv6": "2001:db8:1::105"})
    assert errors_of(config(paris=s)) == [
        (f"{S}.containers[2].ipv6",
         "already taken by container web2 on host h1: choose a free address")]


def test_ipv6_shim_address_taken_by_a_container() -> None:
    s = _dual()
    s["containers"][1]["ipv6"] = "2001:db8:1::fa"
    assert (f"{NET0}.shim.address6_per_host.h1",
            "already taken by container web2 on host h1: choose a free address") \
        in errors_of(config(paris=s))


def test_ipv6_shim_address_outside_the_subnets() -> None:
    s = _dual()
    s["networks"][0]["shim"]["address6_per_host"]["h1"] = "2001:db8:9::fa"
    assert errors_of(config(paris=s)) == [
        (f"{NET0}.shim.address6_per_host.h1",
         "the shim address is outside the network's IPv6 subnets (2001:db8:1::/64)")]


def test_overlapping_ipv6_subnets() -> None:
    s = _dual()
    s["networks"].append({"name": "n2", "driver": "macvlan", "parent": "eth1", "hosts": ["h2"],
                          "subnets": [{"subnet": "2001:db8:1:0:8000::/65"}]})
    s["hosts"][1]["parents"] = ["eth0", "eth1"]
    errors = errors_of(config(paris=s))
    assert any(path == f"{S}.networks[1].subnets[0].subnet" and msg.startswith("overlaps")
               for path, msg in errors), errors


def _macvlan_tenant() -> Config:
    s = _dual()
    s["networks"][0]["hosts"] = ["h1", "h2"]
    s["networks"][0]["shim"]["address_per_host"]["h2"] = "192.0.2.251"
    s["tenants"] = [{"name": "t6", "subnets": [
        {"subnet": "198.18.6.0/24", "network": "pub_net", "host": "h2"},
        {"subnet": "2001:db8:ff06::/64", "network": "pub_net", "host": "h2"}]}]
    s["routers"][0]["managed"] = True
    s["routers"][0]["ssh"] = {"address": "203.0.113.1"}
    s["containers"].append({"name": "app6", "host": "h2", "network": "pub_net", "image": "i",
                            "tenant": "t6"})
    return s


def test_macvlan_tenant_is_routed_through_the_shim() -> None:
    p = plan_of(config(paris=_macvlan_tenant()))
    h2 = p.sites[0].hosts[1]
    shim = h2.shims[0]
    assert shim.gateways == (ip_interface("198.18.6.1/24"), ip_interface("2001:db8:ff06::1/64"))
    app = next(c for c in h2.containers if c.name == "app6")
    assert app.ipv4 in ip_network("198.18.6.0/24") and app.ipv6 in ip_network(
        "2001:db8:ff06::/64")
    assert app.tenant == "t6"
    # Connected on the shim: no per-container route for tenant containers.
    assert not any(app.ipv4 in r or app.ipv6 in r for r in shim.routes)
    assert [(str(r.prefix), str(r.via)) for r in p.sites[0].upstream_routes] == [
        ("198.18.6.0/24", "192.0.2.12"), ("2001:db8:ff06::/64", "2001:db8:1::12")]


def test_macvlan_tenant_needs_the_shim_on_its_host() -> None:
    s = _macvlan_tenant()
    del s["networks"][0]["shim"]["address_per_host"]["h2"]
    errors = errors_of(config(paris=s))
    assert (f"{S}.tenants[0].subnets[0].host",
            "network pub_net has no shim on host h2, and on macvlan the shim is the tenant "
            "subnet's gateway: add h2 to sites.paris.networks[0].shim.address_per_host") \
        in errors


def test_macvlan_tenant_needs_the_hosts_ipv6_lan_address() -> None:
    s = _macvlan_tenant()
    del s["hosts"][1]["lan_address6"]
    assert (f"{S}.hosts[1].lan_address6",
            "required: the upstream router reaches 2001:db8:ff06::/64 through this host's LAN "
            "address") in errors_of(config(paris=s))


def test_macvlan_without_shim_serves_no_tenant() -> None:
    s = _macvlan_tenant()
    del s["networks"][0]["shim"]
    assert (f"{S}.tenants[0].subnets[0].network",
            "tenant subnets are routed to an ipvlan l3 or l3s network, or to a macvlan bridge "
            "network with a shim; pub_net is macvlan bridge without a shim") \
        in errors_of(config(paris=s))


def test_an_ipv6_only_network_is_refused() -> None:
    s = _dual()
    s["networks"][0]["subnets"].pop(0)
    s["networks"][0].pop("shim")
    s["containers"] = [c for c in s["containers"] if "ipv4" not in c]
    assert errors_of(config(paris=s)) == [
        (f"{NET0}.subnets",
         "network pub_net has IPv6 but no IPv4 subnet on host h1: Docker adds an IPv4 pool of "
         "its own and gives containers addresses from it; add an IPv4 subnet (or a tenant's)")]


def _ipvlan(mode: str) -> Config:
    """The dual-stack site with pub_net on ipvlan `mode` (the VM lab's shapes)."""
    s = _dual()
    s["networks"][0].update(driver="ipvlan", mode=mode)
    return s


def test_ipvlan_l2_dual_stack_plans_like_macvlan_behind_one_mac() -> None:
    h1 = plan_of(config(paris=_ipvlan("l2"))).sites[0].hosts[0]
    net, shim = h1.networks[0], h1.shims[0]
    assert (net.driver, net.mode, net.enable_ipv6) == ("ipvlan", "l2", True)
    assert (shim.kind, shim.mode) == ("ipvlan", "l2")
    assert shim.addresses == (ip_interface("192.0.2.250/24"), ip_interface("2001:db8:1::fa/64"))
    assert {r.version for r in shim.routes} == {4, 6}
    assert all(c.mac is None and c.ipv6 is not None for c in h1.containers)


def test_ipvlan_l3_ipv6_tenant_is_routed_via_the_hosts_ipv6_lan_address() -> None:
    s = _ipvlan("l3")
    net = s["networks"][0]
    net.update(hosts=["h2"], subnets=[])
    net.pop("shim")
    s["tenants"] = [{"name": "t6", "subnets": [
        {"subnet": "198.18.16.0/24", "network": "pub_net"},
        {"subnet": "2001:db8:ff16::/64", "network": "pub_net"}]}]
    s["containers"] = [{"name": "app6", "host": "h2", "network": "pub_net", "tenant": "t6",
                        "image": "i", "ipv6": "2001:db8:ff16::5"}]
    p = plan_of(config(paris=s)).sites[0]
    assert [(str(r.prefix), str(r.via)) for r in p.upstream_routes] == [
        ("198.18.16.0/24", "192.0.2.12"), ("2001:db8:ff16::/64", "2001:db8:1::12")]
    h2 = p.hosts[1]
    assert h2.shims == () and h2.routes == ()  # ipvlan l3: the host routes, no shim
    assert h2.containers[0].ipv6 == ip_address("2001:db8:ff16::5")
    del s["hosts"][1]["lan_address6"]
    assert (f"{S}.hosts[1].lan_address6",
            "required: the upstream router reaches 2001:db8:ff16::/64 through this host's LAN "
            "address") in errors_of(config(paris=s))
