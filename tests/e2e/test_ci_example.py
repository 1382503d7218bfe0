"""examples/ci/review.sh against the lab: on a proposed change it validates, previews and
writes the markdown diff as the pull request's comment (to a file: no hosted CI here) and
changes nothing; on the merge it applies with verification. Issue 12, part 3.

The stack is the `lab` stack's layout in a scratch project laid out like the repository
(stacks/Pulumi.NAME.yaml), on its own file backend. LAN addresses come from the stack config.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.observe import LabStack, container_facts, destroy_at_teardown
from vlaninfra.engine import LAB_PASSPHRASE, Engine, project_root
from vlaninfra.lab import Inventory
from vlaninfra.rollout import history, up

pytestmark = [pytest.mark.lab, pytest.mark.engine]

SCRIPT = project_root() / "examples" / "ci" / "review.sh"
IMAGE = "vlaninfra/busybox:lab"


class CiStack(LabStack):
    """A scratch stack whose file is stacks/Pulumi.NAME.yaml, as in the repository."""

    def write(self, sites: dict[str, object]) -> None:
        doc = {"config": {"vlaninfra:sites": sites}}
        (self.project / "stacks" / f"Pulumi.{self.name}.yaml").write_text(yaml.safe_dump(doc))


@pytest.fixture(scope="module")
def ci_stack(lab_inventory: Inventory,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[CiStack]:
    """Deployed and verified once (the main branch); destroyed at the end whatever happened."""
    work = tmp_path_factory.mktemp("ci-stack")
    project = work / "project"
    (project / "stacks").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text(
        "name: vlaninfra\nruntime: python\nstackConfigDir: stacks\n")
    (project / "__main__.py").write_text("from vlaninfra.program import run\n\nrun()\n")
    config = yaml.safe_load((project_root() / "stacks" / "Pulumi.lab.yaml").read_text())
    backend = work / "backend"
    stack = CiStack(
        engine=Engine(project_root(), passphrase=LAB_PASSPHRASE, extra_env={
            "PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_HOME": str(work / "home")}),
        project=project, name="ci", inventory=lab_inventory,
        base_sites=config["config"]["vlaninfra:sites"])
    backend.mkdir(mode=0o700)
    stack.write(stack.base_sites)
    stack.engine.ensure_stack(stack.name, cwd=project)
    try:
        report = up(stack.name, engine=stack.engine, cwd=project)
        assert report.ok, report.text()
        yield stack
    finally:
        destroy_at_teardown(stack.engine, stack.name, project)


def review_sh(stack: CiStack, mode: str, comment: Path) -> subprocess.CompletedProcess[str]:
    """The script as a CI job runs it: in the project, no terminal, not in GitHub Actions."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GITHUB_ACTIONS", "GH_TOKEN", "PR_NUMBER")}
    env.update(stack.engine.extra_env)
    env["VLANINFRA_COMMENT"] = str(comment)
    return subprocess.run(["bash", str(SCRIPT), mode, stack.name], cwd=stack.project, env=env,
                          text=True, capture_output=True, stdin=subprocess.DEVNULL, check=False)


def versions(stack: CiStack) -> list[tuple[int, str]]:
    return [(int(r["version"]), str(r["status"]))
            for r in history(stack.name, engine=stack.engine, cwd=stack.project)]


def has_diff() -> bool:
    vlaninfra = project_root() / ".venv" / "bin" / "vlaninfra"
    return subprocess.run([str(vlaninfra), "diff", "--help"], capture_output=True,
                          check=False).returncode == 0


def test_a_proposed_change_is_validated_previewed_and_commented_not_applied(
        ci_stack: CiStack, tmp_path: Path) -> None:
    sites = ci_stack.sites()
    sites["a"]["containers"].append(
        {"name": "review1", "host": "h2", "network": "pub_net", "image": IMAGE})
    ci_stack.write(sites)
    hosts = ci_stack.state()
    comment = tmp_path / "comment.md"
    done = review_sh(ci_stack, "review", comment)
    steps = [ln for ln in done.stderr.splitlines() if ln.startswith("==> ")]
    assert steps[:3] == ["==> set-up: tools/setup.sh", "==> vlaninfra plan --stack ci",
                         "==> pulumi preview --stack ci"], done.stderr
    assert "review1" in done.stdout  # the plan's tables and the preview name the container
    assert "to create" in done.stdout, done.stdout
    # Nothing applied: the hosts and the records are as the deployed version left them.
    assert ci_stack.state() == hosts
    assert versions(ci_stack) == [(1, "verified")]
    if not has_diff():
        assert done.returncode != 0 and "invalid choice: 'diff'" in done.stderr, done.stderr
        pytest.skip("`vlaninfra diff` is not in this checkout: validate and preview were "
                    "checked, the comment was not")
    assert done.returncode == 0, done.stdout + done.stderr
    assert steps[3:] == [
        f"==> vlaninfra diff --stack ci --format markdown > {comment}",
        f"==> comment written to {comment} (not posted: no hosted CI with GH_TOKEN and "
        "PR_NUMBER)"]
    text = comment.read_text()
    assert "review1" in text and "|" in text and "```mermaid" in text, text
    assert "<summary>pulumi preview of stack ci</summary>" in text
    assert text.rstrip().endswith("</details>")


def test_the_merged_change_is_applied_and_verified(ci_stack: CiStack, tmp_path: Path) -> None:
    done = review_sh(ci_stack, "apply", tmp_path / "unused.md")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("vlaninfra up --stack ci: ok"), done.stdout
    assert "==> vlaninfra up --stack ci --yes" in done.stderr
    assert container_facts(ci_stack.host("h2"), "review1")
    assert versions(ci_stack) == [(1, "verified"), (2, "verified")]
    assert not (tmp_path / "unused.md").exists()
