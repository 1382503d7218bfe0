"""`vlaninfra diff --format markdown`: a pull-request comment (GitHub-flavoured: tables, an
alert for replacements, collapsible detail, a Mermaid topology)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from vlaninfra.layout import Plan

from ._mermaid import render_mermaid
from ._model import Diff
from ._words import (
    container_detail,
    endpoint,
    fields,
    headline,
    names,
    network_detail,
    shim_detail,
)

__all__ = ["render_markdown"]

MAX_ROWS = 150
"""Rows per table; the rest is counted (GitHub comments hold 65,536 characters)."""
T = TypeVar("T")

_ICON = {"add": "🟢 added", "remove": "🔴 removed", "move": "🔀 moved",
         "replace": "🔁 re-created", "update": "✏️ changed"}


def _cell(value: object) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_cell(v) for v in r) + " |" for r in rows), ""]


def _capped(rows: Sequence[T]) -> Sequence[T]:
    """At most `MAX_ROWS` rows (a PR comment holds 65,536 characters); the JSON has them all."""
    return rows[:MAX_ROWS]


def _more(rows: Sequence[object]) -> list[str]:
    extra = len(rows) - MAX_ROWS
    return [f"... and {extra} more (`vlaninfra diff --format json` lists all)", ""] \
        if extra > 0 else []


def render_markdown(d: Diff, new: Plan) -> str:
    """The comment's text, e.g. ``Path("comment.md").write_text(render_markdown(diff, plan))``."""
    out = [f"### vlaninfra diff: stack `{d.stack}`", "",
           f"Compared with {d.base}. **{headline(d)}**", "",
           *_warning(d), *_containers(d), *_networks(d), *_shims_and_routes(d)]
    if d.tenants_added or d.tenants_removed:
        out += [f"Tenants added: {', '.join(d.tenants_added) or '-'}; removed: "
                f"{', '.join(d.tenants_removed) or '-'}", ""]
    if d.findings:
        out += ["#### New findings of validation", "",
                *(f"- **{f.severity}** `{f.path}`: {f.message}" for f in d.findings), ""]
    out += ["<details open><summary>Topology after the change (Mermaid)</summary>", "",
            "```mermaid", render_mermaid(d, new).rstrip(), "```", "", "</details>", ""]
    detail = [(c.name, c.action, f.field, f.old, f.new) for c in d.containers for f in c.fields]
    detail += [(f"{n.host}/{n.name}", n.action, f.field, f.old, f.new)
               for n in d.networks for f in n.fields]
    if detail:
        out += ["<details><summary>Every changed property</summary>", "",
                *_table(("object", "change", "property", "before", "after"), _capped(detail)),
                *_more(detail), "</details>", ""]
    return "\n".join(out)


def _warning(d: Diff) -> list[str]:
    if not d.replaced_networks:
        return []
    restarts = sum(len(n.restarts) for n in d.replaced_networks)
    return ["> [!WARNING]",
            f"> **{len(d.replaced_networks)} network(s) replaced: {restarts} running "
            "container(s) are stopped and re-created with them.**",
            *(f"> - `{n.host}/{n.name}` (site {n.site}): {names(n.restarts)}"
              f" (because {fields(n.fields)})" for n in d.replaced_networks), ""]


def _containers(d: Diff) -> list[str]:
    if not d.containers:
        return []
    return ["#### Containers", "", *_table(
        ("change", "container", "site", "before", "after", "how"),
        [(_ICON[c.action], f"`{c.name}`", c.site, endpoint(c.old),
          "(same)" if c.old == c.new else endpoint(c.new),
          ("⚠️ " if c.because_of else "") + container_detail(c))
         for c in _capped(d.containers)]), *_more(d.containers)]


def _networks(d: Diff) -> list[str]:
    if not d.networks:
        return []
    return ["#### Networks", "", *_table(
        ("change", "network", "site", "host", "what"),
        [(_ICON[n.action], f"`{n.name}`", n.site, n.host,
          ("⚠️ " if n.action == "replace" else "") + network_detail(n))
         for n in _capped(d.networks)]), *_more(d.networks)]


def _shims_and_routes(d: Diff) -> list[str]:
    rows = [*((_ICON[s.action], f"shim `{s.name}`", s.site, f"{s.host}/{s.network}",
               shim_detail(s)) for s in d.shims),
            *((_ICON[r.action], f"upstream route `{r.prefix}`", r.site,
               f"via {r.new_via or r.old_via}",
               f"tenant {r.tenant or '-'}; " + ("applied on the managed router"
                                                if r.applied else "the operator applies it"))
              for r in d.upstream_routes),
            *((_ICON[p.action], f"802.1Q parent `{p.name}`", p.site, p.host,
               f"VLAN {p.vlan_id} on {p.trunk}") for p in d.vlan_parents)]
    if not rows:
        return []
    return ["#### Shims and routes", "",
            *_table(("change", "what", "site", "where", "detail"), _capped(rows)), *_more(rows)]
