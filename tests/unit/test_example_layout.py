"""The typed example program (`examples/typed`) builds exactly the lab stack's layout: the same
typed `Layout` as `stacks/Pulumi.lab.yaml` read through the loader, hence the same plan."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from vlaninfra.engine import project_root
from vlaninfra.layout import Layout, plan
from vlaninfra.loader import load_stack_file


def _example() -> ModuleType:
    path = project_root() / "examples" / "typed" / "typed_lab.py"
    spec = importlib.util.spec_from_file_location("typed_lab", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_typed_program_declares_the_lab_stacks_layout() -> None:
    typed = Layout(sites=(_example().lab_site(),))
    yaml_layout = load_stack_file(project_root() / "stacks" / "Pulumi.lab.yaml")
    assert typed == yaml_layout
    assert plan(typed) == plan(yaml_layout)
