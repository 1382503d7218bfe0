"""`vlaninfra diff` as plain text (the default)."""

from __future__ import annotations

from vlaninfra._text import table

from ._model import Diff
from ._words import container_detail, headline, names, network_detail, place, shim_detail

__all__ = ["render_text"]

_MARK = {"add": "+", "remove": "-", "move": "~", "replace": "!", "update": "~"}


def render_text(d: Diff) -> str:
    """The diff for a terminal, e.g. ``print(render_text(diff))``."""
    out = [f"vlaninfra diff --stack {d.stack}: the stack config against {d.base}",
           f"  {headline(d)}"]
    for n in d.replaced_networks:
        out.append(f"  !! network {n.name} on {n.site}/{n.host} is REPLACED: it restarts "
                   f"{len(n.restarts)} container(s): {names(n.restarts)}")
    if d.containers:
        out += ["", "containers:", *table(
            ("", "site", "container", "host network address MAC", "what"),
            [(_MARK[c.action], c.site, c.name, place(c), container_detail(c))
             for c in d.containers], "  ")]
    if d.networks:
        out += ["", "networks:", *table(
            ("", "site", "host", "network", "what"),
            [(_MARK[n.action], n.site, n.host, n.name, network_detail(n)) for n in d.networks],
            "  ")]
    if d.shims:
        out += ["", "shims and their routes:", *table(
            ("", "site", "host", "shim", "network", "what"),
            [(_MARK[s.action], s.site, s.host, s.name, s.network, shim_detail(s))
             for s in d.shims], "  ")]
    if d.upstream_routes:
        out += ["", "upstream routes (the site's router):", *table(
            ("", "site", "prefix", "via", "tenant", "applied by"),
            [(_MARK[r.action], r.site, r.prefix, _via(r.old_via, r.new_via), r.tenant,
              "vlaninfra" if r.applied else "operator") for r in d.upstream_routes], "  ")]
    if d.vlan_parents:
        out += ["", "802.1Q parents:", *table(
            ("", "site", "host", "parent", "trunk", "vlan"),
            [(_MARK[p.action], p.site, p.host, p.name, p.trunk, p.vlan_id)
             for p in d.vlan_parents], "  ")]
    if d.findings:
        out += ["", "new findings of validation:",
                *(f"  {f.severity}: {f.path}: {f.message}" for f in d.findings)]
    return "\n".join(out) + "\n"


def _via(old: str | None, new: str | None) -> str:
    if old and new:
        return f"{old} → {new}"
    return old or new or "-"
