"""examples/ci: the GitHub Actions workflow passes a real validator (actionlint, built by
tools/build-team-tools.sh, which also runs shellcheck on its `run:` scripts), the plain script
passes shellcheck, and both run the same steps. The script itself runs against the lab in
tests/e2e/test_ci_example.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vlaninfra.engine import project_root

ROOT = project_root()
CI = ROOT / "examples" / "ci"
WORKFLOW = CI / "vlaninfra.yml"
SCRIPT = CI / "review.sh"
STEPS = {
    "review": ["tools/setup.sh", "vlaninfra plan --stack",
               "preview --suppress-outputs --non-interactive", "vlaninfra diff --stack",
               "--format markdown", "gh pr comment"],
    "apply": ["tools/setup.sh", 'vlaninfra up --stack "$STACK" --yes'],
}


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    exe = ROOT / ".engine" / "bin" / "actionlint"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: run tools/setup.sh (tools/build-team-tools.sh builds it)")
    return subprocess.run([str(exe), "-verbose", "-config-file", str(CI / "actionlint.yaml"),
                           str(path)], capture_output=True, text=True, check=False)


def test_the_workflow_passes_actionlint_with_its_shell_scripts_checked() -> None:
    done = actionlint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Found 0 parse errors" in done.stderr
    assert 'Rule "shellcheck" was disabled' not in done.stderr, done.stderr


def test_actionlint_rejects_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "vlaninfra.yml"
    text = WORKFLOW.read_text()
    assert "if: github.event_name == 'push'" in text
    broken.write_text(text.replace("github.event_name == 'push'", "github.event_nam == 'push'")
                          .replace('"$PR_NUMBER" --body-file', "$PR_NUMBER --body-file"))
    done = actionlint(broken)
    assert done.returncode == 1
    assert 'property "event_nam" is not defined' in done.stdout, done.stdout
    assert "SC2086" in done.stdout, done.stdout


def test_the_script_passes_shellcheck() -> None:
    exe = shutil.which("shellcheck")
    assert exe, "shellcheck is missing: run tools/setup.sh"
    done = subprocess.run([exe, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_the_workflow_and_the_script_run_the_same_steps() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads the key `on` as True
    assert set(on) == {"pull_request", "push"} and on["push"]["branches"] == ["main"]
    script = SCRIPT.read_text()
    for job, needed in STEPS.items():
        runs = "\n".join(s.get("run", "") for s in doc["jobs"][job]["steps"])
        for step in needed:
            assert step in runs, (job, step)
            assert step.replace('"$STACK"', '"$stack"') in script, (job, step)


def test_the_script_refuses_wrong_usage() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "deploy", "lab"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 2
    assert "usage:" in done.stderr and "review|apply STACK" in done.stderr
