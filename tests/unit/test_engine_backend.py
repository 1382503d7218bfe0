"""Which state backend the engine helper uses, and its locks: a shared backend's lock is never
cleared automatically, and a run refused by a lock says which stack and what to do."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from vlaninfra.engine import Engine, StackLockedError
from vlaninfra.errors import VlanInfraError

S3 = "s3://state?endpoint=http://203.0.113.250:7070&s3ForcePathStyle=true&region=us-east-1"
LOCKED = """error: the stack is currently locked by 1 lock(s). Either wait for the other \
process(es) to end or delete the lock file with `pulumi cancel`.
  s3://state/.pulumi/locks/organization/p/team/0b.json?endpoint=http://203.0.113.250:7070: \
created by ci@runner-7 (pid 4242) at 2026-11-29T09:28:39Z
"""


@pytest.fixture(autouse=True)
def no_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("PULUMI_BACKEND_URL", "PULUMI_HOME"):
        monkeypatch.delenv(key, raising=False)


def _dead_lock(backend: Path, stack: str) -> Path:
    """A lock of this hostname whose pid runs nothing: stale on a file backend."""
    locks = backend / ".pulumi" / "locks" / "organization" / "p" / stack
    locks.mkdir(parents=True)
    path = locks / "dead.json"
    path.write_text(json.dumps({"pid": 2**22 + 7, "hostname": socket.gethostname()}))
    return path


def _project(tmp_path: Path, extra: str = "") -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "Pulumi.yaml").write_text(f"name: p\nruntime: python\n{extra}")
    return tmp_path


def test_the_default_is_the_checkouts_private_file_backend(tmp_path: Path) -> None:
    root = _project(tmp_path)
    assert Engine(root).backend_url() == f"file://{root}/.pulumi-state/backend?metadata=skip"
    lock = _dead_lock(root / ".pulumi-state" / "backend", "s")
    assert Engine(root).stale_locks("s") == [lock]


def test_sidecars_a_killed_pulumi_left_torn_are_found(tmp_path: Path) -> None:
    """The file bucket rewrites a `.attrs` sidecar in place; a pulumi killed meanwhile leaves
    it empty and pulumi then cannot load the stack ("failed to load checkpoint: EOF")."""
    root = _project(tmp_path / "checkout")
    other = tmp_path / "elsewhere"
    stacks = other / ".pulumi" / "stacks" / "p"
    stacks.mkdir(parents=True)
    (stacks / "s.json").write_text("{}")
    (stacks / "s.json.attrs").write_text("")  # torn
    (stacks / "t.json.attrs").write_text('{"user.content_type": "application/json"}')
    (stacks / "u.json.attrs").write_text('{"user.con')  # cut
    engine = Engine(root, extra_env={"PULUMI_BACKEND_URL": f"file://{other}"})
    assert sorted(engine.torn_sidecars()) == [stacks / "s.json.attrs", stacks / "u.json.attrs"]
    assert Engine(root, extra_env={"PULUMI_BACKEND_URL": S3}).torn_sidecars() == []


def test_a_file_backend_url_in_the_environment_is_where_stale_locks_are_looked_for(
        tmp_path: Path) -> None:
    root = _project(tmp_path / "checkout")
    other = tmp_path / "elsewhere"
    lock = _dead_lock(other, "s")
    _dead_lock(root / ".pulumi-state" / "backend", "s")  # not the backend in use
    engine = Engine(root, extra_env={"PULUMI_BACKEND_URL": f"file://{other}"})
    assert engine.backend_url() == f"file://{other}"
    assert engine.stale_locks("s") == [lock]


def test_no_lock_on_a_shared_backend_is_ever_stale(tmp_path: Path) -> None:
    root = _project(tmp_path)
    # Even a dead pid of this hostname in the local directory does not make an S3 lock stale:
    # the S3 lock may be a live run on another machine with the same hostname.
    _dead_lock(root / ".pulumi-state" / "backend", "s")
    engine = Engine(root, extra_env={"PULUMI_BACKEND_URL": S3})
    assert engine.backend_url() == S3
    assert engine.stale_locks("s") == []


def test_the_projects_backend_setting_is_left_to_pulumi(tmp_path: Path) -> None:
    root = _project(tmp_path, f"backend:\n  url: {S3}\n")
    engine = Engine(root)
    assert "PULUMI_BACKEND_URL" not in engine.env()
    assert engine.backend_url() == S3
    assert engine.stale_locks("s") == []
    assert not (root / ".pulumi-state").exists()
    # The environment still wins over the project setting, as in pulumi.
    env_wins = Engine(root, extra_env={"PULUMI_BACKEND_URL": "file:///srv/state"})
    assert env_wins.backend_url() == "file:///srv/state"


def test_a_run_refused_by_a_lock_names_the_stack_the_lock_and_the_fix(tmp_path: Path) -> None:
    root = _project(tmp_path)
    fake = root / ".engine" / "bin" / "pulumi"
    fake.parent.mkdir(parents=True)
    fake.write_text(f"#!/bin/sh\ncat >&2 <<'EOF'\n{LOCKED}EOF\nexit 255\n")
    fake.chmod(0o755)
    engine = Engine(root, passphrase="p", extra_env={"PULUMI_BACKEND_URL": S3,
                                                     "PATH": os.environ["PATH"]})
    with pytest.raises(StackLockedError) as caught:
        engine.run("team", "up", "--yes")
    err = caught.value
    assert err.stack == "team"
    assert err.holders == ("s3://state/.pulumi/locks/organization/p/team/0b.json?endpoint=http:"
                           "//203.0.113.250:7070: created by ci@runner-7 (pid 4242) at "
                           "2026-11-29T09:28:39Z",)
    text = str(err)
    assert text.startswith("stack team is locked by another update, so nothing was changed")
    assert "`pulumi cancel --yes --stack team`" in text
    assert "ci@runner-7 (pid 4242)" in text


def test_the_program_and_providers_run_in_the_projects_virtualenv(tmp_path: Path) -> None:
    """This language host gets no runtime options from the CLI: the helper puts the virtualenv
    Pulumi.yaml names first on PATH and tells the provider's launcher (PULUMI_RUNTIME_VIRTUALENV);
    a project naming none gets the checkout's (one that is not there: below)."""
    root = tmp_path / "checkout"
    project = tmp_path / "proj"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        "name: p\nruntime:\n  name: python\n  options:\n    virtualenv: venv\n")
    engine = Engine(root)
    env = engine.env(None, project)
    assert "PULUMI_RUNTIME_VIRTUALENV" not in env  # no venv/bin/python yet
    assert env["PATH"].split(os.pathsep)[:2] == [f"{root}/.engine/bin", f"{root}/.venv/bin"]
    (project / "venv" / "bin").mkdir(parents=True)
    (project / "venv" / "bin" / "python").touch()
    env = engine.env(None, project)
    assert env["PULUMI_RUNTIME_VIRTUALENV"] == f"{project}/venv"
    assert env["PATH"].split(os.pathsep)[:3] == [
        f"{root}/.engine/bin", f"{project}/venv/bin", f"{root}/.venv/bin"]
    assert "PULUMI_RUNTIME_VIRTUALENV" not in engine.env(None, _project(tmp_path / "plain"))


def test_a_run_of_a_project_naming_a_missing_virtualenv_is_refused(tmp_path: Path) -> None:
    """Its program would run with whatever Python is first on PATH (and that one's vlaninfra):
    refused before pulumi starts, naming Pulumi.yaml's key; commands that run no program go on.
    """
    root = tmp_path / "checkout"
    (root / ".engine" / "bin").mkdir(parents=True)
    fake = root / ".engine" / "bin" / "pulumi"
    fake.write_text("#!/bin/sh\necho ran \"$1\"\n")
    fake.chmod(0o755)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        "name: p\nruntime:\n  name: python\n  options:\n    virtualenv: venv\n")
    engine = Engine(root, backend=tmp_path / "state", passphrase="p")
    for command in ("up", "preview", "refresh", "destroy"):
        with pytest.raises(VlanInfraError) as err:
            engine.run("s", command, cwd=project)
        assert str(err.value) == (
            f"{project}/Pulumi.yaml: runtime.options.virtualenv names 'venv', but "
            f"{project}/venv/bin/python does not exist; nothing was run: create it (`python3 -m "
            f"venv {project}/venv` and install vlaninfra into it) or correct the option")
    assert engine.run(None, "stack", "ls", cwd=project) == "ran stack\n"
    (project / "venv" / "bin").mkdir(parents=True)
    (project / "venv" / "bin" / "python").touch()
    assert engine.run(None, "preview", cwd=project) == "ran preview\n"
    gone = tmp_path / "gone"  # an absolute path is taken as it is
    (project / "Pulumi.yaml").write_text(
        f"name: p\nruntime:\n  name: python\n  options:\n    virtualenv: {gone}\n")
    with pytest.raises(VlanInfraError, match=f"names '{gone}', but {gone}/bin/python does not"):
        engine.run(None, "up", "--yes", cwd=project)
