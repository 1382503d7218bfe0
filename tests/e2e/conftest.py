"""Fixtures of the end-to-end tests: the real pulumi engine running the `lab` stack's program on
the local lab (default instance: the lab stack's addresses are that instance's)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.observe import LabStack, destroy_at_teardown
from vlaninfra.engine import LAB_PASSPHRASE, Engine, project_root
from vlaninfra.lab import Inventory, lab_down, lab_up


@pytest.fixture(scope="session")
def lab_inventory() -> Iterator[Inventory]:
    """A fresh default lab (two hosts), removed at the end even when a test failed."""
    lab_down()
    try:
        yield lab_up(hosts=2)
    finally:
        lab_down()


@pytest.fixture(scope="module")
def lab_stack(
    lab_inventory: Inventory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabStack]:
    """The `lab` stack's program and config in a scratch project with its own state backend;
    destroyed at the end of the module whatever happened."""
    work = tmp_path_factory.mktemp("lab-stack")
    project = work / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: vlaninfra\nruntime: python\n")
    (project / "__main__.py").write_text("from vlaninfra.program import run\n\nrun()\n")
    config: dict[str, Any] = yaml.safe_load(
        (project_root() / "stacks" / "Pulumi.lab.yaml").read_text()
    )
    stack = LabStack(
        engine=Engine(project_root(), backend=work / "backend", passphrase=LAB_PASSPHRASE),
        project=project,
        name="e2e",
        inventory=lab_inventory,
        base_sites=copy.deepcopy(config["config"]["vlaninfra:sites"]),
    )
    stack.write(stack.base_sites)
    stack.engine.ensure_stack(stack.name, cwd=project)
    try:
        yield stack
    finally:
        destroy_at_teardown(stack.engine, stack.name, project)

