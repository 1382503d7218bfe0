"""The layout's probes as verification checks: on which member, as which agent check, and how
a failing one reads in the table."""

from __future__ import annotations

import copy
from typing import Any

from vlaninfra.engine import project_root
from vlaninfra.layout import load_config, plan
from vlaninfra.loader import read_stack_config
from vlaninfra.verify import Verification, _run_member, checks_for

LAB: Any = read_stack_config(project_root() / "stacks" / "Pulumi.lab.yaml")["sites"]
GATEWAY = LAB["a"]["lan"]["gateway"]


def lab_plan(*probes: dict[str, Any]) -> Any:
    sites: Any = copy.deepcopy(LAB)
    sites["a"]["probes"] = list(probes)
    return plan(load_config({"sites": sites}))


def address(the_plan: Any, name: str) -> str:
    return next(str(c.ipv4) for h in the_plan.sites[0].hosts for c in h.containers
                if c.name == name)


def test_probes_run_on_their_member_after_its_own_checks() -> None:
    the_plan = lab_plan({"from": "h1", "to": "web3", "port": 80},
                        {"from": "web3", "to": "web1", "port": 8080, "expect": "blocked"},
                        {"from": "web4", "to": GATEWAY, "name": "gw-from-web4"},
                        {"from": "h2", "to": "web2"})
    checks = checks_for(the_plan)
    h1 = [c for c in checks[("a", "h1")] if c.check == "probe"]
    assert checks[("a", "h1")][-1] is h1[-1]
    assert [(c.where, c.target, dict(c.args)) for c in h1] == [
        ("h1", "h1 -> web3:80", {"kind": "tcp", "target": address(the_plan, "web3"),
                                 "port": 80, "expect": "reach"})]
    h2 = [(c.target, dict(c.args)) for c in checks[("a", "h2")] if c.check == "probe"]
    assert h2 == [
        ("web3 -> web1:8080 (expect blocked)",
         {"kind": "tcp", "container": "web3", "target": address(the_plan, "web1"),
          "port": 8080, "expect": "blocked"}),
        (f"gw-from-web4: web4 -> {GATEWAY}",
         {"kind": "exec-ping", "container": "web4", "target": GATEWAY,
          "expect": "reach"}),
        ("h2 -> web2", {"kind": "ping", "target": address(the_plan, "web2"),
                        "expect": "reach"}),
    ]


def test_a_probe_from_the_managed_router_gives_it_checks_without_routed_subnets() -> None:
    assert ("a", "gw") not in checks_for(lab_plan())
    checks = checks_for(lab_plan({"from": "gw", "to": "web1", "port": 80}))
    assert [(c.check, c.target) for c in checks[("a", "gw")]] == [
        ("management", "agent hello"), ("probe", "gw -> web1:80")]


def test_a_failing_probe_fails_verification_with_a_readable_row() -> None:
    the_plan = lab_plan({"from": "h1", "to": "web1", "port": 81})
    checks = checks_for(the_plan)[("a", "h1")]
    answer = f"{address(the_plan, 'web1')}:81: connection refused"

    class Agent:
        def start(self) -> None:
            pass

        def call(self, op: str, **kwargs: Any) -> Any:
            return [{"ok": c["kind"] != "tcp", "ms": 1.0,
                     "detail": answer if c["kind"] == "tcp" else "fine"}
                    for c in kwargs["checks"]]

    rows = _run_member(lambda member: Agent(), object(), checks)
    result = Verification(tuple(rows), 0.1)
    assert not result.ok and [(r.check, r.target, r.detail) for r in result.failed] == [
        ("probe", "h1 -> web1:81", answer)]
    line = next(x for x in result.table().splitlines() if "probe" in x)
    assert line.split() == ["h1", "probe", "h1", "->", "web1:81", "FAIL", "1", *answer.split()]
