"""The pure comparison on edge cases: what the providers would do in place, by replacement,
or by a move; containers of one name on several hosts; warnings that are new."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from tests.unit.diff.cases import BASE, stack_config
from vlaninfra.layout import load_config, plan
from vlaninfra.review import Diff, compare


def change(edit: Callable[[Any], None], stack: str = "lab") -> Diff:
    before = stack_config(stack)
    after = copy.deepcopy(before)
    edit(next(iter(after["sites"].values())))
    old = plan(load_config(before))
    return compare(old, plan(load_config(after), previous=old.allocations), stack=stack,
                   base=BASE)


def test_restart_policy_changes_in_place() -> None:
    def edit(site: Any) -> None:
        site["containers"][0]["restart_policy"] = "always"

    (c,) = change(edit).containers
    assert (c.action, c.restarts) == ("update", False)
    assert [(f.field, f.old, f.new) for f in c.fields] == [
        ("restart_policy", "unless-stopped", "always")]


def test_new_image_recreates_the_container_alone() -> None:
    def edit(site: Any) -> None:
        site["containers"][0]["image"] = "vlaninfra/busybox:other"

    d = change(edit)
    (c,) = d.containers
    assert (c.action, c.restarts, c.because_of) == ("replace", True, None)
    assert not d.networks


def test_another_network_on_the_same_host_is_a_move_that_keeps_running() -> None:
    def edit(site: Any) -> None:
        net = copy.deepcopy(site["networks"][0])
        net.update(name="pub2", parent="eth1")
        del net["shim"]
        net["subnets"] = [{"subnet": "198.18.7.0/24", "gateway": "198.18.7.1"}]
        site["networks"].append(net)
        for h in site["hosts"]:
            h["parents"] = ["eth0", "eth1"]
        site["containers"][0]["network"] = "pub2"

    d = change(edit)
    moved = [c for c in d.containers if c.action == "move"]
    assert len(moved) == 1 and moved[0].restarts is False
    assert moved[0].old and moved[0].new and moved[0].new.network == "pub2"
    assert {n.action for n in d.networks} == {"add"}


def test_one_name_on_two_hosts_is_not_paired_wrongly() -> None:
    def edit(site: Any) -> None:
        hosts = [h["name"] for h in site["hosts"]]
        site["containers"] = [c for c in site["containers"] if c["name"] != "web1"]
        site["probes"] = [p for p in site.get("probes", []) if "web1" not in (p["from"], p["to"])]
        site["containers"] += [{**site["containers"][0], "name": "dup", "host": h}
                               for h in hosts]

    d = change(edit)
    at = [(c.action, c.name, e.host) for c in d.containers for e in (c.new or c.old,) if e]
    assert sorted(at) == [
        ("add", "dup", "h1"), ("add", "dup", "h2"), ("remove", "web1", "h1")]


def test_shim_address_change_replaces_the_network_on_every_host() -> None:
    """Shim addresses are aux addresses in every host's IPAM: a new one re-creates the network
    everywhere, with all its containers, not only on the shim's host."""
    def edit(site: Any) -> None:
        shim = site["networks"][0]["shim"]["address_per_host"]
        first = sorted(shim)[0]
        shim[first] = shim[first][: shim[first].rindex(".")] + ".249"

    d = change(edit)
    assert sorted(n.host for n in d.replaced_networks) == ["h1", "h2"]
    assert {c.name for c in d.restarted} == {"web1", "web2", "web3", "web4"}
    assert [(s.host, s.action) for s in d.shims] == [("h1", "update")]
