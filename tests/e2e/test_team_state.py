"""Team state on a real S3-compatible server (versitygw, `tests/e2e/s3server.py`) through
Pulumi's own `s3://` backend, with `vlaninfra up | rollback | history` on the lab: issue 12,
part 4.

The tests run in file order on one stack (the `lab` stack's layout) whose state lives only in
the server's bucket. LAN addresses come from the stack config and the lab inventory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.observe import LabStack, container_facts, destroy_at_teardown
from tests.e2e.s3server import BUCKET, S3Server, s3_server
from vlaninfra.engine import LAB_PASSPHRASE, Engine, project_root
from vlaninfra.lab import Inventory
from vlaninfra.rollout import history

pytestmark = [pytest.mark.lab, pytest.mark.engine]

IMAGE = "vlaninfra/busybox:lab"
OUTPUTS: list[str] = []
"""Everything the commands printed: the server's secret key must never be among it."""


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def team_stack(lab_inventory: Inventory, s3: S3Server,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabStack]:
    """The `lab` stack's program and config in a scratch project whose state is only in the
    bucket; destroyed at the end of the module whatever happened."""
    work = tmp_path_factory.mktemp("team-stack")
    project = work / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: vlaninfra\nruntime: python\n")
    (project / "__main__.py").write_text("from vlaninfra.program import run\n\nrun()\n")
    config = yaml.safe_load((project_root() / "stacks" / "Pulumi.lab.yaml").read_text())
    stack = LabStack(
        engine=Engine(project_root(), passphrase=LAB_PASSPHRASE,
                      extra_env={**s3.env, "PULUMI_HOME": str(work / "home")}),
        project=project, name="team", inventory=lab_inventory,
        base_sites=config["config"]["vlaninfra:sites"])
    stack.write(stack.base_sites)
    stack.engine.ensure_stack(stack.name, cwd=project)
    try:
        yield stack
    finally:
        stack.engine.run(stack.name, "cancel", "--yes", check=False, cwd=project)
        destroy_at_teardown(stack.engine, stack.name, project)


def _env(stack: LabStack) -> dict[str, str]:
    return {**os.environ, **stack.engine.extra_env}


def cli(stack: LabStack, *args: str) -> subprocess.CompletedProcess[str]:
    """`vlaninfra ARGS` in the scratch project, on the bucket, without a TTY."""
    vlaninfra = project_root() / ".venv" / "bin" / "vlaninfra"
    done = subprocess.run([str(vlaninfra), *args], cwd=stack.project, env=_env(stack),
                          text=True, capture_output=True, stdin=subprocess.DEVNULL, check=False)
    OUTPUTS.extend([done.stdout, done.stderr])
    return done


def start_up(stack: LabStack) -> subprocess.Popen[str]:
    """`vlaninfra up --yes` in the background, in a process group of its own."""
    vlaninfra = project_root() / ".venv" / "bin" / "vlaninfra"
    return subprocess.Popen([str(vlaninfra), "up", "--stack", stack.name, "--yes"],
                            cwd=stack.project, env=_env(stack), text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def wait_for_lock(s3: S3Server, stack: LabStack, proc: subprocess.Popen[str]) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        locks = s3.locks(stack.name)
        if locks:
            return locks[0]
        assert proc.poll() is None, f"up ended before locking: {proc.communicate()}"
        time.sleep(0.05)
    raise AssertionError("no lock on the stack in the bucket within 60 s")


def verified(stack: LabStack) -> list[int]:
    """The versions `vlaninfra history` lists as verified (read through the engine, like it)."""
    return [int(r["version"]) for r in history(stack.name, engine=stack.engine, cwd=stack.project)
            if r["status"] == "verified"]


def with_container(stack: LabStack, name: str, host: str) -> dict[str, Any]:
    sites = stack.sites()
    sites["a"]["containers"].append(
        {"name": name, "host": host, "network": "pub_net", "image": IMAGE})
    return sites


def test_up_history_and_rollback_keep_their_records_in_the_bucket(
        team_stack: LabStack, s3: S3Server) -> None:
    started = time.monotonic()
    done = cli(team_stack, "up", "--stack", team_stack.name, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    team_stack.write(with_container(team_stack, "team1", "h1"))
    done = cli(team_stack, "up", "--stack", team_stack.name, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert container_facts(team_stack.host("h1"), "team1")
    assert verified(team_stack) == [1, 2]

    done = cli(team_stack, "rollback", "--stack", team_stack.name, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "version 1's layout is on the hosts, verified" in done.stdout
    assert not container_facts(team_stack.host("h1"), "team1")
    assert verified(team_stack) == [1, 2, 3]
    shown = cli(team_stack, "history", "--stack", team_stack.name)
    assert shown.returncode == 0 and "rollback to 1" in shown.stdout, shown.stdout + shown.stderr
    print(f"\nup, up, rollback, history on the S3 backend: {time.monotonic() - started:.1f} s")

    # The state is in the bucket (the server's files), nowhere in the project or checkout.
    stacks = s3.data / BUCKET / ".pulumi" / "stacks"
    assert list(stacks.rglob(f"{team_stack.name}.json")), sorted(stacks.rglob("*"))
    assert not (team_stack.project / ".pulumi").exists()
    assert not s3.locks(team_stack.name)


def test_a_second_concurrent_up_is_refused_by_the_lock_and_changes_nothing(
        team_stack: LabStack, s3: S3Server) -> None:
    team_stack.write(with_container(team_stack, "team2", "h2"))
    first = start_up(team_stack)
    try:
        lock = wait_for_lock(s3, team_stack, first)
        # The first run is held right after it took the lock: a slow update, deterministically.
        os.killpg(first.pid, signal.SIGSTOP)
        hosts = team_stack.state()
        started = time.monotonic()
        second = cli(team_stack, "up", "--stack", team_stack.name, "--yes")
        took = time.monotonic() - started
        assert second.returncode == 2, second.stdout + second.stderr
        err = second.stderr
        assert f"stack {team_stack.name} is locked by another update, so nothing was changed" \
            in err, err
        assert f"`pulumi cancel --yes --stack {team_stack.name}`" in err
        assert lock.name in err and ": created by " in err and "(pid " in err
        assert "FAILED" not in second.stdout and "rollback" not in second.stdout
        assert team_stack.state() == hosts
        assert verified(team_stack) == [1, 2, 3]
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    assert "ok" in out.splitlines()[0]
    assert container_facts(team_stack.host("h2"), "team2")
    assert verified(team_stack) == [1, 2, 3, 4]
    assert not s3.locks(team_stack.name)
    print(f"\nsecond up refused by the first one's lock after {took:.1f} s")
    # Run again once the first has ended, it goes through with no manual step.
    again = cli(team_stack, "up", "--stack", team_stack.name, "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert verified(team_stack)[:4] == [1, 2, 3, 4]


def test_a_killed_up_leaves_a_lock_that_the_readme_command_clears(
        team_stack: LabStack, s3: S3Server) -> None:
    team_stack.write(with_container(team_stack, "team3", "h1"))
    before = verified(team_stack)
    crashed = start_up(team_stack)
    lock = wait_for_lock(s3, team_stack, crashed)
    os.killpg(crashed.pid, signal.SIGKILL)
    crashed.communicate()

    # The lock's pulumi is dead on this very host, yet on a shared backend nothing clears it
    # on its own: the next run is refused, and says how to clear it.
    again = cli(team_stack, "up", "--stack", team_stack.name, "--yes")
    assert again.returncode == 2, again.stdout + again.stderr
    assert f"`pulumi cancel --yes --stack {team_stack.name}`" in again.stderr
    assert lock.exists()

    # The README's way: `tools/pulumi cancel --yes --stack S` (here: the scratch project).
    team_stack.run("cancel", "--yes")
    assert not s3.locks(team_stack.name)
    started = time.monotonic()
    done = cli(team_stack, "up", "--stack", team_stack.name, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert container_facts(team_stack.host("h1"), "team3")
    assert len(verified(team_stack)) == len(before) + 1  # the killed run recorded nothing
    print(f"\nup after a killed up and `pulumi cancel`: {time.monotonic() - started:.1f} s")


def test_the_servers_secret_key_is_never_printed_nor_stored(s3: S3Server) -> None:
    assert OUTPUTS
    assert not [o for o in OUTPUTS if s3.secret_key in o]
    stored = [p for p in (s3.data / BUCKET).rglob("*")
              if p.is_file() and s3.secret_key in p.read_text(errors="replace")]
    assert not stored
