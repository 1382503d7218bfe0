"""Verification of a dual-stack layout (`stacks/Pulumi.lab-dualstack.yaml`): every IPv6
address gets the checks its IPv4 one gets."""

from __future__ import annotations

from typing import Any

from vlaninfra.engine import project_root
from vlaninfra.layout import load_config, plan
from vlaninfra.loader import read_stack_config
from vlaninfra.verify import checks_for

SITES: Any = read_stack_config(project_root() / "stacks" / "Pulumi.lab-dualstack.yaml")["sites"]


def test_ipv6_addresses_get_ndp_shim_gateway_and_router_checks() -> None:
    the_plan = plan(load_config({"sites": SITES}))
    site = the_plan.sites[0]
    checks = checks_for(the_plan)
    h1, h2 = (next(h for h in site.hosts if h.name == n) for n in ("h1", "h2"))
    web1 = next(c for c in h1.containers if c.name == "web1")
    app6 = next(c for c in h2.containers if c.name == "app6")
    on_h1 = {(c.check, c.args.get("kind"), c.args.get("target") or c.args.get("address"))
             for c in checks[("a", "h1")]}
    gw6 = SITES["a"]["networks"][0]["subnets"][1]["gateway"]
    assert {("address-unique", "ndp-unique", str(web1.ipv6)),
            ("address-unique", "arp-unique", str(web1.ipv4)),
            ("shim", "ping", str(web1.ipv6)), ("shim", "ping", str(web1.ipv4)),
            ("gateway", "exec-ping", gw6)} <= on_h1
    container = next(c for c in checks[("a", "h1")] if c.check == "container"
                     and c.args["name"] == "web1")
    assert container.args["ipv6"] == str(web1.ipv6)
    on_gw = [(c.check, c.args.get("target")) for c in checks[("a", "gw")]]
    assert ("router", str(app6.ipv6)) in on_gw and ("router", str(app6.ipv4)) in on_gw
    # The tenant's gateways are h2's shim: h2's container pings them.
    on_h2 = {(c.check, c.args.get("target")) for c in checks[("a", "h2")]}
    tenant = [s["subnet"] for s in SITES["a"]["tenants"][0]["subnets"]]
    assert {("gateway", g) for g in ("198.18.6.1", "2001:db8:ff06::1")} <= on_h2, tenant
