"""The address ledger: reservations, stable allocation, derived MACs (with properties)."""

from __future__ import annotations

import copy
import re
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.unit.layout.layout_helpers import Config, config, plan_of, site
from vlaninfra.errors import LayoutError
from vlaninfra.layout import derive_mac, load_config, plan

RANGE = IPv4Network("192.0.2.128/27")
POOL = [IPv4Address(int(RANGE.network_address) + i) for i in range(1, 31)]


def _site(names: list[str], fixed: dict[str, int] | None = None, **extra: Any) -> Config:
    s = site(**extra)
    s["networks"][0]["subnets"][0]["ip_range"] = str(RANGE)
    s["containers"] = [
        {"name": n, "host": "h1" if i % 2 else "h2", "network": "pub_net", "image": "i",
         **({"ipv4": str(POOL[fixed[n]])} if fixed and n in fixed else {})}
        for i, n in enumerate(names)]
    return s


def _addresses(cfg: Config, previous: Any = None) -> tuple[dict[str, Any], Any]:
    p = plan(load_config(cfg), previous=previous)
    found = {c.name: (c.ipv4, c.mac) for s in p.sites for h in s.hosts for c in h.containers}
    return found, p.allocations


def test_derived_macs_are_stable_unicast_and_locally_administered() -> None:
    mac = derive_mac("paris/h1/pub_net/web")
    assert mac == derive_mac("paris/h1/pub_net/web") != derive_mac("paris/h2/pub_net/web")
    assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac)
    assert int(mac[:2], 16) & 0b11 == 0b10


def test_allocation_skips_every_reservation() -> None:
    s = _site([f"c{i}" for i in range(24)])
    s["lan"]["dhcp_pool"] = "192.0.2.129-192.0.2.130"
    s["networks"][0]["subnets"][0]["aux_addresses"] = {"nas": "192.0.2.131"}
    s["networks"][0]["shim"] = {"address_per_host": {"h1": "192.0.2.132", "h2": "192.0.2.133"}}
    s["hosts"][0]["lan_address"] = "192.0.2.134"
    found, _ = _addresses(config(paris=s))
    taken = {a for a, _ in found.values()}
    assert len(taken) == 24
    assert taken.isdisjoint({IPv4Address(f"192.0.2.{i}") for i in range(129, 135)})
    assert taken <= set(POOL)
    s["containers"].append({"name": "one_more", "host": "h1", "network": "pub_net",
                            "image": "i"})
    try:
        plan_of(config(paris=s))
    except LayoutError as err:
        assert [p.message for p in err.problems if p.severity == "error"] == [
            "no free address left in 192.0.2.128/27 of network pub_net (30 usable): widen the "
            "ip_range or fix some addresses"]
    else:
        raise AssertionError("a full pool must be reported")


def test_a_stale_previous_allocation_is_not_pinned() -> None:
    s = _site(["aa"])
    found, allocations = _addresses(config(paris=s))
    key = "paris/h2/pub_net/aa"
    assert allocations == {key: (found["aa"][0],)}
    # The earlier address is now fixed for someone else: "aa" moves rather than collide.
    s2 = _site(["aa", "bb"], fixed={"bb": POOL.index(found["aa"][0])})
    p = plan(load_config(config(paris=s2)), previous=allocations)
    [aa] = [c for h in p.sites[0].hosts for c in h.containers if c.name == "aa"]
    assert aa.ipv4 != found["aa"][0]
    assert [(w.path, w.message) for w in p.warnings] == [
        ("sites.paris.containers[0].ipv4",
         "its previous address is now held by container bb on host h1: the container gets a "
         "new one")]


def test_previous_allocations_may_be_strings_from_json() -> None:
    names = [f"c{i}" for i in range(20)]
    found, allocations = _addresses(config(paris=_site(names)))
    as_json = {k: [str(a) for a in v] for k, v in allocations.items()}
    fewer = _site(names)
    fewer["containers"] = fewer["containers"][::2]
    again, _ = _addresses(config(paris=fewer), previous=as_json)
    assert again == {n: found[n] for n in names[::2]}


def test_ip_range_overlapping_the_dhcp_pool_is_a_warning() -> None:
    s = _site(["aa"])
    s["lan"]["dhcp_pool"] = "192.0.2.150-192.0.2.170"
    p = plan(load_config(config(paris=s)))
    assert [(w.path, w.message) for w in p.warnings] == [
        ("sites.paris.networks[0].subnets[0].ip_range",
         "overlaps the DHCP pool 192.0.2.150-192.0.2.170: vlaninfra never allocates from it, "
         "but Docker does for containers it addresses itself; keep the ip_range out of it")]


# -- properties ---------------------------------------------------------------------------------

NAMES = st.lists(st.from_regex(r"[a-z][a-z0-9]{1,6}", fullmatch=True), min_size=1, max_size=24,
                 unique=True)


@settings(max_examples=150, deadline=None)
@given(NAMES, st.randoms(use_true_random=False))
def test_reordering_never_moves_anyone(names: list[str], rnd: Any) -> None:
    first, _ = _addresses(config(paris=_site(names)))
    shuffled = list(names)
    rnd.shuffle(shuffled)
    # Hosts follow the position in _site, so keep each name on its host when shuffling.
    s = _site(names)
    s["containers"] = [next(c for c in s["containers"] if c["name"] == n) for n in shuffled]
    again, _ = _addresses(config(paris=s))
    assert again == first


@settings(max_examples=150, deadline=None)
@given(NAMES, NAMES, st.data())
def test_adding_and_removing_never_moves_anyone(before: list[str], added: list[str],
                                                data: st.DataObject) -> None:
    removed = data.draw(st.sets(st.sampled_from(before)))
    after = [n for n in before if n not in removed] + [n for n in added if n not in before]
    assume(len(after) <= 26)
    s1 = _site(before)
    hosts = {c["name"]: c["host"] for c in s1["containers"]}
    s2 = _site(after)
    for c in s2["containers"]:
        c["host"] = hosts.get(c["name"], c["host"])
    first, allocations = _addresses(config(paris=s1))
    second, _ = _addresses(config(paris=s2), previous=allocations)
    for name in after:
        if name in first:
            assert second[name] == first[name], name


@settings(max_examples=150, deadline=None)
@given(NAMES, st.sets(st.integers(0, 29), max_size=6), st.sets(st.integers(0, 29), max_size=4),
       st.data())
def test_allocations_never_overlap_reservations_or_each_other(
        names: list[str], aux: set[int], fixed: set[int], data: st.DataObject) -> None:
    fixed -= aux
    assume(len(names) + len(aux) <= 28)
    fixed_names = dict(zip(names, sorted(fixed), strict=False))
    s = _site(names, fixed_names)
    s["networks"][0]["subnets"][0]["aux_addresses"] = {f"a{i}": str(POOL[i]) for i in aux}
    lo = data.draw(st.integers(0, 29))
    s["lan"]["dhcp_pool"] = f"{POOL[lo]}-{POOL[min(29, lo + 2)]}"
    try:
        found, _ = _addresses(config(paris=s))
    except LayoutError as err:
        # Only a fixed address in the DHCP pool or a full pool may stop the plan.
        assert all("DHCP pool" in p.message or "no free address" in p.message
                   for p in err.problems), err
        return
    taken = [a for a, _ in found.values()]
    assert len(taken) == len(set(taken))
    reserved = {POOL[i] for i in aux} | {POOL[i] for i in range(lo, min(29, lo + 2) + 1)}
    allocated = [found[n][0] for n in names if n not in fixed_names]
    assert reserved.isdisjoint(allocated)
    assert all(a in RANGE and a not in (RANGE.network_address, RANGE.broadcast_address)
               for a in allocated)


_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=False),
                  st.text(max_size=12), st.sampled_from([
                      "192.0.2.7", "192.0.2.0/24", "2001:db8::/64", "eth0.50", "l3", "macvlan",
                      "ipvlan", "passthru", "h1", "pub_net", "02:00:00:00:00:01", "20.10",
                      "192.0.2.9-192.0.2.1", {"secure": "v1:x"}]))
_json = st.recursive(_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


def _never_crashes(cfg: Any) -> None:
    try:
        plan(load_config(cfg))
    except LayoutError as err:
        assert err.problems and all(p.path and p.message for p in err.problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_configs_never_crash(data: st.DataObject) -> None:
    cfg = copy.deepcopy(config(paris=site(), lyon=_lyon()))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(cfg)[1:]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        target = cfg
        for step in path[:-1]:
            target = target[step]
        if data.draw(st.booleans()) and isinstance(target, dict):
            del target[path[-1]]
        else:
            target[path[-1]] = data.draw(_json)
    _never_crashes(cfg)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_arbitrary_data_never_crashes(value: Any) -> None:
    _never_crashes({"sites": value})
    _never_crashes({"sites": {"paris": value}})


def _lyon() -> Config:
    s = site(containers=[])
    s["lan"] = {"subnet": "198.51.100.0/24", "gateway": "198.51.100.1"}
    s["routers"] = [{"name": "r", "address": "198.51.100.1"}]
    s["hosts"] = [{"name": "l1", "ssh": {"address": "203.0.113.9"},
                   "lan_address": "198.51.100.11", "docker_version": "27.1"}]
    s["networks"] = [{"name": "t3", "driver": "ipvlan", "mode": "l3s", "parent": "eth0",
                      "hosts": ["l1"]}]
    s["tenants"] = [{"name": "ta", "subnets": [{"subnet": "198.18.0.0/24", "network": "t3"}]}]
    s["containers"] = [{"name": "app", "host": "l1", "network": "t3", "image": "i"}]
    return s


def test_two_site_base_is_clean() -> None:
    p = plan_of(config(paris=site(), lyon=_lyon()))
    lyon = p.sites[1]
    assert [(str(r.prefix), str(r.via)) for r in lyon.upstream_routes] == [
        ("198.18.0.0/24", "198.51.100.11")]
    [app] = lyon.hosts[0].containers
    assert app.ipv4 is not None and app.ipv4 in IPv4Network("198.18.0.0/24") and app.mac is None
