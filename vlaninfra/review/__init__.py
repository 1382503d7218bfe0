"""Reviewing a change: `vlaninfra diff` (the change between the deployed layout and the stack
config, in network terms) and `vlaninfra graph` (the topology as a picture).

Example::

    change = load_change("lab")
    diff = compare(change.old, change.new, stack="lab", base=change.base)
    print(render_text(diff))
"""

from __future__ import annotations

from . import _json, _model, _state
from ._compare import compare
from ._dot import render_dot
from ._json import *  # noqa: F403
from ._markdown import render_markdown
from ._mermaid import render_mermaid
from ._model import *  # noqa: F403
from ._state import *  # noqa: F403
from ._text import render_text

__all__ = ["compare", "render_dot", "render_markdown", "render_mermaid", "render_text"]
__all__ += _model.__all__  # the typed change
__all__ += _json.__all__
__all__ += _state.__all__
