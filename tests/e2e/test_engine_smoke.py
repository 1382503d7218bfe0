"""The smallest end-to-end proof of the toolchain: the real pulumi CLI and Python language host run
a program with a dynamic provider against the local file backend (preview, up, destroy)."""

from __future__ import annotations

import contextlib
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

SLOW_PROGRAM = """
import os, time
from pulumi.dynamic import CreateResult, Resource, ResourceProvider


class Slow(ResourceProvider):
    def create(self, props):
        open(props["marks"] + "/started", "w").write(str(os.getpid()))
        time.sleep(3)
        open(props["marks"] + "/finished", "w").close()
        return CreateResult(id_="slow", outs=props)


class SlowThing(Resource):
    pass


SlowThing(Slow(), "slow", {"marks": MARKS})
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
    if subprocess.run(["env", "--default-signal=INT", "true"], check=False).returncode:
        pytest.skip("this env has no --default-signal (set-up warned of it)")
    bin_dir = project_root() / ".engine" / "bin"
    real = (project_root() / ".engine" / "libexec" / "pulumi-language-python").resolve()
    with _ignoring_sigint([str(bin_dir / "pulumi-language-python"), "127.0.0.1:9"]) as host:
        try:
            deadline = time.monotonic() + 10
            while Path(os.readlink(f"/proc/{host.pid}/exe")) != real:
                assert time.monotonic() < deadline, "the language host's launcher did not exec it"
                time.sleep(0.05)
            assert not _ignored(host.pid) & (1 << (signal.SIGINT - 1))
            # ... and runs Python through the shim that answers its `pip list` without pip
            environ = Path(f"/proc/{host.pid}/environ").read_bytes().split(b"\0")
            shim = project_root() / ".engine" / "libexec" / "langhost-python"
            assert f"PULUMI_PYTHON_CMD={shim}".encode() in environ
        finally:
            host.kill()

    argv = [str(bin_dir / "pulumi-resource-pulumi-python"), "127.0.0.1:9"]
    with _ignoring_sigint(argv) as provider:
        try:
            assert provider.stdout is not None and provider.stdout.readline().strip().isdigit()
            provider.send_signal(signal.SIGINT)
            provider.wait(timeout=4)  # it takes SIGINT: it ends without being killed
        finally:
            provider.kill()


def _under(folder: Path) -> list[int]:
    """Processes whose working directory is inside `folder`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_provider_ends_when_pulumi_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed pulumi cannot stop its plugins: the provider sees its engine gone, lets the
    create under way finish, and exits instead of idling forever."""
    project, marks = tmp_path / "slow", tmp_path / "marks"
    project.mkdir()
    marks.mkdir()
    (project / "Pulumi.yaml").write_text("name: slow\nruntime: python\n")
    (project / "__main__.py").write_text(
        textwrap.dedent(SLOW_PROGRAM).replace("MARKS", repr(str(marks))))
    engine = Engine(project_root(), backend=tmp_path / "backend", passphrase="slow")
    engine.ensure_stack("slow", cwd=project)
    argv = ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive", "--stack", "slow"]
    with subprocess.Popen(argv, cwd=project, env=engine.env("slow", project),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as pulumi:
        try:
            deadline = time.monotonic() + 60
            while not (marks / "started").exists():
                assert pulumi.poll() is None, pulumi.communicate()[0]
                assert time.monotonic() < deadline
                time.sleep(0.1)
            provider = int((marks / "started").read_text())
            pulumi.kill()
            pulumi.wait()
            deadline = time.monotonic() + 20
            while Path(f"/proc/{provider}").exists():
                assert time.monotonic() < deadline, "the provider outlived its engine"
                time.sleep(0.2)
            assert (marks / "finished").exists()  # the create under way was let finish
        finally:
            pulumi.kill()
            for pid in _under(tmp_path):  # the program and its language host
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
