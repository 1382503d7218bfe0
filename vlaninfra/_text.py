"""Plain aligned text tables: what `vlaninfra plan` and `vlaninfra demo` print."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["table"]


def table(header: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "") -> list[str]:
    """The lines of an aligned table; None and "" show as "-".

    Example: ``table(("host", "ip"), [("h1", "192.0.2.11")])``
    """
    cells = [list(header), *[["-" if v is None or v == "" else str(v) for v in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
