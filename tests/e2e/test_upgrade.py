"""Upgrading a deployed stack to the `Site` component: a stack that the code before it deployed
(the `lab` stack, run from that commit's sources) previews with the new code with no change to
any host object: no create, replace or delete but the new `Site` components themselves (state
only: a component has nothing on a host), no update but the `persist` input of the objects a
reboot loses (their boot files get written; the live objects stay as they are), and after one
`up` with no change at all."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.observe import destroy_at_teardown, host_state
from vlaninfra.engine import LAB_PASSPHRASE, Engine, project_root
from vlaninfra.lab import Inventory
from vlaninfra.lab._inventory import inventory_path

pytestmark = [pytest.mark.lab, pytest.mark.engine]

BEFORE = "fce9cac80ba574dbac6953322bb5d3d6e03a9ba0"
"""The last commit whose program declared a site's components at the stack's root."""
STACK = "upgrade"


PROTOCOL_1 = "52f789ee9421ae5256cb446792a3f3125de3e3d2"
"""The last commit whose agent spoke protocol 1 (ops with keyword args, no typed contract)."""


def _old_sources(dest: Path, commit: str = BEFORE) -> Path:
    """The `vlaninfra` package as it was at `commit`, unpacked into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(project_root()), "archive", commit, "vlaninfra"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


_SINCE = frozenset({"lan6", "gateway6", "lan_address6", "address6"})
"""Lab inventory keys added after `BEFORE` (IPv6), which its code refuses."""


def _without_new_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_new_keys(v) for k, v in value.items() if k not in _SINCE}
    if isinstance(value, list):
        return [_without_new_keys(v) for v in value]
    return value


def _old_lab_dir(dest: Path, inventory: Inventory) -> Path:
    """A lab dir holding the lab's inventory as the code at `BEFORE` reads it."""
    data = json.loads(inventory_path(inventory.instance).read_text())
    (dest / inventory.instance).mkdir(parents=True)
    (dest / inventory.instance / "inventory.json").write_text(
        json.dumps(_without_new_keys(data)))
    return dest


@pytest.fixture
def project(lab_inventory: Inventory, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A scratch project running the `lab` stack, its backend destroyed at the end."""
    proj = tmp_path / "project"
    proj.mkdir()
    (proj / "Pulumi.yaml").write_text("name: vlaninfra\nruntime: python\n")
    (proj / "__main__.py").write_text("from vlaninfra.program import run\n\nrun()\n")
    config = yaml.safe_load((project_root() / "stacks" / "Pulumi.lab.yaml").read_text())
    (proj / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(
        {"config": {"vlaninfra:sites": config["config"]["vlaninfra:sites"]}}))
    backend = tmp_path / "backend"
    new = Engine(project_root(), backend=backend, passphrase=LAB_PASSPHRASE)
    new.ensure_stack(STACK, cwd=proj)
    try:
        yield proj, backend
    finally:
        destroy_at_teardown(new, STACK, proj)


def _steps(output: str) -> list[tuple[str, str, tuple[str, ...]]]:
    doc: dict[str, Any] = json.loads(output)
    return sorted((s["op"], s["urn"].split("::")[-2].split("$")[-1],
                   tuple(sorted(s.get("diffReasons") or s.get("detailedDiff") or ())))
                  for s in doc["steps"])


def test_a_stack_deployed_before_site_upgrades_without_touching_a_host(
    project: tuple[Path, Path], lab_inventory: Inventory, tmp_path: Path
) -> None:
    proj, backend = project
    old = Engine(project_root(), backend=backend, passphrase=LAB_PASSPHRASE,
                 extra_env={"PYTHONPATH": str(_old_sources(tmp_path / "old")),
                            "VLANINFRA_LAB_DIR": str(_old_lab_dir(tmp_path / "lab",
                                                                  lab_inventory))})
    new = Engine(project_root(), backend=backend, passphrase=LAB_PASSPHRASE)
    old.run(STACK, "up", "--yes", "--skip-preview", cwd=proj)
    hosts = [h for s in lab_inventory.sites for h in s.hosts]
    before = {h.name: host_state(h) for h in hosts}

    steps = _steps(new.run(STACK, "preview", "--json", "--show-sames", cwd=proj))
    changed = [(op, t, d) for op, t, d in steps if op not in ("same", "read")]
    sites = len(yaml.safe_load((proj / f"Pulumi.{STACK}.yaml").read_text())
                ["config"]["vlaninfra:sites"])
    created = [(op, t) for op, t, _ in changed if op != "update"]
    assert created == [("create", "vlaninfra:index:Site")] * sites, changed
    # dynamic providers report no diff keys: the kinds that gained `persist` are the only ones
    updated = {t.rsplit(":", 1)[-1] for op, t, _ in changed if op == "update"}
    assert updated and updated <= {"HostShim", "VlanParent", "RouterRoute"}, changed
    assert len(steps) > 5  # the lab stack's resources all matched their old URNs

    new.run(STACK, "up", "--yes", "--skip-preview", cwd=proj)
    new.run(STACK, "preview", "--expect-no-changes", cwd=proj)
    assert {h.name: host_state(h) for h in hosts} == before
    out = json.loads(new.run(STACK, "stack", "output", "sites", "--json", cwd=proj))
    assert all(c["ipv4"] and c["mac"] for site in out.values()
               for c in site["containers"].values())


def test_a_stack_deployed_by_protocol_1_upgrades_with_no_change(
    project: tuple[Path, Path], lab_inventory: Inventory, tmp_path: Path
) -> None:
    """The typed contract changed only what the controller and the agent say to each other:
    a stack the code before it deployed previews with no change at all (same URNs, property
    keys and values), and a refresh finds every object as it was."""
    proj, backend = project
    old = Engine(project_root(), backend=backend, passphrase=LAB_PASSPHRASE,
                 extra_env={"PYTHONPATH": str(_old_sources(tmp_path / "old", PROTOCOL_1)),
                            "VLANINFRA_LAB_DIR": str(
                                inventory_path(lab_inventory.instance).parent.parent)})
    new = Engine(project_root(), backend=backend, passphrase=LAB_PASSPHRASE)
    old.run(STACK, "up", "--yes", "--skip-preview", cwd=proj)
    hosts = [h for s in lab_inventory.sites for h in s.hosts]
    before = {h.name: host_state(h) for h in hosts}

    steps = _steps(new.run(STACK, "preview", "--json", "--show-sames", cwd=proj))
    assert len(steps) > 5 and all(op == "same" for op, _, _ in steps), steps
    new.run(STACK, "refresh", "--yes", "--skip-preview", cwd=proj)
    new.run(STACK, "preview", "--expect-no-changes", cwd=proj)
    assert {h.name: host_state(h) for h in hosts} == before
