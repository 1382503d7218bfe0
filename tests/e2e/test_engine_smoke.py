"""The smallest end-to-end proof of the toolchain: the real pulumi CLI and Python language host run
a program with a dynamic provider against the local file backend (preview, up, destroy)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vlaninfra.engine import Engine, project_root

pytestmark = pytest.mark.engine

PROGRAM = """
import pulumi
from pulumi.dynamic import CreateResult, Resource, ResourceProvider


class Echo(ResourceProvider):
    def create(self, props):
        outs = {**props, "length": len(props["value"])}
        return CreateResult(id_="echo-" + props["value"], outs=outs)


class Thing(Resource):
    def __init__(self, name, value):
        super().__init__(Echo(), name, {"value": value, "length": None})


t = Thing("thing", "hello")
pulumi.export("length", t.length)
"""


def test_engine_runs_a_dynamic_provider(tmp_path: Path) -> None:
    project = tmp_path / "smoke"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: smoke\nruntime: python\n")
    (project / "__main__.py").write_text(textwrap.dedent(PROGRAM))
    engine = Engine(project_root(), backend=tmp_path / "backend", passphrase="smoke")
    engine.ensure_stack("smoke", cwd=project)

    assert engine.changes("smoke", "preview", cwd=project) == {"create": 2}
    assert engine.changes("smoke", "up", "--yes", cwd=project) == {"create": 2}
    assert engine.run("smoke", "stack", "output", "length", cwd=project).strip() == "5"
    assert engine.changes("smoke", "up", "--yes", cwd=project) == {"same": 2}
    assert engine.changes("smoke", "destroy", "--yes", cwd=project) == {"delete": 2}
