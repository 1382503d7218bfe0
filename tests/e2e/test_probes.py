"""The layout's probes (`sites.<site>.probes`) through the real agents on the lab: run by a
verified `vlaninfra up` (from a host, from inside a container, from the managed router), a
probe that fails makes verification fail with a readable row, and `expect: blocked` passes
exactly where the network keeps the source out (the macvlan parent without its shim).

The tests run in file order on one stack (the `lab` stack's layout). Addresses come from the
plan, the stack config and the lab inventory.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.observe import LabStack, sh
from vlaninfra.layout import Plan, load_config, plan
from vlaninfra.program import hosts_of, routers_of
from vlaninfra.rollout import up
from vlaninfra.verify import Row, Verification, verify

pytestmark = [pytest.mark.lab, pytest.mark.engine]

SHIM = "macvlan-shim"


def with_probes(stack: LabStack, *probes: dict[str, Any]) -> dict[str, Any]:
    sites = stack.sites()
    sites["a"]["probes"] = [*sites["a"].get("probes", []), *probes]
    return sites


def verify_now(sites: dict[str, Any]) -> tuple[Plan, Verification]:
    """Verification of `sites` against what the lab runs now, without the engine."""
    layout = load_config({"sites": sites})
    the_plan = plan(layout)
    started = time.monotonic()
    result = verify(the_plan, hosts_of(layout), routers_of(layout))
    print(f"\nverification in {time.monotonic() - started:.1f} s\n{result.table()}")
    return the_plan, result


def probe_rows(result: Verification) -> dict[str, Row]:
    return {r.target: r for r in result.rows if r.check == "probe"}


def address(the_plan: Plan, name: str) -> str:
    return next(str(c.ipv4) for h in the_plan.sites[0].hosts for c in h.containers
                if c.name == name)


def test_a_verified_up_runs_the_layouts_probes(lab_stack: LabStack) -> None:
    gateway = lab_stack.base_sites["a"]["lan"]["gateway"]
    lab_stack.write(with_probes(
        lab_stack,
        {"from": "gw", "to": "web3", "port": 80},  # the LAN (its router) reaches web3
        {"from": "web2", "to": "web4", "name": "ping-across"},  # exec-ping inside web2
        {"from": "web4", "to": gateway, "port": 80, "expect": "blocked"},  # gw serves no HTTP
    ))
    started = time.monotonic()
    report = up(lab_stack.name, engine=lab_stack.engine, cwd=lab_stack.project)
    took = time.monotonic() - started
    verification = report.steps[0].verification
    assert verification is not None, report.text()
    print(f"\nverified up with 5 probes: {took:.1f} s\n{verification.table()}")
    assert report.ok, report.text()
    rows = probe_rows(verification)
    assert {t: (r.where, r.ok) for t, r in rows.items()} == {
        "h1 -> web1:80": ("h1", True),
        "web3 -> web1:80": ("h2", True),
        "gw -> web3:80": ("gw", True),
        "ping-across: web2 -> web4": ("h1", True),
        f"web4 -> {gateway}:80 (expect blocked)": ("h2", True),
    }
    assert rows[f"web4 -> {gateway}:80 (expect blocked)"].detail.startswith("blocked: ")
    assert rows["web3 -> web1:80"].detail.startswith("connected to ")


def test_a_probe_that_fails_fails_verification_with_a_readable_row(lab_stack: LabStack) -> None:
    # Nothing listens on port 81 of web1: the probe expects to reach it and does not.
    sites = with_probes(lab_stack, {"from": "h1", "to": "web1", "port": 81},
                        {"from": "web3", "to": "web1", "port": 81, "expect": "blocked"})
    the_plan, result = verify_now(sites)
    assert not result.ok
    web1 = address(the_plan, "web1")
    assert [(r.where, r.check, r.target, r.result, r.detail) for r in result.failed] == [
        ("h1", "probe", "h1 -> web1:81", "FAIL", f"{web1}:81: connection refused")]
    assert probe_rows(result)["web3 -> web1:81 (expect blocked)"].ok is True
    line = next(x for x in result.table().splitlines() if "web1:81" in x and "FAIL" in x)
    assert "connection refused" in line


def test_expect_blocked_holds_where_the_macvlan_parent_is_cut_off(lab_stack: LabStack) -> None:
    """Without its shim a host cannot reach its own macvlan containers (the seed's gotcha):
    a probe saying so passes, the one expecting to reach fails; the LAN still gets in."""
    h1 = lab_stack.host("h1")
    sites = with_probes(lab_stack, {"from": "h1", "to": "web2", "port": 80, "expect": "blocked"},
                        {"from": "web3", "to": "web2", "port": 80})
    sh("ip", "-n", h1.netns, "link", "del", SHIM)
    try:
        _, result = verify_now(sites)
    finally:
        assert lab_stack.changes("up", "--yes", "--refresh", "--skip-preview") == {
            "create": 1, "same": 10}
    rows = probe_rows(result)
    assert rows["h1 -> web2:80 (expect blocked)"].ok is True
    assert rows["h1 -> web2:80 (expect blocked)"].detail.startswith("blocked: ")
    assert rows["h1 -> web1:80"].ok is False  # the stack's own probe
    assert rows["web3 -> web2:80"].ok is True
    _, again = verify_now(lab_stack.sites())
    assert again.ok
