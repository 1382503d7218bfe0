"""Golden files of `vlaninfra diff` for realistic changes, in all three formats.

Regenerate after an intended change of the output: ``VLANINFRA_REGEN_GOLDEN=1 .venv/bin/python
-m pytest tests/unit/diff`` (then review the files' git diff)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.diff.cases import CASES, diff
from vlaninfra.layout import Plan
from vlaninfra.review import Diff, render_json, render_markdown, render_text

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("VLANINFRA_REGEN_GOLDEN") == "1"
FORMATS: dict[str, Callable[[Diff, Plan], str]] = {
    "txt": lambda d, p: render_text(d), "md": render_markdown,
    "json": lambda d, p: render_json(d)}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str, fmt: str) -> None:
    d, new = diff(case)
    got = FORMATS[fmt](d, new)
    path = GOLDEN / f"{case}.{fmt}"
    if REGEN:
        path.write_text(got, encoding="utf-8")
    assert path.is_file(), f"{path} missing: run with VLANINFRA_REGEN_GOLDEN=1"
    assert got == path.read_text(encoding="utf-8")


def test_aux_address_replaces_the_network_and_names_every_container_it_restarts() -> None:
    d, new = diff("aux-address-replaces-network")
    on = {(c.site, c.old.host if c.old else "", c.name) for c in d.containers}
    every = {(s.name, h.name, c.name) for s in new.sites for h in s.hosts for c in h.containers}
    assert on == every
    assert all(c.action == "replace" and c.because_of for c in d.containers)
    assert sorted(n.host for n in d.replaced_networks) == ["h1", "h2"]
    assert all(n.restarts for n in d.replaced_networks)
    assert "REPLACED" in render_text(d)
    assert "[!WARNING]" in render_markdown(d, new)


def test_adding_a_container_moves_no_one_else() -> None:
    d, _ = diff("add-container")
    assert [(c.action, c.name) for c in d.containers] == [("add", "web5")]
    assert not d.networks


def test_moved_container_names_old_and_new_place() -> None:
    d, _ = diff("move-container")
    (c,) = d.containers
    assert c.action == "move" and c.restarts
    assert c.old and c.new and c.old.host != c.new.host
    assert {f.field for f in c.fields} >= {"host", "ipv4", "mac"}


def test_tenant_added_routes_and_replaces() -> None:
    d, _ = diff("add-tenant")
    assert d.tenants_added == ("tenant_c",)
    assert [(r.action, r.tenant, r.applied) for r in d.upstream_routes] == [
        ("add", "tenant_c", True)]
    assert [n.action for n in d.networks] == ["replace"]


def test_shim_route_removed_with_its_container() -> None:
    d, _ = diff("remove-shim-route")
    (c,) = d.containers
    (s,) = d.shims
    assert c.action == "remove" and c.old and c.old.ipv4
    assert s.routes_removed == (f"{c.old.ipv4}/32",) and not s.routes_added


def test_a_taken_address_is_a_new_finding_and_readdresses_the_container() -> None:
    d, _ = diff("aux-address-takes-a-containers-address")
    (finding,) = d.findings
    assert finding.severity == "warning" and "previous address" in finding.message
    web1 = next(c for c in d.containers if c.name == "web1")
    assert web1.action == "replace" and web1.because_of is None
    assert web1.old and web1.new and web1.old.ipv4 != web1.new.ipv4
    # It goes down with its replaced network too: the network's list names it.
    (net,) = [n for n in d.replaced_networks if n.host == web1.old.host]
    assert "web1" in net.restarts


def test_no_change_is_empty() -> None:
    from tests.unit.diff.cases import BASE, stack_config
    from vlaninfra.layout import load_config, plan
    from vlaninfra.review import compare

    p = plan(load_config(stack_config("lab")))
    d = compare(p, plan(load_config(stack_config("lab")), previous=p.allocations), stack="lab",
                base=BASE)
    assert d.empty
    assert "no change" in render_text(d)
    assert json.loads(render_json(d))["summary"]["changed"] is False


def test_nothing_deployed_shows_everything_added() -> None:
    from tests.unit.diff.cases import stack_config
    from vlaninfra.layout import load_config, plan
    from vlaninfra.review import compare

    p = plan(load_config(stack_config("lab")))
    d = compare(None, p, stack="lab", base="nothing")
    assert {c.action for c in d.containers} == {"add"}
    assert {n.action for n in d.networks} == {"add"}
