"""macvlan mode rules beyond the shim's (``_check_networks._shim``) and passthru's (one
container per host, the parent to itself: ``_check_containers``, ``_check_hosts``), from what
each mode was measured to allow (README, "macvlan modes"; tests/lab/test_macvlan_modes.py).

- vepa: links on one parent reach each other only when the switch port sends frames back
  (hairpin, "reflective relay"), so two containers on one host get a warning.
"""

from __future__ import annotations

from vlaninfra.errors import Problem

from ._model import MacvlanNetwork, Site

__all__ = ["mode_problems"]


def mode_problems(site: Site) -> list[Problem]:
    """Warnings for macvlan modes in ``site``, e.g. two containers of a vepa network on a host."""
    problems: list[Problem] = []
    for i, net in enumerate(site.networks):
        if not isinstance(net, MacvlanNetwork) or net.mode != "vepa":
            continue
        crowded = sorted(h for h in net.hosts if sum(
            1 for c in site.containers if c.host == h and c.network == net.name) > 1)
        if crowded:
            problems.append(Problem(f"sites.{site.name}.networks[{i}].mode", net.mode, (
                f"with macvlan vepa, containers on one host ({', '.join(crowded)}) reach each "
                "other only if the switch port sends frames back out the port they came in "
                "(hairpin / reflective relay); enable it on the switch, or use mode bridge"),
                "warning"))
    return problems
