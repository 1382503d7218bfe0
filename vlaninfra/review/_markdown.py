"""`vlaninfra diff --format markdown`: a pull-request comment (GitHub-flavoured: tables, an
alert for replacements, collapsible detail, a Mermaid topology)."""

from __future__ import annotations

from collections.abc import Sequence

from vlaninfra.layout import Plan

from ._mermaid import render_mermaid
from ._model import Diff
from ._words import container_detail, endpoint, fields, headline, network_detail, shim_detail

__all__ = ["render_markdown"]

_ICON = {"add": "🟢 added", "remove": "🔴 removed", "move": "🔀 moved",
         "replace": "🔁 re-created", "update": "✏️ changed"}


def _cell(value: object) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_cell(v) for v in r) + " |" for r in rows), ""]


def render_markdown(d: Diff, new: Plan) -> str:
    """The comment's text, e.g. ``Path("comment.md").write_text(render_markdown(diff, plan))``."""
    out = [f"### vlaninfra diff: stack `{d.stack}`", "",
           f"Compared with {d.base}. **{headline(d)}**", ""]
    if d.replaced_networks:
        restarts = sum(len(n.restarts) for n in d.replaced_networks)
        out += ["> [!WARNING]",
                f"> **{len(d.replaced_networks)} network(s) replaced: {restarts} running "
                "container(s) are stopped and re-created with them.**"]
        out += [f"> - `{n.host}/{n.name}` (site {n.site}): {', '.join(n.restarts) or 'none'}"
                f" (because {fields(n.fields)})" for n in d.replaced_networks]
        out.append("")
    if d.containers:
        out += ["#### Containers", "", *_table(
            ("change", "container", "site", "before", "after", "how"),
            [(_ICON[c.action], f"`{c.name}`", c.site, endpoint(c.old), endpoint(c.new),
              ("⚠️ " if c.because_of else "") + container_detail(c)) for c in d.containers])]
    if d.networks:
        out += ["#### Networks", "", *_table(
            ("change", "network", "site", "host", "what"),
            [(_ICON[n.action], f"`{n.name}`", n.site, n.host,
              ("⚠️ " if n.action == "replace" else "") + network_detail(n))
             for n in d.networks])]
    if d.shims or d.upstream_routes or d.vlan_parents:
        out += ["#### Shims and routes", "", *_table(
            ("change", "what", "site", "where", "detail"),
            [*((_ICON[s.action], f"shim `{s.name}`", s.site, f"{s.host}/{s.network}",
                shim_detail(s)) for s in d.shims),
             *((_ICON[r.action], f"upstream route `{r.prefix}`", r.site,
                f"via {r.new_via or r.old_via}",
                f"tenant {r.tenant or '-'}; " + ("applied on the managed router"
                                                 if r.applied else "the operator applies it"))
               for r in d.upstream_routes),
             *((_ICON[p.action], f"802.1Q parent `{p.name}`", p.site, p.host,
                f"VLAN {p.vlan_id} on {p.trunk}") for p in d.vlan_parents)])]
    if d.tenants_added or d.tenants_removed:
        out += [f"Tenants added: {', '.join(d.tenants_added) or '-'}; removed: "
                f"{', '.join(d.tenants_removed) or '-'}", ""]
    if d.findings:
        out += ["#### New findings of validation", "",
                *(f"- **{f.severity}** `{f.path}`: {f.message}" for f in d.findings), ""]
    out += ["<details><summary>Topology after the change (Mermaid)</summary>", "",
            "```mermaid", render_mermaid(d, new).rstrip(), "```", "", "</details>", ""]
    detail = [(c.name, c.action, f.field, f.old, f.new) for c in d.containers for f in c.fields]
    detail += [(f"{n.host}/{n.name}", n.action, f.field, f.old, f.new)
               for n in d.networks for f in n.fields]
    if detail:
        out += ["<details><summary>Every changed property</summary>", "",
                *_table(("object", "change", "property", "before", "after"), detail),
                "</details>", ""]
    return "\n".join(out)
