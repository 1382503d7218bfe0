"""What the lab benchmarks share: a scratch project and state backend running the `lab` stack's
layout with containers of the benchmark's choosing (never the checkout's own state)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vlaninfra.engine import Engine, project_root

__all__ = ["Scratch", "lab_sites", "scratch_stack"]


def lab_sites() -> dict[str, Any]:
    """The `lab` stack's `vlaninfra:sites` (a fresh copy to edit)."""
    config = yaml.safe_load((project_root() / "stacks" / "Pulumi.lab.yaml").read_text())
    sites: dict[str, Any] = config["config"]["vlaninfra:sites"]
    return sites


@dataclass(frozen=True)
class Scratch:
    """A scratch project (`cwd`) with its own backend; `write` replaces the stack's sites."""

    engine: Engine
    cwd: Path
    stack: str

    def write(self, sites: dict[str, Any]) -> None:
        doc = {"config": {"vlaninfra:sites": sites}}
        (self.cwd / f"Pulumi.{self.stack}.yaml").write_text(yaml.safe_dump(doc))

    def run(self, *args: str, check: bool = True) -> str:
        return self.engine.run(self.stack, *args, check=check, cwd=self.cwd)


@contextmanager
def scratch_stack(sites: dict[str, Any], stack: str = "bench") -> Iterator[Scratch]:
    """A scratch project and backend holding `stack` with `sites`; on exit whatever it still
    has is destroyed and the scratch directory removed."""
    work = Path(tempfile.mkdtemp(prefix="vlaninfra-bench-"))
    project = work / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: vlaninfra\nruntime: python\n")
    (project / "__main__.py").write_text("from vlaninfra.program import run\n\nrun()\n")
    scratch = Scratch(Engine(project_root(), backend=work / "backend"), project, stack)
    scratch.write(sites)
    try:
        scratch.engine.ensure_stack(stack, cwd=project)
        yield scratch
    finally:
        scratch.run("destroy", "--yes", "--skip-preview", check=False)
        shutil.rmtree(work, ignore_errors=True)
