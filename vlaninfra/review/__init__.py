"""Reviewing a change: `vlaninfra diff` (the change between the deployed layout and the stack
config, in network terms) and `vlaninfra graph` (the topology as a picture).

Example::

    change = load_change("lab")
    diff = compare(change.old, change.new, stack="lab", base=change.base)
    print(render_text(diff))
"""

from __future__ import annotations

from ._compare import compare
from ._dot import render_dot
from ._json import FORMAT_VERSION, SCHEMA_PATH, render_json, to_json
from ._markdown import render_markdown
from ._mermaid import render_mermaid
from ._model import (
    ContainerChange,
    Diff,
    Endpoint,
    FieldChange,
    Finding,
    NetworkChange,
    ParentChange,
    ShimChange,
    UpstreamChange,
)
from ._state import Change, load_change
from ._text import render_text

__all__ = [
    "FORMAT_VERSION",
    "SCHEMA_PATH",
    "Change",
    "ContainerChange",
    "Diff",
    "Endpoint",
    "FieldChange",
    "Finding",
    "NetworkChange",
    "ParentChange",
    "ShimChange",
    "UpstreamChange",
    "compare",
    "load_change",
    "render_dot",
    "render_json",
    "render_markdown",
    "render_mermaid",
    "render_text",
    "to_json",
]
