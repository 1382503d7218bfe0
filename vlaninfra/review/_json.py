"""`vlaninfra diff --format json`: the stable machine form, described by `SCHEMA_PATH`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ._model import Diff

__all__ = ["FORMAT_VERSION", "SCHEMA_PATH", "render_json", "to_json"]

FORMAT_VERSION = 1
"""Bumped on any change that is not a new optional field."""
SCHEMA_PATH = Path(__file__).parent.parent / "schema" / "diff.schema.json"
"""The JSON Schema of the output, shipped in the package."""


def to_json(d: Diff) -> dict[str, Any]:
    """The diff as plain JSON data, e.g. ``to_json(diff)["networks"][0]["restarts"]``."""
    data = dataclasses.asdict(d)
    base = {"description": data.pop("base"), "version": data.pop("base_version")}
    tenants = {"added": data.pop("tenants_added"), "removed": data.pop("tenants_removed")}
    summary = {
        "changed": not d.empty,
        "restarted_containers": [f"{c.site}/{c.name}" for c in d.restarted],
        "replaced_networks": [f"{n.site}/{n.host}/{n.name}" for n in d.replaced_networks],
    }
    out = {"version": FORMAT_VERSION, "stack": data.pop("stack"), "base": base,
           "summary": summary, **data, "tenants": tenants}
    plain: dict[str, Any] = json.loads(json.dumps(out))  # tuples as lists: JSON data only
    return plain


def render_json(d: Diff) -> str:
    """``to_json`` as indented text, keys in a fixed order."""
    return json.dumps(to_json(d), indent=2, ensure_ascii=False) + "\n"
