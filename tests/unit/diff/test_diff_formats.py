"""The machine and review forms are what they claim: the JSON validates against the shipped
schema, the markdown renders (markdown-it-py, GitHub-flavoured tables), and its Mermaid block
parses with Mermaid's own parser (tools/mermaid-parse, installed by tools/setup.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from markdown_it import MarkdownIt

from tests.unit.diff.cases import CASES, big_layout, diff
from vlaninfra.engine import project_root
from vlaninfra.layout import load_config, plan
from vlaninfra.review import FORMAT_VERSION, SCHEMA_PATH, compare, render_markdown, to_json

MERMAID = project_root() / "tools" / "mermaid-parse"


def schema() -> dict[str, object]:
    data: dict[str, object] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return data


def test_schema_is_a_valid_schema_and_ships_in_the_package() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    assert SCHEMA_PATH.parent.name == "schema"
    pyproject = (project_root() / "pyproject.toml").read_text()
    assert '"schema/*.json"' in pyproject


@pytest.mark.parametrize("case", sorted(CASES))
def test_json_validates(case: str) -> None:
    data = to_json(diff(case)[0])
    assert data["version"] == FORMAT_VERSION
    jsonschema.Draft202012Validator(schema()).validate(data)


def test_schema_refuses_a_malformed_diff() -> None:
    data = to_json(diff("add-container")[0])
    data["containers"][0]["action"] = "teleport"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema()).validate(data)


def _mermaid_blocks(markdown: str) -> list[str]:
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    return [t.content for t in tokens if t.type == "fence" and t.info.strip() == "mermaid"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_markdown_renders_tables_details_and_one_mermaid_block(case: str) -> None:
    d, new = diff(case)
    text = render_markdown(d, new)
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<table>" in html and "<th>" in html
    assert html.count("<details") == html.count("</details>") >= 1
    assert len(_mermaid_blocks(text)) == 1


def _parse_mermaid(*diagrams: str) -> list[dict[str, object]]:
    """Mermaid's verdict on each diagram (one node process for all)."""
    node = shutil.which("node")
    if node is None or not (MERMAID / "node_modules" / "mermaid").is_dir():
        pytest.skip("Mermaid's parser is not installed: run tools/setup.sh (needs npm)")
    done = subprocess.run([node, str(MERMAID / "parse.mjs"), "--json"],
                          input=json.dumps(diagrams), text=True, capture_output=True,
                          timeout=120, check=False)
    result: list[dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_mermaid_blocks_parse_with_mermaid() -> None:
    diagrams = [b for case in sorted(CASES) for b in _mermaid_blocks(render_markdown(*diff(case)))]
    big = plan(load_config(big_layout()))
    diagrams += _mermaid_blocks(render_markdown(compare(None, big, stack="big", base="x"), big))
    for diagram, verdict in zip(diagrams, _parse_mermaid(*diagrams), strict=True):
        assert verdict == {"ok": True, "type": "flowchart-v2"}, diagram


def test_the_parser_refuses_a_broken_diagram() -> None:
    assert _parse_mermaid('flowchart LR\n  a["x" --> b\n')[0]["ok"] is False


def test_markdown_of_a_replacement_is_loud(tmp_path: Path) -> None:
    d, new = diff("aux-address-replaces-network")
    text = render_markdown(d, new)
    assert "> [!WARNING]" in text and "re-created with them" in text
    for n in d.replaced_networks:
        assert all(c in text for c in n.restarts)


def test_a_3000_container_change_fits_a_pr_comment_and_its_mermaid_parses() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_layout", project_root() / "tools" / "bench_layout.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    p = plan(load_config(bench.build()))
    assert sum(len(h.containers) for s in p.sites for h in s.hosts) == 3000
    text = render_markdown(compare(None, p, stack="bench", base="nothing"), p)
    assert len(text) < 65536, "GitHub refuses comments over 65,536 characters"
    assert "more (`vlaninfra diff --format json` lists all)" in text
    (diagram,) = _mermaid_blocks(text)
    assert _parse_mermaid(diagram)[0]["ok"] is True
