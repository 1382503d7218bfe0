"""Reading what a ``pulumi ... --json`` run printed: its error messages and change summary.

Example: ``summary_of(engine.run("lab", "preview", "--json"))`` → ``{"same": 12}``
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["diagnostics", "summary_of"]


def _documents(output: str) -> list[Any]:
    """Every JSON document in a `--json` run's output: the run's own document (without
    --skip-preview) and the engine's event lines."""
    docs = []
    decoder = json.JSONDecoder()
    pos = output.find("{")
    while 0 <= pos < len(output):
        try:
            doc, end = decoder.raw_decode(output, pos)
        except ValueError:
            break
        docs.append(doc)
        pos = output.find("{", end)
    return docs


def diagnostics(output: str) -> list[str]:
    """The error messages of a `--json` run: its document's diagnostics and error events."""
    found = [
        str(e.get("message", "")).strip()
        for doc in _documents(output)
        for e in [doc.get("diagnosticEvent") or {}, *(doc.get("diagnostics") or [])]
        if e.get("severity") == "error" and e.get("message")
    ]
    return list(dict.fromkeys(found))


def summary_of(output: str) -> dict[str, int]:
    """The change summary of a `--json` run, e.g. ``{"create": 3, "same": 1}``."""
    for doc in _documents(output):
        summary = doc.get("changeSummary") or (doc.get("summaryEvent") or {}).get(
            "resourceChanges"
        )
        if summary is not None:
            return {str(k): int(v) for k, v in summary.items()}
    return {}
