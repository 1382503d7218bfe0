"""What `vlaninfra diff` compares, read from a stack's records through the engine (a fake one
here: the e2e test uses the real one): the last applied record's layout with its allocations
pinned, against the stack config planned with those allocations; nothing recorded → all
added. Only `stack ls` and `stack output` are run: nothing that runs the program."""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.diff.cases import add_container, stack_config
from vlaninfra import cli_review
from vlaninfra.engine import RUNS_PROGRAM, Engine, project_root
from vlaninfra.errors import LayoutError, VlanInfraError
from vlaninfra.layout import load_config, plan
from vlaninfra.record import OUTPUT
from vlaninfra.review import load_change


@dataclass(frozen=True)
class FakeEngine(Engine):
    """Answers `stack ls` and `stack output` from memory; records every command."""

    stacks: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, stack: str | None, *args: str, check: bool = True, cwd: Path | None = None,
            timeout: float | None = None) -> str:
        self.calls.append(args)
        assert args[0] not in RUNS_PROGRAM
        if args[:2] == ("stack", "ls"):
            return json.dumps([{"name": f"organization/vlaninfra/{s}"} for s in self.stacks])
        if args[:2] == ("stack", "output"):
            return json.dumps(self.outputs)
        raise AssertionError(args)


def project(tmp_path: Path, sites: Any) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: vlaninfra\nruntime: python\n")
    doc = {"config": {"vlaninfra:sites": sites}}
    (tmp_path / "Pulumi.s.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path


def recorded(sites: Any, status: str = "verified", version: int = 2) -> dict[str, Any]:
    p = plan(load_config({"sites": sites}))
    return {"version": version, "time": "2026-11-29T09:00:00Z", "by": "ci@runner",
            "action": "up", "status": status, "layout": sites,
            "allocations": {k: [str(a) for a in v] for k, v in p.allocations.items()},
            "containers": {}}


def test_deployed_is_the_last_applied_record_pinned(tmp_path: Path) -> None:
    deployed = stack_config("lab")
    changed = copy.deepcopy(deployed)
    add_container(changed)
    failed = {**recorded(changed["sites"], "apply-failed", 3), "allocations": None, "layout": None}
    engine = FakeEngine(project_root(), stacks=["s"], outputs={
        OUTPUT: {"format": 1, "records": [recorded(deployed["sites"]), failed]}})
    change = load_change("s", engine=engine, cwd=project(tmp_path, changed["sites"]))
    assert change.base_version == 2 and "verified" in change.base
    assert change.old == plan(load_config(deployed))
    assert change.new == plan(load_config(changed), previous=change.old.allocations)
    assert [c[:2] for c in engine.calls] == [("stack", "ls"), ("stack", "output")]


def test_no_stack_or_no_record_means_nothing_deployed(tmp_path: Path) -> None:
    sites = stack_config("lab")["sites"]
    for engine in (FakeEngine(project_root()),
                   FakeEngine(project_root(), stacks=["s"], outputs={})):
        change = load_change("s", engine=engine, cwd=project(tmp_path, sites))
        assert change.old is None and change.base_version is None
        assert "everything shows as added" in change.base
        assert "never deployed" in change.base or "no apply recorded" in change.base


def test_an_invalid_config_lists_every_problem(tmp_path: Path) -> None:
    sites = stack_config("lab")["sites"]
    sites["a"]["containers"][0]["ipv4"] = "203.0.113.7"
    with pytest.raises(LayoutError) as err:
        load_change("s", engine=FakeEngine(project_root()), cwd=project(tmp_path, sites))
    assert "sites.a.containers[0].ipv4" in str(err.value)


def test_a_missing_stack_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: vlaninfra\nruntime: python\n")
    with pytest.raises(VlanInfraError, match="cannot read its config"):
        load_change("nope", engine=FakeEngine(project_root()), cwd=tmp_path)


def test_cli_formats_and_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    sites = stack_config("lab")["sites"]
    root = project(tmp_path, sites)
    monkeypatch.chdir(root)
    real = load_change

    def fake(stack: str, **kw: Any) -> Any:
        return real(stack, **{**kw, "engine": FakeEngine(project_root())})

    monkeypatch.setattr(cli_review, "load_change", fake)
    for fmt, marker in (("text", "vlaninfra diff --stack s"), ("markdown", "```mermaid"),
                        ("json", '"version": 1')):
        assert cli_review._diff(argparse.Namespace(stack="s", format=fmt)) == 0
        assert marker in capsys.readouterr().out
    out = tmp_path / "g.dot"
    assert cli_review._graph(argparse.Namespace(stack="s", output=str(out), no_state=True)) == 0
    assert out.read_text().startswith("digraph")
    sites["a"]["containers"][0]["ipv4"] = "203.0.113.7"
    project(tmp_path, sites)
    assert cli_review._diff(argparse.Namespace(stack="s", format="text")) == 1
    err = capsys.readouterr().err
    assert "not a valid layout" in err and "sites.a.containers[0].ipv4" in err
    assert "Traceback" not in err


def test_a_stack_deployed_before_records_says_so(tmp_path: Path) -> None:
    sites = stack_config("lab")["sites"]

    @dataclass(frozen=True)
    class Counted(FakeEngine):
        def run(self, stack: str | None, *args: str, check: bool = True,
                cwd: Path | None = None, timeout: float | None = None) -> str:
            if args[:2] == ("stack", "ls"):
                return json.dumps([{"name": "s", "resourceCount": 12}])
            return super().run(stack, *args, check=check, cwd=cwd, timeout=timeout)

    change = load_change("s", engine=Counted(project_root(), stacks=["s"]),
                         cwd=project(tmp_path, sites))
    assert change.old is None
    assert "12 resources but no vlaninfra record" in change.base
