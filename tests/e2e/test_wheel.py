"""vlaninfra as a package a user installs: a wheel built from the repository, installed into a
fresh virtualenv outside the checkout, serves the user's own Pulumi project (its Pulumi.yaml,
stack file and program importing vlaninfra) against the shared lab: `vlaninfra plan`,
`vlaninfra lab status`, `pulumi up`; and the VM image build files come with the wheel.

The virtualenv gets the wheel only (`--no-deps`); its third-party dependencies are shared from
the checkout's virtualenv through a `.pth` path entry (no network needed), which does not
activate the checkout's editable install: `vlaninfra` is imported from the wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.e2e.observe import destroyed_after
from vlaninfra.engine import LAB_PASSPHRASE, Engine, project_root
from vlaninfra.lab import Inventory
from vlaninfra.lab._inventory import lab_root

pytestmark = [pytest.mark.lab, pytest.mark.engine]

PROGRAM = '''"""A user's program: its stack config's layout, one vlaninfra.Site per site."""

import pulumi

import vlaninfra

sites = pulumi.Config("vlaninfra").require_object("sites")
for site in vlaninfra.load_config({"sites": sites}).sites:
    pulumi.export(site.name, vlaninfra.Site(site.name, vlaninfra.SiteArgs(site=site)).outputs)
pulumi.export("vlaninfra_from", vlaninfra.__file__)
'''


def _sh(*argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv outside the checkout with the repository's wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    root = project_root()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    shutil.copytree(root / "vlaninfra", src / "vlaninfra",
                    ignore=shutil.ignore_patterns("__pycache__"))
    _sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", work / "dist", src)
    (wheel,) = (work / "dist").glob("vlaninfra-*.whl")
    env = work / "venv"
    _sh(getattr(sys, "_base_executable", sys.executable), "-m", "venv", env)
    purelib = Path(_sh(env / "bin" / "python", "-c",
                       "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (purelib / "checkout_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _sh(env / "bin" / "pip", "install", "--no-deps", "-q", wheel)
    return env


def test_the_wheel_carries_the_vm_image_build_files(venv: Path) -> None:
    out = _sh(venv / "bin" / "python", "-c",
              "import vlaninfra, vlaninfra.lab._vm_image as vm; "
              "print(vlaninfra.__file__); print(vm._TOOLS_DIR); print(vm.cache_key())",
              cwd=venv)
    package, tools, key = out.split()
    assert package.startswith(str(venv)) and tools.startswith(str(venv))
    assert not tools.startswith(str(project_root()))
    assert len(key) == 16  # every build input read from the installed package


def test_a_users_project_plans_and_deploys_with_the_installed_package(
    venv: Path, lab_inventory: Inventory, tmp_path: Path
) -> None:
    project = tmp_path / "myinfra"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(yaml.safe_dump({
        "name": "myinfra",
        "runtime": {"name": "python", "options": {"virtualenv": str(venv)}}}))
    (project / "__main__.py").write_text(PROGRAM)
    lab = yaml.safe_load((project_root() / "stacks" / "Pulumi.lab.yaml").read_text())
    sites = lab["config"]["vlaninfra:sites"]
    (project / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": {
        "vlaninfra:sites": sites}}))
    lab_env = {"VLANINFRA_LAB_DIR": str(lab_root())}
    env = {**os.environ, **lab_env}

    plan = _sh(venv / "bin" / "vlaninfra", "plan", "--stack", "dev", cwd=project, env=env)
    names = [c["name"] for s in sites.values() for c in s["containers"]]
    assert all(n in plan for n in names), plan
    status = _sh(venv / "bin" / "vlaninfra", "lab", "status", cwd=project, env=env)
    assert all(h.name in status for h in lab_inventory.hosts), status

    engine = Engine(project_root(), backend=tmp_path / "backend", passphrase=LAB_PASSPHRASE,
                    extra_env=lab_env)
    engine.ensure_stack("dev", cwd=project)
    with destroyed_after(engine, "dev", project):
        engine.run("dev", "up", "--yes", "--skip-preview", cwd=project)
        engine.run("dev", "preview", "--expect-no-changes", cwd=project)
        # The program ran in the virtualenv Pulumi.yaml names, with the installed package.
        where = engine.run("dev", "stack", "output", "vlaninfra_from", cwd=project).strip()
        assert where.startswith(str(venv)), where
        for site, layout in sites.items():
            out = json.loads(engine.run("dev", "stack", "output", site, "--json", cwd=project))
            assert sorted(k.split("/")[1] for k in out["containers"]) == sorted(
                c["name"] for c in layout["containers"])
            assert all(c["ipv4"] and c["mac"] for c in out["containers"].values())
