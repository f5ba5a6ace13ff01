"""Showing what the notebook reads: HTML tables of exact values, and matplotlib figures as PNG outputs.

Not pyplot: a `Figure` drawn straight to PNG works under any backend and leaves no global state between cells. No
pandas: the values are exact decimal strings, a table of them is all a reader needs, and the notebook runs on the
test dependencies alone."""
from __future__ import annotations

import html
import io
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

MAX_ROWS = 50


def num(value: Any) -> float:
    """A decimal string or Decimal as a float, FOR DRAWING ONLY (axes need floats; tables keep the exact text)."""
    return float(Decimal(str(value)))


def figure(rows: int = 1, cols: int = 1, width: float = 11.0, height: float = 3.2) -> tuple[Any, Any]:
    """A pyplot-free figure and its axes (a flat list when there are several)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    flat = [ax for row in axes for ax in row]
    return fig, (flat[0] if len(flat) == 1 else flat)


def show(fig: Any) -> None:
    """Display a figure as image/png (any backend)."""
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    display(Image(data=buf.getvalue(), format="png"))


def table(rows: Sequence[Mapping[str, Any]] | Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None,
          max_rows: int = MAX_ROWS, title: str | None = None) -> None:
    """Display dict rows as an HTML table (values as their exact text; the first `max_rows` rows)."""
    from IPython.display import HTML, display

    rows = list(rows)
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if r.get(c) is None else str(r.get(c)))}</td>"
                                    for c in cols) + "</tr>" for r in rows[:max_rows])
    more = f"<p>… {len(rows) - max_rows} more rows</p>" if len(rows) > max_rows else ""
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    display(HTML(f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"
                 if rows else f"<p>{html.escape(title or '')}: (none)</p>"))


def short(text: Any, keep: int = 10) -> str:
    """A long id (address, tx hash, deposit key) cut for a table cell."""
    s = "" if text is None else str(text)
    return s if len(s) <= keep + 1 else s[:keep] + "…"
