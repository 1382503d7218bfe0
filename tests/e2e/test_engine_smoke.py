"""The smallest end-to-end proof of the toolchain: the real pulumi CLI and Python language host run
a program with a dynamic provider against the local file backend (preview, up, destroy)."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
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


def _ignoring_sigint(argv: list[str]) -> subprocess.Popen[str]:
    """`argv` started the way a script's background job starts pulumi: SIGINT ignored."""
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def _ignored(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigIgn line for {pid}")


def test_plugins_take_sigint_when_pulumi_ignores_it() -> None:
    """pulumi stops its plugins with SIGINT and kills them only 5 s later: a plugin that inherits
    an ignored SIGINT from a background pulumi held every `up` and `preview` for those 5 s."""
    bin_dir = project_root() / ".engine" / "bin"
    real = project_root() / ".engine" / "libexec" / "pulumi-language-python"
    with _ignoring_sigint([str(bin_dir / "pulumi-language-python"), "127.0.0.1:9"]) as host:
        try:
            deadline = time.monotonic() + 10
            while os.readlink(f"/proc/{host.pid}/exe") != str(real):
                assert time.monotonic() < deadline, "the language host's launcher did not exec it"
                time.sleep(0.05)
            assert not _ignored(host.pid) & (1 << (signal.SIGINT - 1))
        finally:
            host.kill()

    argv = [str(bin_dir / "pulumi-resource-pulumi-python"), "127.0.0.1:9"]
    with _ignoring_sigint(argv) as provider:
        try:
            assert provider.stdout is not None and provider.stdout.readline().strip().isdigit()
            provider.send_signal(signal.SIGINT)
            assert provider.wait(timeout=4) != -signal.SIGKILL
        finally:
            provider.kill()
