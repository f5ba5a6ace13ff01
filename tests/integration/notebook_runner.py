"""Running a notebook of notebooks/ as a researcher would, for the slow tests: a real kernel (nbclient), headless
matplotlib, and what came out read back: errors, PNG figures, HTML tables by caption, printed text. The fast checks
of a committed notebook (no outputs, nothing that starts or stops anything) are here too."""
from __future__ import annotations

import base64
import importlib.util
import os
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Mapping

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Calls a notebook must not make: it reads, it never starts or stops anything.
FORBIDDEN = ("ray.kill", ".stop.remote", "ray.shutdown", "ray.init", "subprocess", "os.system")


def load_module(name: str) -> Any:
    """A module of notebooks/ by path (the folder is not a package, and stays off sys.path)."""
    spec = importlib.util.spec_from_file_location(f"notebooks_{name}", NOTEBOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class Tables(HTMLParser):
    """The notebook's HTML tables as {caption: [row dicts]}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, str]]] = {}
        self._caption = self._cell = None
        self._head: list[str] = []
        self._row: list[str] = []
        self._in = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:  # noqa: ARG002
        if tag in ("caption", "th", "td"):
            self._in, self._cell = tag, ""
        elif tag == "table":
            self._caption, self._head = None, []
        elif tag == "tr":
            self._row = []

    def handle_data(self, data: str) -> None:
        if self._in:
            self._cell += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "caption":
            self._caption = self._cell
            self.tables[self._caption] = []
        elif tag == "th":
            self._head.append(self._cell)
        elif tag == "td":
            self._row.append(self._cell)
        elif tag == "tr" and self._row:
            self.tables[self._caption].append(dict(zip(self._head, self._row)))
        if tag in ("caption", "th", "td"):
            self._in = ""


def execute(notebook: Path, env: Mapping[str, str], drop: tuple[str, ...] = (), timeout_s: int = 180) -> Any:
    """Run every cell in a fresh kernel (cwd notebooks/) with `env` on top of this process's environment and the
    names in `drop` removed; raises CellExecutionError on the first failing cell. Returns the executed notebook."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(notebook, as_version=4)
    full = {**os.environ, **env, "MPLBACKEND": "Agg"}  # a headless server's backend: the figures must still come out
    for name in drop:
        full.pop(name, None)
    client = nbclient.NotebookClient(nb, timeout=timeout_s, startup_timeout=60, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=full)
    return nb


class Outputs:
    """What an executed notebook's code cells put out."""

    def __init__(self, nb: Any) -> None:
        self.all = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        self.errors = [o for o in self.all if o.output_type == "error"]
        self.pngs = [base64.b64decode(o.data["image/png"]) for o in self.all if "image/png" in o.get("data", {})]
        self.text = "".join(o.get("text", "") for o in self.all if o.output_type == "stream")
        parser = Tables()
        for o in self.all:
            if "text/html" in o.get("data", {}):
                parser.feed(o.data["text/html"])
        self.tables = parser.tables

    def drawn(self, min_bytes: int = 5_000) -> bool:
        """Every figure is a real PNG with something drawn on it (not an empty canvas)."""
        return all(p.startswith(PNG_MAGIC) and len(p) > min_bytes for p in self.pngs)


def committed_code(notebook: Path) -> str:
    """The code cells of a committed notebook, after checking it is valid and carries no outputs."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    cells = "\n".join(c.source for c in code)
    for forbidden in FORBIDDEN:
        assert forbidden not in cells, forbidden
    return cells
