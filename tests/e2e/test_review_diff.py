"""`vlaninfra diff` on a stack deployed through the program on the lab (issue 12, part 1):
it reads the deployed layout from the stack's records and the change from the stack config,
and contacts no host (no SSH login on any lab host while it runs)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.observe import LabStack

pytestmark = [pytest.mark.lab, pytest.mark.engine]


def diff(stack: LabStack, fmt: str) -> subprocess.CompletedProcess[str]:
    """`vlaninfra diff` in the scratch project, on the stack's own backend, without a TTY."""
    backend = stack.engine.backend
    assert backend is not None
    env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{backend}",
           "PULUMI_HOME": str(backend.parent / "home")}
    exe = Path(stack.engine.root) / ".venv" / "bin" / "vlaninfra"
    return subprocess.run([str(exe), "diff", "--stack", stack.name, "--format", fmt],
                          cwd=stack.project, env=env, text=True, capture_output=True,
                          stdin=subprocess.DEVNULL, check=False, timeout=120)


def test_diff_shows_the_config_change_without_contacting_hosts(lab_stack: LabStack) -> None:
    before_deploy = json.loads(diff(lab_stack, "json").stdout)
    assert before_deploy["base"]["version"] is None  # nothing recorded yet: all added
    assert {c["action"] for c in before_deploy["containers"]} == {"add"}

    lab_stack.run("up", "--yes", "--skip-preview")  # a plain `pulumi up` through the program
    same = json.loads(diff(lab_stack, "json").stdout)
    assert same["base"]["version"] == 1 and same["summary"]["changed"] is False

    sites: dict[str, Any] = lab_stack.sites()
    site = sites["a"]
    pool = site["networks"][0]["subnets"][0]
    printer = str(list(ip_network(pool["subnet"]).hosts())[60])
    pool["aux_addresses"] = {"printer": printer}
    site["containers"].append({**site["containers"][-1], "name": "web5"})
    lab_stack.write(sites)
    try:
        logins = lab_stack.logins()
        started = time.monotonic()
        result = diff(lab_stack, "json")
        took = time.monotonic() - started
        markdown = diff(lab_stack, "markdown")
        text = diff(lab_stack, "text")
        assert lab_stack.logins() == logins, "vlaninfra diff logged in to a host"
        preview = json.loads(lab_stack.run("preview", "--json"))
    finally:
        lab_stack.write(lab_stack.base_sites)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    print(f"\nvlaninfra diff (json) took {took:.1f} s\n{text.stdout}")
    assert data["base"]["version"] == 1
    added = [c for c in data["containers"] if c["action"] == "add"]
    assert [c["name"] for c in added] == ["web5"] and added[0]["new"]["ipv4"]
    replaced = {n["host"]: n for n in data["networks"] if n["action"] == "replace"}
    assert sorted(replaced) == ["h1", "h2"]
    assert sorted(c for n in replaced.values() for c in n["restarts"]) == [
        "web1", "web2", "web3", "web4"]
    assert any(printer in f["new"] for n in replaced.values() for f in n["fields"])
    # The engine's own preview replaces exactly what the diff says (resource names are
    # site-host-network and site-host-container).
    engine_says = {s["urn"].rsplit("::", 1)[1]: s["op"] for s in preview["steps"]}
    replaced_by_engine = {n for n, op in engine_says.items() if op == "replace"}
    assert replaced_by_engine == {f"a-{h}-pub_net" for h in replaced} | {
        f"a-{c['old']['host']}-{c['name']}" for c in data["containers"]
        if c["action"] == "replace"}
    assert engine_says.get(f"a-{added[0]['new']['host']}-web5") == "create"
    assert markdown.returncode == 0 and "> [!WARNING]" in markdown.stdout
    assert "```mermaid" in markdown.stdout
    assert "REPLACED" in text.stdout and "web5" in text.stdout
